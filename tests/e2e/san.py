"""Run worker_driver (tests/e2e/worker_driver.c) built with one sanitizer
against a syncd built with the same one: make test-e2e-asan, test-e2e-tsan.
Ends with "N passed, N failed".

    san.py KIND BUILD_DIR    (KIND asan or tsan; BUILD_DIR holds worker_driver,
                              sync.so and syncd built with it, see mk/san.mk)
"""
import os
import shutil
import subprocess
import sys
import tempfile

KIND, BUILD = sys.argv[1], os.path.abspath(sys.argv[2])
os.environ["SYNCD_TEST_BINARY"] = os.path.join(BUILD, "syncd")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_util import Syncd  # noqa: E402

# Options added to what the caller set (make asan/tsan adds a log_path).
OPTIONS = {
    "tsan": {"TSAN_OPTIONS": "halt_on_error=1 second_deadlock_stack=1"},
    "asan": {"ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"},
}


def main():
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)  # both programs carry their own runtime
    for k, v in OPTIONS[KIND].items():
        env[k] = (env[k] + ":" if env.get(k) else "") + v.replace(" ", ":")
    d = tempfile.mkdtemp(prefix=f"sync-{KIND}-")
    s = Syncd(d)
    try:
        p = subprocess.run([os.path.join(BUILD, "worker_driver"), os.path.join(BUILD, "sync.so"),
                            s.url, d], env=env, capture_output=True, text=True, timeout=300)
    finally:
        s.stop()
    out = p.stdout + p.stderr
    ok = p.returncode == 0 and "0 failed" in p.stdout and "WARNING:" not in out
    print(f"{KIND}: worker_driver {'ok' if ok else 'FAILED'}")
    if not ok:
        print(out[-6000:])
    shutil.rmtree(d, ignore_errors=True)
    print(f"{int(ok)} passed, {int(not ok)} failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
