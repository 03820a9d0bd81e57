"""Refusals amid applied mutations in one batch, on both storages.

PostgreSQL storage runs a batch without savepoints and, at the first
refusal that wrote (or aborted the transaction), rolls back and runs the
batch again with one per mutation: what is answered and stored must be what
one savepoint per mutation gives, whichever way each refusal comes.
"""
import unittest

from syncd_util import OneSyncd, PgStore, SqliteStore, dele, ins, upd


def other_key(mid, pk, key):
    """An insert whose data names another key than pk: written, then refused."""
    return {"id": mid, "table": "todos", "op": "insert", "pk": {"id": pk},
            "data": {"id": key, "title": "t"}}


class RefusalTests(OneSyncd):
    backend = None

    BATCH = [ins(1, "a"),
             ins(2, "a"),                     # the key exists: aborts PostgreSQL's transaction
             upd(3, "a", title="three"),
             other_key(4, "k1", "k2"),        # written, then refused by the read back
             upd(5, "gone", title="x"),       # no such row: wrote nothing
             upd(6, "a", title="x" * 200),    # CHECK: refused by the write
             ins(7, "b", slug="s"),
             ins(8, "c", slug="s"),           # UNIQUE slug
             dele(9, "b"),
             {"id": 10, "table": "nope", "op": "delete", "pk": {"id": 1}},
             ins(11, "d")]
    STATUS = ["applied", "rejected", "applied", "rejected", "rejected", "rejected",
              "applied", "rejected", "applied", "rejected", "applied"]

    def rows(self):
        changes, _ = self.s.pull_all("check")
        return {c["pk"]["id"]: c["row"]["title"] for c in changes if c["table"] == "todos"}

    def test_refusals_amid_applied_mutations_keep_exactly_the_applied_ones(self):
        res = self.s.push("c1", self.BATCH)
        self.assertEqual([r["status"] for r in res], self.STATUS)
        self.assertEqual(res[3]["reason"], "the row's key does not match pk")
        self.assertEqual(res[4]["reason"], "no such row")
        self.assertEqual(self.rows(), {"a": "three", "d": "t"})
        applied = [r["version"] for r in res if r["status"] == "applied"]
        self.assertEqual(applied, sorted(applied))
        self.assertEqual(len(set(applied)), len(applied))
        # sent again: every outcome is answered as recorded, nothing applied twice
        again = self.s.push("c1", self.BATCH)
        self.assertEqual([r["status"] for r in again], self.STATUS)
        self.assertEqual([r.get("reason") for r in again], [r.get("reason") for r in res])
        self.assertEqual(self.rows(), {"a": "three", "d": "t"})
        # the next batch on the same connection runs as usual
        res = self.s.push("c1", [ins(12, "e"), upd(13, "e", title="e2")])
        self.assertEqual([r["status"] for r in res], ["applied", "applied"])
        self.assertEqual(self.rows(), {"a": "three", "d": "t", "e": "e2"})


class SqliteRefusalTest(SqliteStore, RefusalTests, unittest.TestCase):
    pass


class PgRefusalTest(PgStore, RefusalTests, unittest.TestCase):
    pass


if __name__ == "__main__":
    unittest.main()
