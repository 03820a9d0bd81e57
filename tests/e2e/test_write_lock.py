"""The extension's write functions called outside any transaction take the
write lock at their start (BEGIN IMMEDIATE, ext/engine/ctx.c ctx_begin).
A savepoint there began a deferred transaction that read first: when
another connection committed between that read and the function's first
write, the write failed at once with "database is locked"
(SQLITE_BUSY_SNAPSHOT, the busy timeout never consulted). That is how
sync-agent, starting beside an app whose worker had just pulled, died in
sync_init (tests/agent). Here the other connection commits from inside the
function, deterministically: an authorizer on the caller's connection runs
as the function prepares each write, after its reads.
"""
import os
import sqlite3

from e2e_util import CLIENT_DDL, E2ETest, connect


class WriteLock(E2ETest):
    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.dir, "app.db")
        c = connect(self.path)
        c.executescript(CLIENT_DDL + "CREATE TABLE other(x);")
        c.execute("SELECT sync_init('http://127.0.0.1:9')")
        c.execute("SELECT sync_track('notes')")
        c.close()

    def call_while_another_writes(self, sql):
        """Runs sql on a fresh connection (its statements prepared anew)
        while a second one tries to commit at each write sql prepares
        inside its transaction. Returns what the second one met."""
        a = connect(self.path)
        b = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        met = []

        def authorize(action, *_):
            if action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE,
                          sqlite3.SQLITE_DELETE) and a.in_transaction:
                try:
                    b.execute("INSERT INTO other VALUES (1)")
                    met.append("committed")
                except sqlite3.OperationalError as e:
                    met.append(str(e))
            return sqlite3.SQLITE_OK
        a.set_authorizer(authorize)
        try:
            a.execute(sql).fetchall()
        finally:
            a.set_authorizer(None)
            a.close()
            b.close()
        return met

    def test_functions_outside_a_transaction_hold_the_write_lock(self):
        # each of these read before their first write, in a savepoint
        for sql in ["SELECT sync_init('http://127.0.0.1:9')",
                    "SELECT sync_track('todos')",
                    "SELECT sync_migrate('ALTER TABLE notes ADD COLUMN due TEXT')"]:
            with self.subTest(sql=sql):
                met = self.call_while_another_writes(sql)
                self.assertTrue(met, "no write was prepared inside the function")
                # the other connection waits until the function is done
                self.assertEqual(set(met), {"database is locked"})

    def test_a_held_lock_is_reported_as_busy(self):
        # A function that cannot get the write lock within the busy timeout
        # fails with SQLITE_BUSY under its message, not a plain error: a
        # caller (sync-agent among them) tells "try again" from a failure.
        holder = sqlite3.connect(self.path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        a = connect(self.path)
        a.execute("PRAGMA busy_timeout = 50")
        try:
            for sql in ["SELECT sync_init('http://127.0.0.1:9')", "SELECT sync_track('todos')"]:
                with self.subTest(sql=sql):
                    with self.assertRaises(sqlite3.OperationalError) as e:
                        a.execute(sql).fetchall()
                    self.assertIn("database is locked", str(e.exception))
                    self.assertEqual(e.exception.sqlite_errorcode & 0xff, sqlite3.SQLITE_BUSY)
        finally:
            a.close()
            holder.execute("ROLLBACK")
            holder.close()
