"""Tests of the sqlite_sync package (unittest), against a real syncd.

    /usr/bin/python3 -m unittest discover -s bindings/python/tests

Needs a Python whose sqlite3 module can load extensions, the built
extension (ext/sync.so) and server/syncd (or $SYNCD).
"""
import json
import os
import select
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import sqlite_sync  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SYNCD = os.environ.get("SYNCD") or os.path.join(ROOT, "server", "syncd")
SCHEMA = os.path.join(ROOT, "bindings", "todos.sql")
with open(SCHEMA) as f:
    DDL = "".join(l for l in f if not l.startswith("--"))


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.02)


class Syncd:
    """syncd on 127.0.0.1:0 with a fresh SQLite database in dir (extra:
    more options, such as "--token", "T")."""

    def __init__(self, dir, *extra):
        self.log = open(os.path.join(dir, "syncd.log"), "wb")
        self.proc = subprocess.Popen(
            [SYNCD, "--listen", "127.0.0.1:0", "--schema", SCHEMA,
             "--db", os.path.join(dir, "server.db"), *extra],
            stdout=subprocess.PIPE, stderr=self.log)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        self.url = self.proc.stdout.readline().decode().strip() if ready else ""
        if not self.url.startswith("http://"):
            self.close()
            raise RuntimeError("syncd did not start")

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.log.close()


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sqlite-sync-py-")
        self.conns = []

    def tearDown(self):
        for c in self.conns:
            c.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self, name, url=None, **options):
        conn = sqlite3.connect(os.path.join(self.dir, name + ".db"),
                               isolation_level=None, check_same_thread=False)
        self.conns.append(conn)
        sync = sqlite_sync.load(conn)
        conn.executescript(DDL)
        sync.client_id = sync.init(url, **options)
        sync.track("todos")
        return conn, sync


class LoadTest(unittest.TestCase):
    def test_load_finds_the_extension(self):
        path = sqlite_sync.find_extension()
        self.assertTrue(os.path.isfile(path), path)
        conn = sqlite3.connect(":memory:")
        sync = sqlite_sync.load(conn)
        self.assertIsInstance(sync, sqlite_sync.Sync)
        self.assertEqual(conn.execute("SELECT sync_wire(1)").fetchone()[0], "1")
        # extension loading is off again after load
        with self.assertRaises(sqlite3.OperationalError):
            conn.execute("SELECT load_extension('nope')")
        conn.close()

    def test_env_var_wins(self):
        old = os.environ.get(sqlite_sync.ENV_VAR)
        try:
            real = sqlite_sync.find_extension()
            os.environ[sqlite_sync.ENV_VAR] = real[: -len(".so")]
            self.assertEqual(sqlite_sync.find_extension(), real)
            os.environ[sqlite_sync.ENV_VAR] = "/nonexistent/sync.so"
            with self.assertRaisesRegex(FileNotFoundError, "SQLITE_SYNC_EXTENSION"):
                sqlite_sync.load(sqlite3.connect(":memory:"))
        finally:
            if old is None:
                os.environ.pop(sqlite_sync.ENV_VAR, None)
            else:
                os.environ[sqlite_sync.ENV_VAR] = old

    def test_python_without_load_extension(self):
        class NoLoading:  # what a sqlite3 built without it looks like
            pass
        with self.assertRaises(sqlite_sync.ExtensionLoadingUnavailable) as cm:
            sqlite_sync.load(NoLoading())
        msg = str(cm.exception)
        self.assertIn("without extension loading", msg)
        self.assertNotIn("\n", msg)
        self.assertEqual(msg.count(". "), 0, "one sentence")

    def test_a_real_python_without_load_extension(self):
        pythons = [p for p in (shutil.which("python3"), os.environ.get("NOLOAD_PYTHON")) if p]
        probe = "import sqlite3; print(hasattr(sqlite3.Connection, 'enable_load_extension'))"
        for py in pythons:
            try:
                out = subprocess.run([py, "-c", probe], capture_output=True, text=True,
                                     timeout=30).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                continue
            if out != "False":
                continue
            r = subprocess.run(
                [py, "-c", "import sqlite3, sqlite_sync; sqlite_sync.load(sqlite3.connect(':memory:'))"],
                capture_output=True, text=True, timeout=30,
                env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE)))
            self.assertNotEqual(r.returncode, 0)
            last = r.stderr.strip().splitlines()[-1]
            self.assertRegex(last, r"^sqlite_sync\.ExtensionLoadingUnavailable: This Python .* "
                                   r"built without extension loading")
            return
        self.skipTest("no python3 without enable_load_extension on PATH")


class LocalTest(Base):
    """The engine without a server: bring your own transport."""

    def test_init_track_pending(self):
        conn, sync = self.client("a")
        self.assertEqual(len(sync.client_id), 36)
        self.assertEqual(sync.init(None), sync.client_id)  # idempotent
        conn.execute("INSERT INTO todos(id, title) VALUES ('a', 'buy milk')")
        conn.execute("UPDATE todos SET done = 1 WHERE id = 'a'")
        self.assertEqual(sync.pending(), 2)
        rows = sync.pending_rows()
        self.assertEqual([(r.id, r.op, r.pk, r.data) for r in rows],
                         [(1, "insert", {"id": "a"}, {"id": "a", "title": "buy milk", "done": 0, "data": None}),
                          (2, "update", {"id": "a"}, {"done": 1})])
        self.assertEqual(rows[0].attempts, 0)

    def test_mutate_exact_values(self):
        conn, sync = self.client("a")
        # small: common/value.c overflows its buffer decoding longer base64 (bug reported)
        blob = bytes([0, 1, 254, 255])
        big = 2 ** 63 - 1
        mid = sync.mutate("todos", "insert", {"id": "x", "title": "t", "done": big, "data": blob})
        self.assertEqual(mid, 1)
        self.assertEqual(conn.execute("SELECT done, data FROM todos").fetchone(), (big, blob))
        self.assertEqual(sync.pending_rows()[0].data["data"], blob)
        self.assertIsNone(sync.mutate("todos", "update", {"id": "x", "title": "t"}))
        self.assertEqual(sync.mutate("todos", "upsert", {"id": "x", "title": "t", "data": 0.1 + 0.2}), 2)
        self.assertEqual(conn.execute("SELECT data FROM todos").fetchone()[0], 0.30000000000000004)
        self.assertEqual(sync.mutate("todos", "delete", {"id": "x"}), 3)
        self.assertEqual(sync.pending(), 3)

    def test_errors(self):
        conn, sync = self.client("a")
        conn.execute("CREATE TABLE nokey(a, b)")
        with self.assertRaisesRegex(sqlite_sync.SyncError, r'^sync_track: table "nokey" has no PRIMARY KEY'):
            sync.track("nokey")
        with self.assertRaises(sqlite3.OperationalError):  # SyncError is one
            sync.mutate("todos", "insert", {"id": "a", "titel": "x"})
        with self.assertRaisesRegex(sqlite_sync.SyncError, r"^sync_mutate: "):
            sync.mutate("todos", "frobnicate", {"id": "a"})
        self.assertEqual(sync.pending(), 0)
        bare = sqlite3.connect(os.path.join(self.dir, "bare.db"))
        self.conns.append(bare)
        with self.assertRaisesRegex(sqlite_sync.SyncError, r"sync_init\(\) has not been called"):
            sqlite_sync.load(bare).track("todos")

    def test_untrack(self):
        conn, sync = self.client("a")
        conn.execute("INSERT INTO todos(id, title) VALUES ('a', 'x')")
        sync.untrack("todos")
        self.assertEqual(sync.pending(), 0)
        conn.execute("INSERT INTO todos(id, title) VALUES ('b', 'y')")
        self.assertEqual(sync.pending(), 0)

    def test_push_batch_ack_apply_rejected(self):
        conn, sync = self.client("a")
        self.assertIsNone(sync.push_batch())
        conn.execute("INSERT INTO todos(id, title) VALUES ('a', 'buy milk')")
        conn.execute("INSERT INTO todos(id, title) VALUES ('b', 'bad')")
        batch = json.loads(sync.push_batch())
        self.assertEqual(batch["client_id"], sync.client_id)
        self.assertEqual([m["id"] for m in batch["mutations"]], [1, 2])
        self.assertEqual(len(json.loads(sync.push_batch(1))["mutations"]), 1)
        n = sync.ack({"results": [
            {"id": 1, "status": "applied", "row": {"id": "a", "title": "BUY MILK", "done": 0, "data": None}, "version": 1},
            {"id": 2, "status": "rejected", "reason": "CHECK constraint failed"}]})
        self.assertEqual(n, 2)
        self.assertEqual(conn.execute("SELECT id, title FROM todos").fetchall(), [("a", "BUY MILK")])
        rej = sync.rejected()
        self.assertEqual([(r.id, r.op, r.pk, r.reason) for r in rej],
                         [(2, "insert", {"id": "b"}, "CHECK constraint failed")])
        sync.clear_rejected([2])
        self.assertEqual(sync.rejected(), [])
        self.assertEqual(sync.apply(json.dumps({"changes": [
            {"table": "todos", "op": "upsert", "pk": {"id": "c"},
             "row": {"id": "c", "title": "call mum", "done": 0, "data": None}, "version": 3}],
            "cursor": "3"})), 1)
        self.assertEqual(sync.cursor(), "3")
        self.assertEqual(conn.execute("SELECT id FROM todos ORDER BY id").fetchall(), [("a",), ("c",)])
        self.assertEqual(sync.pending(), 0)

    def test_status_stopped(self):
        conn, sync = self.client("a")
        st = sync.status()
        self.assertEqual(st.state, "stopped")
        self.assertEqual(st.client_id, sync.client_id)
        self.assertIsNone(st.url)


class ServerTest(Base):
    """The worker functions against a real syncd."""

    @classmethod
    def setUpClass(cls):
        cls.sdir = tempfile.mkdtemp(prefix="sqlite-sync-py-syncd-")
        cls.syncd = Syncd(cls.sdir)

    @classmethod
    def tearDownClass(cls):
        cls.syncd.close()
        shutil.rmtree(cls.sdir, ignore_errors=True)

    def test_push_pull(self):
        a, sa = self.client("a", self.syncd.url)
        b, sb = self.client("b", self.syncd.url)
        a.execute("INSERT INTO todos(id, title) VALUES ('pp1', 'milk')")
        sa.mutate("todos", "insert", {"id": "pp2", "title": "eggs", "data": b"\x00\xff"})
        self.assertEqual(sa.push(), 2)
        self.assertEqual(sa.pending(), 0)
        self.assertGreaterEqual(sb.pull(), 2)
        self.assertEqual(b.execute("SELECT id, title, data FROM todos WHERE id LIKE 'pp%' ORDER BY id").fetchall(),
                         [("pp1", "milk", None), ("pp2", "eggs", b"\x00\xff")])
        self.assertEqual(sb.pull(), 0)
        self.assertIn("todos", sb.wait(0))
        self.assertIsNone(sb.wait(0.05))
        self.assertIsNotNone(sb.cursor())

    def test_config(self):
        a, sa = self.client("a", self.syncd.url, batch_size=7)
        self.assertEqual(sa.config("batch_size"), 7)
        self.assertEqual(sa.config("batch_size", 50), 50)
        self.assertEqual(sa.config("batch_size", None), 1000)
        self.assertIsNone(sa.config("token"))
        self.assertEqual(sa.config("sse", "off"), "off")
        with self.assertRaisesRegex(sqlite_sync.SyncError, r'^sync_config: unknown key "nope"$'):
            sa.config("nope")

    def test_worker_context_manager_on_change_online(self):
        a, sa = self.client("a", self.syncd.url)
        b, sb = self.client("b", self.syncd.url)
        seen = []
        got = threading.Event()

        def changed(tables):
            seen.append(tables)
            got.set()

        with sa, sb, sb.on_change(changed):
            self.assertIn(sa.status().state, ("idle", "pushing", "pulling"))
            self.assertTrue(sa.online())
            a.execute("INSERT INTO todos(id, title) VALUES ('w1', 'from a')")
            self.assertTrue(got.wait(10), "on_change was not called")
            self.assertIn(["todos"], seen)
            self.assertTrue(wait_for(lambda: b.execute("SELECT 1 FROM todos WHERE id='w1'").fetchone()))
            # offline: writes queue up; back online: they drain
            self.assertFalse(sa.online(False))
            a.execute("INSERT INTO todos(id, title) VALUES ('w2', 'offline')")
            time.sleep(0.3)
            self.assertEqual(sa.pending(), 1)
            self.assertEqual(sa.status().state, "offline")
            self.assertTrue(sa.online(True))
            self.assertTrue(wait_for(lambda: sa.pending() == 0), "outbox did not drain")
            self.assertTrue(wait_for(lambda: b.execute("SELECT 1 FROM todos WHERE id='w2'").fetchone()))
        self.assertEqual(sa.status().state, "stopped")
        self.assertEqual(sb.status().state, "stopped")

    def test_on_change_needs_a_file(self):
        conn = sqlite3.connect(":memory:")
        self.conns.append(conn)
        with self.assertRaisesRegex(sqlite_sync.SyncError, "needs a database file"):
            sqlite_sync.load(conn).on_change(print)


if __name__ == "__main__":
    unittest.main()
