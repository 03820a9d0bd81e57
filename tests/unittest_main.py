"""The one runner behind tests/e2e, tests/hostile and tests/crash: discovers
test_*.py in a suite's folder (or runs the names given), prints the closing
line "N passed, N failed" that make and CI read, and exits 1 on any failure
or when no test ran.

    import unittest_main; unittest_main.run(HERE, needs_extension=True)
"""
import sqlite3
import sys
import unittest


def run(here, needs_extension=False):
    if needs_extension and not hasattr(sqlite3.Connection, "enable_load_extension"):
        print(f"{sys.executable}: this python's sqlite3 cannot load extensions")
        print("0 passed, 1 failed")
        sys.exit(1)
    sys.path.insert(0, here)
    loader = unittest.TestLoader()
    names = sys.argv[1:]
    if names:
        suite = loader.loadTestsFromNames(names)
    else:
        suite = loader.discover(here, pattern="test_*.py", top_level_dir=here)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - failed - len(result.skipped) - len(result.expectedFailures)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or result.testsRun == 0 else 0)
