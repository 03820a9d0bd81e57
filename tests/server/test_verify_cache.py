"""POST /verify's fingerprint cache (server/store/fp_cache.c), on SQLite and
PostgreSQL storage: once a table's cache exists, writes made behind syncd's
back (the sqlite3 module or psql, not /push) still show, and every answer
equals the one a scan gives -- a second syncd on the same database, started
with --verify-scan, is the oracle. The cache's own tables are looked at to
show that it is kept up from the keys written, not rebuilt."""
import json
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import unittest

from syncd_util import PgStore, SqliteStore, Syncd, pg_fresh_db


def row(i, rnd):
    """A todos row of mixed value classes (int64 limits, reals, blobs, NULLs)."""
    n = rnd.choice([None, 0, -1, 2 ** 63 - 1, -(2 ** 63), rnd.randrange(-10 ** 12, 10 ** 12)])
    r = rnd.choice([None, 0.1, -2.5, 1e300, rnd.random()])
    b = rnd.choice([None, {"$base64": "AP8="}, {"$base64": ""}])
    return {"id": "k%04d" % i, "title": "t%d" % i, "n": n, "r": r, "b": b,
            "note": rnd.choice([None, "", "\u00e9", 'q"\\'])}


# request shapes: the buckets path (depth + split <= 3), the rows' hash
# ranges (deeper), rows, every column named, fewer columns (the scan)
def shapes(prefix2):
    return [
        {}, {"split": 1}, {"split": 2}, {"split": 3},
        {"prefixes": ["0", "7", "f"], "split": 2},
        {"prefixes": sorted({prefix2, "00", "ff"}), "split": 2},
        {"prefixes": [prefix2], "split": 3},
        {"prefixes": [prefix2], "rows": True},
        {"prefixes": [prefix2[:1]], "rows": True},
        {"split": 2, "columns": ["id", "title", "n", "r", "b", "note", "slug", "rev",
                                 "updated_at", "extra"]},
        {"split": 2, "columns": ["id", "title", "n"]},
    ]


class CacheTests:
    """Mixin: self.s answers from the cache, self.o by a scan, one database."""

    def setUp(self):
        self.args = self.store_args()
        self.s = Syncd(self.backend, self.args)
        self.o = Syncd(self.backend, self.args, extra=["--verify-scan"])

    def tearDown(self):
        rcs = [(x.stop(), x.log()[-2000:]) for x in (self.s, self.o)]
        self.cleanup()
        for rc, log in rcs:
            self.assertEqual(rc, 0, log)

    def verify(self, server, **body):
        body.setdefault("client_id", "c")
        body.setdefault("table", "todos")
        status, _, data = server.request("POST", "/verify", body)
        self.assertEqual(status, 200, data)
        if "rows" in data:  # in no order the protocol pins
            data["rows"].sort(key=lambda r: json.dumps(r["pk"], sort_keys=True))
        return data

    def fill(self, n=300, seed=1):
        rnd = random.Random(seed)
        muts = [{"id": i + 1, "table": "todos", "op": "insert", "pk": {"id": "k%04d" % i},
                 "data": row(i, rnd)} for i in range(n)]
        res = self.s.push("w", muts)
        self.assertTrue(all(r["status"] == "applied" for r in res), res[:3])

    def same(self, table="todos"):
        """Every request shape answered alike by the cache and the scan."""
        whole = self.verify(self.s, table=table, split=2)
        # a populated 2-digit prefix, for the narrower shapes
        b = next((i for i, x in enumerate(whole["ranges"][0]["buckets"]) if x[0]), 0)
        for body in shapes("%02x" % b):
            with self.subTest(body=body):
                self.assertEqual(self.verify(self.s, table=table, **body),
                                 self.verify(self.o, table=table, **body))
        return whole

    def test_writes_behind_syncd_show_and_answers_equal_the_scan(self):
        self.fill()
        before = self.same()
        self.assertEqual(self.cache_rows(), before["count"])
        self.tamper("UPDATE todos SET note = 'by hand' WHERE id = 'k0001'",
                    "INSERT INTO todos(id, title, n) VALUES ('hand', 'by hand', 7)",
                    "DELETE FROM todos WHERE id = 'k0002'",
                    "UPDATE todos SET id = 'moved' WHERE id = 'k0003'")
        # the keys wait in the dirty table until a request reads them
        self.assertEqual(self.dirty_keys(), 5)
        after = self.same()
        self.assertEqual(after["cursor"], before["cursor"])  # the change log saw nothing
        self.assertNotEqual(after["ranges"], before["ranges"])
        self.assertEqual(after["count"], before["count"])  # +1 -1
        self.assertEqual(self.dirty_keys(), 0)
        self.assertEqual(self.cache_rows(), after["count"])
        # pushes go through the same triggers
        self.s.push("w", [{"id": 1000, "table": "todos", "op": "update", "pk": {"id": "k0004"},
                           "data": {"note": "pushed"}},
                          {"id": 1001, "table": "todos", "op": "delete", "pk": {"id": "k0005"}}])
        third = self.same()
        self.assertNotEqual(third["cursor"], after["cursor"])
        self.assertEqual(third["count"], after["count"] - 1)

    def test_each_answer_is_the_table_at_its_cursor(self):
        """Pushes go on while requests are answered, each request draining
        the keys the last pushes recorded: every answer is the table as of
        the cursor it reports (the head of its own snapshot), computed here
        with test_verify's independent hash from the pulled rows up to that
        version (inserts only, so a row's version is when it appeared)."""
        from test_verify import M64, key_hash, row_hash
        self.fill(50)
        self.verify(self.s, split=1)
        answers, errors, pushed = [], [], [0]

        def cursors():
            return len({a["cursor"] for a in answers})

        def pusher():
            # 120 pushes at least, more while the answers came at fewer
            # than 5 cursors (a busy machine answers fewer meanwhile)
            try:
                for i in range(2000):
                    if i >= 120 and cursors() > 4:
                        break
                    k = "c%04d" % i
                    self.s.push("p", [{"id": i + 1, "table": "todos", "op": "insert",
                                       "pk": {"id": k}, "data": {"id": k, "title": "c", "n": i}}])
                    pushed[0] = i + 1
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        t = threading.Thread(target=pusher)
        t.start()
        while t.is_alive():
            answers.append(self.verify(self.s, split=1))
        t.join()
        self.assertEqual(errors, [])
        changes, _ = self.s.pull_all("c")
        todos = [c for c in changes if c["table"] == "todos"]
        self.assertEqual(len(todos), 50 + pushed[0])
        seen = set()
        for a in answers:
            v = int(a["cursor"].rpartition("-")[2])
            seen.add(v)
            cnt, sums = [0] * 16, [0] * 16
            for c in todos:
                if c["version"] <= v:
                    b = key_hash(c["pk"]) >> 60
                    cnt[b] += 1
                    sums[b] = (sums[b] + row_hash(c["pk"], c["row"])) & M64
            self.assertEqual(a["count"], sum(cnt))
            self.assertEqual(a["ranges"][0]["buckets"],
                             [[n, "%016x" % x] for n, x in zip(cnt, sums)], v)
        self.assertGreater(len(seen), 3)  # answers at several cursors, mid-way

    def test_a_renamed_table_is_served(self):
        """A renamed table keeps the triggers made under its old name: they
        are made again under the new one, and the new name's writes show."""
        self.tamper("CREATE TABLE later(id INTEGER PRIMARY KEY, v TEXT)",
                    "INSERT INTO later VALUES (1, 'a'), (2, 'b')")
        self.same("later")
        self.tamper("ALTER TABLE later RENAME TO later2", "UPDATE later2 SET v = 'c' WHERE id = 2")
        self.assertEqual(self.same("later2")["count"], 2)
        self.tamper("INSERT INTO later2 VALUES (3, 'd')")
        self.assertEqual(self.same("later2")["count"], 3)
        self.tamper(self.empty_sql % "later2")
        self.assertEqual(self.same("later2")["count"], 0)

    def test_an_added_column_rebuilds_the_cache(self):
        """ALTER TABLE ADD COLUMN changes every row's hash and fires no
        trigger: the cache sees the columns changed and scans again."""
        self.fill(50)
        self.same()
        self.tamper("ALTER TABLE todos ADD COLUMN extra TEXT DEFAULT 'x'")
        after = self.same()
        self.assertEqual(after["count"], 50)

    def test_a_table_made_again_rebuilds_the_cache(self):
        """Dropping a table drops its triggers: writes to the new one are
        not recorded, so the cache is built again."""
        self.s.push("w", [{"id": i, "table": "items", "op": "insert",
                           "pk": {"list_id": 1, "pos": i}, "data": {"label": "l%d" % i}}
                          for i in range(1, 40)])
        self.same("items")
        self.tamper("DROP TABLE items",
                    "CREATE TABLE items(list_id %s NOT NULL REFERENCES lists(id),"
                    " pos INTEGER NOT NULL, label TEXT, PRIMARY KEY (list_id, pos))"
                    % self.list_id_type,
                    "INSERT INTO items VALUES (1, 1, 'again'), (1, 2, 'new')")
        self.assertEqual(self.same("items")["count"], 2)

    def test_a_table_added_later_is_served(self):
        self.tamper("CREATE TABLE later(id INTEGER PRIMARY KEY, v TEXT)",
                    "INSERT INTO later VALUES (1, 'a'), (2, 'b')")
        self.assertEqual(self.same("later")["count"], 2)
        self.tamper("UPDATE later SET v = 'c' WHERE id = 2")
        self.same("later")
        self.assertEqual(self.cache_rows("later"), 2)
        # dropped: its cache goes at the next build of another table's
        self.tamper("DROP TABLE later")
        self.same()
        self.assertEqual(self.cache_rows("later"), 0)


class SqliteCacheTest(SqliteStore, CacheTests, unittest.TestCase):
    list_id_type = "INTEGER"
    empty_sql = "DELETE FROM %s"

    def store_args(self):
        self.tmp = tempfile.mkdtemp(prefix="syncd-test-")
        return ["--db", os.path.join(self.tmp, "server.db")]

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def db(self):
        return sqlite3.connect(os.path.join(self.tmp, "server.db"), timeout=10)

    def tamper(self, *sql):
        db = self.db()
        for q in sql:
            db.execute(q)
        db.commit()
        db.close()

    def test_replace_under_another_key_shows(self):
        """A REPLACE that deletes the row holding a UNIQUE value fires no
        delete trigger (recursive_triggers is off): the BEFORE triggers
        record the keys it is about to delete."""
        self.fill(40)
        self.tamper("UPDATE todos SET slug = 's' || id")
        self.same()
        self.tamper("INSERT OR REPLACE INTO todos(id, title, slug) VALUES ('new', 'n', 'sk0007')",
                    "UPDATE OR REPLACE todos SET slug = 'sk0009' WHERE id = 'k0010'",
                    "CREATE UNIQUE INDEX todos_title ON todos(title COLLATE NOCASE)")
        self.assertEqual(self.same()["count"], 39)
        self.tamper("INSERT OR REPLACE INTO todos(id, title) VALUES ('newer', 'T12')")
        self.assertEqual(self.same()["count"], 39)

    def test_keys_a_set_null_cascade_writes_again(self):
        """A foreign key's action runs the triggers it fires under OR ABORT,
        which overrides their own OR IGNORE: a key already recorded, written
        again by an ON DELETE SET NULL, failed the push's delete ("UNIQUE
        constraint failed: _syncd_fp_dirty..."), refused though valid."""
        self.tamper("CREATE TABLE fold(id INTEGER PRIMARY KEY, name TEXT)",
                    "CREATE TABLE doc(id TEXT PRIMARY KEY, slug TEXT UNIQUE,"
                    " fold INTEGER REFERENCES fold(id) ON DELETE SET NULL)",
                    "INSERT INTO fold VALUES (1, 'a')", "INSERT INTO doc VALUES ('d1', 's', 1)")
        self.same("doc")
        self.same("fold")
        res = self.s.push("w", [
            {"id": 1, "table": "doc", "op": "update", "pk": {"id": "d1"}, "data": {"slug": "t"}},
            {"id": 2, "table": "fold", "op": "delete", "pk": {"id": 1}}])
        self.assertEqual([r["status"] for r in res], ["applied", "applied"], res)
        self.assertEqual(self.same("doc")["count"], 1)
        self.assertEqual(self.scalar("SELECT fold IS NULL FROM doc WHERE id = 'd1'"), 1)

    def scalar(self, sql):
        db = self.db()
        v = db.execute(sql).fetchone()[0]
        db.close()
        return v

    def cache_rows(self, table="todos"):
        return self.scalar("SELECT count(*) FROM _syncd_fp_rows WHERE tbl = '%s'" % table)

    def dirty_keys(self):
        return self.scalar("SELECT count(*) FROM _syncd_fp_dirty WHERE tbl = 'todos'")


class PgCacheTest(PgStore, CacheTests, unittest.TestCase):
    # not schema_pg.sql's BIGINT: the statements syncd keeps prepared that
    # read the table go with the catalog (pg_conn.c, stmts_fresh)
    list_id_type = "INTEGER"
    empty_sql = "TRUNCATE %s"

    def store_args(self):
        self.url = pg_fresh_db()
        return ["--pg", self.url]

    def cleanup(self):
        pass

    def psql(self, *sql):
        p = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", self.url]
                           + [a for q in sql for a in ("-c", q)],
                           check=True, capture_output=True, text=True)
        return p.stdout

    def tamper(self, *sql):
        self.psql(*sql)

    def cache_rows(self, table="todos"):
        return int(self.psql("SELECT count(*) FROM _syncd_fp_rows WHERE tbl = '%s'" % table))

    def dirty_keys(self):
        return int(self.psql("SELECT count(*) FROM _syncd_fp_dirty WHERE tbl = 'todos'"))

    def test_truncate_rebuilds_the_cache(self):
        """TRUNCATE fires no row trigger: its statement trigger forgets the
        table's cache."""
        self.fill(30)
        self.same()
        self.tamper("TRUNCATE todos")
        self.assertEqual(self.same()["count"], 0)

    def test_partitions_truncated_attached_detached(self):
        """A partition truncated by itself fires only its own TRUNCATE
        trigger, and rows come and go with ATTACH and DETACH without any
        row trigger: each shows."""
        self.tamper("CREATE TABLE parts(id BIGINT PRIMARY KEY, v TEXT) PARTITION BY RANGE (id)",
                    "CREATE TABLE parts_a PARTITION OF parts FOR VALUES FROM (0) TO (100)",
                    "CREATE TABLE parts_b PARTITION OF parts FOR VALUES FROM (100) TO (200)",
                    "INSERT INTO parts SELECT x, 'v' || x FROM generate_series(1, 150) x")
        self.assertEqual(self.same("parts")["count"], 150)
        self.tamper("UPDATE parts SET v = 'by hand' WHERE id = 120")
        self.same("parts")
        self.tamper("TRUNCATE parts_a")
        self.assertEqual(self.same("parts")["count"], 51)
        self.tamper("CREATE TABLE parts_c(id BIGINT PRIMARY KEY, v TEXT)",
                    "INSERT INTO parts_c SELECT x, 'c' FROM generate_series(200, 209) x",
                    "ALTER TABLE parts ATTACH PARTITION parts_c FOR VALUES FROM (200) TO (300)")
        self.assertEqual(self.same("parts")["count"], 61)
        self.tamper("ALTER TABLE parts DETACH PARTITION parts_b")
        self.assertEqual(self.same("parts")["count"], 10)

    def test_two_syncd_verifying_while_pushing(self):
        """Two syncd over one database verify while clients push through
        both and psql writes behind them: no request fails, and once the
        writes stop both answer what a scan answers."""
        self.fill(200)
        other = Syncd("pg", self.args)
        self.addCleanup(other.stop)
        errors = []

        def pusher(server, cid, base):
            try:
                for j in range(15):
                    server.push(cid, [{"id": j * 10 + m + 1, "table": "todos", "op": "update",
                                       "pk": {"id": "k%04d" % ((base + j * 7 + m) % 200)},
                                       "data": {"note": "%s %d" % (cid, j)}}
                                      for m in range(5)])
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        def verifier(server):
            try:
                for _ in range(15):
                    for body in ({"split": 2}, {"prefixes": ["3"], "split": 2}):
                        status, _, data = server.request(
                            "POST", "/verify", dict(body, client_id="c", table="todos"))
                        if status != 200:
                            errors.append((status, data))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        def by_hand():
            try:
                for j in range(10):
                    self.psql("UPDATE todos SET title = 'hand %d' WHERE id = 'k%04d'" % (j, j))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        threads = [threading.Thread(target=pusher, args=(self.s, "p1", 0)),
                   threading.Thread(target=pusher, args=(other, "p2", 100)),
                   threading.Thread(target=verifier, args=(self.s,)),
                   threading.Thread(target=verifier, args=(other,)),
                   threading.Thread(target=by_hand)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.same()
        self.assertEqual(self.verify(other, split=2), self.verify(self.o, split=2))
        self.assertEqual(self.dirty_keys(), 0)
        self.assertEqual(other.stop(), 0)


if __name__ == "__main__":
    unittest.main()
