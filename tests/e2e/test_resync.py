"""A full resync against a scripted server (no syncd): the server answers
410 to a pull from the client's cursor and then delivers the live rows.

The keys a resync delivers are read with the table's own key columns, here
one named with a quote (it's), which an SQL literal must escape; rows the
resync did not deliver go, a row with a pending mutation stays, and the
deletions are an engine write under the connection's enforced foreign keys
(deferred to the end: a parent may go before its child).
"""
import http.server
import json
import os
import threading

from e2e_util import E2ETest, connect

PAGE = {
    "changes": [
        {"table": "a_parent", "op": "upsert", "pk": {"it's": "keep"},
         "row": {"it's": "keep", "v": 2}, "version": 7},
        {"table": "b_child", "op": "upsert", "pk": {"id": 1},
         "row": {"id": 1, "p": "keep"}, "version": 8},
    ],
    "cursor": "c-8",
    "has_more": False,
}


class ResyncServer:
    """410 to a pull that names a cursor, and to the first gone_first pulls
    whatever they name; page (PAGE) to the others."""

    def __init__(self, gone_first=0, page=PAGE, gone=b'{"error":"cursor expired"}'):
        outer = self
        self.pulls = []

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.pulls.append(self.path)
                if len(outer.pulls) <= gone_first or "cursor=" in self.path:
                    code, body = 410, gone
                else:
                    code, body = 200, json.dumps(page).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class ResyncTest(E2ETest):
    def test_resync_quoted_key_and_foreign_keys(self):
        srv = ResyncServer()
        self.addCleanup(srv.stop)
        db = connect(os.path.join(self.dir, "r.db"))
        self.addCleanup(db.close)
        db.executescript("""
            PRAGMA foreign_keys = ON;
            CREATE TABLE a_parent("it's" TEXT PRIMARY KEY, v INTEGER);
            CREATE TABLE b_child(id INTEGER PRIMARY KEY, p TEXT REFERENCES a_parent("it's"));
        """)
        one = lambda sql, args=(): db.execute(sql, args).fetchone()[0]
        one("SELECT sync_init(?)", (srv.url,))
        one("SELECT sync_track('a_parent')")
        one("SELECT sync_track('b_child')")
        # confirmed rows, as an earlier pull left them, and the cursor it gave
        old = {"changes": [
            {"table": "a_parent", "op": "upsert", "pk": {"it's": k}, "row": {"it's": k, "v": 1},
             "version": n} for n, k in ((1, "keep"), (2, "gone"))] + [
            {"table": "b_child", "op": "upsert", "pk": {"id": i}, "row": {"id": i, "p": p},
             "version": n} for n, i, p in ((3, 1, "keep"), (4, 2, "gone"))],
            "cursor": "c-4", "has_more": False}
        self.assertEqual(one("SELECT sync_apply(?)", (json.dumps(old),)), 4)
        # a pending local row the server has not seen
        db.execute("""INSERT INTO a_parent VALUES('mine', 3)""")
        self.assertEqual(one("SELECT sync_pending()"), 1)

        self.assertEqual(one("SELECT sync_pull()"), 2 + 2)  # 2 delivered, 2 dropped
        self.assertEqual(len(srv.pulls), 2)
        self.assertIn("cursor=c-4", srv.pulls[0])
        self.assertNotIn("cursor=", srv.pulls[1])
        self.assertEqual(db.execute("""SELECT "it's", v FROM a_parent ORDER BY 1""").fetchall(),
                         [("keep", 2), ("mine", 3)])
        self.assertEqual(db.execute("SELECT id, p FROM b_child").fetchall(), [(1, "keep")])
        self.assertEqual(one("SELECT sync_cursor()"), "c-8")
        self.assertEqual(one("SELECT sync_pending()"), 1)
        self.assertEqual(db.execute("PRAGMA foreign_key_check").fetchall(), [])
        # the engine's deletions were not queued as the app's own
        self.assertEqual(one("SELECT count(*) FROM sync_outbox WHERE op = 'delete'"), 0)

    def test_second_410_fails_the_pull(self):
        """A resync's own pull answered 410 again: sync_pull fails instead of
        looping (a third pull would get PAGE), and nothing local changed."""
        srv = ResyncServer(gone_first=3)
        self.addCleanup(srv.stop)
        db = connect(os.path.join(self.dir, "g.db"))
        self.addCleanup(db.close)
        db.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v INTEGER)")
        one = lambda sql, args=(): db.execute(sql, args).fetchone()[0]
        one("SELECT sync_init(?)", (srv.url,))
        one("SELECT sync_track('t')")
        page = {"changes": [{"table": "t", "op": "upsert", "pk": {"id": "a"},
                             "row": {"id": "a", "v": 1}, "version": 1}],
                "cursor": "c-1", "has_more": False}
        self.assertEqual(one("SELECT sync_apply(?)", (json.dumps(page),)), 1)
        db.execute("INSERT INTO t VALUES('mine', 2)")
        with self.assertRaises(Exception) as cm:
            one("SELECT sync_pull()")
        self.assertIn("sync_pull: HTTP 410", str(cm.exception))
        self.assertEqual(len(srv.pulls), 2)
        self.assertIn("cursor=c-1", srv.pulls[0])
        self.assertNotIn("cursor=", srv.pulls[1])
        self.assertEqual(db.execute("SELECT id, v FROM t ORDER BY 1").fetchall(),
                         [("a", 1), ("mine", 2)])
        self.assertEqual(one("SELECT sync_pending()"), 1)

    def test_410_moved_starts_the_resync_over(self):
        """A 410 saying "moved": true (under --rules, the user's memberships
        changed while the resync paged, docs/RULES.md) is no lost change
        log: sync_pull starts the resync over instead of failing."""
        srv = ResyncServer(gone_first=3, gone=b'{"error":"cursor expired","moved":true}')
        self.addCleanup(srv.stop)
        db = connect(os.path.join(self.dir, "m.db"))
        self.addCleanup(db.close)
        db.executescript("""
            CREATE TABLE a_parent("it's" TEXT PRIMARY KEY, v INTEGER);
            CREATE TABLE b_child(id INTEGER PRIMARY KEY, p TEXT);
        """)
        one = lambda sql, args=(): db.execute(sql, args).fetchone()[0]
        one("SELECT sync_init(?)", (srv.url,))
        one("SELECT sync_track('a_parent')")
        one("SELECT sync_track('b_child')")
        old = {"changes": [{"table": "a_parent", "op": "upsert", "pk": {"it's": "gone"},
                            "row": {"it's": "gone", "v": 1}, "version": 1}],
               "cursor": "c-1", "has_more": False}
        self.assertEqual(one("SELECT sync_apply(?)", (json.dumps(old),)), 1)
        self.assertEqual(one("SELECT sync_pull()"), 2 + 1)  # 2 delivered, 1 dropped
        self.assertEqual(len(srv.pulls), 4)
        self.assertEqual(one("SELECT sync_cursor()"), "c-8")
        self.assertEqual(db.execute("""SELECT "it's" FROM a_parent""").fetchall(), [("keep",)])

    def test_resync_interrupted_starts_over(self):
        """A resync that failed (here its own pull met 410 again) is still
        owed: the next sync_pull resyncs from no cursor and drops the rows the
        server no longer has, instead of applying the page as a first pull."""
        live = {"changes": [{"table": "t", "op": "upsert", "pk": {"id": "b"},
                             "row": {"id": "b", "v": 2}, "version": 9}],
                "cursor": "c-9", "has_more": False}
        srv = ResyncServer(gone_first=2, page=live)
        self.addCleanup(srv.stop)
        db = connect(os.path.join(self.dir, "i.db"))
        self.addCleanup(db.close)
        db.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v INTEGER)")
        one = lambda sql, args=(): db.execute(sql, args).fetchone()[0]
        one("SELECT sync_init(?)", (srv.url,))
        one("SELECT sync_track('t')")
        old = {"changes": [{"table": "t", "op": "upsert", "pk": {"id": k},
                            "row": {"id": k, "v": 1}, "version": n}
                           for n, k in ((1, "a"), (2, "b"))],
               "cursor": "c-2", "has_more": False}
        self.assertEqual(one("SELECT sync_apply(?)", (json.dumps(old),)), 2)
        db.execute("INSERT INTO t VALUES('mine', 3)")
        with self.assertRaises(Exception):
            one("SELECT sync_pull()")
        self.assertEqual(one("SELECT sync_pull()"), 1 + 1)  # b delivered, a dropped
        self.assertNotIn("cursor=", srv.pulls[2])
        self.assertEqual(db.execute("SELECT id, v FROM t ORDER BY 1").fetchall(),
                         [("b", 2), ("mine", 3)])
        self.assertEqual(one("SELECT sync_cursor()"), "c-9")
        self.assertEqual(one("SELECT sync_pending()"), 1)

    def test_resync_that_cannot_start_fails_the_pull(self):
        """A resync whose start fails (here a trigger refuses sync_meta's
        write) is the pull's error, named by its cause; the cursor stays and
        no pull goes without it."""
        srv = ResyncServer()
        self.addCleanup(srv.stop)
        db = connect(os.path.join(self.dir, "s.db"))
        self.addCleanup(db.close)
        db.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v INTEGER)")
        one = lambda sql, args=(): db.execute(sql, args).fetchone()[0]
        one("SELECT sync_init(?)", (srv.url,))
        one("SELECT sync_track('t')")
        page = {"changes": [], "cursor": "c-1", "has_more": False}
        self.assertEqual(one("SELECT sync_apply(?)", (json.dumps(page),)), 0)
        db.execute("""CREATE TRIGGER no_resync BEFORE INSERT ON sync_meta
                      WHEN NEW.key = 'resync' BEGIN SELECT RAISE(ABORT, 'refused here'); END""")
        with self.assertRaises(Exception) as cm:
            one("SELECT sync_pull()")
        self.assertIn("refused here", str(cm.exception))
        self.assertEqual(len(srv.pulls), 1)
        self.assertEqual(one("SELECT sync_cursor()"), "c-1")

    def test_resync_drops_staged_pages(self):
        """Pages staged in sync_inbox for the old cursor go with it: the
        resync's pages are applied alone (a staged child whose parent the
        server deleted would otherwise fail the resync's last page)."""
        srv = ResyncServer()
        self.addCleanup(srv.stop)
        db = connect(os.path.join(self.dir, "x.db"))
        self.addCleanup(db.close)
        db.executescript("""
            PRAGMA foreign_keys = ON;
            CREATE TABLE a_parent("it's" TEXT PRIMARY KEY, v INTEGER);
            CREATE TABLE b_child(id INTEGER PRIMARY KEY, p TEXT REFERENCES a_parent("it's"));
        """)
        one = lambda sql, args=(): db.execute(sql, args).fetchone()[0]
        one("SELECT sync_init(?)", (srv.url,))
        one("SELECT sync_track('a_parent')")
        one("SELECT sync_track('b_child')")
        # a page whose child waits for its parent on a later page: staged
        staged = {"changes": [{"table": "b_child", "op": "upsert", "pk": {"id": 9},
                               "row": {"id": 9, "p": "later"}, "version": 5}],
                  "cursor": "c-5", "has_more": True}
        self.assertEqual(one("SELECT sync_apply(?)", (json.dumps(staged),)), 0)
        self.assertEqual(one("SELECT count(*) FROM sync_inbox"), 1)
        self.assertEqual(one("SELECT sync_pull()"), 2)
        self.assertIn("cursor=c-5", srv.pulls[0])
        self.assertEqual(one("SELECT count(*) FROM sync_inbox"), 0)
        self.assertEqual(db.execute("SELECT id, p FROM b_child").fetchall(), [(1, "keep")])
        self.assertEqual(one("SELECT sync_cursor()"), "c-8")

    def test_resync_keeps_rows_of_a_table_never_pulled(self):
        """A table tracked after the cursor moved makes the next pull a full
        resync (net/client.c, 'pulled_tables'); its rows from before
        sync_track were never pushed nor pulled, so the resync's cleanup
        leaves them, while it still drops what the server no longer has in
        the tables pulled before."""
        row = lambda k, v, n: {"table": "t", "op": "upsert", "pk": {"id": k},
                               "row": {"id": k, "v": v}, "version": n}
        page = {"changes": [row("b", 1, 1), row("stale", 1, 2)], "cursor": "c-2",
                "has_more": False}
        srv = ResyncServer(page=page)
        self.addCleanup(srv.stop)
        db = connect(os.path.join(self.dir, "n.db"))
        self.addCleanup(db.close)
        db.executescript("""
            CREATE TABLE t(id TEXT PRIMARY KEY, v INTEGER);
            CREATE TABLE late(id TEXT PRIMARY KEY, v INTEGER);
        """)
        one = lambda sql, args=(): db.execute(sql, args).fetchone()[0]
        one("SELECT sync_init(?)", (srv.url,))
        one("SELECT sync_track('t')")
        self.assertEqual(one("SELECT sync_pull()"), 2)
        self.assertEqual(one("SELECT value FROM sync_meta WHERE key = 'pulled_tables'"), "t")
        # the server now has b only (stale was deleted after a compaction)
        page.update({"changes": [row("b", 2, 9)], "cursor": "c-9"})
        db.execute("INSERT INTO late VALUES('before-track', 1)")
        one("SELECT sync_track('late')")
        self.assertEqual(one("SELECT sync_pull()"), 1 + 1)  # b delivered, stale dropped
        self.assertEqual(len(srv.pulls), 2)
        self.assertNotIn("cursor=", srv.pulls[1])
        self.assertEqual(db.execute("SELECT id, v FROM t ORDER BY 1").fetchall(), [("b", 2)])
        self.assertEqual(db.execute("SELECT id, v FROM late").fetchall(), [("before-track", 1)])
        self.assertIsNone(db.execute(
            "SELECT value FROM sync_meta WHERE key = 'resync_tables'").fetchone())

    def test_initial_sync_drops_confirmed_rows_the_server_deleted(self):
        """A client that pushes before it ever pulls: the server confirmed
        its row, then another client deleted it. The first pull (no cursor)
        delivers live rows only, no delete: the confirmed row the initial
        sync did not deliver goes (converge seeds 20 and 36)."""
        page = {"changes": [{"table": "t", "op": "upsert", "pk": {"id": "b"},
                             "row": {"id": "b", "v": 1}, "version": 4}],
                "cursor": "c-4", "has_more": False}
        srv = ResyncServer(page=page)
        self.addCleanup(srv.stop)
        db = connect(os.path.join(self.dir, "f.db"))
        self.addCleanup(db.close)
        db.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v INTEGER)")
        one = lambda sql, args=(): db.execute(sql, args).fetchone()[0]
        one("SELECT sync_init(?)", (srv.url,))
        one("SELECT sync_track('t')")
        db.execute("INSERT INTO t VALUES('a', 1)")
        db.execute("INSERT INTO t VALUES('mine', 2)")
        self.assertIsNotNone(one("SELECT sync_push_batch(1)"))
        self.assertEqual(one("SELECT sync_ack(?)", (json.dumps({"results": [
            {"id": 1, "status": "applied", "row": {"id": "a", "v": 1}, "version": 2}]}),)), 1)
        one("SELECT sync_pull()")
        self.assertEqual(len(srv.pulls), 1)
        self.assertNotIn("cursor=", srv.pulls[0])
        # a is gone (the server deleted it), mine is still pending and stays
        self.assertEqual(db.execute("SELECT id, v FROM t ORDER BY 1").fetchall(),
                         [("b", 1), ("mine", 2)])
        self.assertEqual(one("SELECT sync_pending()"), 1)
        self.assertEqual(one("SELECT count(*) FROM sync_outbox WHERE op = 'delete'"), 0)

    def test_a_refused_edit_of_a_row_the_resync_did_not_bring_back(self):
        """A pending edit of a row the server deleted while this client's
        cursor fell below its compaction horizon: the resync does not bring
        the row, the edit is refused (no such row), and the row stays gone
        instead of coming back from the image taken before the resync."""
        s = self.syncd("--max-tombstones", "1")
        a = self.client("a", s.url)
        b = self.client("b", s.url)
        for k in ("x", "y", "z"):
            a.db.execute("INSERT INTO todos VALUES(?, 'one', 0)", (k,))
        self.assertEqual(a.one("SELECT sync_push()"), 3)
        b.one("SELECT sync_pull()")
        b.db.execute("UPDATE todos SET title = 'edited offline' WHERE id = 'x'")
        a.db.execute("DELETE FROM todos WHERE id = 'x'")
        a.db.execute("DELETE FROM todos WHERE id = 'y'")  # purges x's tombstone
        self.assertEqual(a.one("SELECT sync_push()"), 2)
        b.one("SELECT sync_pull()")  # 410 below the horizon: a full resync
        self.assertEqual(b.rows("SELECT id, title FROM todos ORDER BY id"),
                         [("x", "edited offline"), ("z", "one")])
        b.one("SELECT sync_push()")
        self.assertEqual([(r[0], r[1]) for r in b.rows(
            "SELECT pk, reason FROM sync_rejected")], [('{"id":"x"}', "no such row")])
        self.assertEqual(b.todos(), s.query("SELECT id, title, done FROM todos ORDER BY id"))
        self.assertEqual(b.todos(), [("z", "one", 0)])
