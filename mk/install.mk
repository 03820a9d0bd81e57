# make install [PREFIX=/usr/local] [DESTDIR=staging dir]; make uninstall.
#
#   $(PREFIX)/lib/sqlite-sync/sync.so            the extension (.load it from there)
#   $(PREFIX)/bin/syncd                          the reference server
#   $(PREFIX)/bin/sync-agent                     the background agent (it finds
#                                                ../lib/sqlite-sync/sync.so)
#   $(PYTHON_SITEDIR)/sqlite_sync/               the Python package, for BINDINGS_PYTHON
#                                                (Debian: lib/python3.X/dist-packages)
#   $(PREFIX)/lib/node_modules/sqlite-sync/      the Node package (require it by path,
#                                                or NODE_PATH=$(PREFIX)/lib/node_modules)
#   $(PREFIX)/lib/tcltk/sqlite_sync/             the Tcl package (Debian's tclsh
#                                                searches /usr/local/lib/tcltk)
#   $(PREFIX)/share/sqlite-sync/todos.sql        the examples' schema
#   $(PREFIX)/lib/pkgconfig/sqlite-sync.pc       for C programs: the extension's path
#                                                (pkg-config --variable=extension
#                                                sqlite-sync) and SQLite's flags
#
# Each binding finds the installed extension through a one-line file that
# install writes next to it (_installed.py, installed.json, installed.tcl)
# holding $(PREFIX)/lib/sqlite-sync/sync.so. uninstall removes exactly these
# files and the package folders; shared folders (bin, lib, ...) stay.
.PHONY: install uninstall

PREFIX          ?= /usr/local
DESTDIR         ?=
BINDINGS_PYTHON ?= /usr/bin/python3
INSTALL         ?= install
SYNC_LIBDIR      = $(PREFIX)/lib/sqlite-sync
SYNC_BINDIR      = $(PREFIX)/bin
SYNC_SHAREDIR    = $(PREFIX)/share/sqlite-sync
# site-packages relative to PREFIX, as the chosen python names it
PYTHON_SITE_REL  = $(shell $(BINDINGS_PYTHON) -c 'import sys; v = sys.version_info; print("lib/python%d.%d/%s-packages" % (v[0], v[1], "dist" if any(p.endswith("dist-packages") for p in sys.path) else "site"))' 2>/dev/null || echo lib/python3/site-packages)
PYTHON_SITEDIR  ?= $(PREFIX)/$(PYTHON_SITE_REL)
NODE_PKGDIR     ?= $(PREFIX)/lib/node_modules/sqlite-sync
TCL_PKGDIR      ?= $(PREFIX)/lib/tcltk/sqlite_sync
PKGCONFIG_DIR   ?= $(PREFIX)/lib/pkgconfig
SYNC_VERSION     = $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' bindings/python/sqlite_sync/__init__.py)

install: $(EXT) server/syncd agent/sync-agent
	$(INSTALL) -d $(DESTDIR)$(SYNC_LIBDIR) $(DESTDIR)$(SYNC_BINDIR) $(DESTDIR)$(SYNC_SHAREDIR) \
	  $(DESTDIR)$(PYTHON_SITEDIR)/sqlite_sync $(DESTDIR)$(NODE_PKGDIR) $(DESTDIR)$(TCL_PKGDIR)
	$(INSTALL) -m 755 $(EXT) $(DESTDIR)$(SYNC_LIBDIR)/sync.$(SO)
	$(INSTALL) -m 755 server/syncd $(DESTDIR)$(SYNC_BINDIR)/syncd
	$(INSTALL) -m 755 agent/sync-agent $(DESTDIR)$(SYNC_BINDIR)/sync-agent
	$(INSTALL) -m 644 bindings/todos.sql $(DESTDIR)$(SYNC_SHAREDIR)/todos.sql
	$(INSTALL) -d $(DESTDIR)$(PKGCONFIG_DIR)
	printf '%s\n' 'prefix=$(PREFIX)' 'extensiondir=$${prefix}/lib/sqlite-sync' \
	  'extension=$${extensiondir}/sync.$(SO)' '' 'Name: sqlite-sync' \
	  'Description: Offline-first sync for SQLite: load $${extension} with sqlite3_load_extension' \
	  'Version: $(SYNC_VERSION)' 'Requires: sqlite3' 'Cflags:' 'Libs:' \
	  > $(DESTDIR)$(PKGCONFIG_DIR)/sqlite-sync.pc
	$(INSTALL) -m 644 bindings/python/sqlite_sync/__init__.py bindings/python/sqlite_sync/py.typed \
	  $(DESTDIR)$(PYTHON_SITEDIR)/sqlite_sync/
	printf 'EXTENSION = %s\n' "'$(SYNC_LIBDIR)/sync.$(SO)'" > $(DESTDIR)$(PYTHON_SITEDIR)/sqlite_sync/_installed.py
	$(INSTALL) -m 644 bindings/node/package.json bindings/node/index.js bindings/node/index.d.ts \
	  bindings/node/watcher.js $(DESTDIR)$(NODE_PKGDIR)/
	printf '{"extension": "%s"}\n' '$(SYNC_LIBDIR)/sync.$(SO)' > $(DESTDIR)$(NODE_PKGDIR)/installed.json
	$(INSTALL) -m 644 bindings/tcl/pkgIndex.tcl bindings/tcl/sqlite_sync.tcl $(DESTDIR)$(TCL_PKGDIR)/
	printf 'return {%s}\n' '$(SYNC_LIBDIR)/sync.$(SO)' > $(DESTDIR)$(TCL_PKGDIR)/installed.tcl

uninstall:
	rm -f $(DESTDIR)$(SYNC_LIBDIR)/sync.$(SO) $(DESTDIR)$(SYNC_BINDIR)/syncd \
	  $(DESTDIR)$(SYNC_BINDIR)/sync-agent $(DESTDIR)$(PKGCONFIG_DIR)/sqlite-sync.pc \
	  $(DESTDIR)$(SYNC_SHAREDIR)/todos.sql
	rm -rf $(DESTDIR)$(PYTHON_SITEDIR)/sqlite_sync $(DESTDIR)$(NODE_PKGDIR) $(DESTDIR)$(TCL_PKGDIR)
	rmdir $(DESTDIR)$(SYNC_LIBDIR) $(DESTDIR)$(SYNC_SHAREDIR) 2>/dev/null || true
