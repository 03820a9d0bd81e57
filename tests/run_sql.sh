#!/usr/bin/env bash
# SQL regression tests, pg_regress style: each sql/NAME.sql runs in a fresh
# temporary folder through the sqlite3 shell (errors interleaved with output,
# in order) and its output must equal sql/NAME.out. The extension is linked
# there as ./sync, so a test loads it with `.load ./sync` (also after `.open`,
# to get a connection with the extension; without it, one without).
#
#   tests/run_sql.sh [NAME...]          run all tests, or the ones named
#   tests/run_sql.sh --accept [NAME...] take the current output as expected
#
# Environment: SYNC_EXT (the extension to test, default ext/sync.so),
# SQLITE3 (shell to use, default sqlite3), SQL_WRAP (a command
# prefix such as "valgrind --error-exitcode=99 -q"; its own complaints end up
# in the output and so fail the diff), SYNC_TEST_PRELOAD (sanitizer runtimes
# to preload into the shell when SYNC_EXT is a sanitizer build).
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
accept=0
if [ "${1:-}" = "--accept" ]; then accept=1; shift; fi
ext=${SYNC_EXT:-$top/ext/sync.so}
[ -f "$ext" ] || ext="$top/ext/sync.dylib"
[ -f "$ext" ] || { echo "run_sql: build the extension first (make)"; exit 2; }
shell=${SQLITE3:-sqlite3}
wrap=${SQL_WRAP:-}
# before stdbuf, which adds itself to LD_PRELOAD
pre=${SYNC_TEST_PRELOAD:+env LD_PRELOAD=$SYNC_TEST_PRELOAD}
command -v stdbuf >/dev/null && unbuf="stdbuf -o0 -e0" || unbuf=""

if [ $# -gt 0 ]; then names=("$@"); else
  names=(); for f in sql/*.sql; do names+=("$(basename "$f" .sql)"); done
fi
mkdir -p sql/results
pass=0; fail=0; failed=()
for name in "${names[@]}"; do
  work=$(mktemp -d)
  ln -s "$ext" "$work/sync.${ext##*.}"
  {
    printf '.load ./sync\n.headers on\n.nullvalue NULL\n.echo on\n'
    cat "sql/$name.sql"
  } >"$work/input.sql"
  (cd "$work" && $pre $unbuf $wrap $shell -batch -init /dev/null test.db <input.sql >"$top/sql/results/$name.out" 2>&1)
  rm -rf "$work"
  if [ $accept = 1 ]; then
    cp "sql/results/$name.out" "sql/$name.out"
    echo "accepted $name"
    continue
  fi
  if diff -u "sql/$name.out" "sql/results/$name.out" >"sql/results/$name.diff" 2>&1; then
    pass=$((pass + 1)); rm -f "sql/results/$name.diff"
  else
    fail=$((fail + 1)); failed+=("$name")
    echo "FAIL $name"; cat "sql/results/$name.diff"
  fi
done
[ $accept = 1 ] && exit 0
[ $fail -gt 0 ] && echo "failed: ${failed[*]}"
echo "sql: $pass passed, $fail failed"
[ $fail = 0 ]
