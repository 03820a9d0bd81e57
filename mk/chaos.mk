# Chaos testing (tests/chaos): three clients sync through a fault-injecting
# proxy (resets, stalls, cut answers, 502/503 bursts, replayed requests)
# while they (and now and then syncd) are SIGKILLed and restarted; then
# every table must be equal, every outbox empty, each mutation applied
# exactly once and sync_rejected exactly what the server refused. See
# README, "Chaos testing".
#
#   make test-chaos    the regression tests and a small run (part of make test);
#                      CHAOS_SEED picks the seed (printed; default 1)
#   make chaos         the full size: 3 clients x 5000 mutations, a random
#                      seed unless CHAOS_SEED is given
#   make chaos-seeds   the small run of make test-chaos once per seed in
#                      CHAOS_SEEDS (default 1 to 10); the last line is
#                      "chaos: N passed, N failed" (make converge, the
#                      convergence test, is in mk/converge.mk)
#   make test-chaos-pg the small run on PostgreSQL storage: a throwaway
#                      cluster (tests/pg_env.sh), two syncd over the one
#                      database, each behind the fault proxy, one SIGKILLed
#                      and restarted mid-run (part of make test; says
#                      SKIPPED when no cluster can start, as test-server does)
#   make chaos-pg      the same at full size
# SYNC_TEST_SLOW (set by make asan/tsan) stretches the time limits.
.PHONY: test-chaos chaos chaos-seeds test-chaos-pg chaos-pg
TEST_TARGETS += test-chaos test-chaos-pg
CHAOS_SEED ?=
CHAOS_PYTHON ?= $(E2E_PYTHON)
CHAOS_SEEDS ?= 1 2 3 4 5 6 7 8 9 10
CHAOS_SMALL = --mutations 300 --pace 60 --server-kills 0.1 --timeout 110 --converge 60

test-chaos: $(EXT) server/syncd
	cd tests/chaos && $(CHAOS_PYTHON) -m unittest -v test_regress
	CHAOS_SEED=$(or $(CHAOS_SEED),1) $(CHAOS_PYTHON) tests/chaos/run.py $(CHAOS_SMALL)

chaos: $(EXT) server/syncd
	CHAOS_SEED=$(CHAOS_SEED) $(CHAOS_PYTHON) tests/chaos/run.py --mutations 5000 --pace 20 \
	  --server-kills 0.1

test-chaos-pg: $(EXT) server/syncd
	CHAOS_SEED=$(or $(CHAOS_SEED),1) $(CHAOS_PYTHON) tests/chaos/run.py --pg --pg-optional \
	  $(CHAOS_SMALL)

# the clients write faster than they sync through the faults, so at full size
# their outboxes still hold hundreds of mutations each when writing stops
chaos-pg: $(EXT) server/syncd
	CHAOS_SEED=$(CHAOS_SEED) $(CHAOS_PYTHON) tests/chaos/run.py --pg --mutations 5000 --pace 20 \
	  --server-kills 0.1 --converge 180

chaos-seeds: $(EXT) server/syncd
	@mkdir -p build
	@pass=0; fail=0; for s in $(CHAOS_SEEDS); do \
	  if CHAOS_SEED=$$s $(CHAOS_PYTHON) tests/chaos/run.py $(CHAOS_SMALL) > build/chaos-$$s.log 2>&1; \
	  then pass=$$((pass + 1)); echo "chaos: seed $$s passed ($$(grep -m1 'mutations (' build/chaos-$$s.log))"; \
	  else fail=$$((fail + 1)); tail -n 20 build/chaos-$$s.log; echo "chaos: seed $$s FAILED (build/chaos-$$s.log)"; fi; \
	done; echo "chaos: $$pass passed, $$fail failed"; [ $$fail = 0 ]
