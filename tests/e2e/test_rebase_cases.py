"""End-to-end: server answers that the engine must resolve whatever the
local database has become since the push (issue 13).

A tracked table dropped or renamed while it has pending mutations: the
server applies (or refuses) them, and sync_push still confirms them, puts
the refusals in sync_rejected and goes on with the other tables' mutations;
nothing stays in the outbox. The client's tables are WITHOUT ROWID: a
dropped rowid table still leaves a capture trigger behind (capture.c).
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
            "DROP TABLE scratch;"
            "ALTER TABLE drafts RENAME TO drafts_old;")
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
