"""Run worker_driver (tests/e2e/worker_driver.c) built with each sanitizer
against a fresh syncd: make test-e2e-san. Ends with "N passed, N failed".

    san.py BUILD_DIR    (holds driver_tsan + sync_tsan.so, driver_asan + sync_asan.so)
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_util import Syncd  # noqa: E402

ENV = {
    "tsan": {"TSAN_OPTIONS": "halt_on_error=1 second_deadlock_stack=1"},
    "asan": {"ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"},
}


def main():
    build = sys.argv[1]
    passed = failed = 0
    for san, env in ENV.items():
        d = tempfile.mkdtemp(prefix=f"sync-{san}-")
        s = Syncd(d)
        try:
            p = subprocess.run([os.path.join(build, "driver_" + san),
                                os.path.abspath(os.path.join(build, "sync_" + san)), s.url, d],
                               env=dict(os.environ, **env), capture_output=True, text=True,
                               timeout=120)
            out = p.stdout + p.stderr
            ok = p.returncode == 0 and "0 failed" in p.stdout and "WARNING:" not in out
            print(f"{san}: {'ok' if ok else 'FAILED'}")
            if not ok:
                print(out[-6000:])
            passed += ok
            failed += not ok
        finally:
            s.stop()
            shutil.rmtree(d, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
