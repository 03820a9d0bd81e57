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

# The worker's threads under ThreadSanitizer and AddressSanitizer: the whole
# extension and a C driver (tests/e2e/worker_driver.c) built with each.
.PHONY: test-e2e-san
SAN_DIR   = build/san
SAN_tsan  = -fsanitize=thread
SAN_asan  = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

$(SAN_DIR)/sync_%.so: $(EXT_SRC) $(wildcard ext/*.h)
	@mkdir -p $(SAN_DIR)
	$(CC) $(EXT_CFLAGS) -O1 -g $(SAN_$*) -shared -o $@ $(EXT_SRC) $(EXT_LIBS)

$(SAN_DIR)/driver_%: tests/e2e/worker_driver.c
	@mkdir -p $(SAN_DIR)
	$(CC) $(WARN) -O1 -g $(SAN_$*) -o $@ $< -lsqlite3 -lpthread

test-e2e-san: server/syncd $(SAN_DIR)/sync_tsan.so $(SAN_DIR)/driver_tsan \
              $(SAN_DIR)/sync_asan.so $(SAN_DIR)/driver_asan
	$(E2E_PYTHON) tests/e2e/san.py $(SAN_DIR)
