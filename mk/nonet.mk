# The engine-only build: `make NET=0` leaves ext/net/ out (SYNC_NO_NET),
# so the extension does not link libcurl; the network layer's functions and
# sync_status are still there and answer "NAME: this build has no network
# layer (built with make NET=0)", and everything a bring-your-own-transport
# app uses (sync_push_batch, sync_ack, sync_apply, sync_pending, ...) works.
#
#   make test-nonet   build it into build/nonet/ (never over ext/sync.so),
#                     check with ldd that it does not link libcurl while
#                     ext/sync.so does, that a network function answers the
#                     error, and run the sql/ suite and tests/unit/host_test
#                     (which checks the exact set of functions and modules)
#                     against it; the last line is "test-nonet: N passed, N failed"

.PHONY: test-nonet
TEST_TARGETS += test-nonet

NONET_DIR  = build/nonet
NONET_EXT  = $(NONET_DIR)/sync.$(SO)
NONET_LDD  = $(if $(filter Darwin,$(UNAME_S)),otool -L,ldd)
NONET_MSG  = this build has no network layer (built with make NET=0)

# Its own flavor file, so that ext/sync.so is not relinked by this build.
# check DESCRIPTION CONDITION: counts the condition (shell text) as a pass
# or a failure.
test-nonet: $(EXT) tests/unit/host_test
	@mkdir -p $(NONET_DIR)
	@$(MAKE) --no-print-directory NET=0 EXT=$(NONET_EXT) EXT_FLAVOR=$(NONET_DIR)/flavor $(NONET_EXT)
	@pass=0; fail=0; \
	check() { if eval "$$2"; then pass=$$((pass + 1)); else echo "test-nonet: FAILED: $$1"; fail=$$((fail + 1)); fi; }; \
	check "$(EXT) links libcurl" '$(NONET_LDD) $(EXT) | grep -q libcurl'; \
	check "$(NONET_EXT) does not link libcurl" '! $(NONET_LDD) $(NONET_EXT) | grep -q libcurl'; \
	for q in "SELECT sync_start()" "SELECT sync_push()" "SELECT sync_config('batch_size')" \
	         "SELECT * FROM sync_status"; do \
	  fn=$$(printf '%s' "$$q" | sed 's/.*\(sync_[a-z_]*\).*/\1/'); \
	  out=$$(sqlite3 -batch -init /dev/null :memory: ".load ./$(NONET_EXT)" "$$q" 2>&1); \
	  check "$$q answers: $$fn: $(NONET_MSG); got: $$out" 'printf "%s" "$$out" | grep -qF "$$fn: $(NONET_MSG)"'; \
	done; \
	out=$$(sqlite3 -batch -init /dev/null :memory: ".load ./$(NONET_EXT)" \
	  "SELECT sync_init(NULL) IS NOT NULL" "CREATE TABLE t(id PRIMARY KEY, v)" "SELECT sync_track('t')" \
	  "INSERT INTO t VALUES(1, 'a')" "SELECT sync_pending()" 2>&1 | tr '\n' ' '); \
	check "the engine works without the network layer; got: $$out" '[ "$$out" = "1 1 1 " ]'; \
	add() { out=$$("$$@" 2>&1); printf '%s\n' "$$out"; \
	  sum=$$(printf '%s\n' "$$out" | sed -n 's/^[a-z]*: \([0-9]*\) passed, \([0-9]*\) failed$$/\1 \2/p' | tail -n 1); \
	  if [ -n "$$sum" ]; then set -- $$sum; pass=$$((pass + $$1)); fail=$$((fail + $$2)); \
	  else echo "test-nonet: FAILED: $$* printed no summary"; fail=$$((fail + 1)); fi; }; \
	add env SYNC_EXT=$(abspath $(NONET_EXT)) bash tests/run_sql.sh; \
	add ./tests/unit/host_test $(NONET_EXT); \
	echo "test-nonet: $$pass passed, $$fail failed"; [ $$fail = 0 ]
