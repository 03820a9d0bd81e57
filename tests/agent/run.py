"""Run the background agent's tests (tests/agent/test_*.py): agent/sync-agent
against a real syncd, writes made with the plain sqlite3 shell. Ends with
the line "N passed, N failed"; exit status 1 on any failure.

    /usr/bin/python3 tests/agent/run.py [test_agent.AgentTest.test_name ...]
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))

import unittest_main  # noqa: E402

if __name__ == "__main__":
    unittest_main.run(HERE, needs_extension=True)
