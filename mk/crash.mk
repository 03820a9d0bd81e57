# Crash safety (tests/crash): a process killed with SIGKILL inside
# sync_apply of a 20000-change page leaves the whole page or none of it with
# the matching cursor; a client killed between syncd accepting its push and
# its ack neither loses nor doubles a mutation. About a minute.
#
#   make test-crash    the last line is "N passed, N failed"
#
# CRASH_APPLY_ROUNDS and CRASH_PUSH_ROUNDS set how many kills, CRASH_SEED
# the random timings.
.PHONY: test-crash
TEST_TARGETS += test-crash
CRASH_PYTHON ?= /usr/bin/python3

test-crash: $(EXT) server/syncd
	$(CRASH_PYTHON) tests/crash/run.py
