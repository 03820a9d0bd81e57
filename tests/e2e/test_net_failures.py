"""End-to-end: how the network layer ends each failure (issue 13).

Every failure is transient (retried with a backoff), terminal for one
mutation (it moves to sync_rejected with a reason), or terminal for the
client (sync_status 'error' with what to do); none is retried unchanged for
ever. Also: sync_push/sync_pull refuse to run inside the caller's
transaction, the worker's connection enforces foreign keys, and pulls and
event streams name the tables the client tracks.
"""
import http.server
import json
import os
import threading
import time
import urllib.parse

from e2e_util import E2ETest, Syncd, connect, wait_for


def server_todos(s):
    return s.query("SELECT id, title, done FROM todos ORDER BY id")


class ScriptedServer:
    """/health 200; /pull and /events answered by pull(query) ->
    (status, body); every request path kept in .paths."""

    def __init__(self, pull):
        outer = self
        self.paths = []
        self.lock = threading.Lock()

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, code, body, ctype="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                with outer.lock:
                    outer.paths.append(self.path)
                u = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(u.query))
                if u.path == "/health":
                    self.reply(200, b'{"ok":true}')
                elif u.path == "/pull":
                    code, body = pull(q)
                    self.reply(code, json.dumps(body).encode())
                elif u.path == "/events":
                    self.reply(503, b'{"error":"no events here"}')
                else:
                    self.reply(404, b'{"error":"not found"}')

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.reply(200, b'{"results":[]}')

        http.server.ThreadingHTTPServer.daemon_threads = True
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def pulls(self):
        with self.lock:
            return [p for p in self.paths if p.startswith("/pull")]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


FAST = {"backoff_min_ms": 20, "backoff_max_ms": 100, "sse": "off"}


class InsideTransaction(E2ETest):
    def test_push_and_pull_refuse_inside_a_transaction(self):
        """A push inside the host's transaction would survive its ROLLBACK on
        the server while the client's record of sent ids rolls back: the
        next write would reuse id 1 and get the old answer (lost)."""
        s = self.syncd()
        a = self.client("a", s.url)
        a.db.execute("BEGIN")
        a.db.execute("INSERT INTO todos VALUES('gone', 'rolled back', 0)")
        for fn in ("sync_push", "sync_pull"):
            with self.assertRaisesRegex(Exception, "^%s: cannot run inside a transaction"
                                        r" \(COMMIT or ROLLBACK first\)$" % fn):
                a.one("SELECT %s()" % fn)
        a.db.execute("ROLLBACK")
        a.db.execute("SAVEPOINT sp")
        with self.assertRaisesRegex(Exception, "^sync_push: cannot run inside a transaction"):
            a.one("SELECT sync_push()")
        a.db.execute("RELEASE sp")
        self.assertEqual(server_todos(s), [])
        a.db.execute("INSERT INTO todos VALUES('kept', 'written after', 0)")
        self.assertEqual(a.one("SELECT sync_push()"), 1)
        self.assertEqual(server_todos(s), [("kept", "written after", 0)])
        a.one("SELECT sync_pull()")
        self.assertEqual(a.todos(), server_todos(s))
        self.assertEqual(a.one("SELECT count(*) FROM sync_rejected"), 0)


class TooLargeForTheServer(E2ETest):
    def write(self, c):
        c.db.execute("INSERT INTO todos VALUES('a', 'small', 0)")
        c.db.execute("INSERT INTO todos VALUES('b', ?, 0)", ("x" * 4000,))
        c.db.execute("INSERT INTO todos VALUES('c', 'small too', 0)")
        return c.one("SELECT id FROM sync_pending WHERE pk = '{\"id\":\"b\"}'")

    def check(self, s, c, big):
        rej = c.rows("SELECT id, table_name, reason FROM sync_rejected")
        self.assertEqual(len(rej), 1)
        self.assertEqual(rej[0][:2], (big, "todos"))
        self.assertRegex(rej[0][2], r"^too large for the server: HTTP 413")
        self.assertEqual(server_todos(s), [("a", "small", 0), ("c", "small too", 0)])
        self.assertEqual(c.todos(), server_todos(s))  # rolled back locally
        self.assertEqual(c.one("SELECT sync_pending()"), 0)

    def test_sync_push_rejects_the_mutation(self):
        s = self.syncd("--max-body", "1500")
        a = self.client("a", s.url, {"batch_size": 8})
        big = self.write(a)
        self.assertEqual(a.one("SELECT sync_push()"), 3)
        self.check(s, a, big)

    def test_worker_rejects_the_mutation_and_goes_on(self):
        s = self.syncd("--max-body", "1500")
        a = self.client("a", s.url, dict(FAST, batch_size=8))
        big = self.write(a)
        a.one("SELECT sync_start()")
        try:
            wait_for(lambda: a.one("SELECT sync_pending()") == 0, what="outbox drained")
            self.check(s, a, big)
            a.db.execute("INSERT INTO todos VALUES('d', 'after', 0)")
            wait_for(lambda: len(server_todos(s)) == 3, what="a later write")
        finally:
            a.one("SELECT sync_stop()")


class PullFailures(E2ETest):
    def test_repeated_5xx_halves_the_page_limit(self):
        """A page too big for the server (500 every time) comes in smaller
        pages instead of failing for ever."""
        def pull(q):
            if int(q["limit"]) > 100:
                return 500, {"error": "string or blob too big"}
            return 200, {"changes": [], "cursor": "c-1", "has_more": False,
                         "last_mutation_id": 0}
        srv = ScriptedServer(pull)
        self.addCleanup(srv.stop)
        a = self.client("a", srv.url, FAST)
        a.one("SELECT sync_start()")
        try:
            wait_for(lambda: a.one("SELECT sync_cursor()") == "c-1", what="a page at last")
        finally:
            a.one("SELECT sync_stop()")
        limits = [int(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(p).query))["limit"])
                  for p in srv.pulls()]
        self.assertEqual(limits[0], 1000)
        self.assertLessEqual(limits[-1], 100)

    def test_410_during_every_resync_stops_with_a_reason(self):
        """Every page after the first answers 410 (the server hands out
        cursors below its horizon): the worker gives up after a few resyncs
        with an actionable error instead of resyncing for ever."""
        def pull(q):
            if q.get("cursor"):
                return 410, {"error": "cursor expired"}
            return 200, {"changes": [{"table": "todos", "op": "upsert", "pk": {"id": "x"},
                                      "row": {"id": "x", "title": "t", "done": 0},
                                      "version": 1}],
                         "cursor": "c-1", "has_more": True, "last_mutation_id": 0}
        srv = ScriptedServer(pull)
        self.addCleanup(srv.stop)
        a = self.client("a", srv.url, FAST)
        a.one("SELECT sync_start()")
        try:
            wait_for(lambda: "full resyncs in a row" in (a.status()["last_error"] or ""),
                     what="the worker gives up")
            n = len(srv.pulls())
            time.sleep(1.0)  # ten times the longest backoff
            self.assertEqual(len(srv.pulls()), n)
            st = a.status()
            self.assertEqual(st["state"], "error")
            self.assertIsNone(st["next_retry_at"])
            self.assertIn("pull_limit", st["last_error"])
            self.assertLessEqual(n, 10)
            # acting on it (here any sync_config) lets the worker try again
            a.one("SELECT sync_config('pull_limit', 500)")
            wait_for(lambda: len(srv.pulls()) > n, what="a new attempt")
        finally:
            a.one("SELECT sync_stop()")

    def test_410_moved_during_resyncs_starts_them_over(self):
        """Under --rules, a resync's page that meets a change of the user's
        memberships answers 410 with "moved": true (docs/RULES.md). Five in
        a row start the resync over each time (no backoff, no error), and
        the sixth ends it."""
        moved = []
        def pull(q):
            if q.get("cursor") and len(moved) < 5:
                moved.append(q["cursor"])
                return 410, {"error": "cursor expired", "moved": True}
            done = bool(q.get("cursor"))
            return 200, {"changes": [{"table": "todos", "op": "upsert",
                                      "pk": {"id": "y" if done else "x"},
                                      "row": {"id": "y" if done else "x", "title": "t",
                                              "done": 0},
                                      "version": 2 if done else 1}],
                         "cursor": "c-2" if done else "c-1s2", "has_more": not done,
                         "last_mutation_id": 0}
        srv = ScriptedServer(pull)
        self.addCleanup(srv.stop)
        a = self.client("a", srv.url, FAST)
        a.one("SELECT sync_start()")
        try:
            wait_for(lambda: a.one("SELECT sync_cursor()") == "c-2", what="the resync's end")
            self.assertEqual(len(moved), 5)
            # the cursor is written before the worker's state leaves pulling
            wait_for(lambda: a.status()["state"] == "idle", what="the worker idle")
            self.assertIsNone(a.status()["last_error"])
            self.assertEqual(a.one("SELECT group_concat(id) FROM (SELECT id FROM todos"
                                   " ORDER BY id)"), "x,y")
        finally:
            a.one("SELECT sync_stop()")

    def test_page_that_never_applies_stops_with_a_reason(self):
        """A page that fails to apply here every time (malformed) is not
        pulled again for ever: after a few tries the worker stops, saying
        why, until someone acts."""
        srv = ScriptedServer(lambda q: (200, {"changes": "not an array", "cursor": "c-1",
                                              "has_more": False}))
        self.addCleanup(srv.stop)
        a = self.client("a", srv.url, FAST)
        a.one("SELECT sync_start()")
        try:
            wait_for(lambda: "times in a row" in (a.status()["last_error"] or ""),
                     what="the worker gives up")
            n = len(srv.pulls())
            time.sleep(1.0)
            self.assertEqual(len(srv.pulls()), n)
            st = a.status()
            self.assertEqual(st["state"], "error")
            self.assertIsNone(st["next_retry_at"])
            self.assertRegex(st["last_error"], r"^pull: sync_apply: .*changes")
            self.assertIsNone(a.one("SELECT sync_cursor()"))
            a.one("SELECT sync_online(1)")
            wait_for(lambda: len(srv.pulls()) > n, what="a new attempt")
        finally:
            a.one("SELECT sync_stop()")


class Tables(E2ETest):
    def test_pull_and_events_name_the_tracked_tables(self):
        def pull(q):
            return 200, {"changes": [], "cursor": "c-1", "has_more": False,
                         "last_mutation_id": 0}
        srv = ScriptedServer(pull)
        self.addCleanup(srv.stop)
        a = self.client("a", srv.url, {"backoff_min_ms": 20, "backoff_max_ms": 100})
        a.db.execute('CREATE TABLE "we, ird"(id INTEGER PRIMARY KEY)')
        self.assertEqual(a.one("SELECT sync_pull()"), 0)
        a.one("SELECT sync_start()")
        try:
            wait_for(lambda: any(p.startswith("/events") for p in srv.paths), what="a stream")
        finally:
            a.one("SELECT sync_stop()")
        for p in [srv.pulls()[0], next(p for p in srv.paths if p.startswith("/events"))]:
            q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(p).query))
            self.assertEqual(q["tables"], "notes,todos")
            self.assertIn("tables=notes%2Ctodos", p)
        # a name holding ',' or '%' is percent-encoded on its own first
        # (PROTOCOL.md), so it stays one name
        a.db.execute('CREATE TABLE "50%"(id INTEGER PRIMARY KEY)')
        a.one("SELECT sync_track('we, ird')")
        a.one("SELECT sync_track('50%')")
        self.assertEqual(a.one("SELECT sync_pull()"), 0)
        self.assertIn("tables=50%2525%2Cnotes%2Ctodos%2Cwe%252C%20ird", srv.pulls()[-1])
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(srv.pulls()[-1]).query))
        names = [urllib.parse.unquote(n) for n in q["tables"].split(",")]
        self.assertEqual(names, ["50%", "notes", "todos", "we, ird"])

    def test_a_table_tracked_later_gets_its_older_rows(self):
        """The server sends the tables a pull names: a table tracked after
        the cursor moved never got its older rows, so the next pull resyncs
        from no cursor, naming it."""
        rows = {"todos": {"table": "todos", "op": "upsert", "pk": {"id": "t"},
                          "row": {"id": "t", "title": "x", "done": 0}, "version": 1},
                "notes": {"table": "notes", "op": "upsert", "pk": {"id": 1},
                          "row": {"id": 1, "body": "older"}, "version": 2}}

        def pull(q):
            names = q.get("tables", "notes,todos").split(",")
            changes = [] if q.get("cursor") else [rows[n] for n in sorted(names)]
            return 200, {"changes": changes, "cursor": "c-2", "has_more": False,
                         "last_mutation_id": 0}
        srv = ScriptedServer(pull)
        self.addCleanup(srv.stop)
        db = connect(os.path.join(self.dir, "t.db"))
        self.addCleanup(db.close)
        db.executescript("CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT, done INTEGER);"
                         "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);")
        one = lambda sql, args=(): db.execute(sql, args).fetchone()[0]
        one("SELECT sync_init(?)", (srv.url,))
        one("SELECT sync_track('todos')")
        self.assertEqual(one("SELECT sync_pull()"), 1)
        self.assertEqual(one("SELECT sync_pull()"), 0)
        self.assertIn("cursor=c-2", srv.pulls()[-1])
        one("SELECT sync_track('notes')")
        self.assertEqual(one("SELECT sync_pull()"), 2)
        self.assertNotIn("cursor=", srv.pulls()[-1])
        self.assertEqual(db.execute("SELECT * FROM notes").fetchall(), [(1, "older")])
        self.assertEqual(one("SELECT sync_pull()"), 0)
        self.assertIn("cursor=c-2", srv.pulls()[-1])
        # untracking needs no resync
        one("SELECT sync_untrack('notes')")
        self.assertEqual(one("SELECT sync_pull()"), 0)
        self.assertIn("cursor=c-2", srv.pulls()[-1])

    def test_status_shows_skipped_changes(self):
        s = self.syncd()
        a = self.client("a", s.url)
        self.assertEqual(a.status()["skipped_changes"], 0)
        a.db.execute("INSERT INTO sync_meta(key, value) VALUES('skipped_changes', '7')")
        self.assertEqual(a.status()["skipped_changes"], 7)


CASCADE_SCHEMA = """
CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE child(id INTEGER PRIMARY KEY,
                   parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE);
"""


class ForeignKeys(E2ETest):
    def test_worker_cascades_a_parent_delete(self):
        """The server deletes a parent (its cascade removes the child): the
        worker's connection applies the delete with foreign keys on, so the
        client keeps no orphan and equals the server."""
        schema = os.path.join(self.dir, "cascade.sql")
        with open(schema, "w") as f:
            f.write(CASCADE_SCHEMA)
        s = Syncd(self.dir, (), schema=schema)
        self.servers.append(s)
        s.push("writer", [
            {"id": 1, "table": "parent", "op": "insert", "pk": {"id": 1},
             "data": {"id": 1, "name": "p"}},
            {"id": 2, "table": "child", "op": "insert", "pk": {"id": 10},
             "data": {"id": 10, "parent_id": 1}}])
        db = connect(os.path.join(self.dir, "b.db"))
        self.addCleanup(db.close)
        db.executescript(CASCADE_SCHEMA)  # foreign keys off in this connection
        one = lambda sql, args=(): db.execute(sql, args).fetchone()[0]
        one("SELECT sync_init(?, ?)", (s.url, json.dumps({"backoff_min_ms": 20,
                                                           "backoff_max_ms": 100})))
        one("SELECT sync_track('parent')")
        one("SELECT sync_track('child')")
        one("SELECT sync_start()")
        try:
            wait_for(lambda: one("SELECT count(*) FROM child") == 1, what="the rows")
            wait_for(lambda: one("SELECT sse_connected FROM sync_status"), what="the stream")
            s.push("writer", [{"id": 3, "table": "parent", "op": "delete", "pk": {"id": 1}}])
            wait_for(lambda: one("SELECT count(*) FROM parent") == 0, what="the delete")
            time.sleep(0.3)
            self.assertEqual(db.execute("PRAGMA foreign_key_check").fetchall(), [])
            self.assertEqual(db.execute("SELECT * FROM child").fetchall(),
                             s.query("SELECT * FROM child"))
        finally:
            one("SELECT sync_stop()")
