"""Run the end-to-end tests (tests/e2e/test_*.py): clients with the
extension loaded and a real syncd. Ends with the line "N passed, N failed";
exit status 1 on any failure.

    /usr/bin/python3 tests/e2e/run.py [test_module.Class.test_name ...]
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import unittest_main  # noqa: E402

if __name__ == "__main__":
    unittest_main.run(HERE, needs_extension=True)
