"""Several syncd on one PostgreSQL database: events fan out through
LISTEN/NOTIFY, versions stay ordered, and mutation ids stay at-most-once
across processes."""
import threading
import unittest

from syncd_util import Syncd, ins, pg_fresh_db, pg_url, upd


class PgScaleOutTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pg_url()

    def setUp(self):
        url = pg_fresh_db()
        self.a = Syncd("pg", ["--pg", url])
        self.b = Syncd("pg", ["--pg", url])

    def tearDown(self):
        rcs = [s.stop() for s in (self.a, self.b)]
        self.assertEqual(rcs, [0, 0])

    def test_push_through_one_event_from_the_other(self):
        ev = self.b.events("watcher")
        ev.next(5)
        self.a.push("c1", [ins(1, "x", "from a")])
        got = ev.next_event(10)
        self.assertEqual([c["pk"]["id"] for c in got["data"]["changes"]], ["x"])
        self.assertEqual(got["data"]["changes"][0]["row"]["title"], "from a")
        self.assertEqual(got["id"], self.a.pull("watcher")["cursor"])
        # and the other way round, on a stream of the first server
        ev2 = self.a.events("watcher", last_event_id=got["id"])
        self.b.push("c2", [upd(1, "x", title="from b")])
        got2 = ev2.next_event(10)
        self.assertEqual(got2["data"]["changes"][0]["row"]["title"], "from b")
        ev.close()
        ev2.close()

    def test_one_client_through_two_servers_applies_once(self):
        self.a.push("c1", [ins(1, "first")])
        batch = [ins(i, f"r{i}") for i in range(2, 32)]
        out = {}

        def go(name, server):
            out[name] = server.push("c1", batch)

        threads = [threading.Thread(target=go, args=(n, s)) for n, s in (("a", self.a),
                                                                          ("b", self.b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for name in ("a", "b"):
            self.assertEqual([r["status"] for r in out[name]], ["applied"] * 30, out[name])

    def test_a_follower_never_skips_a_late_commit(self):
        """Writers on both servers; a reader following cursors incrementally
        (never re-reading) must end up with every row: a version that
        committed after a higher one was read would be skipped for good."""
        start = self.a.pull("reader")["cursor"]
        done = threading.Event()
        seen = set()

        def write(server, client):
            for k in range(8):
                server.push(client, [ins(10 * k + j, f"{client}-{k}-{j}") for j in range(1, 4)])

        def follow():
            cursor, servers, i = start, (self.a, self.b), 0
            while True:
                finished = done.is_set()
                page = servers[i % 2].pull("reader", cursor, limit=5)
                i += 1
                seen.update(c["pk"]["id"] for c in page["changes"] if c["table"] == "todos")
                cursor = page["cursor"]
                if finished and not page["has_more"]:
                    return

        writers = [threading.Thread(target=write, args=(s, c))
                   for s, c in ((self.a, "p"), (self.b, "q"), (self.a, "r"), (self.b, "s"))]
        reader = threading.Thread(target=follow)
        reader.start()
        for t in writers:
            t.start()
        for t in writers:
            t.join(60)
        done.set()
        reader.join(60)
        self.assertEqual(len(seen), 4 * 8 * 3)

if __name__ == "__main__":
    unittest.main()
