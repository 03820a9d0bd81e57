"""A column added to the server's database while syncd runs, then to one
client with sync_migrate (docs/MIGRATIONS.md): the migrated client's write
of it is applied, not rolled back; the client that was not migrated keeps
syncing without it and its insert gets the server's default; both end
with the server's rows.
"""
import unittest

from e2e_util import E2ETest

ADD_DUE = "ALTER TABLE todos ADD COLUMN due TEXT NOT NULL DEFAULT 'none'"


class SchemaChangeTest(E2ETest):
    def test_server_first_then_one_client(self):
        s = self.syncd()
        new, old = self.client("new", s.url), self.client("old", s.url)
        new.db.execute("INSERT INTO todos(id, title) VALUES ('before', 'b')")
        new.one("SELECT sync_push()")
        old.one("SELECT sync_pull()")

        s.query(ADD_DUE)  # the owner, syncd running
        new.one("SELECT sync_migrate(?)", (ADD_DUE,))
        new.db.execute("INSERT INTO todos(id, title, due) VALUES ('n', 'n', 'friday')")
        new.db.execute("UPDATE todos SET due = 'monday' WHERE id = 'before'")
        old.db.execute("INSERT INTO todos(id, title) VALUES ('o', 'o')")
        new.one("SELECT sync_push()")
        old.one("SELECT sync_push()")
        new.one("SELECT sync_pull()")
        old.one("SELECT sync_pull()")

        want = [("before", "monday"), ("n", "friday"), ("o", "none")]
        self.assertEqual(s.query("SELECT id, due FROM todos ORDER BY id"), want)
        self.assertEqual(new.rows("SELECT id, due FROM todos ORDER BY id"), want)
        self.assertEqual(old.rows("SELECT id, title FROM todos ORDER BY id"),
                         [("before", "b"), ("n", "n"), ("o", "o")])
        for c in (new, old):
            self.assertEqual(c.one("SELECT count(*) FROM sync_pending"), 0)
            self.assertIsNone(c.status()["last_error"])

    def test_a_client_migrated_before_the_server_is_refused_not_stuck(self):
        s = self.syncd()
        c = self.client("early", s.url)
        c.one("SELECT sync_migrate(?)", (ADD_DUE,))
        c.db.execute("INSERT INTO todos(id, title, due) VALUES ('e', 'e', 'friday')")
        c.db.execute("INSERT INTO todos(id, title) VALUES ('f', 'f')")
        c.one("SELECT sync_push()")
        self.assertEqual(c.one("SELECT count(*) FROM sync_pending"), 0)
        self.assertEqual(c.status()["rejected"], 2)
        self.assertEqual(s.query("SELECT count(*) FROM todos"), [(0,)])


if __name__ == "__main__":
    unittest.main()
