# The whole suite under sanitizers: the extension and syncd built with
# AddressSanitizer + UBSan (build/asan) or ThreadSanitizer (build/tsan), and
# every suite in TEST_TARGETS run against those builds by tests/san/run.sh.
#
#   make asan    ASan + UBSan (with LeakSanitizer; intercept_tls_get_addr=0
#                as in mk/sql.mk)
#   make tsan    TSan (the worker's threads, syncd's threads)
#
# A suite finds the builds through variables it honours (SYNC_EXT,
# SYNCD_TEST_BINARY, SYNCD, E2E_PYTHON and the other *_PYTHON,
# SYNC_TEST_PRELOAD: see run.sh); a host that is not instrumented (the
# sqlite3 shell, python, tclsh) gets the sanitizer runtime by LD_PRELOAD.
# Every report lands in build/KIND/logs and fails its suite, whatever the
# suite's own exit status says. make asan-build / tsan-build only build.
.PHONY: asan tsan
SAN_KINDS       = asan tsan
SAN_CFLAGS_asan = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_CFLAGS_tsan = -O1 -g -fsanitize=thread
# The C hosts of each build (mk/*.mk that define the variables used in
# prerequisites come after this file, so those lists are spelled out here).
SAN_HOSTS       = host_test worker_driver

# $(call san_rules,KIND): build/KIND/sync.so, build/KIND/syncd and the hosts.
define san_rules
build/$(1)/ext/%.o: %.c $$(EXT_H)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(EXT_CFLAGS) $$(SAN_CFLAGS_$(1)) -c -o $$@ $$<

build/$(1)/sync.$$(SO): $$(EXT_SRC:%.c=build/$(1)/ext/%.o)
	$$(CC) $$(SAN_CFLAGS_$(1)) -shared -o $$@ $$^ $$(EXT_LIBS)

build/$(1)/server/%.o: %.c $$(SERVER_H)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(SERVER_CFLAGS) $$(SAN_CFLAGS_$(1)) -c -o $$@ $$<

build/$(1)/syncd: $$(SERVER_SRC:%.c=build/$(1)/server/%.o)
	$$(CC) $$(SAN_CFLAGS_$(1)) -o $$@ $$^ $$(SERVER_LIBS)

build/$(1)/host_test: tests/unit/host_test.c tests/unit/check.h common/sqlite_api.h
	@mkdir -p $$(dir $$@)
	$$(CC) $$(UNIT_CFLAGS) $$(SAN_CFLAGS_$(1)) -o $$@ $$< $$(UNIT_LIBS)

build/$(1)/worker_driver: tests/e2e/worker_driver.c
	@mkdir -p $$(dir $$@)
	$$(CC) $$(WARN) $$(SAN_CFLAGS_$(1)) -o $$@ $$< -lsqlite3 -lpthread

$(1)-build: build/$(1)/sync.$$(SO) build/$(1)/syncd $$(SAN_HOSTS:%=build/$(1)/%)
endef
$(foreach k,$(SAN_KINDS),$(eval $(call san_rules,$(k))))
.PHONY: $(SAN_KINDS:%=%-build)

# The suites each run covers: every TEST_TARGETS entry, with the unit tests
# swapped for their sanitizer build (test-unit-KIND), plus the worker driver.
SAN_SUITES = $(patsubst test-unit,test-unit-$(1),$(TEST_TARGETS)) test-e2e-$(1)

asan tsan: %: %-build all
	@bash tests/san/run.sh $* $(call SAN_SUITES,$*)
