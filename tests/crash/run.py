"""Run the crash-safety tests (tests/crash/test_*.py): processes killed with
SIGKILL inside sync_apply and between a push and its ack. Ends with the line
"N passed, N failed"; exit status 1 on any failure.

    /usr/bin/python3 tests/crash/run.py [test_module.Class.test_name ...]
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import unittest_main  # noqa: E402

if __name__ == "__main__":
    unittest_main.run(HERE, needs_extension=True)
