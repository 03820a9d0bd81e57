# C unit tests: tests/unit/NAME_test.c exercises ext/NAME.c, compiled
# without -DSYNC_LOADABLE so that it calls the system libsqlite3 (the
# harness fails a test whose SQLite memory is not all freed at exit).
#
#   make test-unit            build and run every unit test
#   make test-unit-asan       the same under -fsanitize=address,undefined
#                             (host_test with the ASan build, mk/san.mk)
#   make test-unit-tsan       host_test and the extension under ThreadSanitizer
#   make test-unit-valgrind   the same under valgrind (memcheck)
#
# Each test prints a closing "NAME: N passed, N failed" line; the runner
# adds them up into one closing "N passed, N failed" line (a test that
# crashes or exits non-zero without failing a check counts one failure).

.PHONY: test-unit test-unit-asan test-unit-tsan test-unit-valgrind
TEST_TARGETS += test-unit

# host_test loads the built extension into a C program instead of linking
# an ext/ file; it takes the extension's path as its argument.
UNIT_NAMES      = $(filter-out host,$(patsubst tests/unit/%_test.c,%,$(wildcard tests/unit/*_test.c)))
UNIT_TESTS      = $(UNIT_NAMES:%=tests/unit/%_test)
UNIT_TESTS_ASAN = $(UNIT_NAMES:%=tests/unit/%_asan_test)
UNIT_CFLAGS     = $(WARN) -Icommon -Iext -Iext/engine -Iext/net
UNIT_LIBS       = -lsqlite3
UNIT_ASAN       = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
UNIT_DEPS       = tests/unit/check.h common/sqlite_api.h
CLEAN_EXTRA    += $(UNIT_TESTS) $(UNIT_TESTS_ASAN) tests/unit/host_test

tests/unit/host_test: tests/unit/host_test.c $(UNIT_DEPS)
	$(CC) $(UNIT_CFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS) $(UNIT_LIBS)

# A unit test NAME_test.c tests the network layer's ext/net/NAME.c alone.
tests/unit/%_test: tests/unit/%_test.c ext/net/%.c ext/net/%.h $(UNIT_DEPS)
	$(CC) $(UNIT_CFLAGS) $(CFLAGS) -o $@ $< ext/net/$*.c $(LDFLAGS) $(UNIT_LIBS)

tests/unit/%_asan_test: tests/unit/%_test.c ext/net/%.c ext/net/%.h $(UNIT_DEPS)
	$(CC) $(UNIT_CFLAGS) -O1 -g $(UNIT_ASAN) -o $@ $< ext/net/$*.c $(LDFLAGS) $(UNIT_LIBS)

# A test of a common/ file (shared by the extension and syncd).
tests/unit/%_test: tests/unit/%_test.c common/%.c common/%.h $(UNIT_DEPS)
	$(CC) $(UNIT_CFLAGS) $(CFLAGS) -o $@ $< common/$*.c $(LDFLAGS) $(UNIT_LIBS)

tests/unit/%_asan_test: tests/unit/%_test.c common/%.c common/%.h $(UNIT_DEPS)
	$(CC) $(UNIT_CFLAGS) -O1 -g $(UNIT_ASAN) -o $@ $< common/$*.c $(LDFLAGS) $(UNIT_LIBS)

# $(call unit_run,BINARIES,COMMAND PREFIX)
define unit_run
	@pass=0; fail=0; \
	for t in $(1); do \
	  out=$$($(2) ./$$t 2>&1); rc=$$?; \
	  printf '%s\n' "$$out"; \
	  sum=$$(printf '%s\n' "$$out" | sed -n 's/^.*: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$$/\1 \2/p' | tail -n 1); \
	  if [ -z "$$sum" ]; then echo "$$t: exit status $$rc, no summary"; fail=$$((fail + 1)); continue; fi; \
	  set -- $$sum; pass=$$((pass + $$1)); fail=$$((fail + $$2)); \
	  if [ $$rc != 0 ] && [ $$2 = 0 ]; then echo "$$t: exit status $$rc"; fail=$$((fail + 1)); fi; \
	done; \
	echo "$$pass passed, $$fail failed"; \
	[ $$fail = 0 ]
endef

test-unit: $(UNIT_TESTS) tests/unit/host_test $(EXT)
	$(call unit_run,$(UNIT_TESTS),)
	@./tests/unit/host_test $(EXT)

test-unit-asan: $(UNIT_TESTS_ASAN) asan-build
	$(call unit_run,$(UNIT_TESTS_ASAN),env ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1)
	@./build/asan/host_test build/asan/sync.$(SO)

# Only host_test starts threads (a worker); the other unit tests have none.
test-unit-tsan: tsan-build
	@./build/tsan/host_test build/tsan/sync.$(SO)

test-unit-valgrind: $(UNIT_TESTS)
	$(call unit_run,$(UNIT_TESTS),valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite)
