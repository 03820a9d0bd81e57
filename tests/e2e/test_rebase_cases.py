"""End-to-end: server answers that the engine must resolve whatever the
local database has become since the push (issue 13).

A tracked table dropped or renamed while it has pending mutations: the
server applies (or refuses) them, and sync_push still confirms them, puts
the refusals in sync_rejected and goes on with the other tables' mutations;
nothing stays in the outbox. The client's tables are WITHOUT ROWID: a
dropped rowid table still leaves a capture trigger behind (capture.c).

A refused insert that local rows still refer to, for which the server has
no row to send, ends as a kept row after two pulls (guard.c).
"""
import os

from e2e_util import E2ETest, Syncd

SCHEMA = """
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL CHECK (title <> 'refused'),
                   done INTEGER NOT NULL DEFAULT 0);
CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
CREATE TABLE scratch(id TEXT PRIMARY KEY, v TEXT CHECK (v <> 'refused'));
CREATE TABLE drafts(id TEXT PRIMARY KEY, v TEXT);
"""


class DroppedTableTest(E2ETest):
    def test_push_resolves_mutations_of_a_dropped_or_renamed_table(self):
        path = os.path.join(self.dir, "server.sql")
        with open(path, "w") as f:
            f.write(SCHEMA)
        s = Syncd(self.dir, schema=path)
        self.servers.append(s)
        a = self.client("a", s.url)
        a.db.executescript(
            "CREATE TABLE scratch(id TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;"
            "CREATE TABLE drafts(id TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;")
        a.one("SELECT sync_track('scratch')")
        a.one("SELECT sync_track('drafts')")
        a.db.executescript(
            "INSERT INTO scratch VALUES ('s1', 'kept'), ('s2', 'refused');"
            "INSERT INTO drafts VALUES ('d1', 'draft');"
            "INSERT INTO todos(id, title) VALUES ('t1', 'one'), ('t2', 'refused');"
            "ALTER TABLE drafts RENAME TO drafts_old;"
            "DROP TABLE scratch;")
        self.assertEqual(a.one("SELECT sync_push()"), 5)
        self.assertEqual(a.one("SELECT sync_pending()"), 0)
        self.assertEqual(
            a.rows("SELECT table_name, json_extract(pk, '$.id') FROM sync_rejected ORDER BY id"),
            [("scratch", "s2"), ("todos", "t2")])
        self.assertEqual(a.todos(), [("t1", "one", 0)])
        self.assertEqual(s.query("SELECT id, v FROM scratch"), [("s1", "kept")])
        self.assertEqual(s.query("SELECT id, v FROM drafts"), [("d1", "draft")])
        # later writes go on
        a.db.execute("INSERT INTO todos(id, title) VALUES ('t3', 'three')")
        self.assertEqual(a.one("SELECT sync_push()"), 1)
        self.assertEqual(a.one("SELECT sync_pending()"), 0)


class AbsentGuardTest(E2ETest):
    def test_refused_insert_referred_to_locally_ends_as_kept(self):
        """A refused insert whose row a table that is not synced refers to
        (no ON DELETE action: its delete is refused) cannot go, and the
        server has no such row to send: after two pulls without it, its
        guard ends and the row is listed in sync_orphans as kept, instead
        of being tried again at every push and pull for good."""
        s = Syncd(self.dir)
        self.servers.append(s)
        a = self.client("a", s.url)
        a.db.executescript(
            "PRAGMA foreign_keys = ON;"
            "CREATE TABLE pins(id INTEGER PRIMARY KEY, todo TEXT REFERENCES todos(id));"
            "INSERT INTO todos(id, title) VALUES ('t1', 'one'), ('t2', 'refused');"
            "INSERT INTO pins VALUES (1, 't2');")
        self.assertEqual(a.one("SELECT sync_push()"), 2)
        self.assertEqual(a.rows("SELECT json_extract(pk, '$.id') FROM sync_rejected"), [("t2",)])
        # the row stays (its delete is refused), waiting for a server row
        self.assertEqual(a.todos(), [("t1", "one", 0), ("t2", "refused", 0)])
        guards = "SELECT count(*) FROM sync_meta WHERE key = 'guards'"
        self.assertEqual(a.one(guards), 1)
        a.one("SELECT sync_pull()")
        self.assertEqual(a.one(guards), 1)
        a.one("SELECT sync_pull()")
        self.assertEqual(a.one(guards), 0)
        self.assertEqual(a.rows("SELECT table_name, json_extract(pk, '$.id'), state"
                                " FROM sync_orphans"), [("todos", "t2", "kept")])
        self.assertEqual(a.todos(), [("t1", "one", 0), ("t2", "refused", 0)])
        # its edits stay local; the other rows sync as before
        a.db.execute("UPDATE todos SET done = 1")
        self.assertEqual(a.one("SELECT sync_push()"), 1)
        self.assertEqual(s.query("SELECT id, done FROM todos"), [("t1", 1)])
        self.assertEqual(a.one("SELECT sync_pending()"), 0)
        self.assertNotEqual(a.one("SELECT state FROM sync_status"), "error")
