"""Server-owned columns on the client: a table tracked with
sync_track(table, '{"server_columns": [...]}') never sends those columns,
so a local NULL does not override the server's NOT NULL DEFAULT (which
rejects the insert when sent), and the server's values come back to the
device that wrote the row and to the others.
"""
import os
import unittest

from e2e_util import E2ETest, connect

SERVER_SCHEMA = """
CREATE TABLE notes(id TEXT PRIMARY KEY, body TEXT,
                   updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
                   rev INTEGER NOT NULL DEFAULT 1);
CREATE TRIGGER notes_rev AFTER UPDATE OF body ON notes BEGIN
  UPDATE notes SET rev = OLD.rev + 1 WHERE id = NEW.id;
END;
"""
CLIENT_DDL = "CREATE TABLE notes(id TEXT PRIMARY KEY, body TEXT, updated_at TEXT, rev INTEGER);"


class ServerColumnsE2ETest(E2ETest):

    def setUp(self):
        super().setUp()
        self.srv = self.syncd(schema_sql=SERVER_SCHEMA)

    def device(self, name, options=None):
        db = connect(os.path.join(self.dir, name + ".db"))
        self.clients.append(db)
        db.executescript(CLIENT_DDL)
        db.execute("SELECT sync_init(?)", (self.srv.url,))
        db.execute("SELECT sync_track('notes', ?)", (options,))
        return db

    def rows(self, db):
        return db.execute("SELECT id, body, updated_at IS NOT NULL, rev FROM notes"
                          " ORDER BY id").fetchall()

    def test_the_server_fills_its_columns(self):
        own = '{"server_columns": ["updated_at", "rev"]}'
        phone, laptop = self.device("phone", own), self.device("laptop", own)
        phone.execute("INSERT INTO notes(id, body) VALUES ('n1', 'hello')")
        phone.execute("SELECT sync_push()")
        self.assertEqual(phone.execute("SELECT count(*) FROM sync_rejected").fetchone()[0], 0)
        self.assertEqual(self.rows(phone), [("n1", "hello", 1, 1)])
        stamp = phone.execute("SELECT updated_at FROM notes").fetchone()[0]
        # an edit of the body: the server's trigger moves rev, and a local
        # write of a server column is not sent
        phone.execute("UPDATE notes SET body = 'hello again', rev = 99 WHERE id = 'n1'")
        self.assertEqual(phone.execute("SELECT data FROM sync_pending").fetchall(),
                         [('{"body":"hello again"}',)])
        phone.execute("SELECT sync_push()")
        self.assertEqual(self.rows(phone), [("n1", "hello again", 1, 2)])
        laptop.execute("SELECT sync_pull()")
        self.assertEqual(self.rows(laptop), [("n1", "hello again", 1, 2)])
        self.assertEqual(laptop.execute("SELECT updated_at FROM notes").fetchone()[0], stamp)

    def test_without_the_option_the_null_is_sent(self):
        # what the option prevents: the local NULL reaches the server's
        # NOT NULL column, and the insert is rejected
        tablet = self.device("tablet")
        tablet.execute("INSERT INTO notes(id, body) VALUES ('n2', 'x')")
        tablet.execute("SELECT sync_push()")
        reason = tablet.execute("SELECT reason FROM sync_rejected").fetchone()[0]
        self.assertIn("NOT NULL", reason)


if __name__ == "__main__":
    unittest.main()
