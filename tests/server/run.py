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


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


class CountingResult(unittest.TextTestResult):
    """Counts passes, and a class skipped in setUpClass as all its tests."""

    class_sizes = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passed = 0
        self.skipped_tests = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if isinstance(test, unittest.TestCase):
            self.skipped_tests += 1
        else:  # "setUpClass (module.Class)"
            name = str(test).rpartition("(")[2].rstrip(")")
            self.skipped_tests += self.class_sizes.get(name, 1)


def main():
    sys.path.insert(0, HERE)
    names = sys.argv[1:]
    loader = unittest.TestLoader()
    if names:
        suite = loader.loadTestsFromNames(names)
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    for t in iter_tests(suite):
        name = f"{type(t).__module__}.{type(t).__qualname__}"
        CountingResult.class_sizes[name] = CountingResult.class_sizes.get(name, 0) + 1
    pg_dir = start_pg()
    try:
        runner = unittest.TextTestRunner(verbosity=2, stream=sys.stdout,
                                         resultclass=CountingResult)
        result = runner.run(suite)
    finally:
        if pg_dir:
            subprocess.run(["bash", PG_ENV, "stop", pg_dir], capture_output=True)
            shutil.rmtree(pg_dir, ignore_errors=True)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = result.skipped_tests
    passed = result.passed
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    sys.exit(1 if failed or passed == 0 else 0)


if __name__ == "__main__":
    main()
