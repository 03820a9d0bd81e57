"""End-to-end: pulls converge on a schema with UNIQUE columns and foreign
keys (issue 13, defects 1, 17, 18), with foreign keys on in every client and
pages of one change, so that a page boundary falls between the halves of a
swap and between a child and its parent.

The server keeps the latest change per row, so a swap made through a
temporary value arrives as two rows that each collide with the other's old
value on the receiving client.
"""
import os

from e2e_util import E2ETest, Syncd

SCHEMA = """
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0);
CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE);
CREATE TABLE p(id TEXT PRIMARY KEY, title TEXT);
CREATE TABLE c(id TEXT PRIMARY KEY, p TEXT NOT NULL REFERENCES p(id) ON DELETE CASCADE);
"""

CLIENT_TABLES = """
PRAGMA foreign_keys = ON;
CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE);
CREATE TABLE p(id TEXT PRIMARY KEY, title TEXT);
CREATE TABLE c(id TEXT PRIMARY KEY, p TEXT NOT NULL REFERENCES p(id) ON DELETE CASCADE);
"""


class ApplyOrder(E2ETest):
    def server(self):
        path = os.path.join(self.dir, "schema.sql")
        with open(path, "w") as f:
            f.write(SCHEMA)
        s = Syncd(self.dir, schema=path)
        self.servers.append(s)
        return s

    def peer(self, name, url, pull_limit=1):
        cl = self.client(name, url, {"pull_limit": pull_limit})
        cl.db.executescript(CLIENT_TABLES)
        for t in ("u", "p", "c"):
            cl.one("SELECT sync_track(?)", (t,))
        return cl

    def test_swaps_rotations_and_parents_across_pages(self):
        s = self.server()
        b = self.peer("b", s.url, pull_limit=1000)
        a = self.peer("a", s.url)
        b.db.executescript("INSERT INTO u VALUES (1, 'x'), (2, 'y'), (3, 'z');")
        b.one("SELECT sync_push()")
        a.one("SELECT sync_pull()")
        self.assertEqual(a.rows("SELECT * FROM u ORDER BY id"), [(1, "x"), (2, "y"), (3, "z")])

        # A swap through a temporary value, and a three-row rotation.
        b.db.executescript("""
            UPDATE u SET email = 'tmp' WHERE id = 1;
            UPDATE u SET email = 'x' WHERE id = 2;
            UPDATE u SET email = 'y' WHERE id = 1;""")
        b.one("SELECT sync_push()")
        a.one("SELECT sync_pull()")
        self.assertEqual(a.rows("SELECT * FROM u ORDER BY id"), [(1, "y"), (2, "x"), (3, "z")])
        b.db.executescript("""
            UPDATE u SET email = 't' WHERE id = 1;
            UPDATE u SET email = 'y' WHERE id = 3;
            UPDATE u SET email = 'z' WHERE id = 2;
            UPDATE u SET email = 'x' WHERE id = 1;""")
        b.one("SELECT sync_push()")
        a.one("SELECT sync_pull()")
        want = [(1, "x"), (2, "z"), (3, "y")]
        self.assertEqual(a.rows("SELECT * FROM u ORDER BY id"), want)

        # A value handed to a new row: row 3 changes again afterwards, so
        # the new row comes first in the log, on its own page.
        b.db.executescript("""
            UPDATE u SET email = 'c' WHERE id = 3;
            INSERT INTO u VALUES (5, 'y');
            UPDATE u SET email = 'd' WHERE id = 3;""")
        b.one("SELECT sync_push()")
        a.one("SELECT sync_pull()")
        want = [(1, "x"), (2, "z"), (3, "d"), (5, "y")]
        self.assertEqual(a.rows("SELECT * FROM u ORDER BY id"), want)

        # A child on an earlier page than its parent (the parent changed last).
        b.db.executescript("""
            INSERT INTO p VALUES ('P', 'home');
            INSERT INTO c VALUES ('c1', 'P');
            UPDATE p SET title = 'house' WHERE id = 'P';""")
        b.one("SELECT sync_push()")
        a.one("SELECT sync_pull()")
        self.assertEqual(a.rows("SELECT * FROM c"), [("c1", "P")])
        self.assertEqual(a.rows("SELECT * FROM p"), [("P", "house")])

        # A fresh client's initial sync, one change a page, gets it all.
        f = self.peer("fresh", s.url)
        f.one("SELECT sync_pull()")
        b.one("SELECT sync_pull()")
        for cl in (a, f):
            self.assertEqual(cl.rows("SELECT * FROM u ORDER BY id"), want)
            self.assertEqual(cl.rows("SELECT * FROM c"), [("c1", "P")])
            self.assertEqual(cl.rows("PRAGMA foreign_key_check"), [])
            self.assertEqual(cl.one("SELECT count(*) FROM sync_inbox"), 0)
            self.assertEqual(cl.one("SELECT sync_cursor()"), b.one("SELECT sync_cursor()"))
