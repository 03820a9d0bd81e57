"""Shared pieces of the hostile-server tests: run one client process
(client.py) against a FakeServer and check what it reports."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXT = os.environ.get("HOSTILE_EXT") or os.path.join(ROOT, "ext", "sync")  # a sanitizer build
CLIENT = os.path.join(HERE, "client.py")
MB = 1 << 20

# The valid answers a case leaves alone: an empty page at the seed cursor
# (nothing changes) and a push refused for an hour (the outbox stays).
EMPTY_PAGE = {"changes": [], "cursor": "c-2", "has_more": False, "last_mutation_id": 0}


class ClientCase(unittest.TestCase):
    longMessage = False  # a report is long: failures print the message alone

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="hostile-")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.close()
        self.tmp.cleanup()

    def server(self, *args, **kw):
        from fake_server import FakeServer
        s = FakeServer(*args, **kw)
        self.servers.append(s)
        return s

    def run_client(self, url, action, db="c.db", timeout=60, env=None, **spec):
        """Runs client.py; fails the test on a crash (non-zero exit, a
        signal) or a hang. Returns the parsed report, with the process's
        stderr as "stderr"."""
        spec.update(ext=EXT, db=os.path.join(self.tmp.name, db), url=url, action=action)
        p = subprocess.run([sys.executable, CLIENT, json.dumps(spec)], capture_output=True,
                           timeout=timeout, env=env)
        self.assertEqual(p.returncode, 0, f"client died ({p.returncode}): {p.stderr.decode()[-2000:]}")
        out = json.loads(p.stdout.decode().strip().splitlines()[-1])
        out["stderr"] = p.stderr.decode()
        out["stdout"] = p.stdout.decode()
        return out

    def assertUntouched(self, out):
        """Tables, outbox, rejected list, cursor and schema as before."""
        for k in ("schema", "todos", "t", "outbox", "rejected", "cursor"):
            self.assertEqual(out["after"][k], out["before"][k],
                             f"{k} changed: {out['before'][k]} -> {out['after'][k]}"[:600])

    def assertRssGrowthBelow(self, out, limit_mb):
        """Peak RSS grew by less than limit_mb, times SYNC_TEST_MEM under a
        sanitizer (its shadow memory counts in RSS; the unscaled run in make
        test is the one that proves the caps)."""
        limit_mb *= float(os.environ.get("SYNC_TEST_MEM", "1"))
        grew = (out["hwm_after_kb"] - out["hwm_before_kb"]) / 1024
        self.assertLess(grew, limit_mb, f"peak RSS grew by {grew:.1f} MB (bound {limit_mb:.0f} MB)")
        return grew
