#!/usr/bin/env bash
# make test-dist: the packages of make dist, each installed into a fresh
# environment, and the pkg-config file of make install, each running an
# example against a real syncd (bindings/todos.sql):
#   - the wheel: pip install --no-index into a new venv; sqlite_sync finds the
#     extension inside the package (no path given, no SQLITE_SYNC_EXTENSION);
#     bindings/python/examples/todo.py, copied out of the tree, adds a to-do
#     in one database and lists it in another
#   - the npm tarball: npm install ./dist/sqlite-sync-*.tgz into a new
#     project (better-sqlite3, its peer dependency, from the npm registry);
#     the packaged examples/todo.js likewise. To stay quick, better-sqlite3 is
#     installed with --ignore-scripts and given the native addon that make
#     bindings-deps built in bindings/node when it is the same version (this
#     machine reaches the registry but not GitHub, where its prebuilt addons
#     are); otherwise npm rebuild compiles it (a few minutes)
#   - make install into a temporary PREFIX: a C program built with
#     pkg-config --cflags --libs sqlite-sync loads --variable=extension and
#     pushes a to-do; the installed sync-agent finds the installed extension
# Needs make dist and make first (mk/dist.mk runs both). The last line is
# "dist: N passed, N failed[, N skipped]".
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${BINDINGS_PYTHON:-/usr/bin/python3}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sqlite-sync-dist-XXXXXX")
syncd_pid=
trap '[ -n "$syncd_pid" ] && kill $syncd_pid 2>/dev/null; rm -rf "$TMP"' EXIT
pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
check() { local what=$1; shift; if "$@" >"$TMP/out" 2>&1; then ok "$what"; else bad "$what"; cat "$TMP/out"; fi; }
# expect WHAT TEXT COMMAND...: the command succeeds and prints TEXT
expect() {
  local what=$1 text=$2; shift 2
  if "$@" >"$TMP/out" 2>&1 && grep -qF -- "$text" "$TMP/out"; then ok "$what"
  else bad "$what"; cat "$TMP/out"; fi
}
unset SQLITE_SYNC_EXTENSION SYNC_EXTENSION NODE_PATH PYTHONPATH

whl=$(ls dist/sqlite_sync-*.whl 2>/dev/null | head -n 1)
tgz=$(ls dist/sqlite-sync-*.tgz 2>/dev/null | head -n 1)

server/syncd --listen 127.0.0.1:0 --schema bindings/todos.sql --db "$TMP/server.db" \
  >"$TMP/syncd.url" 2>"$TMP/syncd.log" &
syncd_pid=$!
for _ in $(seq 200); do [ -s "$TMP/syncd.url" ] && break; sleep 0.05; done
url=$(head -n 1 "$TMP/syncd.url")
case $url in http://*) ;; *) echo "syncd did not start"; cat "$TMP/syncd.log"; echo "dist: 0 passed, 1 failed"; exit 1;; esac

# ---- the wheel ----
if [ -z "$whl" ]; then bad "make dist built no wheel"
elif ! "$PY" -c 'import sqlite3, venv, ensurepip; sqlite3.connect(":memory:").enable_load_extension' 2>/dev/null; then
  skip=$((skip + 1)); echo "skipped: the wheel ($PY has no venv or cannot load extensions)"
else
  V=$TMP/venv
  check "python -m venv" "$PY" -m venv "$V"
  check "pip install --no-index $whl" "$V/bin/pip" install --no-index --disable-pip-version-check -q "$ROOT/$whl"
  mkdir -p "$TMP/py" && cp bindings/python/examples/todo.py "$TMP/py/"
  check "the installed package finds the extension inside it" \
    bash -c "cd '$TMP/py' && '$V/bin/python' -c '
import os, sqlite3, sqlite_sync
here = os.path.dirname(sqlite_sync.__file__)
assert here.startswith(\"$V/\"), here
assert sqlite_sync.find_extension() == os.path.join(here, \"sync.so\"), sqlite_sync.find_extension()
c = sqlite3.connect(\":memory:\"); sqlite_sync.load(c)
assert c.execute(\"SELECT sync_wire(1)\").fetchone()[0] == \"1\"'"
  check "python example: add" bash -c "cd '$TMP/py' && '$V/bin/python' todo.py a.db '$url' add 'from the wheel'"
  expect "python example: list in another database" "from the wheel" \
    bash -c "cd '$TMP/py' && '$V/bin/python' todo.py b.db '$url' list"
fi

# ---- the npm tarball ----
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  skip=$((skip + 1)); echo "skipped: the npm tarball (no node or npm)"
elif [ -z "$tgz" ]; then bad "make dist built no npm tarball"
else
  P=$TMP/proj
  mkdir -p "$P" && echo '{"name": "dist-test", "version": "1.0.0", "private": true}' >"$P/package.json"
  check "npm install $tgz" bash -c "cd '$P' && npm install --no-audit --no-fund --loglevel=error --ignore-scripts '$ROOT/$tgz'"
  built=bindings/node/node_modules/better-sqlite3
  want=$(node -p "require('$P/node_modules/better-sqlite3/package.json').version" 2>/dev/null)
  have=$(node -p "require('$ROOT/$built/package.json').version" 2>/dev/null)
  if [ -n "$want" ] && [ "$want" = "$have" ] && [ -f "$built/build/Release/better_sqlite3.node" ]; then
    mkdir -p "$P/node_modules/better-sqlite3/build/Release"
    check "better-sqlite3 $want: the addon make bindings-deps built" \
      cp "$built/build/Release/better_sqlite3.node" "$P/node_modules/better-sqlite3/build/Release/"
  else
    echo "building better-sqlite3 ${want:-?} with npm rebuild (a few minutes)"
    check "npm rebuild better-sqlite3" bash -c "cd '$P' && npm rebuild better-sqlite3 --loglevel=error"
  fi
  check "require('sqlite-sync') finds the extension inside the package and loads" \
    bash -c "cd '$P' && node -e \"
const path = require('path'), Database = require('better-sqlite3'), s = require('sqlite-sync');
const want = path.join(process.cwd(), 'node_modules', 'sqlite-sync', 'sync.so');
if (s.findExtension() !== want) throw new Error(s.findExtension());
const db = new Database(':memory:'); s.load(db);
if (db.prepare('SELECT sync_wire(1) AS w').get().w !== '1') throw new Error('wire');\""
  check "node example: add" bash -c "cd '$P' && node node_modules/sqlite-sync/examples/todo.js a.db '$url' add 'from the tarball'"
  expect "node example: list in another database" "from the tarball" \
    bash -c "cd '$P' && node node_modules/sqlite-sync/examples/todo.js b.db '$url' list"
fi

# ---- make install: pkg-config and the agent ----
I=$TMP/prefix
check "make install PREFIX=$I" make --no-print-directory install PREFIX="$I"
export PKG_CONFIG_PATH=$I/lib/pkgconfig
expect "pkg-config --variable=extension sqlite-sync" "$I/lib/sqlite-sync/sync.so" \
  pkg-config --variable=extension sqlite-sync
expect "pkg-config --libs sqlite-sync" "-lsqlite3" pkg-config --libs sqlite-sync
check "a C program built with pkg-config --cflags --libs sqlite-sync" \
  bash -c "cc -std=c11 -Wall -Werror tests/dist/load_c.c \$(pkg-config --cflags --libs sqlite-sync) -o '$TMP/load_c'"
check "the C program loads the installed extension and pushes (prints 1)" \
  bash -c "[ \"\$('$TMP/load_c' \"\$(pkg-config --variable=extension sqlite-sync)\" '$TMP/c.db' '$url' 'from C')\" = 1 ]"
expect "the installed sync-agent finds the installed extension" "pending       0" \
  "$I/bin/sync-agent" status --db "$TMP/c.db"
if [ -n "${V:-}" ] && [ -x "$V/bin/python" ]; then
  expect "the C program's to-do reaches another client" "from C" \
    bash -c "cd '$TMP/py' && '$V/bin/python' todo.py c2.db '$url' list"
fi
check "make uninstall PREFIX=$I" make --no-print-directory uninstall PREFIX="$I"
left=$(find "$I" -type f -o -type l)
if [ -z "$left" ]; then ok "uninstall left no file"; else bad "uninstall left: $left"; fi

echo "dist: $pass passed, $fail failed$([ $skip -gt 0 ] && echo ", $skip skipped")"
[ $fail = 0 ]
