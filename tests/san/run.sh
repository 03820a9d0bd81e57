#!/usr/bin/env bash
# make asan / make tsan: run suites against the sanitizer builds of mk/san.mk.
#
#   tests/san/run.sh KIND SUITE...    KIND asan or tsan; SUITE a make target
#
# Each suite is an ordinary make target (a TEST_TARGETS entry) told where the
# builds are through the variables the suites honour:
#   SYNC_EXT, HOSTILE_EXT           the extension (build/KIND/sync.so)
#   SYNCD_TEST_BINARY, SYNCD        syncd (build/KIND/syncd)
#   E2E_PYTHON, *_PYTHON            the python that loads the extension:
#                                   build/KIND/bin/python3, which runs
#                                   /usr/bin/python3 with the runtime in
#                                   LD_PRELOAD
#   SYNC_TEST_PRELOAD               that runtime, for a runner starting
#                                   other hosts (the sqlite3 shell, tclsh)
#   SYNC_TEST_SLOW                  a factor for timeouts (code runs 2-10x
#                                   slower under a sanitizer)
#   SYNC_TEST_MEM                   a factor for peak-memory bounds: shadow
#                                   memory and ASan's quarantine count in
#                                   RSS (measured for a 16 MiB buffer: +18 MB
#                                   plain, +41 MB ASan, up to +74 MB TSan);
#                                   the plain run in make test, factor 1,
#                                   is the one that proves the caps
# LD_PRELOAD is never set for a whole suite: bash crashes under a preloaded
# TSan runtime and PostgreSQL hangs under ASan. Sanitizer reports from every
# process go to build/KIND/logs (log_path); a report fails its suite even
# when the suite itself passed. The last line is "KIND: N passed, N failed"
# counting suites.
set -u
cd "$(dirname "$0")/../.."
top=$PWD
kind=$1
shift
build=$top/build/$kind
logs=$build/logs
cc=${CC:-cc}
case $kind in
asan)
  rt="$($cc -print-file-name=libasan.so):$($cc -print-file-name=libubsan.so)"
  export ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1:intercept_tls_get_addr=0"
  export UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1"
  export LSAN_OPTIONS="suppressions=$top/tests/san/lsan.supp:print_suppressions=0"
  export SYNC_TEST_MEM=${SYNC_TEST_MEM:-2}
  ;;
tsan)
  rt="$($cc -print-file-name=libtsan.so)"
  export TSAN_OPTIONS="log_path=$logs/tsan:second_deadlock_stack=1:suppressions=$top/tests/san/tsan.supp"
  export SYNC_TEST_MEM=${SYNC_TEST_MEM:-3}
  ;;
*) echo "usage: $0 asan|tsan SUITE..." >&2; exit 2 ;;
esac
for f in ${rt//:/ }; do [ -f "$f" ] || { echo "$kind: no sanitizer runtime $f ($cc)" >&2; exit 2; }; done
export SYNC_EXT=$build/sync.so HOSTILE_EXT=$build/sync.so
export SYNCD_TEST_BINARY=$build/syncd SYNCD=$build/syncd
export SYNC_TEST_PRELOAD=$rt SYNC_TEST_SLOW=${SYNC_TEST_SLOW:-5}
# A python that starts with the runtime preloaded, as one path (runners
# pass it on in the environment and start it without a shell). It is a
# python script, not a shell one: sh and bash crash under a preloaded TSan.
py=$build/bin/python3
mkdir -p "$build/bin"
cat >"$py" <<PY
#!/usr/bin/python3 -S
import os, sys
os.environ["LD_PRELOAD"] = "$rt"
os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv[1:])
PY
chmod +x "$py"
export E2E_PYTHON="$py" HOSTILE_PYTHON="$py" CHAOS_PYTHON="$py" CRASH_PYTHON="$py"
export BINDINGS_PYTHON=/usr/bin/python3

pass=0 fail=0 failed=()
for suite in "$@"; do
  rm -rf "$logs"
  mkdir -p "$logs"
  echo "== $kind: $suite"
  start=$(date +%s)
  make --no-print-directory "$suite"
  rc=$?
  reports=$(ls "$logs")
  if [ -n "$reports" ]; then
    for f in $reports; do echo "-- $kind report $f:"; head -c 20000 "$logs/$f"; done
    echo "$kind: $suite: $(echo "$reports" | wc -l) sanitizer report(s)"
    rc=1
  fi
  echo "$kind: $suite: $([ $rc = 0 ] && echo ok || echo FAILED) ($(($(date +%s) - start)) s)"
  if [ $rc = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); failed+=("$suite"); fi
done
[ $fail = 0 ] || echo "$kind: failed: ${failed[*]}"
echo "$kind: $pass passed, $fail failed"
[ $fail = 0 ]
