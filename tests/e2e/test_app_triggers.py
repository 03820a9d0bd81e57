"""End-to-end: the app's own triggers on tracked tables (README, "Your own
triggers"). They run for the engine's writes too. One that writes a tracked
table (an updated_at stamp) skips them with the plain-SQL guard the README
gives, so a pulled row stays the server's; one that writes an untracked
table (an FTS index) runs for them, so the index holds the pulled rows.
The server runs its own copy of the stamp trigger, without the guard.
"""

from e2e_util import E2ETest

TABLE = """
CREATE TABLE items(id TEXT PRIMARY KEY, title TEXT, stamp INTEGER NOT NULL DEFAULT 0);
"""
STAMP = """
CREATE TRIGGER items_stamp AFTER UPDATE OF title ON items %s BEGIN
  UPDATE items SET stamp = stamp + 1 WHERE id = NEW.id; END;
"""
GUARD = "WHEN coalesce((SELECT applying FROM sync_control), 0) = 0"
FTS = """
CREATE VIRTUAL TABLE items_fts USING fts5(title, content='items', content_rowid='rowid');
CREATE TRIGGER items_fts_ai AFTER INSERT ON items BEGIN
  INSERT INTO items_fts(rowid, title) VALUES (NEW.rowid, NEW.title); END;
CREATE TRIGGER items_fts_au AFTER UPDATE OF title ON items BEGIN
  INSERT INTO items_fts(items_fts, rowid, title) VALUES ('delete', OLD.rowid, OLD.title);
  INSERT INTO items_fts(rowid, title) VALUES (NEW.rowid, NEW.title); END;
"""


class AppTriggers(E2ETest):
    def test_guarded_stamp_and_fts_index(self):
        s = self.syncd(schema_sql=TABLE + STAMP % "")
        peers = []
        for name in "ab":
            p = self.client(name, s.url)
            p.db.executescript(TABLE)
            p.one("""SELECT sync_track('items', '{"server_columns":["stamp"]}')""")
            # created after sync_track, as an app adds them; sync_control exists
            p.db.executescript(STAMP % GUARD + FTS)
            peers.append(p)
        a, b = peers

        def sync():
            for _ in range(2):
                for p in peers:
                    p.one("SELECT sync_push()")
                    p.one("SELECT sync_pull()")

        a.db.execute("INSERT INTO items(id, title) VALUES ('i1', 'apple pie')")
        sync()
        a.db.execute("UPDATE items SET title = 'apple tart' WHERE id = 'i1'")
        b.db.execute("INSERT INTO items(id, title) VALUES ('i2', 'banana bread')")
        sync()
        b.db.execute("UPDATE items SET title = 'cherry tart' WHERE id = 'i2'")
        sync()
        want = [tuple(r) for r in s.query("SELECT id, title, stamp FROM items ORDER BY id")]
        self.assertEqual(want, [("i1", "apple tart", 1), ("i2", "cherry tart", 1)])
        for p in peers:
            self.assertEqual(p.rows("SELECT id, title, stamp FROM items ORDER BY id"), want, p)
            self.assertEqual(p.one("SELECT count(*) FROM sync_pending"), 0)
            self.assertEqual(p.one("SELECT count(*) FROM sync_rejected"), 0)
            self.assertEqual(p.rows("SELECT id FROM items_fts JOIN items ON items.rowid ="
                                    " items_fts.rowid WHERE items_fts MATCH 'tart' ORDER BY id"),
                             [("i1",), ("i2",)])
            self.assertEqual(p.rows("SELECT rowid FROM items_fts WHERE items_fts MATCH 'pie'"
                                    " OR items_fts MATCH 'banana'"), [])
