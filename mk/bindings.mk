# Bindings for Python (sqlite3), Node (better-sqlite3) and Tcl (tclsqlite):
# bindings/*, their example apps, and make install (mk/install.mk).
#
#   make bindings-deps   build better-sqlite3 into bindings/node/node_modules
#                        (npm, from source with node-gyp: a few minutes, once)
#   make test-bindings   each binding's tests against a real syncd, the example
#                        apps, install/uninstall; last line "N passed, N failed"
#                        (", N skipped" when a toolchain is missing)
.PHONY: test-bindings bindings-deps
TEST_TARGETS += test-bindings
BINDINGS_PYTHON ?= /usr/bin/python3

test-bindings: $(EXT) server/syncd
	@BINDINGS_PYTHON=$(BINDINGS_PYTHON) bash bindings/run_tests.sh

bindings-deps:
	cd bindings/node && npm install --no-audit --no-fund
