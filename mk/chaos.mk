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
# SYNC_TEST_SLOW (set by make asan/tsan) stretches the time limits.
.PHONY: test-chaos chaos
TEST_TARGETS += test-chaos
CHAOS_SEED ?=
CHAOS_PYTHON ?= $(E2E_PYTHON)

test-chaos: $(EXT) server/syncd
	cd tests/chaos && $(CHAOS_PYTHON) -m unittest -v test_regress
	CHAOS_SEED=$(or $(CHAOS_SEED),1) $(CHAOS_PYTHON) tests/chaos/run.py --mutations 300 \
	  --pace 60 --server-kills 0.1 --timeout 110 --converge 60

chaos: $(EXT) server/syncd
	CHAOS_SEED=$(CHAOS_SEED) $(CHAOS_PYTHON) tests/chaos/run.py --mutations 5000 --pace 20 \
	  --server-kills 0.1
