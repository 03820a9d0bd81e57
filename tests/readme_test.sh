#!/usr/bin/env bash
# The README's quick start must work as printed: run its ```sql block in the
# sqlite3 shell from the top folder (as the README says) on a fresh database
# and compare with the ```text block that follows it.
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '/^## Quick start/{q=1} q&&/^```sql/{f=1;next} f&&/^```/{exit} f' README.md >"$tmp/in.sql"
awk '/^## Quick start/{q=1} q&&/^```text/{f=1;next} f&&/^```/{exit} f' README.md >"$tmp/expected"
[ -s "$tmp/in.sql" ] && [ -s "$tmp/expected" ] || { echo "readme: quick start blocks not found"; echo "0 passed, 1 failed"; exit 1; }
{ echo ".headers on"; cat "$tmp/in.sql"; } | sqlite3 -batch -init /dev/null "$tmp/todo.db" >"$tmp/actual" 2>&1
if diff -u "$tmp/expected" "$tmp/actual"; then
  echo "readme: 1 passed, 0 failed"
else
  echo "readme: 0 passed, 1 failed"; exit 1
fi
