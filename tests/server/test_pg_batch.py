"""A batch in one go on PostgreSQL storage (issue 17, part 1): syncd sends
the statements of a whole batch in one pipeline (push_batch.c,
pg_batch.c), and falls back to one mutation at a time, each in a
savepoint, at the first refusal after a write. Whatever path a batch
takes, its outcomes and rows must be those of the mutations pushed one per
batch (a batch of one never goes in one go), and a batch replayed after a
lost answer must apply once.

Two syncd, each on a fresh database of the test cluster: "one go" takes
each batch whole, "reference" takes the same mutations one per push."""
import json
import os
import shutil
import tempfile
import unittest

from syncd_util import PgStore, Syncd

SCHEMA = """
CREATE TABLE items(id bigint PRIMARY KEY, name text NOT NULL, qty integer CHECK (qty >= 0));
CREATE TABLE parent(id bigint PRIMARY KEY, name text);
CREATE TABLE nums(id numeric PRIMARY KEY, n integer);
CREATE TABLE child(id bigint PRIMARY KEY,
                   parent bigint NOT NULL REFERENCES parent(id) ON DELETE CASCADE);
CREATE FUNCTION items_veto() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'vetoed by the server';
END $$;
CREATE TRIGGER items_veto BEFORE INSERT ON items FOR EACH ROW WHEN (NEW.name = 'veto')
  EXECUTE FUNCTION items_veto();
INSERT INTO parent VALUES (1, 'p1'), (2, 'p2');
INSERT INTO child VALUES (10, 1), (11, 1);
"""


def ins(table, pk, data):
    return {"table": table, "op": "insert", "pk": pk, "data": data}


def upd(table, pk, data):
    return {"table": table, "op": "update", "pk": pk, "data": data}


def dele(table, pk):
    return {"table": table, "op": "delete", "pk": pk}


def numbered(muts, first=1):
    return [dict(m, id=first + i) for i, m in enumerate(muts)]


# every kind of outcome, the refusals after writes in the middle
MIXED = [
    ins("items", {"id": 1}, {"id": 1, "name": "a", "qty": 1}),
    ins("items", {"id": 2}, {"id": 2, "name": "b", "qty": 2}),
    ins("items", {"id": 1}, {"id": 1, "name": "again", "qty": 1}),  # duplicate key
    upd("items", {"id": 2}, {"qty": -1}),                            # CHECK
    upd("items", {"id": 99}, {"name": "nobody"}),                    # no such row
    ins("items", {"id": 3}, {"id": 3, "name": "c", "qty": "many"}),  # value refused before sent
    ins("items", {"id": 4}, {"id": 4, "name": "veto"}),              # trigger raises
    ins("child", {"id": 12}, {"id": 12, "parent": 7}),               # foreign key
    dele("items", {"id": 42}),                                       # absent: applied
    upd("items", {"id": 1}, {"name": "a2"}),
    ins("items", {"id": 5}, {"id": 5, "name": "e", "qty": 5}),
    upd("items", {"id": 5}, {"id": 5}),                              # nothing to set: a read
    upd("items", {"id": 77}, {"id": 77}),                            # a read, no row
    ins("items", {"id": 6}, {"id": 6, "name": "f", "qty": 6.5}),     # 6.5 into integer
    dele("parent", {"id": 1}),                                       # cascades to 10, 11
    dele("items", {"id": 2}),
    ins("items", {"id": 8}, {"id": 8, "name": "h", "qty": 8}),
]

# no refusal after a write: the whole batch in one go
CLEAN = [
    ins("items", {"id": 20}, {"id": 20, "name": "x", "qty": 1}),
    ins("items", {"id": 21}, {"id": 21, "name": "y"}),
    ins("items", {"id": 22}, {"id": 22, "name": "z", "qty": "lots"}),  # refused before sent
    upd("items", {"id": 20}, {"qty": 3}),
    upd("items", {"id": 21}, {"id": 21}),
    upd("items", {"id": 88}, {"id": 88}),
    dele("items", {"id": 21}),
    dele("items", {"id": 99}),
    dele("parent", {"id": 2}),
    ins("child", {"id": 30}, {"id": 30, "parent": 1}),
]


def answers(results):
    """What a client reads of the results, versions aside (their numbers
    depend on how many commits gave them)."""
    return [{k: v for k, v in r.items() if k != "version"} for r in results]


class PgBatchInOneGo(PgStore, unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="syncd-test-")
        path = os.path.join(self.tmp, "schema.sql")
        with open(path, "w") as f:
            f.write(SCHEMA)
        self.go = Syncd("pg", self.store_args(), schema=path)
        self.ref = Syncd("pg", self.store_args(), schema=path)

    def tearDown(self):
        rcs = [(s.stop(), s.log()[-2000:]) for s in (self.go, self.ref)]
        shutil.rmtree(self.tmp, ignore_errors=True)
        for rc, log in rcs:
            self.assertEqual(rc, 0, log)

    def rows(self, s):
        changes, page = s.pull_all("reader")
        live = {(c["table"], json.dumps(c["pk"], sort_keys=True)): c.get("row")
                for c in changes}
        return live, page["cursor"]

    def raw_push(self, s, muts):
        """Push mutations given as JSON texts (numbers as written)."""
        status, _, data = s.request("POST", "/push",
                                    '{"client_id":"c1","mutations":[%s]}' % ",".join(muts))
        self.assertEqual(status, 200, data)
        return data["results"]

    def one_by_one(self, muts):
        out = []
        for m in muts:
            out += self.ref.push("c1", [m])
        return out

    def check_alike(self, muts, raw=False):
        """The batch whole on go, one at a time on ref: the same answers and
        rows (raw: mutations given as JSON texts, numbers as written)."""
        got = self.raw_push(self.go, muts) if raw else self.go.push("c1", muts)
        want = ([r for m in muts for r in self.raw_push(self.ref, [m])] if raw else
                self.one_by_one(muts))
        self.assertEqual(answers(got), answers(want))
        self.assertEqual(self.rows(self.go)[0], self.rows(self.ref)[0])
        # every change applied got a version, in the batch's order
        versions = [r["version"] for r in got if r.get("version")]
        self.assertEqual(versions, sorted(versions))
        self.assertEqual(len(set(versions)), len(versions))
        return got

    def test_refusals_in_the_middle_answer_as_one_at_a_time(self):
        got = self.check_alike(numbered(MIXED))
        self.assertEqual([r["status"] for r in got], [
            "applied", "applied", "rejected", "rejected", "rejected", "rejected", "rejected",
            "rejected", "applied", "applied", "applied", "applied", "rejected", "rejected",
            "applied", "applied", "applied"])
        self.assertEqual(got[4]["reason"], "no such row")
        self.assertEqual(got[12]["reason"], "no such row")
        self.assertIn("vetoed by the server", got[6]["reason"])
        live, _ = self.rows(self.go)
        self.assertEqual(live[("items", '{"id": 1}')], {"id": 1, "name": "a2", "qty": 1})
        self.assertNotIn(("items", '{"id": 2}'), live)
        self.assertNotIn(("child", '{"id": 10}'), live)

    def test_a_clean_batch_answers_as_one_at_a_time(self):
        got = self.check_alike(numbered(CLEAN))
        self.assertEqual([r["status"] for r in got], [
            "applied", "applied", "rejected", "applied", "applied", "rejected", "applied",
            "applied", "applied", "applied"])

    def test_a_replayed_batch_applies_once(self):
        for muts in (numbered(CLEAN), numbered(MIXED, 100)):
            first = self.go.push("c1", muts)
            rows, cursor = self.rows(self.go)
            # the answer was lost: the client sends the same batch again;
            # an applied one is answered with its row as it is now
            again = self.go.push("c1", muts)
            self.assertEqual([(r["status"], r.get("reason")) for r in again],
                             [(r["status"], r.get("reason")) for r in first])
            self.assertEqual(self.rows(self.go), (rows, cursor))
        # and a batch half replayed, half new, goes on from the last id
        more = numbered(CLEAN[:2], 1) + [
            dict(ins("items", {"id": 60}, {"id": 60, "name": "new"}), id=200),
            dict(ins("items", {"id": 61}, {"id": 61, "name": "new"}), id=201)]
        res = self.go.push("c1", more)
        self.assertEqual([r["status"] for r in res], ["applied"] * 4)
        self.assertEqual(self.rows(self.go)[0][("items", '{"id": 61}')],
                         {"id": 61, "name": "new", "qty": None})

    def test_what_one_go_leaves_to_one_at_a_time(self):
        # names syncd does not know, a key data gives in another text than
        # pk (the same key, or another): the batch goes one at a time
        muts = [
            '{"id":1,"table":"nums","op":"insert","pk":{"id":1.5},"data":{"id":1.50,"n":1}}',
            '{"id":2,"table":"nums","op":"insert","pk":{"id":2},"data":{"id":3,"n":2}}',
            '{"id":3,"table":"nums","op":"insert","pk":{"id":4},"data":{"id":4,"n":3}}',
            '{"id":4,"table":"items","op":"insert","pk":{"id":7},'
            '"data":{"id":7,"name":"g","nope":1}}',
            '{"id":5,"table":"nope","op":"insert","pk":{"id":1},"data":{"id":1}}',
            '{"id":6,"table":"nums","op":"update","pk":{"id":1.50},"data":{"n":4}}',
        ]
        got = self.check_alike(muts, raw=True)
        self.assertEqual([(r["status"], r.get("reason")) for r in got], [
            ("applied", None), ("rejected", "the row's key does not match pk"),
            ("applied", None), ("rejected", "table items has no column named nope"),
            ("rejected", "no such table: nope"), ("applied", None)])

    def test_a_key_in_another_text(self):
        # the same key (1.50 is 1.5) and another one (3 is not 2): read
        # back one at a time, as same_key does
        muts = [
            '{"id":1,"table":"nums","op":"insert","pk":{"id":1.5},"data":{"id":1.50,"n":1}}',
            '{"id":2,"table":"nums","op":"insert","pk":{"id":2},"data":{"id":3,"n":2}}',
            '{"id":3,"table":"nums","op":"insert","pk":{"id":4},"data":{"id":4,"n":3}}',
        ]
        got = self.check_alike(muts, raw=True)
        self.assertEqual([(r["status"], r.get("reason")) for r in got], [
            ("applied", None), ("rejected", "the row's key does not match pk"),
            ("applied", None)])

    def test_every_refusal_alone_in_a_batch_of_applied_ones(self):
        # each refusal after a write, between two applied inserts
        self.check_alike(numbered(MIXED[:2], 900))
        for i, bad in enumerate([MIXED[2], MIXED[3], MIXED[4], MIXED[6], MIXED[7]]):
            base = 1000 + 10 * i
            muts = numbered([ins("items", {"id": base}, {"id": base, "name": "ok"}), bad,
                             ins("items", {"id": base + 1}, {"id": base + 1, "name": "ok"})],
                            base)
            got = self.check_alike(muts)
            self.assertEqual([r["status"] for r in got], ["applied", "rejected", "applied"])


if __name__ == "__main__":
    unittest.main()
