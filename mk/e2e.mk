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

demo:
	@bash .ci/deps
	@$(MAKE) --no-print-directory $(EXT) server/syncd
	E2E_PYTHON=$(E2E_PYTHON) bash tests/demo.sh

# The worker's threads under ThreadSanitizer and AddressSanitizer: a C
# driver (tests/e2e/worker_driver.c) and the extension and syncd, all built
# with each (mk/san.mk); make asan and make tsan run these too.
.PHONY: test-e2e-san test-e2e-asan test-e2e-tsan
test-e2e-san: test-e2e-asan test-e2e-tsan

test-e2e-asan test-e2e-tsan: test-e2e-%: %-build
	/usr/bin/python3 tests/e2e/san.py $* build/$*
