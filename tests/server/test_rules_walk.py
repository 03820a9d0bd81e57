"""syncd --rules: what an initial sync's walk sends for each row
(docs/RULES.md, "Initial sync"), on SQLite and PostgreSQL storage. The
walk reads the rows from the table itself, not from the change log, and
sends each at the head of the snapshot its page read (the row is that
head's state); a row that changes while it pages comes again, above that
head, so a client that keeps the newest version of each key ends with the
rows as they are.
"""
import json
import unittest
import urllib.parse

from syncd_util import (SECRET, ManySyncd, PgStore, SqliteStore, Syncd, bearer, claims,
                        make_token, store_sql)

SCHEMA = """
CREATE TABLE todos(id TEXT PRIMARY KEY, owner TEXT, title TEXT);
CREATE INDEX todos_owner ON todos(owner, id);
"""
RULES = {"tables": {"todos": {"read": "owner = :sub", "write": "owner = :sub"}}}


def ins(mid, tid, owner, title):
    return {"id": mid, "table": "todos", "op": "insert", "pk": {"id": tid},
            "data": {"id": tid, "owner": owner, "title": title}}


def upd(mid, tid, title):
    return {"id": mid, "table": "todos", "op": "update", "pk": {"id": tid},
            "data": {"title": title}}


class WalkTests(ManySyncd):

    def setUp(self):
        super().setUp()
        self.args = self.store_args()
        extra = ["--jwt-secret-file", self.file("secret", SECRET), "--token", "shared",
                 "--rules", self.file("rules.json", json.dumps(RULES))]
        self.s = Syncd(self.backend, self.args, extra, self.file("schema.sql", SCHEMA))
        self.servers.append(self.s)
        self.alice = bearer(make_token(claims(sub="alice")))
        # alice's rows interleaved with bob's
        res = self.s.push("a0", [ins(i, "t%02d" % i, "alice" if i % 2 else "bob", "v0")
                                 for i in range(1, 21)], headers=self.alice)
        self.assertEqual([r["status"] for r in res], ["applied", "rejected"] * 10)
        res = self.s.push("b0", [ins(i, "t%02d" % i, "bob", "v0") for i in range(2, 21, 2)],
                          headers=bearer(make_token(claims(sub="bob"))))
        self.assertEqual([r["status"] for r in res], ["applied"] * 10)

    def page(self, q):
        status, _, page = self.s.request("GET", "/pull?" + urllib.parse.urlencode(q),
                                         headers=self.alice)
        self.assertEqual(status, 200, page)
        q["cursor"] = page["cursor"]
        return page

    def sql(self, text):
        """Run text on the storage behind syncd's back."""
        store_sql(self.backend, self.args, text)

    def test_rows_changed_while_it_pages_come_again_newer(self):
        q = {"client_id": "a1", "limit": "3"}
        first = self.page(q)
        # the walk's head, which its cursors carry ("<db>-<head>w..."): the
        # first page's rows are sent at it, not at their own changes'
        head = int(q["cursor"].split("-")[-1].split("w")[0])
        self.assertEqual([c["pk"]["id"] for c in first["changes"]], ["t01", "t03", "t05"])
        self.assertEqual({c["version"] for c in first["changes"]}, {head})
        # one row it sent and one ahead of it change between its pages
        res = self.s.push("a0", [upd(21, "t03", "v1"), upd(22, "t15", "v1")], headers=self.alice)
        self.assertEqual([r["status"] for r in res], ["applied"] * 2, res)
        changed = {"t03": res[0]["version"], "t15": res[1]["version"]}
        held = {c["pk"]["id"]: (c["version"], c["row"]) for c in first["changes"]}
        sent = {}
        page = first
        while page["has_more"]:
            page = self.page(q)
            for c in page["changes"]:
                sent.setdefault(c["pk"]["id"], []).append(c["version"])
                # a client keeps the newest version of a key (ext/engine,
                # rebase.c): an older one never replaces it
                if c["pk"]["id"] not in held or held[c["pk"]["id"]][0] <= c["version"]:
                    held[c["pk"]["id"]] = (c["version"], c["row"])
        self.assertEqual({k: r["title"] for k, (_, r) in held.items()},
                         {"t%02d" % i: "v1" if i in (3, 15) else "v0" for i in range(1, 21, 2)})
        # the row it sent came again at its change, above the walk's head;
        # the one ahead came in the walk at a head no older than its change,
        # then again at its change (above the walk's head), the same row
        self.assertEqual(sent["t03"], [changed["t03"]])
        self.assertGreater(changed["t03"], head)
        self.assertEqual(len(sent["t15"]), 2)
        self.assertGreaterEqual(sent["t15"][0], sent["t15"][1])
        self.assertEqual(sent["t15"][1], changed["t15"])

    def test_rows_are_sent_as_the_table_holds_them(self):
        # a write behind syncd (docs/MIGRATIONS.md) is not in the change log:
        # the walk reads the table, so an initial sync under rules sends the
        # row as it is, as sync_verify would find it
        self.sql("UPDATE todos SET title = 'behind' WHERE id = 't07';"
                 " INSERT INTO todos VALUES ('t99', 'alice', 'unlogged')")
        q = {"client_id": "a1", "limit": "4"}
        rows = {}
        while True:
            page = self.page(q)
            rows.update({c["pk"]["id"]: c["row"] for c in page["changes"]})
            if not page["has_more"]:
                break
        self.assertEqual(rows["t07"], {"id": "t07", "owner": "alice", "title": "behind"})
        self.assertEqual(rows["t99"], {"id": "t99", "owner": "alice", "title": "unlogged"})
        self.assertEqual(sorted(rows), ["t%02d" % i for i in range(1, 21, 2)] + ["t99"])

    def test_a_column_dropped_behind_syncd(self):
        # the walk names the table's columns as the catalog has them, which
        # a pull does not check first: the page fails, the catalog is read
        # again, and the page is read again without the column
        self.sql("ALTER TABLE todos DROP COLUMN title")
        q = {"client_id": "a1", "limit": "20"}
        page = self.page(q)
        self.assertEqual([c["row"] for c in page["changes"]],
                         [{"id": "t%02d" % i, "owner": "alice"} for i in range(1, 21, 2)])


class SqliteWalkTest(SqliteStore, WalkTests, unittest.TestCase):
    pass


class PgWalkTest(PgStore, WalkTests, unittest.TestCase):
    pass


if __name__ == "__main__":
    unittest.main()
