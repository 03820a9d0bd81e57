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
import subprocess
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
-- the statements that insert into items (no key: not synced)
CREATE TABLE stmts(tbl text);
CREATE FUNCTION count_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO stmts VALUES (TG_TABLE_NAME);
  RETURN NULL;
END $$;
CREATE TRIGGER items_stmts AFTER INSERT ON items FOR EACH STATEMENT EXECUTE FUNCTION count_stmt();
-- a row a trigger skips, or writes under another key
CREATE FUNCTION items_bend() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.name = 'skip' THEN RETURN NULL; END IF;
  NEW.id := NEW.id + 500;
  RETURN NEW;
END $$;
CREATE TRIGGER items_bend BEFORE INSERT ON items FOR EACH ROW
  WHEN (NEW.name IN ('skip', 'rekey')) EXECUTE FUNCTION items_bend();
-- each node a push inserts gets a shadow node in the same table, written
-- by a trigger; deleting a node cascades to its shadow
CREATE TABLE nodes(id bigint PRIMARY KEY, parent bigint REFERENCES nodes(id) ON DELETE CASCADE,
                   label text);
CREATE FUNCTION nodes_shadow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id < 1000 THEN
    INSERT INTO nodes VALUES (NEW.id + 1000, NEW.id, 'shadow of ' || NEW.label);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER nodes_shadow AFTER INSERT ON nodes FOR EACH ROW EXECUTE FUNCTION nodes_shadow();
-- types whose values are checked to read back as sent (_syncd_exact)
CREATE TABLE typed(id integer PRIMARY KEY, amount numeric(6,2), code char(3), day date, doc jsonb,
                   bin bytea, f real);
-- no trigger, no foreign key to itself: runs of inserts go in one statement
CREATE TABLE plain(id bigint PRIMARY KEY, name text NOT NULL UNIQUE,
                   qty integer CHECK (qty >= 0), parent bigint REFERENCES parent(id));
-- a foreign key to itself: a row may refer to one inserted after it
CREATE TABLE tree(id bigint PRIMARY KEY, up bigint REFERENCES tree(id));
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

    def sql(self, s, query):
        """query's one value on s's database."""
        return subprocess.run(["psql", "-X", "-q", "-A", "-t", s.store_args[1], "-c", query],
                              check=True, capture_output=True, text=True).stdout.strip()

    def statements(self, s, table):
        """The statements of the last transaction that wrote rows of table
        (their command ids)."""
        return int(self.sql(s, "SELECT count(DISTINCT cmin::text) FROM %s"
                               " WHERE xmin::text = (SELECT max(xmin::text::bigint)::text FROM %s)"
                            % (table, table)))

    def test_a_run_of_inserts_is_one_statement(self):
        # the inserts into one table naming the same columns, between other
        # mutations: one INSERT for the run, one for the insert naming other
        # columns, one for the one after the update
        muts = numbered([ins("plain", {"id": i}, {"id": i, "name": "n%d" % i, "qty": i})
                         for i in range(1, 6)] +
                        [ins("plain", {"id": 6}, {"id": 6, "name": "n6"}),
                         upd("plain", {"id": 1}, {"qty": 9}),
                         ins("plain", {"id": 7}, {"id": 7, "name": "n7", "qty": 7})])
        got = self.check_alike(muts)
        self.assertEqual([r["status"] for r in got], ["applied"] * 8)
        self.assertEqual(self.statements(self.go, "plain"), 4)

    def test_a_table_the_verify_cache_watches_keeps_its_runs(self):
        # a /verify of plain makes the cache's row trigger _syncd_fp on it
        # (fp_pg.c), which records each row alike in one statement or many:
        # a run of inserts stays one statement (it was one each since)
        self.check_alike(numbered([ins("plain", {"id": 1}, {"id": 1, "name": "a"})]))
        for s in (self.go, self.ref):
            status, _, data = s.request("POST", "/verify", {"client_id": "v", "table": "plain"})
            self.assertEqual(status, 200, data)
        self.assertEqual(self.sql(self.go, "SELECT count(*) FROM pg_trigger"
                                           " WHERE tgname = '_syncd_fp'"
                                           " AND tgrelid = 'plain'::regclass"), "1")
        got = self.check_alike(numbered([ins("plain", {"id": i}, {"id": i, "name": "n%d" % i})
                                         for i in range(2, 7)], 2))
        self.assertEqual([r["status"] for r in got], ["applied"] * 5)
        self.assertEqual(self.statements(self.go, "plain"), 1)
        # and the cache saw each row: both answer the same six rows
        answers = []
        for s in (self.go, self.ref):
            status, _, data = s.request("POST", "/verify", {"client_id": "v", "table": "plain"})
            self.assertEqual(status, 200, data)
            answers.append((data["count"], data["ranges"]))
        self.assertEqual(answers[0], answers[1])
        self.assertEqual(answers[0][0], 6)

    def test_a_table_with_triggers_takes_its_inserts_one_statement_each(self):
        # items' statement trigger counts its statements: as many as one
        # at a time makes (its AFTER triggers and foreign keys could tell
        # one statement from many)
        # (the second batch after syncd learned it, the first before)
        for first in (1, 11):
            got = self.check_alike(numbered([ins("items", {"id": i}, {"id": i, "name": "n%d" % i})
                                             for i in range(first, first + 5)], first))
            self.assertEqual([r["status"] for r in got], ["applied"] * 5)
        self.assertEqual(int(self.sql(self.go, "SELECT count(*) FROM stmts")),
                         int(self.sql(self.ref, "SELECT count(*) FROM stmts")))

    def test_a_row_referring_to_one_inserted_after_it_is_put_off(self):
        # tree.up is checked at each statement: row 3, refused before row 2
        # is there, runs again after the rest of the batch (push.c,
        # "Putting off"), so this one batch and the same mutations pushed
        # one at a time answer differently; row 5's parent never comes
        got = self.go.push("c1", numbered([
            ins("tree", {"id": 1}, {"id": 1}),
            ins("tree", {"id": 3}, {"id": 3, "up": 2}),
            ins("tree", {"id": 2}, {"id": 2, "up": 1}),
            ins("tree", {"id": 4}, {"id": 4, "up": 2}),
            ins("tree", {"id": 5}, {"id": 5, "up": 9}),
        ]))
        self.assertEqual([r["status"] for r in got], ["applied"] * 4 + ["rejected"], got)
        live = self.rows(self.go)[0]
        self.assertEqual(sorted(json.loads(k)["id"] for (t, k), row in live.items()
                                if t == "tree" and row), [1, 2, 3, 4])

    def test_a_refused_row_in_a_run_answers_as_one_at_a_time(self):
        self.check_alike(numbered([ins("plain", {"id": 1}, {"id": 1, "name": "a"})]))
        for first, bad in ((10, ins("plain", {"id": 1}, {"id": 1, "name": "dup key"})),
                           (20, ins("plain", {"id": 21}, {"id": 21, "name": "a"})),
                           (30, ins("plain", {"id": 31}, {"id": 31, "name": "x", "qty": -1})),
                           (40, ins("plain", {"id": 41}, {"id": 41, "name": None})),
                           (50, ins("plain", {"id": 51}, {"id": 51, "name": "y", "parent": 9}))):
            muts = numbered([ins("plain", {"id": first}, {"id": first, "name": "ok%d" % first}),
                             bad,
                             ins("plain", {"id": first + 2}, {"id": first + 2,
                                                              "name": "ok%d" % (first + 2)})],
                            first)
            got = self.check_alike(muts)
            self.assertEqual([r["status"] for r in got], ["applied", "rejected", "applied"])
        # and a run whose rows are refused by each other: the same key twice
        got = self.check_alike(numbered([ins("plain", {"id": 60}, {"id": 60, "name": "p"}),
                                         ins("plain", {"id": 60}, {"id": 60, "name": "q"}),
                                         ins("plain", {"id": 61}, {"id": 61, "name": "p"})], 60))
        self.assertEqual([r["status"] for r in got], ["applied", "rejected", "rejected"])

    def test_a_key_inserted_then_changed_in_one_batch_keeps_the_order(self):
        got = self.check_alike(numbered([
            ins("plain", {"id": 1}, {"id": 1, "name": "a", "qty": 1}),
            ins("plain", {"id": 2}, {"id": 2, "name": "b", "qty": 2}),
            upd("plain", {"id": 1}, {"name": "a2"}),
            ins("child", {"id": 40}, {"id": 40, "parent": 2}),
            ins("child", {"id": 41}, {"id": 41, "parent": 2}),
            ins("plain", {"id": 3}, {"id": 3, "name": "c", "qty": 3}),
            dele("plain", {"id": 2}),
            ins("plain", {"id": 2}, {"id": 2, "name": "b again", "qty": 4}),
            ins("plain", {"id": 4}, {"id": 4, "name": "b", "qty": 5}),
            dele("parent", {"id": 2}),
            ins("child", {"id": 42}, {"id": 42, "parent": 1}),
            ins("child", {"id": 43}, {"id": 43, "parent": 2}),
        ]))
        self.assertEqual([r["status"] for r in got], ["applied"] * 11 + ["rejected"])
        live, _ = self.rows(self.go)
        self.assertEqual(live[("plain", '{"id": 1}')],
                         {"id": 1, "name": "a2", "qty": 1, "parent": None})
        self.assertEqual(live[("plain", '{"id": 2}')],
                         {"id": 2, "name": "b again", "qty": 4, "parent": None})
        self.assertNotIn(("child", '{"id": 40}'), live)

    def test_a_row_a_trigger_skips_or_rekeys_answers_as_one_at_a_time(self):
        # (items has triggers: its inserts go one statement each)
        got = self.check_alike(numbered([
            ins("items", {"id": 1}, {"id": 1, "name": "a"}),
            ins("items", {"id": 2}, {"id": 2, "name": "skip"}),
            ins("items", {"id": 3}, {"id": 3, "name": "rekey"}),
            ins("items", {"id": 4}, {"id": 4, "name": "d"}),
        ]))
        self.assertEqual([(r["status"], r.get("reason")) for r in got], [
            ("applied", None), ("applied", None),
            ("rejected", "the row's key does not match pk"), ("applied", None)])

    def test_rows_a_trigger_writes_beside_a_batch_are_logged_after_its_own(self):
        got = self.check_alike(numbered(
            [ins("nodes", {"id": i}, {"id": i, "label": "n%d" % i}) for i in (1, 2, 3)] +
            [dele("nodes", {"id": 2}), ins("nodes", {"id": 4}, {"id": 4, "label": "n4"})]))
        self.assertEqual([r["status"] for r in got], ["applied"] * 5)
        # each key once, in the order of its last change: the batch's own
        # rows as it wrote them, then the rows its trigger wrote (in no
        # given order); 2 and its shadow, 1002, deleted by the cascade,
        # are no rows of an initial sync
        changes, _ = self.go.pull_all("reader")
        ids = [c["pk"]["id"] for c in changes if c["table"] == "nodes"]
        self.assertEqual(ids[:3], [1, 3, 4])
        self.assertEqual(sorted(ids[3:]), [1001, 1003, 1004])
    def test_a_run_of_values_checked_to_read_back_answers_as_one_at_a_time(self):
        def row(i, amount="1.25", day='"2026-01-02"'):
            return ('{"id":%d,"table":"typed","op":"insert","pk":{"id":%d},"data":{"id":%d,'
                    '"amount":%s,"code":"ab%d","day":%s,"doc":"{\\"a\\": %d}",'
                    '"bin":{"$base64":"AAE="},"f":1.5}}' % (i, i, i, amount, i, day, i))
        got = self.check_alike([row(1), row(2), row(3)], raw=True)
        self.assertEqual([r["status"] for r in got], ["applied"] * 3)
        self.assertEqual(self.statements(self.go, "typed"), 1)
        # a value the column would store as another text, in the middle
        got = self.check_alike([row(4), row(5, amount="1.257"), row(6, day='"2026-1-2"'),
                                row(7)], raw=True)
        self.assertEqual([r["status"] for r in got],
                         ["applied", "rejected", "rejected", "applied"])

    def test_the_function_of_the_version_before_in_place_fails_no_write(self):
        # a syncd of the version before, sharing the database, puts its
        # _syncd_touch back at its start: it takes this one's rows as
        # others' (logged again), it must not fail to read syncd.own
        self.sql(self.go, OLD_TOUCH)
        got = self.check_alike(numbered([
            ins("plain", {"id": 1}, {"id": 1, "name": "a"}),
            ins("plain", {"id": 2}, {"id": 2, "name": "b"}),
            upd("plain", {"id": 1}, {"qty": 3}),
            dele("parent", {"id": 1}),
        ]))
        self.assertEqual([r["status"] for r in got], ["applied"] * 4)


# _syncd_touch and its trigger as syncd made them before syncd.own named
# the table alone: one own key per statement, told apart in the function
OLD_TOUCH = """
CREATE OR REPLACE FUNCTION _syncd_touch() RETURNS trigger LANGUAGE plpgsql AS $f$
 DECLARE t text := TG_TABLE_NAME; own text := current_setting('syncd.own', true);
 o jsonb; r jsonb;
 BEGIN
 IF own IS NULL OR own = '' THEN RETURN NULL; END IF;
 IF pg_partition_root(TG_RELID) IS NOT NULL THEN
 SELECT relname INTO t FROM pg_class WHERE oid = pg_partition_root(TG_RELID); END IF;
 r := CASE TG_OP WHEN 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END;
 IF pg_trigger_depth() = 1 THEN o := own::jsonb;
 IF o->>'t' = t AND r @> (o->'k') THEN RETURN NULL; END IF; END IF;
 IF TG_OP = 'UPDATE' THEN INSERT INTO pg_temp._syncd_touched VALUES (t, to_jsonb(OLD));
 END IF;
 INSERT INTO pg_temp._syncd_touched VALUES (t, r);
 RETURN NULL;
 END $f$;
CREATE OR REPLACE TRIGGER _syncd_touch AFTER INSERT OR UPDATE OR DELETE ON plain
  FOR EACH ROW EXECUTE FUNCTION _syncd_touch();
CREATE OR REPLACE TRIGGER _syncd_touch AFTER INSERT OR UPDATE OR DELETE ON parent
  FOR EACH ROW EXECUTE FUNCTION _syncd_touch();
CREATE OR REPLACE TRIGGER _syncd_touch AFTER INSERT OR UPDATE OR DELETE ON child
  FOR EACH ROW EXECUTE FUNCTION _syncd_touch();
"""


if __name__ == "__main__":
    unittest.main()
