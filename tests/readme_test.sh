#!/usr/bin/env bash
# Every command and snippet of README.md, run as printed in a scratch top
# folder against a real syncd: tests/readme_test.py says what runs and the
# few documented rewrites (a port the OS picks, make targets checked, not
# run). The last line is "readme: N passed, N failed[, N skipped]".
set -u
cd "$(dirname "$0")/.."
py=/usr/bin/python3
[ -x "$py" ] || py=python3
exec "$py" tests/readme_test.py "$@"
