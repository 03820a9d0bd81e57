"""End-to-end: a key column whose collation is not BINARY (NOCASE, RTRIM).

To the local table 'A@x' and 'a@x' are one row under a NOCASE key; to the
protocol, whose keys are JSON text, they are two. So:
  - an UPDATE that changes a key only in what its collation ignores is
    refused with an error naming the trigger (capture.c, key_case_check):
    as a delete and an insert, the server's delete would meet the row's
    children under the same collation and take them, where the local
    UPDATE cascaded nothing;
  - the app's own delete and insert under the new text syncs: a pull that
    brings the old key's delete and the new key's upsert (the delete put
    off while another row still refers to it) leaves the row, under the
    server's text, on every client (table.c, table_key_match: deletes and
    lookups by key match its text; an upsert that meets the row under the
    collation takes the server's key text);
  - an INSERT OR REPLACE under another case converges too;
  - a key change pushed with a child of a row another client deleted keeps
    its children's new key (only that child is refused: server/store/push.c).
Every client ends equal to the server, nothing pending.
"""
import sqlite3

from e2e_util import E2ETest

SCHEMA = """
PRAGMA foreign_keys = ON;
CREATE TABLE u(email TEXT PRIMARY KEY COLLATE NOCASE, name TEXT);
CREATE TABLE n(id INTEGER PRIMARY KEY,
               owner TEXT REFERENCES u(email) ON UPDATE CASCADE ON DELETE SET NULL, body TEXT);
CREATE TABLE r(code TEXT COLLATE RTRIM, part INTEGER, v TEXT, PRIMARY KEY(code, part)) WITHOUT ROWID;
"""


class CollateKey(E2ETest):
    def server(self):
        return self.syncd(schema_sql=SCHEMA)

    def peer(self, name, url, pull_limit=1000):
        cl = self.client(name, url, {"pull_limit": pull_limit})
        cl.db.executescript(SCHEMA)
        for t in ("u", "n", "r"):
            cl.one("SELECT sync_track(?)", (t,))
        return cl

    def sync(self, *peers):
        for _ in range(2):
            for p in peers:
                p.one("SELECT sync_push()")
                p.one("SELECT sync_pull()")

    QUERIES = ("SELECT email, name FROM u ORDER BY email COLLATE BINARY",
               "SELECT id, owner, body FROM n ORDER BY id",
               "SELECT code, part, v FROM r ORDER BY code COLLATE BINARY, part")

    def state(self, p):
        return [p.rows(q) for q in self.QUERIES]

    def server_state(self, s):
        return [[tuple(r) for r in s.query(q)] for q in self.QUERIES]

    def converged(self, s, peers, want):
        self.assertEqual(self.server_state(s), want)
        for p in peers:
            self.assertEqual(self.state(p), want, p)
            self.assertEqual(p.one("SELECT count(*) FROM sync_pending"), 0)

    def setup_rows(self):
        s = self.server()
        a, b, c = self.peer("a", s.url), self.peer("b", s.url), self.peer("c", s.url, 1)
        a.db.executescript("""
            INSERT INTO u VALUES ('A@x', 'ann'), ('B@x', 'bob');
            INSERT INTO n VALUES (1, 'A@x', 'one'), (2, 'B@x', 'two');
            INSERT INTO r VALUES ('k', 1, 'v1');""")
        self.sync(a, b, c)
        want = [[("A@x", "ann"), ("B@x", "bob")], [(1, "A@x", "one"), (2, "B@x", "two")],
                [("k", 1, "v1")]]
        self.converged(s, (a, b, c), want)
        return s, a, b, c, want

    def test_an_update_of_the_keys_case_alone_is_refused(self):
        s, a, b, c, want = self.setup_rows()
        for sql in ("UPDATE u SET email = 'a@x' WHERE email = 'A@x'",
                    "UPDATE u SET email = 'a@X', name = 'x' WHERE email = 'A@x'",
                    "INSERT INTO u VALUES ('a@x', 'y') ON CONFLICT(email) "
                    "DO UPDATE SET email = excluded.email",
                    "UPDATE r SET code = 'k ' WHERE code = 'k'"):
            with self.subTest(sql=sql):
                with self.assertRaisesRegex(sqlite3.IntegrityError,
                                            r"sync_ak_(u|r): the key of \"(u|r)\" changed only"):
                    a.db.execute(sql)
        self.assertEqual(self.state(a), want)
        self.assertEqual(a.one("SELECT count(*) FROM sync_pending"), 0)

    def test_a_key_change_keeps_the_rows_that_follow_it(self):
        # queued as the child's update to 'C@x', the delete of 'B@x', the
        # insert of 'C@x': the server checks the foreign keys at the batch's
        # end, or the child's update is refused and the delete's SET NULL
        # takes its owner (server/store/push.c)
        s, a, b, c, _ = self.setup_rows()
        a.db.execute("UPDATE u SET email = 'C@x' WHERE email = 'B@x'")
        self.sync(a, b, c)
        want = [[("A@x", "ann"), ("C@x", "bob")], [(1, "A@x", "one"), (2, "C@x", "two")],
                [("k", 1, "v1")]]
        self.converged(s, (a, b, c), want)

    def test_a_key_change_outlives_a_child_of_a_parent_gone(self):
        # b deletes 'A@x'; a, not knowing, adds a child to it and moves
        # 'B@x' to 'C@x' in one push. The batch leaves that child referring
        # to no row: it alone is refused, and the key change's child keeps
        # its new owner (run strict, its update was refused and the
        # delete's SET NULL took its owner on every client)
        s, a, b, c, _ = self.setup_rows()
        b.db.execute("DELETE FROM u WHERE email = 'A@x'")
        b.one("SELECT sync_push()")
        a.db.execute("UPDATE u SET email = 'C@x' WHERE email = 'B@x'")
        a.db.execute("INSERT INTO n VALUES (3, 'A@x', 'three')")
        self.sync(a, b, c)
        want = [[("C@x", "bob")], [(1, None, "one"), (2, "C@x", "two")], [("k", 1, "v1")]]
        self.converged(s, (a, b, c), want)
        self.assertEqual(a.rows("SELECT reason FROM sync_rejected"),
                         [("FOREIGN KEY constraint failed",)])

    def test_delete_and_insert_under_another_case(self):
        # the child re-linked: on b and c the delete of 'A@x' waits for the
        # child's change (put off), and the upsert of 'a@x' meets the row
        # 'A@x' first; on a, the pull's delete of 'A@x' meets 'a@x'
        s, a, b, c, _ = self.setup_rows()
        a.db.executescript("""
            BEGIN;
            DELETE FROM u WHERE email = 'A@x';
            INSERT INTO u VALUES ('a@x', 'ann');
            UPDATE n SET owner = 'a@x' WHERE id = 1;
            DELETE FROM r WHERE code = 'k';
            INSERT INTO r VALUES ('k ', 1, 'v2');
            COMMIT;""")
        self.sync(a, b, c)
        want = [[("B@x", "bob"), ("a@x", "ann")], [(1, "a@x", "one"), (2, "B@x", "two")],
                [("k ", 1, "v2")]]
        self.converged(s, (a, b, c), want)

        # an INSERT OR REPLACE under another case, from another client
        b.db.execute("INSERT OR REPLACE INTO u VALUES ('A@X', 'anne')")
        self.sync(b, a, c)
        got = self.server_state(s)
        self.assertIn(got[0], ([("A@X", "anne"), ("B@x", "bob")],
                               [("B@x", "bob"), ("a@x", "anne")]))
        for p in (a, b, c):
            self.assertEqual(self.state(p), got, p)
            self.assertEqual(p.one("SELECT count(*) FROM sync_pending"), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
