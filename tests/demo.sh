#!/usr/bin/env bash
# make demo: builds what is missing (make does, before calling this), then
# runs tests/demo.py with a python whose sqlite3 can load extensions.
set -eu
cd "$(dirname "$0")/.."
py=${E2E_PYTHON:-/usr/bin/python3}
if ! "$py" -c 'import sqlite3; sqlite3.connect(":memory:").enable_load_extension(True)' 2>/dev/null; then
  echo "demo: $py cannot load SQLite extensions; set E2E_PYTHON to one that can" >&2
  exit 1
fi
exec "$py" tests/demo.py
