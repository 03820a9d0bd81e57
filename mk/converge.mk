# The randomized, model-based convergence test (tests/converge): clients
# and one syncd over a rich schema (UNIQUE columns, cascades, a WITHOUT
# ROWID table, a server trigger), random writes of every kind, pushes and
# pulls at random points; at quiescence every replica must equal the
# server value for value. See README, "Convergence test".
#
#   make test-converge  a few fixed seeds, the single-client mode and the
#                       shrunk logs of the failures it found (cases/*.json);
#                       part of make test, well under two minutes
#   make converge       one run per seed of SEEDS ("1 2 3" or a range
#                       "1-200"; CONVERGE_SEEDS is the older name, default
#                       1-10); the last line is "converge: N passed, N failed"
#
#   make converge-rules the same with two users and syncd --rules
#                       (tests/converge/rules_run.py), one run per seed of
#                       SEEDS (default 1-10); RULES_FLAGS passes more options
#                       ("--owner-change", "--third-user", "--watch",
#                       "--seats": a membership keyed by an id, moved and
#                       made again, "--seat-cascade": the same, deleted by
#                       its project's cascade too, "--max-tombstones N":
#                       deletes purged as the run goes); test-converge runs
#                       a few seeds of it, with and without --owner-change,
#                       with a third user and a device that tracks two
#                       tables, with seats and their cascade (also with
#                       deletes purged), two on PostgreSQL (one with seats),
#                       and the logs of the failures it found
#                       (rules_cases/*.json)
#   make converge-rules-pg  the same on PostgreSQL storage (--pg: a throwaway
#                       cluster, tests/pg_env.sh, a fresh database per seed,
#                       rules/server_pg.sql); RULES_FLAGS as above
#   make converge-schemas  convergence without a model over a schema the
#                       others do not use (tests/converge/schemas_run.py:
#                       a self-cascading tree, ON UPDATE CASCADE of a text
#                       key, NOCASE and partial expression UNIQUE indexes,
#                       a STRICT table with a generated column), syncd
#                       SIGKILLed at random; SCHEMAS_FLAGS passes options
#                       ("--worker", "--solo", "--ops N", "--kills P");
#                       test-converge runs 4 seeds without and 2 with the
#                       worker, and 4 with one writer (--solo: the server
#                       must accept every mutation), 2 of them with push
#                       batches of 3 ("--batch 3"); "--schema 2" runs a
#                       CRM / to-do app's schema instead (AUTOINCREMENT
#                       keys, a composite key and foreign key, SET DEFAULT,
#                       RESTRICT, a junction table), which test-converge
#                       runs the same way (4 seeds, 2 with the worker, 4
#                       with --solo, 2 with --solo --batch 3, and 2 longer
#                       ones with batches of 2 that a batch cut broke)
#
# CONVERGE_FLAGS passes more options to tests/converge/run.py (say
# "--no-replace --no-swaps" while those defects are open, or "--shrink").
.PHONY: test-converge converge converge-rules converge-rules-pg converge-schemas
TEST_TARGETS += test-converge
CONVERGE_PYTHON ?= $(E2E_PYTHON)
CONVERGE_SEEDS ?= 1-10
SEEDS ?= $(CONVERGE_SEEDS)
CONVERGE_FLAGS ?=
CONVERGE_RUN = $(CONVERGE_PYTHON) tests/converge/run.py
RULES_FLAGS ?=
RULES_RUN = $(CONVERGE_PYTHON) tests/converge/rules_run.py
SCHEMAS_FLAGS ?=
SCHEMAS_RUN = $(CONVERGE_PYTHON) tests/converge/schemas_run.py

# Each run goes on when one before it failed.
test-converge: $(EXT) server/syncd
	@fail=0; \
	$(CONVERGE_RUN) --replay tests/converge/cases/*.json || fail=1; \
	$(CONVERGE_RUN) --seeds "1 2 3" $(CONVERGE_FLAGS) || fail=1; \
	$(CONVERGE_RUN) --seeds "1 2" --clients 1 $(CONVERGE_FLAGS) || fail=1; \
	$(CONVERGE_RUN) --seed 3 --clients 1 --worker $(CONVERGE_FLAGS) || fail=1; \
	$(RULES_RUN) --seeds "1 2 3 4 5" $(RULES_FLAGS) || fail=1; \
	$(RULES_RUN) --seeds "1 2 3" --owner-change || fail=1; \
	$(RULES_RUN) --seeds "1 2 3" --third-user --owner-change --watch || fail=1; \
	$(RULES_RUN) --seeds "1 2 3" --seat-cascade --third-user --owner-change --watch || fail=1; \
	$(RULES_RUN) --seeds "4 5" --seat-cascade --third-user --owner-change --watch \
	  --max-tombstones 2 || fail=1; \
	$(RULES_RUN) --pg --pg-optional --seeds "1 2" || fail=1; \
	$(RULES_RUN) --pg --pg-optional --seeds "3" --seats --third-user --watch || fail=1; \
	$(RULES_RUN) --replay tests/converge/rules_cases/*.json || fail=1; \
	$(SCHEMAS_RUN) --seeds "1 2 3 4" || fail=1; \
	$(SCHEMAS_RUN) --seeds "5 6" --worker || fail=1; \
	$(SCHEMAS_RUN) --seeds "1 2 3 4" --solo || fail=1; \
	$(SCHEMAS_RUN) --seeds "3 15" --solo --batch 3 || fail=1; \
	$(SCHEMAS_RUN) --schema 2 --seeds "1 2 3 4" || fail=1; \
	$(SCHEMAS_RUN) --schema 2 --seeds "5 6" --worker || fail=1; \
	$(SCHEMAS_RUN) --schema 2 --seeds "1 2 3 4" --solo || fail=1; \
	$(SCHEMAS_RUN) --schema 2 --seeds "5 6" --solo --batch 3 || fail=1; \
	$(SCHEMAS_RUN) --schema 2 --seeds "22 78" --solo --batch 2 --ops 1000 || fail=1; \
	[ $$fail = 0 ]

converge: $(EXT) server/syncd
	$(CONVERGE_RUN) --seeds "$(SEEDS)" $(CONVERGE_FLAGS)

converge-rules: $(EXT) server/syncd
	$(RULES_RUN) --seeds "$(SEEDS)" $(RULES_FLAGS)

converge-rules-pg: $(EXT) server/syncd
	$(RULES_RUN) --pg --seeds "$(SEEDS)" $(RULES_FLAGS)

converge-schemas: $(EXT) server/syncd
	$(SCHEMAS_RUN) --seeds "$(SEEDS)" $(SCHEMAS_FLAGS)
