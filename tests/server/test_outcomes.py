"""How many recorded outcomes syncd keeps per client (docs/PROTOCOL.md:
"at least its last 10000 mutations"), on both storages. The stores prune
only when a client's last id crosses a multiple of 10000 (the cutoff's walk
of 10000 entries per push, or per batch of a drain, made its cost grow), so
these tests pin both ends: the last 10000 stay answerable, older ones stay
until that crossing, and then they do go.
"""
import unittest

from syncd_util import OneSyncd, PgStore, SqliteStore

KEEP = 10000
EVERY = 10000  # STORE_PRUNE_EVERY


def refused(first, n):
    """n mutations on an unknown table: refused at once, outcome recorded."""
    return [{"id": i, "table": "nope", "op": "delete", "pk": {"id": i}}
            for i in range(first, first + n)]


class OutcomeTests(OneSyncd):
    backend = None

    def test_the_last_10000_are_kept_and_older_ones_purged(self):
        last = 2 * EVERY + 2500
        for first in range(1, last + 1, 500):
            res = self.s.push("c1", refused(first, 500))
            self.assertEqual({r["status"] for r in res}, {"rejected"})
            if first + 499 == KEEP + 2500:
                # past KEEP, but no multiple of EVERY crossed since: kept
                again = self.s.push("c1", refused(1, 1))
                self.assertEqual(again[0]["reason"], "no such table: nope")
        # replays: the oldest kept one still carries its reason ...
        res = self.s.push("c1", refused(last - KEEP + 1, 1))
        self.assertEqual(res[0]["reason"], "no such table: nope")
        # ... one far older is gone
        res = self.s.push("c1", refused(1, 1))
        self.assertIn("no longer recorded", res[0]["reason"])
        # the pull's rejected list agrees: every kept id, none purged
        page = self.s.pull("c1", pending_from=1, limit=1)
        ids = [r["id"] for r in page["rejected"]]
        self.assertEqual(page["last_mutation_id"], last)
        self.assertEqual(ids, list(range(ids[0], last + 1)))
        self.assertGreaterEqual(len(ids), KEEP)
        self.assertGreater(ids[0], 1)

    def test_other_clients_keep_their_own(self):
        self.s.push("a", refused(1, 3))
        for first in range(1, 12001, 1000):
            self.s.push("b", refused(first, 1000))
        res = self.s.push("a", refused(1, 1))
        self.assertEqual(res[0]["reason"], "no such table: nope")


class SqliteOutcomeTest(SqliteStore, OutcomeTests, unittest.TestCase):
    pass


class PgOutcomeTest(PgStore, OutcomeTests, unittest.TestCase):
    pass
