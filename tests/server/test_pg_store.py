"""Values and names on PostgreSQL storage (issue 19, items 2 and 3).

Every value class of the protocol is pushed into every kind of column, on
SQLite storage and on PostgreSQL storage, and what /pull returns is
compared: PostgreSQL storage keeps a value's type and bits exactly or
refuses the mutation with a reason naming the column and its type
(docs/PROTOCOL.md, "PostgreSQL values"); where it applies a value, SQLite
storage returns the same (but booleans, which PostgreSQL prints as
true/false). Names: syncd warns at startup about names with upper-case
letters, and a quoted mixed-case table syncs under its exact name."""
import json
import math
import os
import shutil
import tempfile
import unittest

from syncd_util import Syncd, pg_fresh_db, pg_url

# (column, PostgreSQL type, SQLite type)
COLUMNS = [
    ("i2", "smallint", "smallint"),
    ("i4", "integer", "integer"),
    ("i8", "bigint", "bigint"),
    ("f4", "real", "real"),
    ("f8", "double precision", "double precision"),
    ("num", "numeric", "numeric"),
    ("num62", "numeric(6,2)", "numeric(6,2)"),
    ("bo", "boolean", "boolean"),
    ("tx", "text", "text"),
    ("vc", "varchar(3)", "varchar(3)"),
    ("ch", "char(3)", "char(3)"),
    ("by", "bytea", "blob"),
    ("js", "jsonb", "text"),
    ("dt", "date", "text"),
]

# (name, the value as JSON text): every class sync_val reads
VALUES = [
    ("null", "null"),
    ("int", "42"),
    ("int_2p53_plus_1", "9007199254740993"),
    ("int_min", "-9223372036854775808"),
    ("int_i2_max", "32767"),
    ("int_i2_over", "32768"),
    ("int_i4_under", "-2147483649"),
    ("int_nzero", "-0"),
    ("true", "true"),
    ("real", "1.5"),
    ("tenth", "0.1"),
    ("two", "2.0"),
    ("big_real", "1e+20"),
    ("inf", "1e999"),
    ("ninf", "-1e999"),
    ("nzero", "-0.0"),
    ("text", '"abc"'),
    ("text_long", '"hello"'),
    ("text_escaped", '"a\\u00e9\\n"'),
    ("backslash", '"\\\\x41"'),
    ("digits", '"12"'),
    ("date", '"2026-01-02"'),
    ("date_loose", '"2026-1-2"'),
    ("json_text", '"{\\"a\\": 1}"'),
    ("blob", '{"$base64":"AAE="}'),
]

INTS = {"i2": (-32768, 32767), "i4": (-2**31, 2**31 - 1), "i8": (-2**63, 2**63 - 1)}


def typed(text):
    """A JSON value as (class, value): reals and integers stay apart and
    -0.0 keeps its sign."""
    return json.loads(text, parse_float=lambda s: ("real", float(s), math.copysign(1, float(s))),
                      parse_int=lambda s: ("int", int(s)))


def real(x):
    return ("real", x, math.copysign(1, x))


def expected_pg(col, name, text):
    """What PostgreSQL storage answers for value `text` into column col:
    ("applied", the value /pull returns) or ("rejected", None)."""
    v = typed(text)
    if v is None:
        return "applied", None
    if v is True:
        v = ("int", 1)
    kind = v[0] if isinstance(v, tuple) else "blob" if isinstance(v, dict) else "text"
    if col in INTS:
        lo, hi = INTS[col]
        ok = kind == "int" and lo <= v[1] <= hi
        return ("applied", v) if ok else ("rejected", None)
    if col in ("f4", "f8"):
        if kind == "int":
            x = float(v[1])
            ok = int(x) == v[1] and (col == "f8" or v[1] in (42, 1, -2**63, 32767, 32768, 0))
            return ("applied", real(x)) if ok else ("rejected", None)
        if kind == "real":
            ok = col == "f8" or v[1] in (1.5, 2.0, math.inf, -math.inf, 0.0)
            return ("applied", v) if ok else ("rejected", None)
        return "rejected", None
    if col == "num":
        if kind == "int" or (kind == "real" and not (v[1] == 0 and v[2] < 0)):
            return "applied", v
        return "rejected", None
    if col == "num62":
        ok = kind == "real" and name in ("real", "tenth", "two")
        return ("applied", v) if ok else ("rejected", None)
    if col == "bo":
        ok = kind == "int" and v[1] in (0, 1)
        return ("applied", v[1] == 1) if ok else ("rejected", None)
    if col == "by":
        return ("applied", v) if kind == "blob" else ("rejected", None)
    if kind != "text":
        return "rejected", None
    exact = {"tx": True, "vc": len(v) <= 3, "ch": len(v) == 3,
             "js": name in ("json_text", "digits"), "dt": name == "date"}[col]
    return ("applied", v) if exact else ("rejected", None)


class ValueMatrix(unittest.TestCase):
    """One syncd per storage; each (column, value) is one insert of its own
    row, so one refusal never hides another."""

    @classmethod
    def setUpClass(cls):
        pg_url()
        cls.tmp = tempfile.mkdtemp(prefix="syncd-test-")
        cls.results, cls.rows = {}, {}
        for backend in ("sqlite", "pg"):
            cols = ", ".join(f"{c} {pgt if backend == 'pg' else st}" for c, pgt, st in COLUMNS)
            path = os.path.join(cls.tmp, backend + ".sql")
            with open(path, "w") as f:
                f.write(f"CREATE TABLE m(id bigint PRIMARY KEY, {cols});\n")
            args = (["--pg", pg_fresh_db()] if backend == "pg"
                    else ["--db", os.path.join(cls.tmp, "server.db")])
            s = Syncd(backend, args, schema=path)
            try:
                muts, key = [], 0
                for c, _, _ in COLUMNS:
                    for name, text in VALUES:
                        key += 1
                        data = json.loads(f'{{"id": {key}, "{c}": {text}}}',
                                          parse_float=str, parse_int=str)
                        muts.append((c, name, text, key, data))
                body = '{"client_id":"w","mutations":[' + ",".join(
                    f'{{"id":{k},"table":"m","op":"insert","pk":{{"id":{k}}},'
                    f'"data":{{"id":{k},"{c}":{text}}}}}'
                    for c, _, text, k, _ in muts) + "]}"
                status, _, raw = s.request("POST", "/push", body, raw=True)
                assert status == 200, raw
                res = json.loads(raw)["results"]
                status, _, raw = s.request("GET", "/pull?client_id=r&limit=10000", raw=True)
                assert status == 200, raw
                page = typed(raw.decode())
                rows = {ch["pk"]["id"][1]: ch["row"] for ch in page["changes"]}
                for (c, name, text, k, _), r in zip(muts, res):
                    cls.results[backend, c, name] = r
                    cls.rows[backend, c, name] = rows.get(k, {}).get(c, "absent")
            finally:
                s.stop()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_pg_stores_exactly_or_refuses_naming_column_and_type(self):
        # as PostgreSQL names them (format_type)
        types = {c: pgt for c, pgt, _ in COLUMNS}
        types.update(vc="character varying(3)", ch="character(3)")
        for c, _, _ in COLUMNS:
            for name, text in VALUES:
                with self.subTest(column=c, value=name):
                    r = self.results["pg", c, name]
                    status, value = expected_pg(c, name, text)
                    self.assertEqual(r["status"], status, r)
                    if status == "applied":
                        self.assertEqual(self.rows["pg", c, name], value)
                    else:
                        self.assertTrue(r["reason"].startswith(f"column {c} is {types[c]}"),
                                        r["reason"])

    # Where SQLite storage itself changes a value: a REAL column keeps -0.0
    # as 0.0 (SQLite writes integral reals as integers), and NUMERIC
    # affinity turns the real 2.0 into the integer 2. PostgreSQL storage
    # keeps both (the test above).
    SQLITE_CHANGES = {("f4", "nzero"), ("f8", "nzero"), ("num", "two"), ("num62", "two")}

    def test_what_pg_applies_sqlite_returns_alike(self):
        for c, _, _ in COLUMNS:
            for name, _ in VALUES:
                if (self.results["pg", c, name]["status"] != "applied"
                        or (c, name) in self.SQLITE_CHANGES):
                    continue
                with self.subTest(column=c, value=name):
                    self.assertEqual(self.results["sqlite", c, name]["status"], "applied")
                    pg, lite = self.rows["pg", c, name], self.rows["sqlite", c, name]
                    if c == "bo" and pg is not None:  # true/false against 1/0
                        pg = ("int", int(pg))
                    self.assertEqual(pg, lite)

    def test_infinity_and_negative_zero_round_trip_as_sqlite_writes_them(self):
        for c in ("f4", "f8"):
            self.assertEqual(self.rows["pg", c, "inf"], real(math.inf))
            self.assertEqual(self.rows["pg", c, "ninf"], real(-math.inf))
            self.assertEqual(self.rows["pg", c, "nzero"], real(-0.0))
            self.assertEqual(self.rows["pg", c, "nzero"][2], -1)

    def test_blob_and_bytea_only_meet_each_other(self):
        reason = self.results["pg", "tx", "blob"]["reason"]
        self.assertEqual(reason, "column tx is text and cannot hold a blob")
        for name in ("backslash", "int", "text"):
            reason = self.results["pg", "by", name]["reason"]
            self.assertTrue(reason.startswith("column by is bytea and cannot hold"), reason)
        self.assertEqual(self.rows["pg", "by", "blob"], {"$base64": "AAE="})


class OneSchema(unittest.TestCase):
    """A syncd on a fresh PostgreSQL database with the schema DDL."""
    DDL = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="syncd-test-")
        path = os.path.join(self.tmp, "s.sql")
        with open(path, "w") as f:
            f.write(self.DDL)
        self.s = Syncd("pg", ["--pg", pg_fresh_db()], schema=path)

    def tearDown(self):
        rc = self.s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.assertEqual(rc, 0)


class BlobKey(OneSchema):
    """A blob sent for a text key is refused, not stored as the JSON text
    of the blob (the client's key would differ from the server's)."""
    DDL = "CREATE TABLE k(id text PRIMARY KEY, v bigint);\n"

    def test_blob_into_a_text_key_is_refused(self):
        blob = {"$base64": "AAE="}
        res = self.s.push("c", [{"id": 1, "table": "k", "op": "insert", "pk": {"id": blob},
                                 "data": {"id": blob, "v": 1}}])
        self.assertEqual(res[0]["status"], "rejected", res)
        self.assertEqual(res[0]["reason"], "column id is text and cannot hold a blob")
        changes, _ = self.s.pull_all("r")
        self.assertEqual(changes, [])


class EscapedNames(OneSchema):
    """A member whose name is written with escapes names its column as the
    plain name does, in a batch's run of inserts and alone."""
    DDL = "CREATE TABLE k(id text PRIMARY KEY, v bigint, w text);\n"

    def test_escaped_names_write_their_columns(self):
        def body(first, n):
            return ('{"client_id":"c","mutations":[' + ",".join(
                '{"id":%d,"table":"k","op":"insert","pk":{"\\u0069d":"k%d"},'
                '"data":{"id":"k%d","\\u0076":%d,"w":"x\\u00e9"}}' % (i, i, i, i)
                for i in range(first, first + n)) + "]}")
        for first, n in ((1, 3), (4, 1)):
            status, _, raw = self.s.request("POST", "/push", body(first, n), raw=True)
            self.assertEqual(status, 200, raw)
            res = json.loads(raw)["results"]
            self.assertEqual([r["status"] for r in res], ["applied"] * n, res)
        changes, _ = self.s.pull_all("r")
        rows = sorted((c["row"]["id"], c["row"]["v"], c["row"]["w"]) for c in changes)
        self.assertEqual(rows, [("k%d" % i, i, "x\u00e9") for i in range(1, 5)])


class MixedCaseNames(unittest.TestCase):
    """A quoted mixed-case table syncs under its exact names; syncd names
    it in a startup warning."""

    def setUp(self):
        pg_url()
        self.tmp = tempfile.mkdtemp(prefix="syncd-test-")
        path = os.path.join(self.tmp, "s.sql")
        with open(path, "w") as f:
            f.write('CREATE TABLE "Todos"("Id" text PRIMARY KEY, "Title" text);\n'
                    "CREATE TABLE plain(id bigint PRIMARY KEY, label text);\n")
        self.s = Syncd("pg", ["--pg", pg_fresh_db()], schema=path)

    def tearDown(self):
        rc = self.s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.assertEqual(rc, 0, self.s.log()[-2000:])

    def test_startup_warning_names_the_mixed_case_names(self):
        log = self.s.log()
        line = [x for x in log.splitlines() if x.startswith("syncd: warning:")]
        self.assertEqual(len(line), 1, log)
        self.assertIn("table Todos (columns Id, Title)", line[0])
        self.assertIn("exactly", line[0])
        self.assertNotIn("plain", line[0])

    def test_exact_names_sync(self):
        res = self.s.push("c", [{"id": 1, "table": "Todos", "op": "insert",
                                 "pk": {"Id": "a"}, "data": {"Id": "a", "Title": "x"}},
                                {"id": 2, "table": "todos", "op": "insert",
                                 "pk": {"id": "b"}, "data": {"id": "b", "title": "y"}}])
        self.assertEqual(res[0]["status"], "applied", res)
        self.assertEqual(res[0]["row"], {"Id": "a", "Title": "x"})
        self.assertEqual(res[1], {"id": 2, "status": "rejected", "reason": "no such table: todos"})
        changes, _ = self.s.pull_all("r")
        self.assertEqual([(c["table"], c["row"]) for c in changes],
                         [("Todos", {"Id": "a", "Title": "x"})])


class UnquotedMixedCaseNames(unittest.TestCase):
    """CREATE TABLE Todos(Id ...) unquoted makes todos(id) on PostgreSQL:
    syncd names the schema's mixed-case words at startup; on SQLite, where
    names compare case-insensitively, it warns of nothing."""

    SCHEMA = ("-- a Todos list; 'Todos' in a string and $$Title$$ are no names\n"
              "CREATE TABLE Todos(Id text PRIMARY KEY, Title text DEFAULT 'Todos');\n")
    PG_ONLY = "COMMENT ON TABLE Todos IS $$Title$$;\n"

    def start(self, backend):
        tmp = tempfile.mkdtemp(prefix="syncd-test-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "s.sql")
        with open(path, "w") as f:
            f.write(self.SCHEMA + (self.PG_ONLY if backend == "pg" else ""))
        args = ["--pg", pg_fresh_db()] if backend == "pg" else ["--db", os.path.join(tmp, "db")]
        s = Syncd(backend, args, schema=path)
        self.addCleanup(s.stop)
        return s

    def test_pg_warns_and_takes_the_folded_names(self):
        pg_url()
        s = self.start("pg")
        lines = [x for x in s.log().splitlines() if x.startswith("syncd: warning:")]
        self.assertEqual(len(lines), 1, s.log())
        self.assertIn("Todos (table todos), Id (column todos.id), Title (column todos.title).",
                      lines[0])
        res = s.push("c", [{"id": 1, "table": "Todos", "op": "insert", "pk": {"Id": "a"},
                            "data": {"Id": "a"}},
                           {"id": 2, "table": "todos", "op": "insert", "pk": {"id": "a"},
                            "data": {"id": "a", "title": "x"}}])
        self.assertEqual([r["status"] for r in res], ["rejected", "applied"], res)

    def test_sqlite_warns_of_nothing(self):
        s = self.start("sqlite")
        self.assertNotIn("warning", s.log())
        res = s.push("c", [{"id": 1, "table": "Todos", "op": "insert", "pk": {"Id": "a"},
                            "data": {"Id": "a", "Title": "x"}}])
        self.assertEqual(res[0]["status"], "applied", res)


if __name__ == "__main__":
    unittest.main()
