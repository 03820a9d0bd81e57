"""Run the syncd protocol tests (tests/server/test_*.py) and end with the
line "N passed, N failed[, N skipped]"; exit status 1 on any failure.

A throwaway PostgreSQL cluster is started with tests/pg_env.sh for the
PostgreSQL half; when it cannot start, one line says so and those tests are
reported as skipped (never as passed).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PG_ENV = os.path.join(os.path.dirname(HERE), "pg_env.sh")


def start_pg():
    """Returns the cluster's directory, or None after printing why not."""
    if os.environ.get("SYNCD_TEST_NO_PG"):
        os.environ["SYNCD_TEST_PG_SKIP"] = "SYNCD_TEST_NO_PG is set"
    else:
        d = tempfile.mkdtemp(prefix="syncd-pg-")
        p = subprocess.run(["bash", PG_ENV, "start", d], capture_output=True, text=True,
                           timeout=120)
        url = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        if p.returncode == 0 and url.startswith("postgresql://"):
            os.environ["SYNCD_TEST_PG_URL"] = url
            return d
        why = (p.stderr.strip().splitlines() or ["unknown error"])[-1]
        os.environ["SYNCD_TEST_PG_SKIP"] = "PostgreSQL could not start: " + why
        subprocess.run(["bash", PG_ENV, "stop", d], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)
    print("SKIPPING PostgreSQL tests: " + os.environ["SYNCD_TEST_PG_SKIP"], flush=True)
    return None


def main():
    sys.path.insert(0, HERE)
    names = sys.argv[1:]
    loader = unittest.TestLoader()
    if names:
        suite = loader.loadTestsFromNames(names)
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    pg_dir = start_pg()
    try:
        result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    finally:
        if pg_dir:
            subprocess.run(["bash", PG_ENV, "stop", pg_dir], capture_output=True)
            shutil.rmtree(pg_dir, ignore_errors=True)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped - len(result.expectedFailures)
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    sys.exit(1 if failed or result.testsRun == 0 else 0)


if __name__ == "__main__":
    main()
