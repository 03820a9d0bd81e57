"""Versions stay consecutive across refusals and pushes, on both storages.

syncd's SQLite store counts versions in memory during a push's write
transaction and writes the counter back before COMMIT; a mutation refused
after its change was logged (a deferred foreign key, checked after the
write) must give its version back with its savepoint.
"""
import threading
import unittest

from syncd_util import OneSyncd, PgStore, SqliteStore


def ins(mid, key, table="todos"):
    return {"id": mid, "table": table, "op": "insert", "pk": {"id": key},
            "data": {"id": key, "title": "t"}}


def upd(mid, key, title):
    return {"id": mid, "table": "todos", "op": "update", "pk": {"id": key},
            "data": {"title": title}}


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

    def test_a_row_changed_twice_then_refused_keeps_its_last_applied_version(self):
        start = self.head()
        # 3 is refused (CHECK) on a row 1 and 2 changed in this batch: "a"
        # keeps 2's change and version, and 3 takes none
        res = self.s.push("c1", [ins(1, "a"), upd(2, "a", "two"), upd(3, "a", "x" * 200),
                                 ins(4, "b")])
        self.assertEqual([r["status"] for r in res], ["applied", "applied", "rejected", "applied"])
        self.assertEqual([res[0]["version"], res[1]["version"], res[3]["version"]],
                         [start + 1, start + 2, start + 3])
        self.assertEqual(self.head(), start + 3)
        changes, _ = self.s.pull_all("c1", cursor=f"{self.cursor_db()}-{start}")
        self.assertEqual([(c["pk"]["id"], c["row"]["title"], c["version"]) for c in changes],
                         [("a", "two", start + 2), ("b", "t", start + 3)])

    def test_an_id_repeated_in_one_batch_answers_the_committed_version(self):
        start = self.head()
        res = self.s.push("c1", [ins(1, "a"), ins(1, "a"), ins(2, "b"), ins(2, "b")])
        self.assertEqual([r["status"] for r in res], ["applied"] * 4)
        self.assertEqual([r["version"] for r in res], [start + 1, start + 1, start + 2, start + 2])

    def test_concurrent_pushers_get_distinct_consecutive_versions(self):
        start = self.head()
        out, errors = {}, []

        def go(k):
            try:
                out[k] = self.s.push(f"p{k}", [ins(i, f"p{k}-{i}") for i in range(1, 11)])
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=go, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        given = sorted(r["version"] for res in out.values() for r in res)
        self.assertEqual(given, list(range(start + 1, start + 41)))
        for res in out.values():  # each batch's versions are in its id order
            self.assertEqual([r["version"] for r in res], sorted(r["version"] for r in res))
        changes, _ = self.s.pull_all("c1", cursor=f"{self.cursor_db()}-{start}")
        self.assertEqual([c["version"] for c in changes], given)

    def cursor_db(self):
        _, page = self.s.pull_all("c1")
        return page["cursor"].rsplit("-", 1)[0]


class SqliteVersionTest(SqliteStore, VersionTests, unittest.TestCase):
    pass


class PgVersionTest(PgStore, VersionTests, unittest.TestCase):
    pass
