"""Group commit on SQLite storage: nothing leaves syncd before the
write-ahead log holding it is on disk, and one fsync serves many pushes.

syncd commits without an fsync each and makes the commits durable with
fsyncs of the WAL shared by every connection waiting (sqlite_durable.c).
These tests hold a WAL fsync open through an LD_PRELOAD shim
(fsync_gate.c) and look at what syncd answers meanwhile: a push must not
be answered, and neither a pull nor an event stream may carry its change,
before the fsync covering it has returned; and pushes that commit while
one fsync runs must share the next one, not take one each.

The shim also counts the pages syncd reads from the database and its WAL:
pushes all write on one connection (dialect_sqlite.c), so a push does not
read back the pages the previous one wrote on another. And the WAL is
checkpointed from its first half on, outside the write lock, and still
starts again from its start.
"""
import os
import re
import select
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest

from syncd_util import SYNCD, ManySyncd, Syncd, ins

HERE = os.path.dirname(os.path.abspath(__file__))


def sanitizer_runtime():
    """The sanitizer runtime syncd links, which must stay first in
    LD_PRELOAD ahead of the shim (ASan checks)."""
    out = subprocess.run(["ldd", SYNCD], capture_output=True, text=True).stdout
    m = re.search(r"=>\s*(\S*lib[at]san\S*)", out)
    return [m.group(1)] if m else []


class DurableTests(ManySyncd, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.build = tempfile.mkdtemp(prefix="syncd-gate-")
        cls.shim = os.path.join(cls.build, "fsync_gate.so")
        subprocess.run(["cc", "-shared", "-fPIC", "-o", cls.shim,
                        os.path.join(HERE, "fsync_gate.c"), "-ldl"], check=True)

    def setUp(self):
        super().setUp()
        self.count = os.path.join(self.tmp, "fsyncs")
        self.hold = os.path.join(self.tmp, "hold")
        self.failing = os.path.join(self.tmp, "fail")
        self.reads = os.path.join(self.tmp, "reads")
        preload = sanitizer_runtime() + os.environ.get("LD_PRELOAD", "").split() + [self.shim]
        env = dict(os.environ, LD_PRELOAD=" ".join(dict.fromkeys(preload)),
                   FSYNC_GATE_COUNT=self.count, FSYNC_GATE_HOLD=self.hold,
                   FSYNC_GATE_FAIL=self.failing, FSYNC_GATE_READS=self.reads)
        self.env = env
        self.s = self.syncd()
        # a first push opens the WAL and settles syncd's own setup
        self.s.push("warm", [ins(1, "warm")])

    def syncd(self):
        s = Syncd("sqlite", ["--db", os.path.join(self.tmp, "server.db")], env=self.env)
        self.servers.append(s)
        return s

    def tearDown(self):
        if os.path.exists(self.hold):
            os.unlink(self.hold)
        super().tearDown()

    def fsyncs(self):
        return os.path.getsize(self.count) if os.path.exists(self.count) else 0

    def pages_read(self):
        return os.path.getsize(self.reads) if os.path.exists(self.reads) else 0

    def rows_committed(self):
        db = sqlite3.connect(os.path.join(self.tmp, "server.db"), timeout=10)
        try:
            return db.execute("SELECT count(*) FROM todos").fetchone()[0]
        finally:
            db.close()

    def wait_for(self, cond, what, timeout=20):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                self.fail("timed out waiting for " + what)
            time.sleep(0.01)

    def in_thread(self, fn):
        out = {}

        def run():
            try:
                out["value"] = fn()
            except Exception as e:  # reported by the test that reads it
                out["error"] = e
        t = threading.Thread(target=run)
        t.start()
        return t, out

    def test_nothing_is_answered_before_its_fsync(self):
        cursor = self.s.pull("reader")["cursor"]
        ev = self.s.events("watcher", cursor=cursor)
        self.assertEqual(ev.status, 200)
        open(self.hold, "w").close()
        before = self.fsyncs()
        push, pushed = self.in_thread(lambda: self.s.push("c1", [ins(1, "held")]))
        # the push's commit reaches the WAL fsync, and the shim holds it
        self.wait_for(lambda: self.fsyncs() > before, "the push's WAL fsync")
        pull, pulled = self.in_thread(lambda: self.s.pull("reader", cursor=cursor))
        push.join(1.0)
        pull.join(1.0)
        self.assertTrue(push.is_alive(), "the push was answered before its fsync: %r" % pushed)
        if not pull.is_alive():
            # a reader may answer without the change (not yet visible), never with it
            self.assertNotIn("error", pulled)
            self.assertEqual([c["pk"] for c in pulled["value"]["changes"]], [])
        # nor does the event stream (a heartbeat comment may come)
        while select.select([ev.conn.sock], [], [], 0.5)[0]:
            kind, item = ev.next(5)
            self.assertEqual(kind, "comment", "an event before its fsync: %r" % (item,))
        os.unlink(self.hold)
        push.join(20)
        pull.join(20)
        self.assertNotIn("error", pushed)
        self.assertEqual(pushed["value"][0]["status"], "applied")
        # once durable, it reaches readers
        changes, _ = self.s.pull_all("reader", cursor=cursor)
        self.assertEqual([c["pk"] for c in changes], [{"id": "held"}])
        self.assertEqual(ev.next_event()["data"]["changes"][0]["pk"], {"id": "held"})
        ev.close()

    def test_another_syncd_on_the_file_sends_nothing_before_its_fsync(self):
        other = self.syncd()
        cursor = other.pull("reader")["cursor"]
        open(self.hold, "w").close()
        before = self.fsyncs()
        push, pushed = self.in_thread(lambda: self.s.push("c1", [ins(1, "held")]))
        self.wait_for(lambda: self.fsyncs() > before, "the push's WAL fsync")
        self.wait_for(lambda: self.rows_committed() == 2, "the push's commit")
        # the commit is in the WAL, visible to the other syncd's readers,
        # and not yet on disk
        pull, pulled = self.in_thread(lambda: other.pull("reader", cursor=cursor))
        pull.join(1.0)
        if not pull.is_alive():
            self.assertNotIn("error", pulled)
            self.assertEqual([c["pk"] for c in pulled["value"]["changes"]], [],
                             "the other syncd sent a change before its fsync")
        os.unlink(self.hold)
        push.join(20)
        pull.join(20)
        self.assertEqual(pushed["value"][0]["status"], "applied")
        changes, _ = other.pull_all("reader", cursor=cursor)
        self.assertEqual([c["pk"] for c in changes], [{"id": "held"}])

    def test_pushes_committed_during_one_fsync_share_the_next(self):
        # one held, the others on syncd's request workers (8) at once
        n = 7
        open(self.hold, "w").close()
        before = self.fsyncs()
        first, firsts = self.in_thread(lambda: self.s.push("c0", [ins(1, "k0")]))
        self.wait_for(lambda: self.fsyncs() > before, "the first push's WAL fsync")
        held = self.fsyncs()
        pushes = [self.in_thread(lambda i=i: self.s.push("c%d" % i, [ins(1, "k%d" % i)]))
                  for i in range(1, n)]
        # every one committed (read from the file, beside syncd) while the
        # first one's fsync is held
        self.wait_for(lambda: self.rows_committed() == n + 1, "the pushes' commits")
        os.unlink(self.hold)
        first.join(20)
        for t, _ in pushes:
            t.join(20)
        for t, out in [(first, firsts)] + pushes:
            self.assertFalse(t.is_alive())
            self.assertNotIn("error", out)
            self.assertEqual(out["value"][0]["status"], "applied")
        # one fsync per commit would be n - 1 more after the held one; the
        # commits made while it was held share one (two when one came late)
        self.assertLessEqual(self.fsyncs() - held, 2,
                             "WAL fsyncs for %d pushes: %d" % (n, self.fsyncs() - before))
        changes, _ = self.s.pull_all("reader")
        self.assertEqual(sorted(c["pk"]["id"] for c in changes
                                if c["table"] == "todos" and c["pk"]["id"] != "warm"),
                         sorted("k%d" % i for i in range(n)))

    def test_a_failed_fsync_stops_syncd_before_it_answers(self):
        open(self.failing, "w").close()
        push, pushed = self.in_thread(lambda: self.s.push("c1", [ins(1, "lost?")]))
        push.join(20)
        self.assertFalse(push.is_alive())
        # no answer: what the WAL holds on disk is unknown
        self.assertIn("error", pushed, "a push answered after its fsync failed: %r" % pushed)
        self.assertEqual(self.s.proc.wait(20), -signal.SIGABRT)
        self.assertIn("fsync of the write-ahead log failed", self.s.log())
        # the disk is back: the client's retry is applied once, whether or
        # not the commit had reached it
        os.unlink(self.failing)
        self.s.stop()
        self.s.start()
        self.assertEqual(self.s.push("c1", [ins(1, "lost?")])[0]["status"], "applied")
        changes, _ = self.s.pull_all("reader")
        self.assertEqual([c["pk"] for c in changes
                          if c["table"] == "todos" and c["pk"]["id"] != "warm"], [{"id": "lost?"}])

    def test_pushes_do_not_read_back_what_the_last_one_wrote(self):
        # Each round, push a commits and its fsync is held, so push b takes
        # another of the pool's connections; both write the same pages
        # (the version counter, the log's and the tables' last pages). A
        # connection drops its whole page cache when it finds the file
        # changed by another, so pushes spread over connections re-read
        # those pages at every push (5 to 8 each before). Written on one
        # connection, a push reads only the page its schema check reads.
        rounds, read = 6, 0
        for k in range(1, rounds + 1):
            before = self.pages_read()
            open(self.hold, "w").close()
            fsyncs = self.fsyncs()
            batch = lambda who: [ins(10 * k + i, "%s%d-%d" % (who, k, i)) for i in range(10)]
            a, a_out = self.in_thread(lambda: self.s.push("a", batch("a")))
            self.wait_for(lambda: self.fsyncs() > fsyncs, "push a's WAL fsync")
            b, b_out = self.in_thread(lambda: self.s.push("b", batch("b")))
            self.wait_for(lambda: self.rows_committed() == 1 + 20 * k, "push b's commit")
            os.unlink(self.hold)
            a.join(20)
            b.join(20)
            for out in (a_out, b_out):
                self.assertNotIn("error", out)
                self.assertEqual([r["status"] for r in out["value"]], ["applied"] * 10)
            if k > 1:  # the first round opens the second connection
                read += self.pages_read() - before
        pushes = 2 * (rounds - 1)
        self.assertLess(read, 2 * pushes, "pages read by %d pushes: %d" % (pushes, read))

    def wal_frames(self):
        """The most pages the WAL ever held (its file does not shrink)."""
        wal = os.path.join(self.tmp, "server.db-wal")
        size = os.path.getsize(wal) if os.path.exists(wal) else 0
        return max(0, (size - 32) // (4096 + 24))

    def test_the_wal_is_copied_from_its_first_half_and_starts_again(self):
        # The WAL's pages go to the database file from its first half on (a
        # checkpoint after a push's fsync, outside the write lock), and the
        # checkpoint at 1000 pages still reaches its end: the WAL starts
        # again from its start instead of growing.
        db = os.path.join(self.tmp, "server.db")
        big = "x" * 3000  # a page of its own, in the table and in the log
        mid = 0

        def fill():
            nonlocal mid
            mid += 1
            self.s.push("fill", [ins(mid * 100 + i, "f%d-%d" % (mid, i), note=big)
                                 for i in range(10)])
        self.assertLess(os.path.getsize(db), 100 * 4096)
        while self.wal_frames() < 520 and mid < 200:
            fill()
        fill()
        self.assertGreater(os.path.getsize(db), 400 * 4096)
        for _ in range(4 * mid):
            fill()
        self.assertLess(self.wal_frames(), 1200)


if __name__ == "__main__":
    unittest.main()
