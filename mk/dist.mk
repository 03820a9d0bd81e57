# Packages people install without building (README, "Installing the
# packages"):
#
#   make dist        dist/sqlite_sync-VERSION-py3-none-PLATFORM.whl, the Python
#                    package with the compiled extension inside it (written by
#                    bindings/python/build_wheel.py with zipfile: no build
#                    backend to fetch), and dist/sqlite-sync-VERSION.tgz, the
#                    Node package with it (npm pack of bindings/node's files,
#                    staged in build/dist/node with ext/sync.so)
#   make test-dist   install each into a fresh environment (a venv, pip
#                    --no-index; a new npm project) and the pkg-config file
#                    of make install into a temporary PREFIX, and run the
#                    examples against a real syncd (tests/dist/run.sh); the
#                    last line is "dist: N passed, N failed[, N skipped]"
.PHONY: dist test-dist
TEST_TARGETS += test-dist
DIST_NODE_STAGE = build/dist/node
CLEAN_EXTRA    += dist/*.whl dist/*.tgz
# The packages carry the extension without its debug information.
DIST_EXT        = build/dist/sync.$(SO)

dist: $(EXT)
	@mkdir -p dist build/dist
	cp $(EXT) $(DIST_EXT) && (strip --strip-debug $(DIST_EXT) 2>/dev/null || true)
	$(BINDINGS_PYTHON) bindings/python/build_wheel.py --ext $(DIST_EXT) --out dist
	@if command -v npm >/dev/null 2>&1; then \
	  rm -rf $(DIST_NODE_STAGE) && mkdir -p $(DIST_NODE_STAGE)/examples && \
	  cp bindings/node/package.json bindings/node/index.js bindings/node/index.d.ts \
	    bindings/node/watcher.js $(DIST_NODE_STAGE)/ && \
	  cp bindings/node/examples/todo.js $(DIST_NODE_STAGE)/examples/ && \
	  cp $(DIST_EXT) $(DIST_NODE_STAGE)/ && \
	  (cd $(DIST_NODE_STAGE) && npm pack --silent --pack-destination $(CURDIR)/dist) | sed 's|^|dist/|'; \
	else echo "dist: no npm: the Node package is not built"; fi

test-dist: dist server/syncd
	@BINDINGS_PYTHON=$(BINDINGS_PYTHON) bash tests/dist/run.sh
