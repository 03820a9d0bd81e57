"""Concurrent pushes on PostgreSQL storage (issue 19, item 1): pushes that
lock the same rows never answer 500. A lock cycle of syncd's own making
(the version row against data rows) must not form; one the batches make
themselves (two rows written in opposite orders) makes PostgreSQL abort
one push, which syncd runs again; a conflict that persists is a 503 with
Retry-After, never a 500."""
import json
import os
import shutil
import tempfile
import threading
import unittest

from syncd_util import PgStore, Syncd

SCHEMA = """
CREATE TABLE kv(id text PRIMARY KEY, v bigint NOT NULL);
-- every update of kv sleeps, so that concurrent batches overlap
CREATE FUNCTION kv_slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(0.2);
  RETURN NEW;
END $$;
CREATE TRIGGER kv_slow BEFORE UPDATE ON kv FOR EACH ROW EXECUTE FUNCTION kv_slow();
-- v = -1 always loses a conflict; v = -2 loses the first one only (a
-- sequence is not rolled back with the transaction)
CREATE SEQUENCE flaky;
CREATE FUNCTION kv_conflict() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.v = -1 OR (NEW.v = -2 AND nextval('flaky') = 1) THEN
    RAISE EXCEPTION 'could not serialize access' USING ERRCODE = 'serialization_failure';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER kv_conflict BEFORE INSERT OR UPDATE ON kv FOR EACH ROW
  EXECUTE FUNCTION kv_conflict();
INSERT INTO kv VALUES ('a', 0), ('s', 0), ('b', 0);
"""


def upd(mid, key, v):
    return {"id": mid, "table": "kv", "op": "update", "pk": {"id": key}, "data": {"v": v}}


class PgConcurrency(PgStore, unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="syncd-test-")
        path = os.path.join(self.tmp, "schema.sql")
        with open(path, "w") as f:
            f.write(SCHEMA)
        self.s = Syncd("pg", self.store_args(), schema=path)

    def tearDown(self):
        rc = self.s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.assertEqual(rc, 0, self.s.log()[-2000:])

    def rounds(self, batches, n):
        """Push batches[i](round) for client i, all at the same moment, n
        rounds; returns the statuses answered and the last results."""
        statuses, last = [], [None] * len(batches)
        for r in range(1, n + 1):
            gate = threading.Barrier(len(batches))

            def one(i):
                gate.wait()
                body = {"client_id": f"c{i}", "mutations": batches[i](r)}
                status, _, data = self.s.request("POST", "/push", body)
                statuses.append((status, json.dumps(data)[:300]))
                last[i] = data

            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(batches))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return statuses, last

    def rows(self):
        changes, _ = self.s.pull_all("reader")
        return {c["pk"]["id"]: c["row"]["v"] for c in changes if c["table"] == "kv"}

    def test_shared_row_in_the_middle_never_deadlocks(self):
        # A = [update a, update s], B = [update s, update b], 20 rounds
        statuses, _ = self.rounds([
            lambda r: [upd(2 * r - 1, "a", r), upd(2 * r, "s", 100 + r)],
            lambda r: [upd(2 * r - 1, "s", 200 + r), upd(2 * r, "b", r)],
        ], 20)
        self.assertEqual([s for s in statuses if s[0] != 200], [])
        rows = self.rows()
        self.assertEqual((rows["a"], rows["b"]), (20, 20))
        self.assertIn(rows["s"], (120, 220))
        self.assertNotIn("deadlock", self.s.log())

    def test_opposite_orders_are_retried_not_failed(self):
        # the batches deadlock each other: PostgreSQL aborts one, syncd
        # runs it again once the other committed
        statuses, last = self.rounds([
            lambda r: [upd(2 * r - 1, "a", r), upd(2 * r, "b", r)],
            lambda r: [upd(2 * r - 1, "b", 100 + r), upd(2 * r, "a", 100 + r)],
        ], 4)
        self.assertEqual([s for s in statuses if s[0] != 200], [])
        for data in last:
            self.assertEqual([x["status"] for x in data["results"]], ["applied"] * 2, data)
        rows = self.rows()
        # each batch is atomic: the one that committed last wrote both rows
        self.assertIn((rows["a"], rows["b"]), ((4, 4), (104, 104)))

    def test_a_conflict_once_is_retried(self):
        res = self.s.push("c1", [upd(1, "a", 5), upd(2, "s", -2)])
        self.assertEqual([r["status"] for r in res], ["applied", "applied"], res)
        self.assertEqual(self.rows()["s"], -2)

    def test_a_conflict_that_persists_answers_503_with_retry_after(self):
        body = {"client_id": "c1", "mutations": [upd(1, "a", 7), upd(2, "s", -1)]}
        status, resp, data = self.s.request("POST", "/push", body)
        self.assertEqual(status, 503, data)
        self.assertIn("could not serialize", data["error"])
        self.assertEqual(resp.getheader("Retry-After"), "1")
        # nothing committed: a's old value, and the ids are not spent
        self.assertEqual(self.rows()["a"], 0)
        res = self.s.push("c1", [upd(1, "a", 7), upd(2, "s", 3)])
        self.assertEqual([r["status"] for r in res], ["applied", "applied"], res)


if __name__ == "__main__":
    unittest.main()
