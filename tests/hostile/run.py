"""Run the hostile-server and client security tests (tests/hostile/test_*.py):
each client process against a fake server. Ends with the line "N passed, N failed";
exit status 1 on any failure.

    /usr/bin/python3 tests/hostile/run.py [test_module.Class.test_name ...]

HOSTILE_EXT=/path/to/sync (without .so) runs the clients with another build
of the extension, e.g. an AddressSanitizer one (with libasan in LD_PRELOAD).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import unittest_main  # noqa: E402

if __name__ == "__main__":
    unittest_main.run(HERE, needs_extension=True)
