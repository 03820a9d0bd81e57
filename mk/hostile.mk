# The client against a hostile server and the client's security checks
# (tests/hostile): a fake server in Python answers sync_pull, sync_push and
# the worker with malformed, oversized, slow, mistyped and redirecting
# answers; TLS verification and ca_file; the token kept out of the
# database, logs and sync_status. Runs in well under two minutes.
#
#   make test-hostile    the last line is "N passed, N failed"
.PHONY: test-hostile
TEST_TARGETS += test-hostile
HOSTILE_PYTHON ?= /usr/bin/python3

test-hostile: $(EXT)
	$(HOSTILE_PYTHON) tests/hostile/run.py
