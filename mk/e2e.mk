# End-to-end tests: clients with the extension loaded, syncing through a
# real syncd (tests/e2e). They need a python whose sqlite3 module can load
# extensions: Debian's /usr/bin/python3 can (a pyenv build often cannot).
#
#   make test-e2e      run them; the last line is "N passed, N failed"
#   make demo          the whole story in one command (tests/demo.sh)
.PHONY: test-e2e demo
TEST_TARGETS += test-e2e
E2E_PYTHON ?= /usr/bin/python3

test-e2e: $(EXT) server/syncd
	$(E2E_PYTHON) tests/e2e/run.py

demo: $(EXT) server/syncd
	E2E_PYTHON=$(E2E_PYTHON) bash tests/demo.sh
