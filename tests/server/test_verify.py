"""POST /verify (docs/PROTOCOL.md): fingerprints of a synced table's rows,
on SQLite and PostgreSQL storage. The row hash is recomputed here from the
rows /pull returns, by an independent implementation of its definition, so
both storages are held to the same numbers (int64 limits, REAL bits, BLOBs,
NULLs, text), and writes that bypass syncd's change log show."""
import base64
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import tempfile
import unittest

from syncd_util import OneSyncd, PgStore, SqliteStore, Syncd

M64 = (1 << 64) - 1


def mix(x):
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def fnv(h, data):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def column(name, value):
    if value is None:
        tag, payload = b"n", b""
    elif isinstance(value, bool):
        tag, payload = b"i", struct.pack("<q", int(value))
    elif isinstance(value, int):
        tag, payload = b"i", struct.pack("<q", value)
    elif isinstance(value, float):
        tag, payload = b"r", struct.pack("<d", value)
    elif isinstance(value, dict) and list(value) == ["$base64"]:
        tag, payload = b"b", base64.b64decode(value["$base64"])
    else:
        tag, payload = b"s", value.encode()
    h = fnv(0xCBF29CE484222325, name.encode() + b"\0" + tag + payload)
    return mix(h)


def key_hash(pk):
    return mix((sum(column(k, v) for k, v in pk.items()) & M64) ^ 0x6B6579)


def row_hash(pk, row):
    rs = sum(column(k, v) for k, v in row.items()) & M64
    return mix(key_hash(pk) ^ mix((rs + 0x726F77) & M64))


# (id, n, r as JSON text, b, note): the value classes of the protocol
ROWS = [
    ("max", "9223372036854775807", "0.1", {"$base64": "AP8="}, "x"),
    ("min", "-9223372036854775808", "1.7976931348623157e+308", None, None),
    ("tiny", "0", "5e-324", {"$base64": ""}, "\u00e9\U0001F600"),
    ("inf", "-1", "1e999", None, 'quote " and \\'),
    ("ninf", "9007199254740993", "-1e999", {"$base64": "AAEC"}, ""),
    ("nulls", "null", "null", None, None),
    ("neg", "-42", "-2.5", None, "n"),
]


def push_body(rows):
    muts = []
    for i, (id_, n, r, b, note) in enumerate(rows, 1):
        data = '{"id":%s,"title":"t %s","n":%s,"r":%s,"b":%s,"note":%s}' % (
            json.dumps(id_), id_, n, r, json.dumps(b), json.dumps(note))
        muts.append('{"id":%d,"table":"todos","op":"insert","pk":{"id":%s},"data":%s}'
                    % (i, json.dumps(id_), data))
    return '{"client_id":"w","mutations":[%s]}' % ",".join(muts)


class VerifyTests(OneSyncd):
    def verify(self, expect=200, **body):
        body.setdefault("client_id", "c")
        body.setdefault("table", "todos")
        status, _, data = self.s.request("POST", "/verify", body)
        self.assertEqual(status, expect, data)
        return data

    def fill(self):
        status, _, data = self.s.request("POST", "/push", push_body(ROWS))
        self.assertEqual(status, 200, data)
        self.assertTrue(all(r["status"] == "applied" for r in data["results"]), data)

    def expected(self, split=1, columns=None):
        changes, page = self.s.pull_all("c")
        cnt, sums = [0] * (16 ** split), [0] * (16 ** split)
        for ch in changes:
            if ch["table"] != "todos":
                continue
            row = {k: v for k, v in ch["row"].items() if columns is None or k in columns}
            kh = key_hash(ch["pk"])
            b = kh >> (64 - 4 * split)
            cnt[b] += 1
            sums[b] = (sums[b] + row_hash(ch["pk"], row)) & M64
        return page["cursor"], [[c, "%016x" % s] for c, s in zip(cnt, sums)]

    def test_buckets_match_the_definition(self):
        self.fill()
        cursor, buckets = self.expected(split=1)
        got = self.verify(split=1)
        self.assertEqual(got["cursor"], cursor)
        self.assertEqual((got["table"], got["count"]), ("todos", len(ROWS)))
        self.assertEqual(got["ranges"], [{"prefix": "", "buckets": buckets}])

    def test_columns_limit_the_hash(self):
        self.fill()
        cols = ["id", "n", "b"]
        _, buckets = self.expected(split=1, columns=cols)
        self.assertEqual(self.verify(split=1, columns=cols)["ranges"][0]["buckets"], buckets)

    def test_prefixes_split_and_rows(self):
        self.fill()
        changes, _ = self.s.pull_all("c")
        todos = [c for c in changes if c["table"] == "todos"]
        one = todos[0]
        digits = "%016x" % key_hash(one["pk"])
        got = self.verify(prefixes=[digits[:2], "ff"] if digits[:2] != "ff" else ["ff"], split=2)
        pre = [r["prefix"] for r in got["ranges"]]
        self.assertEqual(pre, sorted(pre))
        r = next(r for r in got["ranges"] if r["prefix"] == digits[:2])
        self.assertEqual(len(r["buckets"]), 256)
        b = r["buckets"][int(digits[2:4], 16)]
        self.assertGreaterEqual(b[0], 1)
        rows = self.verify(prefixes=[digits[:4]], rows=True)["rows"]
        self.assertIn({"pk": one["pk"], "row": one["row"]}, rows)

    def test_bad_requests(self):
        for body, msg in [
            ({"prefixes": ["a", "bb"]}, "prefixes must be strings"),
            ({"prefixes": ["G"]}, "prefixes must be strings"),
            ({"prefixes": []}, "prefixes must not be empty"),
            ({"split": 4}, "split must be an integer from 0 to 3"),
            ({"prefixes": ["0123456789abcdef"], "split": 1}, "exceed 16 digits"),
            ({"table": "nope"}, "no such table: nope"),
            ({"table": "_syncd_state"}, "no such table: _syncd_state"),
            ({"rows": 1}, "rows must be true or false"),
            ({"client_id": ""}, "client_id must be a string"),
        ]:
            with self.subTest(body=body):
                self.assertIn(msg, self.verify(expect=400, **body)["error"])
        status, _, _ = self.s.request("GET", "/verify")
        self.assertEqual(status, 405)

    def test_unknown_table_is_named(self):
        """A table the server does not sync is named in a field of its own,
        the error message unchanged: a client tells it from the other 400s
        without reading words; other refusals have no such field."""
        self.fill()
        for name in ("nope", "_syncd_state", 'odd "name"'):
            with self.subTest(name=name):
                self.assertEqual(self.verify(expect=400, table=name),
                                 {"error": "no such table: " + name, "unknown_table": name})
        self.assertNotIn("unknown_table", self.verify(expect=400, split=4))

    def test_410_says_reset_for_a_server_back_in_time(self):
        """A cursor of another database or above the head: 410 with "reset":
        true (the server was replaced or restored); below the horizon: a
        plain 410."""
        self.fill()
        cursor = self.s.pull("c")["cursor"]
        db_id, _, version = cursor.rpartition("-")
        for bad in (f"{db_id}-{int(version) + 5}", f"zzzzzzzzzzzz-{version}"):
            status, _, data = self.s.request("GET", "/pull?client_id=c&cursor=" + bad)
            self.assertEqual((status, data), (410, {"error": "cursor expired", "reset": True}))
        status, _, data = self.s.request("GET", "/pull?client_id=c&cursor=" + cursor)
        self.assertEqual(status, 200)

    def tamper(self, sql):
        """Write to the server's database behind syncd's back."""
        raise NotImplementedError

    def test_writes_behind_syncd_show(self):
        self.fill()
        before = self.verify(split=1)
        self.tamper("UPDATE todos SET note = 'by hand' WHERE id = 'max'")
        after = self.verify(split=1)
        self.assertEqual(after["cursor"], before["cursor"])  # the log saw nothing
        self.assertNotEqual(after["ranges"], before["ranges"])
        _, buckets = self.expected(split=1)
        self.assertEqual(buckets, before["ranges"][0]["buckets"])  # /pull still has the old row


class SqliteVerifyTest(SqliteStore, VerifyTests, unittest.TestCase):
    def tamper(self, sql):
        db = sqlite3.connect(os.path.join(self.tmp, "server.db"), timeout=10)
        db.execute(sql)
        db.commit()
        db.close()


class PgVerifyTest(PgStore, VerifyTests, unittest.TestCase):
    def store_args(self):
        self.pg = super().store_args()
        return self.pg

    def tamper(self, sql):
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.pg[1], "-c", sql],
                       check=True, capture_output=True)


class BothStoresAgree(unittest.TestCase):
    """The same rows pushed to a SQLite and a PostgreSQL syncd answer the same
    fingerprints."""

    @classmethod
    def setUpClass(cls):
        PgStore.setUpClass()

    def test_same_fingerprints(self):
        tmp = tempfile.mkdtemp(prefix="syncd-test-")
        self.addCleanup(shutil.rmtree, tmp, True)
        servers = [Syncd("sqlite", ["--db", os.path.join(tmp, "s.db")]),
                   Syncd("pg", PgStore().store_args())]
        answers = []
        for s in servers:
            status, _, data = s.request("POST", "/push", push_body(ROWS))
            self.assertEqual(status, 200, data)
            status, _, data = s.request("POST", "/verify",
                                        {"client_id": "c", "table": "todos", "split": 2})
            self.assertEqual(status, 200, data)
            answers.append((data["count"], data["ranges"]))
            self.assertEqual(s.stop(), 0)
        self.assertEqual(answers[0], answers[1])


if __name__ == "__main__":
    unittest.main()
