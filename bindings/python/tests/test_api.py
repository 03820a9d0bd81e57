"""Tests of what makes the binding usable in an app (issue 18): any
row_factory, typed errors, pip install, the docstring's example, asyncio,
wait_first_sync, change notifications with local writes, and the token
provider. Against a real syncd, like test_sqlite_sync.py."""
import asyncio
import base64
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import test_sqlite_sync as common
from test_sqlite_sync import HERE, ROOT, Syncd, sqlite_sync, wait_for

PKG = os.path.dirname(HERE)


def dict_factory(cur, row):
    return {d[0]: v for d, v in zip(cur.description, row)}


def fake_jwt(exp):
    def part(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    return f"{part({'alg': 'none'})}.{part({'sub': 'u', 'exp': exp})}.sig"


class ServerBase(common.Base):
    extra = ()

    @classmethod
    def setUpClass(cls):
        cls.sdir = tempfile.mkdtemp(prefix="sqlite-sync-py-syncd-")
        cls.syncd = Syncd(cls.sdir, *cls.extra)

    @classmethod
    def tearDownClass(cls):
        cls.syncd.close()
        shutil.rmtree(cls.sdir, ignore_errors=True)


class RowFactoryTest(common.Base):
    def check(self, factory):
        conn, sync = self.client("a")
        conn.row_factory = factory
        self.assertIsNone(sync.wait(0, "all"))  # starts the watch
        conn.execute("INSERT INTO todos(id, title) VALUES ('a', 'milk')")
        st = sync.status()
        self.assertEqual((st.state, st.pending, st.client_id), ("stopped", 1, sync.client_id))
        self.assertEqual(sync.pending(), 1)
        self.assertEqual([(r.id, r.op, r.pk) for r in sync.pending_rows()], [(1, "insert", {"id": "a"})])
        self.assertEqual(sync.rejected(), [])
        self.assertIsNone(sync.cursor())
        self.assertEqual(sync.config("batch_size"), 1000)
        self.assertEqual(sync.wait(0, "all"), ["todos"])
        self.assertIsNone(sync.wait(0))
        sync.on_change(print).stop()
        self.assertEqual(sync.aio().path, os.path.join(self.dir, "a.db"))

    def test_sqlite3_row(self):
        self.check(sqlite3.Row)

    def test_dict_rows(self):
        self.check(dict_factory)


class ErrorTest(ServerBase):
    extra = ("--token", "s3cret-token")

    def test_before_init(self):
        conn = sqlite3.connect(os.path.join(self.dir, "bare.db"))
        self.conns.append(conn)
        sync = sqlite_sync.load(conn)
        calls = {
            "status": sync.status, "pending_rows": sync.pending_rows,
            "rejected": sync.rejected, "pending": sync.pending, "push": sync.push,
            "clear_rejected": sync.clear_rejected, "track": lambda: sync.track("todos"),
        }
        for name, call in calls.items():
            with self.subTest(name), self.assertRaises(sqlite_sync.NotInitializedError) as cm:
                call()
            e = cm.exception
            self.assertIsInstance(e, sqlite_sync.SyncError)
            self.assertIsInstance(e, sqlite3.OperationalError)
            self.assertRegex(str(e), r"^sync_\w+: sync_init\(\) has not been called on this database$")
            self.assertEqual((e.sqlite_errorcode, e.sqlite_errorname), (1, "SQLITE_ERROR"))

    def test_auth_offline_server(self):
        conn, sync = self.client("a", self.syncd.url)
        conn.execute("INSERT INTO todos(id, title) VALUES ('a', 'milk')")
        with self.assertRaisesRegex(sqlite_sync.AuthError, r"^sync_push: HTTP 401") as cm:
            sync.push()
        self.assertEqual(cm.exception.sqlite_errorcode, 1)
        sync.config("token", "s3cret-token")
        self.assertEqual(sync.push(), 1)
        sync.online(False)
        with self.assertRaisesRegex(sqlite_sync.OfflineError, r"^sync_pull: offline"):
            sync.pull()
        sync.online(True)
        conn2, sync2 = self.client("b", "http://127.0.0.1:9")
        with self.assertRaisesRegex(sqlite_sync.OfflineError, r"^sync_pull: cannot reach "):
            sync2.pull()
        # a plain SQL error is not the extension's
        with self.assertRaises(sqlite3.OperationalError) as cm:
            sync._one("SELECT nope()")
        self.assertNotIsInstance(cm.exception, sqlite_sync.SyncError)

    def test_other_errors_are_sync_errors(self):
        conn, sync = self.client("a")
        with self.assertRaises(sqlite_sync.SyncError) as cm:
            sync.track("missing")
        self.assertEqual(type(cm.exception), sqlite_sync.SyncError)
        self.assertEqual(cm.exception.sqlite_errorcode, 1)


class PackagingTest(unittest.TestCase):
    def test_version(self):
        self.assertRegex(sqlite_sync.__version__, r"^\d+\.\d+\.\d+$")
        self.assertIn("__version__", sqlite_sync.__all__)

    def test_pip_install(self):
        # from a copy of the source tree (pip builds in it), offline
        tmp = tempfile.mkdtemp(prefix="sqlite-sync-pip-")
        try:
            src = os.path.join(tmp, "src")
            shutil.copytree(PKG, src, ignore=shutil.ignore_patterns("__pycache__", "tests"))
            target = os.path.join(tmp, "site")
            r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                                "--no-build-isolation", "--no-index", "--target", target, src],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertTrue(os.path.isfile(os.path.join(target, "sqlite_sync", "py.typed")))
            ext = sqlite_sync.find_extension()
            code = ("import sqlite3, sqlite_sync, importlib.metadata as m;"
                    " assert sqlite_sync.__file__.startswith(%r), sqlite_sync.__file__;"
                    " assert m.version('sqlite-sync') == sqlite_sync.__version__;"
                    " c = sqlite3.connect(':memory:'); sqlite_sync.load(c);"
                    " print(c.execute('SELECT sync_wire(1)').fetchone()[0])" % target)
            env = dict(os.environ, PYTHONPATH=target, SQLITE_SYNC_EXTENSION=ext)
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env=env, cwd=tmp, timeout=60)
            self.assertEqual((r.returncode, r.stdout.strip()), (0, "1"), r.stderr)
            # without the variable, outside the tree: the message says where it looked
            env.pop("SQLITE_SYNC_EXTENSION")
            r = subprocess.run([sys.executable, "-c", "import sqlite_sync; sqlite_sync.find_extension()"],
                               capture_output=True, text=True, env=env, cwd=tmp, timeout=60)
            if r.returncode == 0:  # a `make install` into a standard prefix is here
                return
            self.assertIn("lib/sqlite-sync/sync.so", r.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class DocstringTest(unittest.TestCase):
    def test_module_example_runs_as_written(self):
        doc = sqlite_sync.__doc__.split("\n\n")[1]
        code = "\n".join(line[4:] for line in doc.splitlines())
        self.assertIn("with sync:", code)
        tmp = tempfile.mkdtemp(prefix="sqlite-sync-doc-")
        try:
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               cwd=tmp, env=dict(os.environ, PYTHONPATH=PKG), timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"^[01] change\(s\) queued$")
            db = sqlite3.connect(os.path.join(tmp, "todo.db"))
            self.assertEqual(db.execute("SELECT id, title FROM todos").fetchall(), [("a", "milk")])
            db.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class AsyncTest(ServerBase):
    def test_push_pull_changes(self):
        # the app's connection keeps check_same_thread on
        conn = sqlite3.connect(os.path.join(self.dir, "a.db"), isolation_level=None)
        self.conns.append(conn)
        sync = sqlite_sync.load(conn)
        conn.executescript(common.DDL)
        sync.init(self.syncd.url)
        sync.track("todos")
        b, sb = self.client("b", self.syncd.url)

        async def main():
            async with sync.aio() as a:
                self.assertTrue(await a.wait_first_sync(10))
                conn.execute("INSERT INTO todos(id, title) VALUES ('as1', 'milk')")
                await a.stop()  # so that push() is the one sending it
                self.assertEqual(await a.push(), 1)
                self.assertEqual((await a.status()).pending, 0)
                b.execute("INSERT INTO todos(id, title) VALUES ('as2', 'eggs')")
                sb.push()
                self.assertGreaterEqual(await a.pull(), 1)
                await a.start()
                seen = []
                it = a.changes()
                first = asyncio.ensure_future(it.__anext__())
                await asyncio.sleep(0.3)  # the iteration has started
                conn.execute("INSERT INTO todos(id, title) VALUES ('as3', 'local')")
                seen.append(await asyncio.wait_for(first, 10))
                b.execute("INSERT INTO todos(id, title) VALUES ('as4', 'remote')")
                sb.push()
                while not conn.execute("SELECT 1 FROM todos WHERE id = 'as4'").fetchone():
                    seen.append(await asyncio.wait_for(it.__anext__(), 10))
                await it.aclose()
                return seen

        seen = asyncio.run(main())
        self.assertEqual(seen[0], ["todos"])
        self.assertEqual(sync.status().state, "stopped")
        self.assertFalse([t for t in threading.enumerate() if t.name.startswith("sqlite_sync.")])

    def test_changes_break_stops_the_thread(self):
        conn, sync = self.client("a")

        async def main():
            a = sync.aio()
            async for tables in a.changes(poll=0.05):
                return tables

        def writer():
            time.sleep(0.3)
            w = sqlite3.connect(os.path.join(self.dir, "a.db"))
            w.execute("INSERT INTO todos(id, title) VALUES ('w', 'x')")
            w.commit()
            w.close()

        t = threading.Thread(target=writer)
        t.start()
        self.assertEqual(asyncio.run(main()), ["todos"])
        t.join()
        wait_for(lambda: not [t for t in threading.enumerate() if t.name == "sqlite_sync.changes"])
        self.assertFalse([t for t in threading.enumerate() if t.name == "sqlite_sync.changes"])

    def test_event_loop_runs_while_a_push_waits(self):
        conn, sync = self.client("a", self.syncd.url)
        conn.execute("INSERT INTO todos(id, title) VALUES ('x', 'y')")

        async def main():
            a = sync.aio()
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0)

            t = asyncio.ensure_future(ticker())
            # a sync_push held behind a lock the app's connection holds
            conn.execute("BEGIN IMMEDIATE")
            push = asyncio.ensure_future(a.push())
            await asyncio.sleep(0.2)
            before = ticks
            conn.execute("COMMIT")
            n = await push
            t.cancel()
            await a.close()
            return before, n

        before, n = asyncio.run(main())
        self.assertGreater(before, 0)
        self.assertEqual(n, 1)


class FirstSyncTest(ServerBase):
    def test_wait_first_sync(self):
        b, sb = self.client("b", self.syncd.url)
        b.execute("INSERT INTO todos(id, title) VALUES ('f1', 'x')")
        sb.push()
        a, sa = self.client("a", self.syncd.url)
        self.assertFalse(sa.wait_first_sync(0))
        self.assertEqual(sa.status().first_sync_done, 0)
        with sa:
            self.assertTrue(sa.wait_first_sync(10))
        self.assertEqual(a.execute("SELECT title FROM todos WHERE id = 'f1'").fetchone(), ("x",))
        off, so = self.client("off", "http://127.0.0.1:9")
        with so:
            self.assertFalse(so.wait_first_sync(0.2))


class ChangesTest(common.Base):
    def test_on_change_all_sees_local_writes(self):
        conn, sync = self.client("a")
        got = []
        ev = threading.Event()
        with sync.on_change(lambda t: (got.append(t), ev.set()), poll=0.05, scope="all"):
            other = sqlite3.connect(os.path.join(self.dir, "a.db"))
            other.execute("INSERT INTO todos(id, title) VALUES ('o', 'x')")
            other.commit()
            other.close()
            self.assertTrue(ev.wait(10))
        self.assertEqual(got, [["todos"]])
        with self.assertRaisesRegex(ValueError, "scope"):
            sync.on_change(print, scope="everything")
        # a thread that cannot open its connection says so in the caller and
        # is gone (a database that cannot open, not an extension that cannot
        # load: CPython 3.11's load_extension leaks SQLite's error message,
        # which LeakSanitizer reports in make asan)
        before = threading.active_count()
        with self.assertRaisesRegex(sqlite3.OperationalError, "unable to open"):
            sqlite_sync.TokenRefresher("/nonexistent/dir/app.db", lambda: None)
        self.assertEqual(threading.active_count(), before)


class TokenProviderTest(ServerBase):
    extra = ("--token", "s3cret-token")

    def test_first_token_and_401(self):
        conn, sync = self.client("a", self.syncd.url)
        conn.execute("INSERT INTO todos(id, title) VALUES ('t1', 'x')")
        tokens = ["s3cret-token"]
        with sync, sync.token_provider(lambda: tokens[-1], poll=0.05) as tp:
            self.assertEqual(tp.calls, 1)  # no token was set
            self.assertTrue(wait_for(lambda: sync.pending() == 0), "drained")
            # the server refuses the token: the provider gives the next one
            sync.config("token", "revoked")
            conn.execute("INSERT INTO todos(id, title) VALUES ('t2', 'x')")
            self.assertTrue(wait_for(lambda: tp.calls == 2), "called on 401")
            self.assertTrue(wait_for(lambda: sync.pending() == 0), "drained again")
            self.assertEqual(sync.status().needs_token, 0)
            time.sleep(0.3)
            self.assertEqual(tp.calls, 2)  # a token that is not a JWT: only on 401


class ExistingRowsTest(ServerBase):
    def open(self, name):
        conn = sqlite3.connect(os.path.join(self.dir, name + ".db"), isolation_level=None)
        self.conns.append(conn)
        sync = sqlite_sync.load(conn)
        conn.executescript(common.DDL)
        conn.execute("INSERT INTO todos(id, title) VALUES ('old', 'from before sync')")
        sync.init(self.syncd.url)
        return conn, sync

    def test_track_keeps_or_pushes_existing_rows(self):
        conn, sync = self.open("keep")
        sync.track("todos", existing="keep")
        self.assertEqual(sync.pending(), 0)
        [o] = sync.orphans()
        self.assertEqual((o.table_name, o.pk, o.state, o.row["title"]),
                         ("todos", {"id": "old"}, "kept", "from before sync"))
        sync.track("todos", existing="push")
        self.assertEqual(sync.orphans(), [])
        self.assertEqual([(r.op, r.pk) for r in sync.pending_rows()], [("insert", {"id": "old"})])
        conn2, sync2 = self.open("push")
        sync2.track("todos")  # the default pushes
        self.assertEqual(sync2.pending(), 1)
        with self.assertRaises(sqlite_sync.SyncError) as cm:
            sync2.track("todos", existing="maybe")
        self.assertIn("sync_track", str(cm.exception))


class JwtRefreshTest(ServerBase):
    def test_refreshed_before_exp(self):
        # syncd without --token takes any token: none is refused here
        conn, sync = self.client("a", self.syncd.url)
        issued = []

        def provider():
            issued.append(fake_jwt(time.time() + 3))
            return issued[-1]

        with sync, sync.token_provider(provider, refresh_before=2, poll=0.05) as tp:
            self.assertTrue(wait_for(lambda: tp.calls >= 2, timeout=15), "refreshed")
            self.assertEqual(sync.status().needs_token, 0)
        self.assertEqual(sqlite_sync._jwt_exp(fake_jwt(123)), 123.0)
        self.assertIsNone(sqlite_sync._jwt_exp("not.a-jwt"))
        self.assertIsNone(sqlite_sync._jwt_exp("plain"))


if __name__ == "__main__":
    unittest.main()
