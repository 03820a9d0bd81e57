# Bindings for Python (sqlite3), Node (better-sqlite3) and Tcl (tclsqlite):
# bindings/*, their example apps, and make install (mk/install.mk).
#
#   make bindings-deps   build better-sqlite3 into bindings/node/node_modules, with
#                        the devDependencies (typescript, @types/*) the tests use
#                        (npm, from source with node-gyp: a few minutes, once)
#   make test-bindings   each binding's tests against a real syncd, the example
#                        apps, install/uninstall; last line "N passed, N failed"
#                        (", N skipped" when a toolchain is missing)
.PHONY: test-bindings bindings-deps
TEST_TARGETS += test-bindings
BINDINGS_PYTHON ?= /usr/bin/python3

test-bindings: $(EXT) server/syncd
	@BINDINGS_PYTHON=$(BINDINGS_PYTHON) bash bindings/run_tests.sh

# Does nothing when better-sqlite3 already loads and the devDependencies
# (typescript, @types/*) are there (a cached node_modules), or when there is
# no npm (the node tests then say they are skipped).
bindings-deps:
	@if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then \
	  echo "bindings-deps: no node/npm: the Node binding's tests will be skipped"; \
	elif (cd bindings/node && node -e "new (require('better-sqlite3'))(':memory:').close(); \
	    for (const p of ['typescript', '@types/node', '@types/better-sqlite3']) require.resolve(p + '/package.json')") >/dev/null 2>&1; then \
	  echo "bindings-deps: better-sqlite3 is built, typescript and @types are there"; \
	else \
	  echo "bindings-deps: building better-sqlite3 with npm (a few minutes)"; \
	  cd bindings/node && npm install --no-audit --no-fund; \
	fi
