"""Versions stay consecutive across refusals and pushes, on both storages.

syncd's SQLite store counts versions in memory during a push's write
transaction and writes the counter back before COMMIT; a mutation refused
after its change was logged (a deferred foreign key, checked after the
write) must give its version back with its savepoint.
"""
import unittest

from syncd_util import OneSyncd, PgStore, SqliteStore


def ins(mid, key, table="todos"):
    return {"id": mid, "table": table, "op": "insert", "pk": {"id": key},
            "data": {"id": key, "title": "t"}}


def bad_note(mid, key):
    """Refused by the deferred foreign key (no list 99)."""
    return {"id": mid, "table": "notes", "op": "insert", "pk": {"id": key},
            "data": {"id": key, "list_id": 99}}


class VersionTests(OneSyncd):
    backend = None

    def head(self):
        _, page = self.s.pull_all("c1")
        return int(page["cursor"].rsplit("-", 1)[1])

    def test_a_refused_mutation_takes_no_version(self):
        start = self.head()
        res = self.s.push("c1", [ins(1, "a"), bad_note(2, 7), ins(3, "b"), bad_note(4, 8)])
        self.assertEqual([r["status"] for r in res], ["applied", "rejected", "applied", "rejected"])
        self.assertEqual([res[0]["version"], res[2]["version"]], [start + 1, start + 2])
        self.assertEqual(self.head(), start + 2)
        # the next push goes on from there, in a new transaction
        res = self.s.push("c1", [ins(5, "c")])
        self.assertEqual(res[0]["version"], start + 3)
        self.assertEqual(self.head(), start + 3)
        changes, _ = self.s.pull_all("c1", cursor=f"{self.cursor_db()}-{start}")
        self.assertEqual([c["version"] for c in changes], [start + 1, start + 2, start + 3])

    def cursor_db(self):
        _, page = self.s.pull_all("c1")
        return page["cursor"].rsplit("-", 1)[0]


class SqliteVersionTest(SqliteStore, VersionTests, unittest.TestCase):
    pass


class PgVersionTest(PgStore, VersionTests, unittest.TestCase):
    pass
