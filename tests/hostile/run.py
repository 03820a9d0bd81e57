"""Run the hostile-server and client security tests (tests/hostile/test_*.py):
each client process against a fake server. Ends with the line "N passed, N failed";
exit status 1 on any failure.

    /usr/bin/python3 tests/hostile/run.py [test_module.Class.test_name ...]

HOSTILE_EXT=/path/to/sync (without .so) runs the clients with another build
of the extension, e.g. an AddressSanitizer one (with libasan in LD_PRELOAD).
"""
import os
import sqlite3
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    if not hasattr(sqlite3.Connection, "enable_load_extension"):
        print(f"{sys.executable}: this python's sqlite3 cannot load extensions")
        print("0 passed, 1 failed")
        sys.exit(1)
    sys.path.insert(0, HERE)
    loader = unittest.TestLoader()
    names = sys.argv[1:]
    if names:
        suite = loader.loadTestsFromNames(names)
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - failed - len(result.skipped) - len(result.expectedFailures)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or result.testsRun == 0 else 0)


if __name__ == "__main__":
    main()
