# libFuzzer targets (tests/fuzz/NAME_fuzz.c), built with clang
# -fsanitize=fuzzer,address,undefined against the system libsqlite3.
#
#   make fuzz         run every target for FUZZ_TIME seconds (default 600),
#                     one after the other; stops at the first finding
#   make test-fuzz    replay each target's seed corpus once (seconds; part of
#                     make test when clang has libFuzzer, else one line saying
#                     it was skipped)
#   make fuzz-cov     line and branch coverage of the files each target aims
#                     at, over the seeds and what runs have found
#
# Seed inputs live in tests/fuzz/corpus/NAME/ (kept in git, with every
# reproducer a run has found); what a run discovers goes to
# build/fuzz/corpus/NAME/, and crashes to build/fuzz/NAME-crash-*. A
# tests/fuzz/NAME.dict, if there, is passed as the dictionary.

.PHONY: fuzz test-fuzz fuzz-build fuzz-cov
TEST_TARGETS += test-fuzz

FUZZ_CC      ?= clang
FUZZ_TIME    ?= 600
FUZZ_NAMES    = sse apply ack request push jscan
FUZZ_BINS     = $(FUZZ_NAMES:%=build/fuzz/%_fuzz)
FUZZ_CFLAGS   = $(WARN) -Icommon -Iext -Iext/engine -Iext/net $(SERVER_INC) -O1 -g -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_LIBS     = -lsqlite3 -lpthread
FUZZ_ENV      = ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
# Whether $(FUZZ_CC) can link a libFuzzer target at all.
FUZZ_OK       = $(shell printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' | \
                  $(FUZZ_CC) -fsanitize=fuzzer -x c -o /dev/null - >/dev/null 2>&1 && echo yes)

# Per target: its sources, extra flags and libraries, and the files it is
# aimed at (what make fuzz-cov reports on).
FUZZ_SRC_sse     = tests/fuzz/sse_fuzz.c ext/net/sse.c
FUZZ_DEPS_sse    = ext/net/sse.h common/sqlite_api.h
FUZZ_UNDER_sse   = ext/net/sse.c
# sync_apply and sync_ack: the extension's files compiled as for ext/sync.so
# and linked with libsqlite3 (the target registers it with
# sqlite3_auto_extension); one source, the function chosen by FZ_FN.
FUZZ_EXT_FLAGS   = -DSYNC_LOADABLE $(shell pkg-config --cflags $(PKGS_EXT) 2>/dev/null)
FUZZ_SRC_apply   = tests/fuzz/ext_fuzz.c $(EXT_SRC)
FUZZ_DEPS_apply  = $(EXT_H)
FUZZ_FLAGS_apply = $(FUZZ_EXT_FLAGS) -DFZ_FN='"sync_apply"'
FUZZ_LIBS_apply  = $(EXT_LIBS)
FUZZ_UNDER_apply = ext/engine/apply.c ext/engine/inbox.c ext/engine/rebase.c ext/engine/cascade.c \
                   ext/engine/outbox.c ext/engine/table.c \
                   common/value.c
FUZZ_SRC_ack     = $(FUZZ_SRC_apply)
FUZZ_DEPS_ack    = $(FUZZ_DEPS_apply)
FUZZ_FLAGS_ack   = $(FUZZ_EXT_FLAGS) -DFZ_FN='"sync_ack"'
FUZZ_LIBS_ack    = $(EXT_LIBS)
FUZZ_UNDER_ack   = $(FUZZ_UNDER_apply)
# The shared JSON scanner against SQLite's own JSON functions.
FUZZ_SRC_jscan     = tests/fuzz/jscan_fuzz.c common/jscan.c
FUZZ_DEPS_jscan    = common/jscan.h common/sqlite_api.h
FUZZ_UNDER_jscan   = common/jscan.c
# syncd: the push body's validation alone, and the push path into a SQLite
# store (value.c compiled as for the server, without -DSYNC_LOADABLE).
FUZZ_SRC_request   = tests/fuzz/request_fuzz.c server/http/request.c common/jscan.c
FUZZ_DEPS_request  = server/http/request.h server/store/store.h common/jscan.h
FUZZ_FLAGS_request = -Iserver/http -Iserver/store
FUZZ_UNDER_request = server/http/request.c common/jscan.c
FUZZ_SRC_push      = tests/fuzz/push_fuzz.c server/http/request.c $(wildcard server/store/*.c) \
                     common/value.c common/jscan.c common/fphash.c
FUZZ_DEPS_push     = $(SERVER_H) tests/server/schema_sqlite.sql
FUZZ_FLAGS_push    = -DFZ_SCHEMA_FILE='"$(CURDIR)/tests/server/schema_sqlite.sql"' \
                     -Iserver/http -Iserver/store $(shell pkg-config --cflags libpq 2>/dev/null)
FUZZ_LIBS_push     = $(shell pkg-config --libs libpq 2>/dev/null) -lcrypto
FUZZ_UNDER_push    = server/http/request.c server/store/push.c server/store/wire.c \
                     server/store/catalog.c server/store/dialect_sqlite.c

# make fuzz-cov: the same targets with clang's source coverage instead of
# the sanitizers, run over the corpora, and llvm-cov's report.
FUZZ_COV_CFLAGS = $(WARN) -Icommon -Iext -Iext/engine -Iext/net $(SERVER_INC) -O1 -g -fsanitize=fuzzer \
                  -fprofile-instr-generate -fcoverage-mapping
LLVM_PROFDATA  ?= llvm-profdata
LLVM_COV       ?= llvm-cov

# $(call fuzz_rules,NAME): the sanitizer and the coverage build of a target.
define fuzz_rules
build/fuzz/$(1)_fuzz: $(FUZZ_SRC_$(1)) $(FUZZ_DEPS_$(1))
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_FLAGS_$(1)) -o $$@ $(FUZZ_SRC_$(1)) $(FUZZ_LIBS) $(FUZZ_LIBS_$(1))
build/fuzz/cov/$(1)_fuzz: $(FUZZ_SRC_$(1)) $(FUZZ_DEPS_$(1))
	@mkdir -p build/fuzz/cov
	$(FUZZ_CC) $(FUZZ_COV_CFLAGS) $(FUZZ_FLAGS_$(1)) -o $$@ $(FUZZ_SRC_$(1)) $(FUZZ_LIBS) $(FUZZ_LIBS_$(1))
endef
$(foreach t,$(FUZZ_NAMES),$(eval $(call fuzz_rules,$(t))))

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

# $(call fuzz_cov_one,NAME): replay NAME's corpora with the coverage build
# and report on the files it aims at.
fuzz_cov_one = mkdir -p build/fuzz/corpus/$(1) && \
  LLVM_PROFILE_FILE=build/fuzz/cov/$(1).profraw ./build/fuzz/cov/$(1)_fuzz -runs=0 \
    -artifact_prefix=build/fuzz/cov/$(1)- \
    build/fuzz/corpus/$(1) tests/fuzz/corpus/$(1) >build/fuzz/cov/$(1).log 2>&1 && \
  $(LLVM_PROFDATA) merge -o build/fuzz/cov/$(1).profdata build/fuzz/cov/$(1).profraw && \
  echo "fuzz-cov: $(1), $$(find build/fuzz/corpus/$(1) tests/fuzz/corpus/$(1) -type f | wc -l) inputs" && \
  $(LLVM_COV) report build/fuzz/cov/$(1)_fuzz -instr-profile=build/fuzz/cov/$(1).profdata \
    $(FUZZ_UNDER_$(1)) | sed '2d'

fuzz-cov: $(FUZZ_NAMES:%=build/fuzz/cov/%_fuzz)
	@$(foreach t,$(FUZZ_NAMES),$(call fuzz_cov_one,$(t)) &&) true

ifeq ($(FUZZ_OK),yes)
test-fuzz: $(FUZZ_BINS)
	@pass=0; fail=0; for t in $(FUZZ_NAMES); do \
	  if $(FUZZ_ENV) ./build/fuzz/$${t}_fuzz -runs=0 -artifact_prefix=build/fuzz/$$t-replay- \
	      tests/fuzz/corpus/$$t >build/fuzz/$$t.replay.log 2>&1; then \
	    pass=$$((pass + 1)); \
	  else tail -n 30 build/fuzz/$$t.replay.log; echo "test-fuzz: $$t FAILED"; fail=$$((fail + 1)); fi; \
	done; echo "test-fuzz: $$pass passed, $$fail failed"; [ $$fail = 0 ]
else
test-fuzz:
	@echo "test-fuzz: SKIPPED: $(FUZZ_CC) cannot build libFuzzer targets (clang with -fsanitize=fuzzer needed)"
endif
