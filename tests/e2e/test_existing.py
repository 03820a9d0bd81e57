"""End-to-end: adding sync to a database that already holds rows
(sync_track's "existing" option, sync_orphans) with a real syncd and two
clients, one of them with rows from before it was tracked."""
import json
import os
import resource

from e2e_util import CLIENT_DDL, E2ETest, connect, wait_for

# make asan/tsan: shadow memory counts in RSS (as in tests/hostile)
MEM = float(os.environ.get("SYNC_TEST_MEM") or 1)


class Existing(E2ETest):
    def old_app(self, name, rows):
        """A database an app filled before it knew about sync."""
        db = connect(os.path.join(self.dir, name + ".db"))
        self.addCleanup(db.close)
        db.executescript(CLIENT_DDL)
        db.executemany("INSERT INTO todos VALUES(?, ?, ?)", rows)
        return db

    def one(self, db, sql, args=()):
        return db.execute(sql, args).fetchone()[0]

    def test_push_is_the_default(self):
        s = self.syncd()
        a = self.old_app("a", [("old1", "first", 0), ("old2", "second", 1)])
        self.one(a, "SELECT sync_init(?)", (s.url,))
        self.one(a, "SELECT sync_track('todos')")
        self.assertEqual(a.execute("SELECT op, pk FROM sync_pending").fetchall(),
                         [("insert", '{"id":"old1"}'), ("insert", '{"id":"old2"}')])
        self.assertEqual(self.one(a, "SELECT sync_pull()"), 0)
        a.execute("INSERT INTO todos VALUES('new', 'third', 0)")
        self.assertEqual(self.one(a, "SELECT sync_push()"), 3)
        self.assertEqual(s.query("SELECT id, title, done FROM todos ORDER BY id"),
                         [("new", "third", 0), ("old1", "first", 0), ("old2", "second", 1)])
        b = self.client("b", s.url)
        self.assertEqual(b.one("SELECT sync_pull()"), 3)
        self.assertEqual([r[0] for r in b.todos()], ["new", "old1", "old2"])
        self.assertEqual(self.one(a, "SELECT count(*) FROM sync_orphans"), 0)

    def test_keep_then_push_later(self):
        s = self.syncd()
        b = self.client("b", s.url)
        b.db.execute("INSERT INTO todos VALUES('theirs', 'from b', 0)")
        b.one("SELECT sync_push()")
        a = self.old_app("a", [("mine", "local only", 0)])
        self.one(a, "SELECT sync_init(?)", (s.url,))
        self.one(a, "SELECT sync_track('todos', '{\"existing\":\"keep\"}')")
        self.assertEqual(self.one(a, "SELECT sync_pending()"), 0)
        # the initial sync brings b's row and leaves a's own
        self.assertEqual(self.one(a, "SELECT sync_pull()"), 1)
        self.assertEqual(a.execute("SELECT id FROM todos ORDER BY id").fetchall(),
                         [("mine",), ("theirs",)])
        self.assertEqual(a.execute("SELECT table_name, pk, row, state FROM sync_orphans").fetchall(),
                         [("todos", '{"id":"mine"}',
                           '{"id":"mine","title":"local only","done":0}', "kept")])
        # a full resync (a table tracked since the cursor) keeps it too,
        # while a row the server deleted meanwhile goes
        b.db.execute("DELETE FROM todos WHERE id = 'theirs'")
        b.db.execute("INSERT INTO todos VALUES('later', 'from b', 0)")
        b.one("SELECT sync_push()")
        self.one(a, "SELECT sync_track('notes')")
        self.one(a, "SELECT sync_pull()")
        self.assertEqual(a.execute("SELECT id FROM todos ORDER BY id").fetchall(),
                         [("later",), ("mine",)])
        self.assertEqual(self.one(a, "SELECT count(*) FROM sync_orphans"), 1)
        self.assertEqual(s.query("SELECT id FROM todos ORDER BY id"), [("later",)])
        # the one way to send it up later
        self.one(a, "SELECT sync_track('todos', '{\"existing\":\"push\"}')")
        self.assertEqual(self.one(a, "SELECT sync_push()"), 1)
        self.assertEqual(self.one(a, "SELECT count(*) FROM sync_orphans"), 0)
        b.one("SELECT sync_pull()")
        self.assertEqual([r[0] for r in b.todos()], ["later", "mine"])

    def test_server_replaces_and_lists_what_it_removed(self):
        s = self.syncd()
        b = self.client("b", s.url)
        b.db.execute("INSERT INTO todos VALUES('x', 'server x', 1)")
        b.one("SELECT sync_push()")
        a = self.old_app("a", [("x", "local x", 0), ("y", "local y", 0)])
        self.one(a, "SELECT sync_init(?)", (s.url,))
        self.one(a, "SELECT sync_track('todos', '{\"existing\":\"server\"}')")
        self.assertEqual(a.execute("SELECT pk, state FROM sync_orphans").fetchall(),
                         [('{"id":"x"}', "replace"), ('{"id":"y"}', "replace")])
        self.one(a, "SELECT sync_pull()")
        self.assertEqual(a.execute("SELECT id, title, done FROM todos").fetchall(),
                         [("x", "server x", 1)])
        self.assertEqual(a.execute("SELECT pk, row, state FROM sync_orphans").fetchall(),
                         [('{"id":"y"}', '{"id":"y","title":"local y","done":0}', "removed")])
        self.assertEqual(self.one(a, "SELECT sync_pending()"), 0)
        self.assertEqual(s.query("SELECT id, title FROM todos"), [("x", "server x")])
        # acknowledged: gone from the listing
        a.execute("DELETE FROM sync_orphans WHERE state = 'removed'")
        self.assertEqual(self.one(a, "SELECT count(*) FROM sync_orphans"), 0)
        # and the client goes on syncing as usual
        a.execute("UPDATE todos SET done = 0 WHERE id = 'x'")
        self.assertEqual(self.one(a, "SELECT sync_push()"), 1)
        self.assertEqual(s.query("SELECT done FROM todos WHERE id = 'x'"), [(0,)])

    def test_readme_quick_start_then_server(self):
        """The README's quick start (rows a and b confirmed by hand, cursor
        "3"), then "Running with a server" in the same file: the first pull
        is a full resync that must not delete a and b; they are pushed."""
        s = self.syncd()
        db = connect(os.path.join(self.dir, "todo.db"))
        self.addCleanup(db.close)
        one = lambda sql, args=(): self.one(db, sql, args)
        db.execute("CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL,"
                   " done INTEGER NOT NULL DEFAULT 0)")
        one("SELECT sync_init(NULL)")
        one("SELECT sync_track('todos')")
        db.execute("INSERT INTO todos(id, title) VALUES ('a', 'buy milk')")
        db.execute("UPDATE todos SET done = 1 WHERE id = 'a'")
        one("SELECT sync_push_batch()")
        one("""SELECT sync_ack('{"results":[{"id":1,"status":"applied","row":{"id":"a","title":"buy milk","done":0},"version":1},{"id":2,"status":"applied","row":{"id":"a","title":"buy milk","done":1},"version":2}]}')""")
        one("""SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"b"},"row":{"id":"b","title":"call mum","done":0},"version":3}],"cursor":"3"}')""")
        # Running with a server
        one("SELECT sync_init(?)", (s.url,))
        one("SELECT sync_track('todos')")
        one("SELECT sync_start()")
        # the server commits before the worker has its answer: wait for both
        wait_for(lambda: s.query("SELECT count(*) FROM todos")[0][0] == 2
                 and one("SELECT sync_pending()") == 0, what="a and b pushed and acknowledged")
        one("SELECT sync_stop()")
        self.assertEqual(db.execute("SELECT * FROM todos ORDER BY id").fetchall(),
                         [("a", "buy milk", 1), ("b", "call mum", 0)])
        self.assertEqual(s.query("SELECT id, title, done FROM todos ORDER BY id"),
                         [("a", "buy milk", 1), ("b", "call mum", 0)])
        self.assertEqual(one("SELECT sync_pending()"), 0)
        self.assertEqual(one("SELECT count(*) FROM sync_rejected"), 0)

    def hand_confirmed(self, mode):
        """A database without a url whose row 'a' a transport confirmed by
        hand (no page, so no cursor), then given a url: the first pull is
        a full resync (not an initial sync, which would delete 'a' as a
        confirmed row the server does not have), and 'a' gets the mode."""
        s = self.syncd()
        db = connect(os.path.join(self.dir, mode + ".db"))
        self.addCleanup(db.close)
        one = lambda sql, args=(): self.one(db, sql, args)
        db.executescript(CLIENT_DDL)
        one("SELECT sync_init(NULL)")
        if mode == "push":  # the default
            one("SELECT sync_track('todos')")
        else:
            one("SELECT sync_track('todos', ?)", (json.dumps({"existing": mode}),))
        db.execute("INSERT INTO todos VALUES ('a', 'buy milk', 0)")
        one("SELECT sync_push_batch()")
        one("""SELECT sync_ack('{"results":[{"id":1,"status":"applied","row":{"id":"a","title":"buy milk","done":0},"version":1}]}')""")
        one("SELECT sync_init(?)", (s.url,))
        one("SELECT sync_pull()")
        return s, db, one

    def test_hand_confirmed_rows_pushed(self):
        s, db, one = self.hand_confirmed("push")
        self.assertEqual(one("SELECT sync_push()"), 1)
        self.assertEqual(s.query("SELECT id, title FROM todos"), [("a", "buy milk")])
        self.assertEqual(db.execute("SELECT id FROM todos").fetchall(), [("a",)])

    def test_hand_confirmed_rows_kept(self):
        s, db, one = self.hand_confirmed("keep")
        self.assertEqual(one("SELECT sync_pending()"), 0)
        self.assertEqual(db.execute("SELECT table_name, pk, state FROM sync_orphans").fetchall(),
                         [("todos", '{"id":"a"}', "kept")])
        self.assertEqual(db.execute("SELECT id FROM todos").fetchall(), [("a",)])
        self.assertEqual(s.query("SELECT count(*) FROM todos"), [(0,)])

    def test_hand_confirmed_rows_replaced(self):
        s, db, one = self.hand_confirmed("server")
        self.assertEqual(one("SELECT sync_pending()"), 0)
        self.assertEqual(db.execute("SELECT count(*) FROM todos").fetchall(), [(0,)])
        self.assertEqual(db.execute("SELECT pk, row, state FROM sync_orphans").fetchall(),
                         [('{"id":"a"}', '{"id":"a","title":"buy milk","done":0}', "removed")])

    def test_hundred_thousand_rows_in_one_transaction(self):
        s = self.syncd()
        n = 100000
        a = self.old_app("a", [])
        a.execute("BEGIN")
        # titles of 100 bytes: the outbox gets about 15 MB of JSON
        a.execute("WITH RECURSIVE i(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM i WHERE k < ?)"
                  " INSERT INTO todos SELECT 'k' || k, printf('row %-96d', k), k % 2 FROM i", (n,))
        a.execute("COMMIT")
        self.one(a, "SELECT sync_init(?)", (s.url,))
        # the last id ever issued is 0: ids run 1..n, one per row, in one
        # call, in SQLite's page cache: the process's peak memory grows by
        # far less than the rows queued (about 3 MB here)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.assertEqual(self.one(a, "SELECT sync_track('todos')"), 1)
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
        # Under ASan freed memory waits in its quarantine (256 MB) and counts
        # in RSS: the plain run in make test is the one that proves the cap
        # (tests/san/run.sh), a sanitizer run checks the rest.
        if not os.environ.get("SYNC_TEST_PRELOAD"):
            self.assertLess(grew, 8 * 1024 * MEM, "peak RSS grew by %d KiB" % grew)
        self.assertEqual(a.execute("SELECT count(*), min(id), max(id) FROM sync_outbox"
                                   " WHERE op = 'insert'").fetchone(), (n, 1, n))
        a.execute("INSERT INTO todos VALUES('after', 'x', 0)")
        self.assertEqual(self.one(a, "SELECT max(id) FROM sync_outbox"), n + 1)
        self.assertEqual(self.one(a, "SELECT sync_push()"), n + 1)
        self.assertEqual(s.query("SELECT count(*) FROM todos"), [(n + 1,)])
        self.assertEqual(s.query("SELECT trim(title), done FROM todos WHERE id = 'k77777'"),
                         [("row 77777", 1)])
