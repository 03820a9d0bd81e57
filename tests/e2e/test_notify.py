"""Change notifications and sync_status's first_sync_done and needs_token
(issue 18): sync_wait(ms, 'all') reports local writes to tracked tables and
wakes on local commits of any connection or process, and names exactly the tables the worker sent and had confirmed
before the waiter looked; the first full sync is reported once done; a
401 shows as needs_token until a new token, which resumes the worker."""
import json
import sqlite3
import subprocess
import sys
import threading
import time

from e2e_util import E2ETest, RelayProxy, connect, wait_for


def server_todos(s):
    return s.query("SELECT id, title, done FROM todos ORDER BY id")


class Waiter:
    """sync_wait(timeout_ms, scope) on its own connection, in a thread."""

    def __init__(self, path, timeout_ms, scope="all"):
        self.db = connect(path)
        self.db.execute("SELECT sync_wait(0, 'all')").fetchone()  # starts the watch
        self.result = "not returned"
        self.t = threading.Thread(target=self.run, args=(timeout_ms, scope))
        self.t.start()

    def run(self, ms, scope):
        self.result = self.db.execute("SELECT sync_wait(?, ?)", (ms, scope)).fetchone()[0]

    def join(self):
        self.t.join()
        self.db.close()
        return self.result


class HoldingProxy(RelayProxy):
    """A RelayProxy that holds each pull until release is set."""

    def __init__(self, upstream):
        self.arrived = threading.Event()
        self.release = threading.Event()
        super().__init__(upstream)

    def relay(self, h, body):
        if h.path.startswith("/pull"):
            self.arrived.set()
            self.release.wait(20)
        super().relay(h, body)

    def stop(self):
        self.release.set()
        super().stop()


class WaitAllOneConnection(E2ETest):
    """sync_wait(ms, 'all') on the connection that writes, no server."""

    def test_scenarios(self):
        a = self.client("a", None)
        a.db.execute("CREATE TABLE scratch(id INTEGER PRIMARY KEY, v TEXT)")

        def wait(ms=0, scope="all"):
            return a.one("SELECT sync_wait(?, ?)", (ms, scope))

        # a connection's first call starts the watch: nothing yet
        self.assertIsNone(wait())
        a.db.execute("INSERT INTO todos VALUES('a', 'milk', 0)")
        self.assertEqual(wait(), '["todos"]')
        self.assertIsNone(wait())
        # local writes are not the server's
        self.assertIsNone(a.one("SELECT sync_wait(0)"))
        self.assertIsNone(wait(0, "server"))
        # one transaction over two tables; an untracked table is never named
        a.db.executescript("BEGIN; INSERT INTO notes(body) VALUES ('n1');"
                           " UPDATE todos SET title = 'oat milk' WHERE id = 'a';"
                           " INSERT INTO scratch(v) VALUES ('x'); COMMIT;")
        self.assertEqual(wait(), '["notes","todos"]')
        a.db.execute("INSERT INTO scratch(v) VALUES ('y')")
        self.assertIsNone(wait())
        # a write that changes nothing queues nothing; a rollback is no change
        a.db.execute("UPDATE todos SET title = 'oat milk' WHERE id = 'a'")
        a.db.executescript("BEGIN; DELETE FROM todos; ROLLBACK;")
        self.assertIsNone(wait())
        # sync_mutate is a local write too
        self.assertIsNotNone(a.one("SELECT sync_mutate('notes', 'update', '{\"id\":1,\"body\":\"n2\"}')"))
        self.assertEqual(wait(), '["notes"]')
        # mutations sent and confirmed before any scan saw them: their tables
        # cannot be told any more, so every tracked table is named
        a.db.execute("INSERT INTO notes(body) VALUES ('n3')")
        self.assertIsNotNone(a.one("SELECT sync_push_batch()"))
        a.one("SELECT sync_ack((SELECT json_object('results', json_group_array("
              "json_object('id', id, 'status', 'applied'))) FROM sync_outbox))")
        self.assertEqual(a.one("SELECT sync_pending()"), 0)
        self.assertEqual(wait(), '["notes","todos"]')
        # a waiting call returns NULL at its timeout
        self.assertIsNone(wait(30))
        self.assertEqual(a.rows("SELECT first_sync_done, needs_token FROM sync_status"), [(0, 0)])

    def test_errors(self):
        a = self.client("a", None)
        for bad in ("'everything'", "NULL", "1"):
            with self.assertRaisesRegex(sqlite3.OperationalError,
                                        r"^sync_wait: scope must be 'server' or 'all'$"):
                a.one(f"SELECT sync_wait(0, {bad})")
        with self.assertRaisesRegex(sqlite3.OperationalError,
                                    r"^sync_wait: timeout_ms must be a non-negative integer$"):
            a.one("SELECT sync_wait(-1, 'all')")
        mem = connect(":memory:")
        self.addCleanup(mem.close)
        mem.execute("SELECT sync_init(NULL)").fetchone()
        with self.assertRaisesRegex(sqlite3.OperationalError, r"^sync_wait: needs a database file"):
            mem.execute("SELECT sync_wait(0, 'all')").fetchone()


class WaitAllTest(E2ETest):
    def test_wakes_on_a_commit_of_another_connection(self):
        a = self.client("a", None)
        w = Waiter(a.path, 20000)
        a.db.execute("INSERT INTO todos VALUES('x', 'milk', 0)")
        self.assertEqual(w.join(), '["todos"]')  # well before the 20 s timeout

    def test_wakes_on_a_commit_of_another_process(self):
        a = self.client("a", None)
        w = Waiter(a.path, 20000)
        # a process without the extension: the capture triggers are plain SQL
        subprocess.run([sys.executable, "-c",
                        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=10);"
                        " c.execute(\"INSERT INTO notes VALUES(1, 'n')\"); c.commit()", a.path],
                       check=True)
        self.assertEqual(w.join(), '["notes"]')

    def test_the_server_scope_stays_the_servers(self):
        a = self.client("a", None)
        w = Waiter(a.path, 300, "server")
        a.db.execute("INSERT INTO todos VALUES('x', 'milk', 0)")
        self.assertIsNone(w.join())

    def test_rows_the_worker_sent_are_named_exactly(self):
        # The worker pushes a commit of another connection and drops its rows
        # once confirmed; a waiter that looks only afterwards still gets the
        # table (the worker publishes each batch it reads), not every table.
        s = self.syncd()
        a = self.client("a", s.url)
        a.one("SELECT sync_start()")
        wait_for(lambda: a.status()["first_sync_done"] == 1, what="first sync")
        watcher = connect(a.path)
        self.assertIsNone(watcher.execute("SELECT sync_wait(0, 'all')").fetchone()[0])
        other = connect(a.path)
        other.execute("INSERT INTO todos VALUES('x', 'milk', 0)")
        wait_for(lambda: server_todos(s) == [("x", "milk", 0)], what="pushed")
        wait_for(lambda: a.one("SELECT sync_pending()") == 0, what="confirmed")
        self.assertEqual(watcher.execute("SELECT sync_wait(0, 'all')").fetchone()[0], '["todos"]')
        # the server's changes are in 'all' too, and the 1-argument form
        # still names only those
        b = self.client("b", s.url)
        b.db.execute("INSERT INTO notes VALUES(7, 'from b')")
        b.one("SELECT sync_push()")
        # (a's own change may come back as an event too: todos)
        wait_for(lambda: "notes" in json.loads(
            watcher.execute("SELECT sync_wait(100, 'all')").fetchone()[0] or "[]"),
            what="notes in 'all'")
        self.assertIn("notes", json.loads(a.one("SELECT sync_wait(0)")))
        a.one("SELECT sync_stop()")
        watcher.close()
        other.close()

    def test_a_watch_after_the_last_one_closed_names_exactly(self):
        # With no connection watching, the worker reads no batch's tables; a
        # new watch starts afresh: neither what was sent meanwhile nor every
        # table, and then exactly what the worker sends.
        s = self.syncd()
        a = self.client("a", s.url)
        a.one("SELECT sync_start()")
        wait_for(lambda: a.status()["first_sync_done"] == 1, what="first sync")
        first = connect(a.path)
        self.assertIsNone(first.execute("SELECT sync_wait(0, 'all')").fetchone()[0])
        first.close()
        other = connect(a.path)
        self.addCleanup(other.close)
        other.execute("INSERT INTO notes VALUES(1, 'unwatched')")
        wait_for(lambda: a.one("SELECT sync_pending()") == 0, what="confirmed")
        # its echo from the server (an event or a pull) would be news: let it pass
        wait_for(lambda: a.one("SELECT sync_wait(300)") is None, what="the server quiet")
        watcher = connect(a.path)
        self.addCleanup(watcher.close)
        self.assertIsNone(watcher.execute("SELECT sync_wait(0, 'all')").fetchone()[0])
        other.execute("INSERT INTO todos VALUES('y', 'bread', 0)")
        wait_for(lambda: server_todos(s) == [("y", "bread", 0)], what="pushed")
        wait_for(lambda: a.one("SELECT sync_pending()") == 0, what="confirmed")
        self.assertEqual(watcher.execute("SELECT sync_wait(0, 'all')").fetchone()[0], '["todos"]')
        a.one("SELECT sync_stop()")


class StatusTest(E2ETest):
    def test_first_sync_done(self):
        s = self.syncd()
        b = self.client("b", s.url)
        for i in range(5):
            b.db.execute("INSERT INTO todos VALUES(?, 't', 0)", (f"t{i}",))
        b.one("SELECT sync_push()")
        # sync_pull over several pages: 1 once the last one is applied
        a = self.client("a", s.url)
        a.one("SELECT sync_config('pull_limit', 2)")
        self.assertEqual(a.status()["first_sync_done"], 0)
        self.assertEqual(a.one("SELECT sync_pull()"), 5)
        self.assertEqual(a.status()["first_sync_done"], 1)
        # the worker's initial sync
        c = self.client("c", s.url)
        self.assertEqual(c.status()["first_sync_done"], 0)
        c.one("SELECT sync_start()")
        wait_for(lambda: c.status()["first_sync_done"] == 1, what="first sync done")
        self.assertEqual(c.one("SELECT count(*) FROM todos"), 5)
        c.one("SELECT sync_stop()")
        # kept in the database
        c.close()
        self.assertEqual(self.client("c", s.url).status()["first_sync_done"], 1)

    def test_needs_token_until_a_new_token(self):
        s = self.syncd("--token", "s3cret-token")
        b = self.client("b", s.url)
        b.one("SELECT sync_config('token', 's3cret-token')")
        b.db.execute("INSERT INTO notes VALUES(1, 'from b')")
        b.one("SELECT sync_push()")
        a = self.client("a", s.url)
        self.assertEqual(a.status()["needs_token"], 0)
        a.db.execute("INSERT INTO todos VALUES('x', 'milk', 0)")
        a.one("SELECT sync_start()")
        wait_for(lambda: a.status()["needs_token"] == 1, what="needs_token")
        self.assertEqual(a.status()["first_sync_done"], 0)
        w = Waiter(a.path, 20000, "server")
        a.one("SELECT sync_config('token', 'wrong')")
        self.assertEqual(a.status()["needs_token"], 0)  # at once, until refused again
        wait_for(lambda: a.status()["needs_token"] == 1, what="needs_token again")
        a.one("SELECT sync_config('token', 's3cret-token')")
        self.assertEqual(a.status()["needs_token"], 0)
        # the worker resumes: the pull wakes sync_wait, the queue drains
        self.assertEqual(w.join(), '["notes"]')
        wait_for(lambda: a.one("SELECT sync_pending()") == 0, what="drained")
        self.assertEqual(server_todos(s), [("x", "milk", 0)])
        self.assertEqual(a.status()["needs_token"], 0)
        self.assertEqual(a.status()["first_sync_done"], 1)
        a.one("SELECT sync_stop()")

    def test_sync_push_and_pull_refused_set_needs_token(self):
        s = self.syncd("--token", "s3cret-token")
        a = self.client("a", s.url)
        a.db.execute("INSERT INTO todos VALUES('x', 'milk', 0)")
        for fn in ("sync_push", "sync_pull"):
            a.one("SELECT sync_config('token', 'wrong')")
            self.assertEqual(a.status()["needs_token"], 0)
            with self.assertRaisesRegex(sqlite3.OperationalError, rf"^{fn}: HTTP 401"):
                a.one(f"SELECT {fn}()")
            self.assertEqual(a.status()["needs_token"], 1)
        a.one("SELECT sync_config('token', 's3cret-token')")
        self.assertEqual(a.status()["needs_token"], 0)
        self.assertEqual(a.one("SELECT sync_push()"), 1)
        self.assertEqual(a.status()["needs_token"], 0)

    def test_a_401_to_a_request_sent_before_the_new_token(self):
        # The pull goes out without a token and is answered 401 only after a
        # token was set: the worker retries with it instead of waiting for
        # yet another token.
        s = self.syncd("--token", "s3cret-token")
        p = HoldingProxy(s.url)
        self.addCleanup(p.stop)
        a = self.client("a", p.url)
        a.one("SELECT sync_start()")
        self.assertTrue(p.arrived.wait(10), "the pull reached the proxy")
        a.one("SELECT sync_config('token', 's3cret-token')")
        time.sleep(0.2)  # the worker has taken the new token
        p.release.set()
        wait_for(lambda: a.status()["first_sync_done"] == 1, what="first sync with the token")
        self.assertEqual(a.status()["needs_token"], 0)
        a.one("SELECT sync_stop()")
