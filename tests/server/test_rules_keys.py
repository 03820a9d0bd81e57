"""syncd --rules: a walk (initial sync, move-in) over rows whose keys are
too long for a cursor to carry (WIRE_WALK_MAX, 2048 bytes with the table's
name). Such a key is named in the cursor by the version of its change and
a hash of its JSON (docs/RULES.md, "Initial sync"); the pages go on, on
SQLite and PostgreSQL storage, and send exactly the readable rows.
"""
import json
import re
import urllib.parse
import unittest

from syncd_util import (SECRET, ManySyncd, PgStore, SqliteStore, Syncd, bearer, claims,
                        make_token, store_sql)

# TEXT keys of 3000 and 10000 bytes beside short ones, in a composite key;
# repeated letters, so that PostgreSQL's index entries compress under its
# 2704-byte limit
SCHEMA = """
CREATE TABLE docs(k TEXT NOT NULL, n INTEGER NOT NULL, owner TEXT, body TEXT,
                  PRIMARY KEY (k, n));
CREATE INDEX docs_owner ON docs(owner, k, n);
CREATE TABLE members(project TEXT NOT NULL, user_id TEXT NOT NULL,
                     PRIMARY KEY (project, user_id));
CREATE TABLE parts(k TEXT PRIMARY KEY, project TEXT);
"""
RULES = {"tables": {
    "docs": {"read": "owner = :sub", "write": "owner = :sub"},
    "members": {"read": "user_id = :sub", "write": "false"},
    "parts": {"read": "project IN (SELECT project FROM members WHERE user_id = :sub)",
              "write": "false"},
}}
LENGTHS = (5, 3000, 10000)
P1, P2 = "r" * 3000 + "1", "s" * 3000 + "2"  # projects: long membership keys


def doc_key(i):
    return {"k": "abcde"[i % 5] * LENGTHS[i % 3] + "%02d" % i, "n": i % 2 + 1}


def ins(mid, table, pk, **cols):
    return {"id": mid, "table": table, "op": "insert", "pk": pk, "data": dict(pk, **cols)}


def ref_cursor(cursor):
    """Whether cursor names its position by reference ("v<version>h<hash>")."""
    return re.search(r"\.v[0-9]+h[0-9a-f]{32}$", cursor) is not None


class LongKeyTests(ManySyncd):

    def setUp(self):
        super().setUp()
        self.secret = self.file("secret", SECRET)
        self.schema = self.file("schema.sql", SCHEMA)
        self.args = self.store_args()
        extra = ["--jwt-secret-file", self.secret, "--token", "shared"]
        self.s = Syncd(self.backend, self.args,
                       extra + ["--rules", self.file("rules.json", json.dumps(RULES))], self.schema)
        self.plain = Syncd(self.backend, self.args, extra, self.schema)
        self.servers += [self.s, self.plain]
        self.admin = bearer("shared")
        self.alice = bearer(make_token(claims(sub="alice")))
        self.bob = bearer(make_token(claims(sub="bob")))
        self.mid = 0
        # 30 docs, alice's where i % 4 != 1: runs of long keys, readable and not
        self.write(*[ins(0, "docs", doc_key(i), owner="bob" if i % 4 == 1 else "alice",
                         body="b%d" % i) for i in range(30)])
        self.write(ins(0, "members", {"project": P1, "user_id": "alice"}),
                   *[ins(0, "parts", {"k": "x" * LENGTHS[i % 3] + "%02d" % i},
                         project=(P1, P2)[i % 2]) for i in range(14)])

    def write(self, *muts):
        for m in muts:
            self.mid += 1
            m["id"] = self.mid
        res = self.plain.push("admin", list(muts), headers=self.admin)
        self.assertEqual({r["status"] for r in res}, {"applied"}, res)

    def key(self, table, pk):
        return (table, json.dumps(pk, sort_keys=True))

    def readable(self, user):
        """(table, pk) -> row of every row user may read, through the
        syncd without rules."""
        status, _, page = self.plain.request("GET", "/pull?client_id=admin&limit=10000",
                                             headers=self.admin)
        self.assertEqual(status, 200, page)
        rows = {self.key(c["table"], c["pk"]): c["row"] for c in page["changes"] if c["row"]}
        projects = {r["project"] for (t, _), r in rows.items()
                    if t == "members" and r["user_id"] == user}
        return {k: r for k, r in rows.items()
                if (k[0] == "docs" and r["owner"] == user)
                or (k[0] == "members" and r["user_id"] == user)
                or (k[0] == "parts" and r["project"] in projects)}

    def get(self, user, client, cursor=None, limit=3, tables=None):
        q = {"client_id": client, "limit": str(limit)}
        if cursor:
            q["cursor"] = cursor
        if tables:
            q["tables"] = tables
        return self.s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=user)

    def sync(self, user, client, cursor=None, limit=3, tables=None, between=None):
        """Follow has_more from cursor: (the rows received, applied as a
        client would, the cursors of the pages). between(page) runs after
        each page."""
        got, cursors = {}, []
        while True:
            status, _, page = self.get(user, client, cursor, limit, tables)
            self.assertEqual(status, 200, (page, cursor))
            for c in page["changes"]:
                k = self.key(c["table"], c["pk"])
                if c["op"] == "delete":
                    got.pop(k, None)
                else:
                    got[k] = c["row"]
            cursor = page["cursor"]
            cursors.append(cursor)
            if between:
                between(page)
            if not page["has_more"]:
                return got, cursors

    def test_initial_sync_over_long_keys(self):
        # limit 3: most pages end on a key of 3000 or 10000 bytes; each
        # cursor stays short and names it by reference
        got, cursors = self.sync(self.alice, "a1")
        self.assertEqual(got, self.readable("alice"))
        self.assertEqual(len([k for k in got if k[0] == "docs"]), 22)
        self.assertEqual(len([k for k in got if k[0] == "parts"]), 7)
        self.assertGreater(len([c for c in cursors if ref_cursor(c)]), 5, cursors)
        self.assertLess(max(len(c) for c in cursors), 200, cursors)

    def test_rows_change_between_pages(self):
        # the row a page ends on changes (its change's version with it), or
        # is deleted, before the next page: the reference still finds its
        # key among the changes since, and the walk goes on after it
        seen = []

        def between(page):
            last = page["changes"][-1] if page["changes"] else None
            if not ref_cursor(page["cursor"]) or not last or last["table"] != "docs":
                return
            seen.append(last["pk"])
            if len(seen) % 2:
                self.write({"id": 0, "table": "docs", "op": "update", "pk": last["pk"],
                            "data": {"body": "changed"}})
            else:
                self.write({"id": 0, "table": "docs", "op": "delete", "pk": last["pk"]})

        got, _ = self.sync(self.alice, "a1", tables="docs", between=between)
        self.assertGreater(len(seen), 2)
        want = {k: r for k, r in self.readable("alice").items() if k[0] == "docs"}
        self.assertEqual(got, want)

    def test_event_stream_from_a_reference(self):
        # the cursor travels in /events' URL and again in Last-Event-ID: the
        # stream goes on from a reference like a pull, its ids short too
        status, _, page = self.get(self.alice, "a1", tables="docs")
        self.assertEqual(status, 200, page)
        got = {self.key(c["table"], c["pk"]): c["row"] for c in page["changes"]}
        cursor = page["cursor"]
        while not ref_cursor(cursor):
            status, _, page = self.get(self.alice, "a1", cursor, tables="docs")
            self.assertEqual((status, page["has_more"]), (200, True), page)
            got.update({self.key(c["table"], c["pk"]): c["row"] for c in page["changes"]})
            cursor = page["cursor"]
        ev = self.s.events("a1", cursor=cursor, last_event_id=cursor, headers=self.alice)
        self.assertEqual(ev.status, 200)
        try:
            while True:
                e = ev.next_event()
                self.assertLess(len(e["id"]), 200, e["id"])
                got.update({self.key(c["table"], c["pk"]): c["row"]
                            for c in e["data"]["changes"] if c["table"] == "docs"})
                if not e["data"]["has_more"]:
                    break
        finally:
            ev.close()
        want = {k: r for k, r in self.readable("alice").items() if k[0] == "docs"}
        self.assertEqual(got, want)

    def sql(self, text):
        """Run text on the storage behind syncd's back."""
        store_sql(self.backend, self.args, text)

    def test_long_keys_with_no_change_logged(self):
        # rows written behind syncd, never logged (docs/MIGRATIONS.md): the
        # walk never sends them, and no cursor could name their long keys,
        # so no page ends on one: they are passed over uncounted, even a run
        # of them longer than a page, whatever the limit
        rows = ", ".join("('%s', 1, 'alice', 'unlogged')" % ("c" * 3000 + "u%02d" % i)
                         for i in range(7))
        self.sql("INSERT INTO docs(k, n, owner, body) VALUES %s;"
                 " DELETE FROM _syncd_changes WHERE tbl = 'docs' AND pk LIKE '{\"k\":\"ccc%%u0%%'"
                 % rows)
        want = {k: r for k, r in self.readable("alice").items() if k[0] == "docs"}
        self.assertEqual(len(want), 22)
        for limit in (1, 2, 3, 5):
            got, _ = self.sync(self.alice, "a%d" % limit, limit=limit, tables="docs")
            self.assertEqual(got, want, limit)

    def test_a_reference_no_change_holds(self):
        # a reference whose hash names no key of the table (crafted, or its
        # key's tombstone purged): 410 cursor expired, and the client's full
        # resync gets every row; one not spelled as a reference is malformed
        _, cursors = self.sync(self.alice, "a1", tables="docs")
        ref = next(c for c in cursors if ref_cursor(c))
        status, _, data = self.get(self.alice, "a1", ref[:-32] + "0" * 32, tables="docs")
        self.assertEqual((status, data), (410, {"error": "cursor expired"}))
        for bad in (ref[:-1], ref[:-33] + "X" + ref[-32:], ref.replace(".v", ".v0")):
            status, _, data = self.get(self.alice, "a1", bad, tables="docs")
            self.assertEqual((status, data), (400, {"error": "malformed cursor"}), bad)
        # a reference to a key of another table is no key of this one
        status, _, data = self.get(self.alice, "a1", re.sub(r"w[0-9a-f]+\.", "w" + b"parts".hex()
                                                           + ".", ref), tables="docs")
        self.assertEqual(status, 410, data)

    def test_move_in_of_long_keys(self):
        # bob joins a project whose name takes 3000 bytes, opening 7 parts
        # with long keys: the move-in walks over pages (its cursor names the
        # membership row and the position by reference), no resync
        got, cursors = self.sync(self.bob, "b1")
        self.assertEqual(got, self.readable("bob"))
        self.write(ins(0, "members", {"project": P2, "user_id": "bob"}))
        more, cursors = self.sync(self.bob, "b1", cursors[-1])
        got.update(more)
        self.assertEqual(got, self.readable("bob"))
        self.assertEqual(len([k for k in got if k[0] == "parts"]), 7)
        self.assertTrue(any("i" in c.rsplit("-", 1)[1] and ref_cursor(c) for c in cursors),
                        cursors)


class SqliteLongKeyTest(SqliteStore, LongKeyTests, unittest.TestCase):
    pass


class PgLongKeyTest(PgStore, LongKeyTests, unittest.TestCase):
    pass


if __name__ == "__main__":
    unittest.main()
