# libFuzzer targets (tests/fuzz/NAME_fuzz.c), built with clang
# -fsanitize=fuzzer,address,undefined against the system libsqlite3.
#
#   make fuzz         run every target for FUZZ_TIME seconds (default 600),
#                     one after the other; stops at the first finding
#   make test-fuzz    replay each target's seed corpus once (seconds; part of
#                     make test when clang has libFuzzer, else one line saying
#                     it was skipped)
#
# Seed inputs live in tests/fuzz/corpus/NAME/ (kept in git, with every
# reproducer a run has found); what a run discovers goes to
# build/fuzz/corpus/NAME/, and crashes to build/fuzz/NAME-crash-*. A
# tests/fuzz/NAME.dict, if there, is passed as the dictionary.

.PHONY: fuzz test-fuzz fuzz-build
TEST_TARGETS += test-fuzz

FUZZ_CC      ?= clang
FUZZ_TIME    ?= 600
FUZZ_NAMES    = sse apply ack request push
FUZZ_BINS     = $(FUZZ_NAMES:%=build/fuzz/%_fuzz)
FUZZ_CFLAGS   = $(WARN) -Iext -Iserver -O1 -g -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_LIBS     = -lsqlite3 -lpthread
FUZZ_ENV      = ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
# Whether $(FUZZ_CC) can link a libFuzzer target at all.
FUZZ_OK       = $(shell printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' | \
                  $(FUZZ_CC) -fsanitize=fuzzer -x c -o /dev/null - >/dev/null 2>&1 && echo yes)

build/fuzz/sse_fuzz: tests/fuzz/sse_fuzz.c ext/sse.c ext/sse.h ext/sqlite_api.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/sse_fuzz.c ext/sse.c $(FUZZ_LIBS)

# sync_apply and sync_ack: the extension's files compiled as for ext/sync.so
# and linked with libsqlite3 (the target registers it with
# sqlite3_auto_extension); one source, the function chosen by FZ_FN.
FUZZ_EXT_DEPS = tests/fuzz/ext_fuzz.c $(EXT_SRC) $(wildcard ext/*.h)
build/fuzz/apply_fuzz build/fuzz/ack_fuzz: build/fuzz/%_fuzz: $(FUZZ_EXT_DEPS)
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DSYNC_LOADABLE $(shell pkg-config --cflags $(PKGS_EXT) 2>/dev/null) \
	  -DFZ_FN='"sync_$*"' -o $@ tests/fuzz/ext_fuzz.c $(EXT_SRC) $(FUZZ_LIBS) $(EXT_LIBS)

# syncd: the push body's validation alone, and the push path into a SQLite
# store (value.c compiled as for the server, without -DSYNC_LOADABLE).
build/fuzz/request_fuzz: tests/fuzz/request_fuzz.c server/request.c server/request.h server/store.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/request_fuzz.c server/request.c $(FUZZ_LIBS)

FUZZ_PUSH_SRC = tests/fuzz/push_fuzz.c server/request.c server/store.c server/store_sqlite.c ext/value.c
build/fuzz/push_fuzz: $(FUZZ_PUSH_SRC) $(wildcard server/*.h) ext/value.h tests/server/schema_sqlite.sql
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DFZ_SCHEMA_FILE='"$(CURDIR)/tests/server/schema_sqlite.sql"' \
	  -o $@ $(FUZZ_PUSH_SRC) $(FUZZ_LIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@for t in $(FUZZ_NAMES); do \
	  mkdir -p build/fuzz/corpus/$$t; \
	  echo "fuzz: $$t for $(FUZZ_TIME) s"; \
	  $(FUZZ_ENV) ./build/fuzz/$${t}_fuzz -max_total_time=$(FUZZ_TIME) -max_len=4096 -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/$$t- $$( [ -f tests/fuzz/$$t.dict ] && echo -dict=tests/fuzz/$$t.dict ) \
	    build/fuzz/corpus/$$t tests/fuzz/corpus/$$t > build/fuzz/$$t.log 2>&1; rc=$$?; \
	  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|cov:' build/fuzz/$$t.log | tail -n 4; \
	  if [ $$rc != 0 ]; then tail -n 40 build/fuzz/$$t.log; echo "fuzz: $$t FAILED (see build/fuzz/$$t.log)"; exit 1; fi; \
	done; echo "fuzz: every target ran $(FUZZ_TIME) s without a finding"

ifeq ($(FUZZ_OK),yes)
test-fuzz: $(FUZZ_BINS)
	@pass=0; fail=0; for t in $(FUZZ_NAMES); do \
	  if $(FUZZ_ENV) ./build/fuzz/$${t}_fuzz -runs=0 tests/fuzz/corpus/$$t >build/fuzz/$$t.replay.log 2>&1; then \
	    pass=$$((pass + 1)); \
	  else tail -n 30 build/fuzz/$$t.replay.log; echo "test-fuzz: $$t FAILED"; fail=$$((fail + 1)); fi; \
	done; echo "test-fuzz: $$pass passed, $$fail failed"; [ $$fail = 0 ]
else
test-fuzz:
	@echo "test-fuzz: SKIPPED: $(FUZZ_CC) cannot build libFuzzer targets (clang with -fsanitize=fuzzer needed)"
endif
