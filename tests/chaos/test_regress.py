"""Regression tests for what the chaos run (run.py) found, each replaying
one fault on purpose through the FaultProxy (proxy.py)."""
import os
import random
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
from e2e_util import E2ETest, wait_for  # noqa: E402
from proxy import FaultProxy  # noqa: E402

SLOW = float(os.environ.get("SYNC_TEST_SLOW") or 1)  # a sanitizer build runs slower


def wait(pred, what, timeout=10):
    return wait_for(pred, timeout=timeout * SLOW, what=what)


class ProxyTest(E2ETest):
    def proxy(self, s):
        p = FaultProxy("127.0.0.1", s.port, random.Random(1))
        self.addCleanup(p.close)
        return p


class LostPushAnswer(ProxyTest):
    def test_event_does_not_confirm_a_refused_mutation(self):
        """A push reaches the server but its answer is lost (502); the event
        the server then sends carries last_mutation_id past the batch but no
        "rejected" list. The refused mutation must still reach sync_rejected
        (the worker used to take the event as confirming the whole batch)."""
        s = self.syncd()
        p = self.proxy(s)
        p.burst_code = 502  # after forwarding: the server acts, the client hears 502
        p.force = lambda method, path: "burst" if path.startswith("/push") else None
        a = self.client("a", p.url, {"backoff_min_ms": 300, "backoff_max_ms": 300})
        a.one("SELECT sync_start()")
        wait(lambda: a.status()["sse_connected"] == 1, what="event stream")
        a.db.execute("BEGIN")
        a.db.execute("INSERT INTO todos VALUES('ok', 'fine', 0)")
        a.db.execute("INSERT INTO todos VALUES('no', 'refused', 0)")  # the server's CHECK
        a.db.execute("COMMIT")
        wait(lambda: s.query("SELECT count(*) FROM todos WHERE id = 'ok'")[0][0] == 1,
                 what="the push applied")
        head = s.get("/pull?client_id=x")["cursor"]
        wait(lambda: a.one("SELECT value FROM sync_meta WHERE key = 'cursor'") == head,
                 what="the event applied")
        time.sleep(0.2)
        self.assertEqual(a.one("SELECT sync_pending()"), 2, "the event confirmed the batch")
        self.assertEqual(a.one("SELECT count(*) FROM sync_rejected"), 0)
        p.force = None
        p.calm()
        wait(lambda: a.one("SELECT sync_pending()") == 0, what="the retried push answered")
        self.assertEqual(a.rows("SELECT table_name, op, pk FROM sync_rejected"),
                         [("todos", "insert", '{"id":"no"}')])
        self.assertIn("CHECK constraint failed", a.one("SELECT reason FROM sync_rejected"))
        self.assertEqual(a.todos(), [("ok", "fine", 0)])


class FirstPull(ProxyTest):
    def test_row_pushed_before_the_first_pull_and_deleted_elsewhere(self):
        """While the first pull fails, a row is written here; another client
        deletes it on the server once it is there. The client must not keep
        it: its first pull, without a cursor, sends live rows only and so
        no delete (the worker used to push before it had ever pulled)."""
        s = self.syncd()
        p = self.proxy(s)
        p.burst_code = 503
        failing = {"until": time.monotonic() + 2.0}

        def fail_pulls(method, path):
            if time.monotonic() < failing["until"] and path.startswith(("/pull", "/events")):
                return "burst"
            return None
        p.force = fail_pulls
        a = self.client("a", p.url, {"backoff_min_ms": 50, "backoff_max_ms": 100})
        a.db.execute("INSERT INTO todos VALUES('x', 'gone soon', 0)")
        a.one("SELECT sync_start()")
        wait(lambda: s.query("SELECT count(*) FROM todos")[0][0] == 1, "x on the server", 20)
        s.push("other", [{"id": 1, "table": "todos", "op": "delete", "pk": {"id": "x"}}])
        wait(lambda: time.monotonic() > failing["until"], what="pulls working")
        head = s.get("/pull?client_id=x")["cursor"]
        wait(lambda: a.one("SELECT value FROM sync_meta WHERE key = 'cursor'") == head,
                 what="a caught up")
        wait(lambda: a.one("SELECT sync_pending()") == 0, what="a drained")
        self.assertEqual(a.todos(), [])
        self.assertEqual(s.query("SELECT count(*) FROM todos")[0][0], 0)
        self.assertGreater(p.counts["http_5xx"], 0, "no pull failed")


class PullTurn(ProxyTest):
    def test_steady_writes_do_not_starve_the_pull(self):
        """Pushes are slow (stalled) and there is always more to push; the
        event stream is down, so changes of others come by pull only. The
        pull must get its turn between pushes (the worker used to start the
        next push first every time, so nothing came in while writes went on)."""
        s = self.syncd()
        p = self.proxy(s)
        p.burst_code = 503
        p.force = lambda method, path: ("burst" if path.startswith("/events") else
                                        "stall" if path.startswith("/push") else None)
        a = self.client("a", p.url, {"backoff_min_ms": 50, "backoff_max_ms": 100})
        a.one("SELECT sync_start()")
        wait(lambda: a.one("SELECT value FROM sync_meta WHERE key = 'cursor'"), "first pull")
        s.push("other", [{"id": 1, "table": "todos", "op": "insert", "pk": {"id": "o"},
                          "data": {"id": "o", "title": "from other"}}])
        end = time.monotonic() + 15 * SLOW
        got = None
        i = 0
        while time.monotonic() < end and got is None:
            a.db.execute("INSERT INTO todos VALUES(?, 'mine', 0)", ("w%d" % i,))
            i += 1
            time.sleep(0.05)
            got = a.one("SELECT title FROM todos WHERE id = 'o'")
        self.assertEqual(got, "from other", "no pull while the writes went on")
        self.assertGreater(a.one("SELECT sync_pending()"), 0)


if __name__ == "__main__":
    unittest.main()
