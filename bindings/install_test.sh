#!/usr/bin/env bash
# make install into a temporary PREFIX (and a DESTDIR staging), check the
# files and that each installed binding finds the installed extension, then
# make uninstall and check that no file is left.
# Environment: PYTHON, NODE, TCLSH (empty = that check is skipped).
# The last line is "install: N passed, N failed[, N skipped]".
set -u
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sqlite-sync-install-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
P=$TMP/prefix
pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
check() { local what=$1; shift; if "$@" >"$TMP/out" 2>&1; then ok "$what"; else bad "$what"; cat "$TMP/out"; fi; }
unset SQLITE_SYNC_EXTENSION NODE_PATH TCLLIBPATH PYTHONPATH

inst() { $MAKE --no-print-directory "$@" >"$TMP/make.log" 2>&1 || { cat "$TMP/make.log"; return 1; }; }
check "make install PREFIX=$P" inst install PREFIX="$P"
site=$(ls -d "$P"/lib/python3*/*-packages 2>/dev/null | head -n 1)
for f in lib/sqlite-sync/sync.so bin/syncd share/sqlite-sync/todos.sql \
         lib/node_modules/sqlite-sync/index.js lib/node_modules/sqlite-sync/watcher.js \
         lib/tcltk/sqlite_sync/pkgIndex.tcl lib/tcltk/sqlite_sync/sqlite_sync.tcl; do
  check "installed $f" test -f "$P/$f"
done
check "installed the Python package" test -f "$site/sqlite_sync/__init__.py"
check "installed syncd runs" bash -c "'$P/bin/syncd' --help 2>&1 | grep -q usage"

ext=$P/lib/sqlite-sync/sync.so
if [ -n "${PYTHON:-}" ]; then
  check "installed Python package loads the installed extension" \
    env PYTHONPATH="$site" "$PYTHON" -c "
import sqlite3, sqlite_sync, sys
assert sqlite_sync.__file__.startswith('$site'), sqlite_sync.__file__
assert sqlite_sync.find_extension() == '$ext', sqlite_sync.find_extension()
c = sqlite3.connect(':memory:'); sqlite_sync.load(c)
assert c.execute('SELECT sync_wire(1)').fetchone()[0] == '1'" 
else skip=$((skip + 1)); echo "skipped: installed Python package (no python3 with enable_load_extension)"; fi
if [ -n "${NODE:-}" ]; then
  check "installed Node package finds the installed extension" \
    node -e "const s = require('$P/lib/node_modules/sqlite-sync'); if (s.findExtension() !== '$ext') throw new Error(s.findExtension())"
else skip=$((skip + 1)); echo "skipped: installed Node package (no node)"; fi
if [ -n "${TCLSH:-}" ]; then
  check "installed Tcl package loads the installed extension" bash -c "echo '
package require sqlite_sync
if {[sqlite_sync::find_extension] ne {$ext}} { error [sqlite_sync::find_extension] }
sqlite3 db :memory:; sqlite_sync::load db
if {[db onecolumn {SELECT sync_wire(1)}] ne 1} { error wire }' | TCLLIBPATH='$P/lib/tcltk' tclsh"
else skip=$((skip + 1)); echo "skipped: installed Tcl package (no tclsh with sqlite3)"; fi

check "make uninstall PREFIX=$P" inst uninstall PREFIX="$P"
left=$(find "$P" -type f -o -type l)
if [ -z "$left" ]; then ok "uninstall left no file"; else bad "uninstall left: $left"; fi

# DESTDIR staging: files land under DESTDIR, paths inside name PREFIX
check "make install DESTDIR=... PREFIX=/opt/sqlite-sync" inst install DESTDIR="$TMP/stage" PREFIX=/opt/sqlite-sync
check "staged extension" test -f "$TMP/stage/opt/sqlite-sync/lib/sqlite-sync/sync.so"
check "staged packages name the final path" grep -rqF /opt/sqlite-sync/lib/sqlite-sync/sync.so "$TMP/stage/opt/sqlite-sync/lib/tcltk/sqlite_sync/installed.tcl"
check "make uninstall DESTDIR=..." inst uninstall DESTDIR="$TMP/stage" PREFIX=/opt/sqlite-sync
left=$(find "$TMP/stage" -type f -o -type l)
if [ -z "$left" ]; then ok "staged uninstall left no file"; else bad "staged uninstall left: $left"; fi

if [ $skip != 0 ]; then echo "install: $pass passed, $fail failed, $skip skipped"; else echo "install: $pass passed, $fail failed"; fi
[ $fail = 0 ]
