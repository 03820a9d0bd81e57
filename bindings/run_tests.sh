#!/usr/bin/env bash
# The bindings' tests (make test-bindings): each binding's own test runner
# (Python unittest, node:test, Tcl tcltest) against a real syncd, the three
# example apps syncing through one syncd, and make install/uninstall.
#
# A binding whose toolchain is missing prints one "skipped" line and counts
# as skipped, never as passed. The last line is "N passed, N failed" (with
# ", N skipped" when any); the exit status is non-zero on any failure.
# VERBOSE=1 prints every suite's whole output, not only a failing one's.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
SYNCD=${SYNCD:-$ROOT/server/syncd}
export SYNCD
unset SQLITE_SYNC_EXTENSION
# Under make asan/tsan (tests/san/run.sh) the Python and Tcl suites load the
# sanitizer build of the extension, with its runtime preloaded.
SAN=()
if [ -n "${SYNC_TEST_PRELOAD:-}" ] && [ -n "${SYNC_EXT:-}" ]; then
  SAN=(env LD_PRELOAD="$SYNC_TEST_PRELOAD" SQLITE_SYNC_EXTENSION="$SYNC_EXT")
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sqlite-sync-bindings-XXXXXX")
pass=0 fail=0 skip=0
syncd_pid=

cleanup() {
  [ -n "$syncd_pid" ] && kill "$syncd_pid" 2>/dev/null && wait "$syncd_pid" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

skipped() { echo "$1: skipped: $2"; skip=$((skip + 1)); }

# suite NAME COMMAND...: runs a test runner whose last matching line is
# "NAME: N passed, N failed[, N skipped]" and adds its counts.
suite() {
  local name=$1 log=$TMP/$1.log sum rc
  shift
  "$@" >"$log" 2>&1
  rc=$?
  sum=$(sed -n "s/^$name: \([0-9]*\) passed, \([0-9]*\) failed\(, \([0-9]*\) skipped\)\{0,1\}\$/\1 \2 \4/p" "$log" | tail -n 1)
  if [ -z "$sum" ]; then
    cat "$log"
    echo "$name: exit status $rc, no summary line"
    fail=$((fail + 1))
    return
  fi
  set -- $sum
  pass=$((pass + $1)); fail=$((fail + $2)); skip=$((skip + ${3:-0}))
  if [ "$2" != 0 ] || [ "$rc" != 0 ] || [ -n "${VERBOSE:-}" ]; then cat "$log"; else tail -n 1 "$log"; fi
  if [ "$rc" != 0 ] && [ "$2" = 0 ]; then echo "$name: exit status $rc"; fail=$((fail + 1)); fi
}

# ---- which toolchains are here ----
PYTHON=
for p in ${BINDINGS_PYTHON:-} /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null 2>&1 &&
     "$p" -c 'import sqlite3, sys; sys.exit(not hasattr(sqlite3.Connection, "enable_load_extension"))' 2>/dev/null; then
    PYTHON=$(command -v "$p"); break
  fi
done
NODE=
if command -v node >/dev/null 2>&1; then
  if (cd bindings/node && node -e "new (require('better-sqlite3'))(':memory:').close()") >/dev/null 2>&1; then
    NODE=node; node_why=
  else
    node_why="better-sqlite3 is not built in bindings/node/node_modules (run: make bindings-deps)"
  fi
else
  node_why="no node on PATH (Debian: apt-get install nodejs npm)"
fi
TCLSH=
if command -v tclsh >/dev/null 2>&1; then
  if echo 'package require sqlite3' | tclsh >/dev/null 2>&1; then TCLSH=tclsh
  else tcl_why="tclsh cannot 'package require sqlite3' (Debian: apt-get install libsqlite3-tcl)"; fi
else
  tcl_why="no tclsh (Debian: apt-get install tcl libsqlite3-tcl)"
fi

# ---- each binding's own tests ----
if [ -n "$PYTHON" ]; then suite python "${SAN[@]}" "$PYTHON" bindings/python/tests/run.py
else skipped python "no python3 whose sqlite3 module has enable_load_extension (Debian: /usr/bin/python3)"; fi

node_suite() {
  # node:test's TAP summary ("# pass N", "# fail N", ...) as one line
  local out rc p f c s
  out=$(cd bindings/node && node --test --test-reporter=tap 2>&1); rc=$?
  printf '%s\n' "$out"
  p=$(printf '%s\n' "$out" | sed -n 's/^# pass \([0-9]*\)$/\1/p' | tail -n 1)
  f=$(printf '%s\n' "$out" | sed -n 's/^# fail \([0-9]*\)$/\1/p' | tail -n 1)
  c=$(printf '%s\n' "$out" | sed -n 's/^# cancelled \([0-9]*\)$/\1/p' | tail -n 1)
  s=$(printf '%s\n' "$out" | sed -n 's/^# skipped \([0-9]*\)$/\1/p' | tail -n 1)
  [ -n "$p" ] && [ -n "$f" ] || return 1
  f=$((f + ${c:-0}))
  if [ "${s:-0}" != 0 ]; then echo "node: $p passed, $f failed, $s skipped"; else echo "node: $p passed, $f failed"; fi
  return $rc
}
if [ -n "$NODE" ]; then suite node node_suite; else skipped node "$node_why"; fi

if [ -n "$TCLSH" ]; then suite tcl "${SAN[@]}" tclsh bindings/tcl/test.tcl; else skipped tcl "$tcl_why"; fi

# ---- the example apps: a to-do added in one database shows in another ----
examples() {
  local np=0 nf=0 url out lang titles=()
  "$SYNCD" --listen 127.0.0.1:0 --schema bindings/todos.sql --db "$TMP/examples.db" \
    >"$TMP/syncd.url" 2>"$TMP/syncd.log" &
  syncd_pid=$!
  for _ in $(seq 200); do [ -s "$TMP/syncd.url" ] && break; sleep 0.05; done
  url=$(head -n 1 "$TMP/syncd.url")
  case $url in http://*) ;; *) echo "examples: syncd did not start"; cat "$TMP/syncd.log"; echo "examples: 0 passed, 1 failed"; return 1;; esac
  check() { # lang description command... ; the output must contain every title in titles
    local lang=$1 what=$2; shift 2
    out=$("$@" 2>&1)
    local ok=1 t
    for t in "${titles[@]}"; do printf '%s\n' "$out" | grep -qF -- "$t" || ok=0; done
    if [ $ok = 1 ]; then np=$((np + 1)); echo "ok: $lang example: $what"
    else nf=$((nf + 1)); echo "FAIL: $lang example: $what; output:"; printf '%s\n' "$out"; fi
  }
  for lang in python node tcl; do
    case $lang in
      python) [ -n "$PYTHON" ] || continue; cmd=("$PYTHON" bindings/python/examples/todo.py) ;;
      node) [ -n "$NODE" ] || continue; cmd=(node bindings/node/examples/todo.js) ;;
      tcl) [ -n "$TCLSH" ] || continue; cmd=(tclsh bindings/tcl/examples/todo.tcl) ;;
    esac
    titles+=("buy milk ($lang)")
    check $lang "add" "${cmd[@]}" "$TMP/$lang-a.db" "$url" add "buy milk ($lang)"
    # a second database sees this one's to-do and every earlier binding's
    check $lang "list in another database" "${cmd[@]}" "$TMP/$lang-b.db" "$url" list
    # without a server the write is kept and queued
    local keep=("${titles[@]}"); titles=("offline" "1 change(s) queued" "call mum ($lang)")
    check $lang "add while offline" "${cmd[@]}" "$TMP/$lang-off.db" "http://127.0.0.1:9" add "call mum ($lang)"
    titles=("${keep[@]}")
    # watch: a to-do added elsewhere shows up live
    PYTHONUNBUFFERED=1 "${cmd[@]}" "$TMP/$lang-w.db" "$url" watch >"$TMP/$lang-watch.out" 2>&1 &
    local wpid=$! seen=0
    for _ in $(seq 200); do grep -qF "buy milk ($lang)" "$TMP/$lang-watch.out" && break; sleep 0.05; done
    "${cmd[@]}" "$TMP/$lang-a.db" "$url" add "live ($lang)" >/dev/null 2>&1
    for _ in $(seq 200); do grep -qF "live ($lang)" "$TMP/$lang-watch.out" && { seen=1; break; }; sleep 0.05; done
    kill -INT $wpid 2>/dev/null
    for _ in $(seq 100); do kill -0 $wpid 2>/dev/null || break; sleep 0.05; done
    kill -KILL $wpid 2>/dev/null; wait $wpid 2>/dev/null
    if [ $seen = 1 ]; then np=$((np + 1)); echo "ok: $lang example: watch shows a to-do added elsewhere"
    else nf=$((nf + 1)); echo "FAIL: $lang example: watch; output:"; cat "$TMP/$lang-watch.out"; fi
    titles+=("live ($lang)")
  done
  kill "$syncd_pid"; wait "$syncd_pid" 2>/dev/null; syncd_pid=
  echo "examples: $np passed, $nf failed"
  [ $nf = 0 ]
}
if [ -n "$PYTHON$NODE$TCLSH" ]; then suite examples examples
else skipped examples "no binding toolchain"; fi

# ---- make install / uninstall into a temporary prefix ----
suite install env PYTHON="$PYTHON" NODE="$NODE" TCLSH="$TCLSH" bash bindings/install_test.sh

if [ "$skip" != 0 ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
[ "$fail" = 0 ]
