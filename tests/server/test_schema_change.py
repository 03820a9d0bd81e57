"""A table or column the owner adds to the server's database while syncd
runs is picked up without a restart (docs/MIGRATIONS.md, "Server"): a push
naming the new column is applied, not refused; the rows syncd sends back
and logs carry it; an older client's push without it gets the database's
default; a new table is sent only to the clients that ask for it; a column
the database does not have is still refused. On both storages.
"""
import json
import os
import sqlite3
import subprocess
import threading
import unittest
import urllib.parse

from syncd_util import (SECRET, ManySyncd, OneSyncd, PgStore, SqliteStore, Syncd, bearer,
                        claims, ins, make_token, upd)

ADD_DUE = "ALTER TABLE todos ADD COLUMN due TEXT NOT NULL DEFAULT 'none'"
ADD_TAGS = "CREATE TABLE tags(id TEXT PRIMARY KEY, label TEXT)"


def sqlite_sql(path, sql):
    db = sqlite3.connect(path, timeout=30)
    db.execute(sql)
    db.commit()
    db.close()


def pg_sql(url, sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                   check=True, capture_output=True)


class SchemaChangeTests(OneSyncd):
    backend = None

    def owner_sql(self, sql):
        """Run sql on the server's database as its owner, behind syncd."""
        raise NotImplementedError

    def pull_tables(self, client, tables=None):
        q = {"client_id": client, "limit": "1000"}
        if tables is not None:
            q["tables"] = tables
        status, _, page = self.s.request("GET", "/pull?" + urllib.parse.urlencode(q))
        self.assertEqual(status, 200, page)
        self.assertFalse(page["has_more"])
        return {(c["table"], c["pk"]["id"]): c["row"] for c in page["changes"]}

    def test_a_column_added_while_running_is_written_and_sent(self):
        res = self.s.push("old", [ins(1, "before")])
        self.assertEqual(res[0]["status"], "applied", res)
        self.assertNotIn("due", res[0]["row"])
        self.owner_sql(ADD_DUE)
        # a client that has the column: applied, not refused as unknown
        res = self.s.push("new", [ins(1, "n1", due="monday"), upd(2, "before", due="friday")])
        self.assertEqual([r["status"] for r in res], ["applied", "applied"], res)
        self.assertEqual([r["row"]["due"] for r in res], ["monday", "friday"])
        # an older client that does not know it: the database's default
        res = self.s.push("old", [ins(2, "o1")])
        self.assertEqual(res[0]["status"], "applied", res)
        self.assertEqual(res[0]["row"]["due"], "none")
        rows = self.pull_tables("any")
        self.assertEqual({k[1]: r["due"] for k, r in rows.items() if k[0] == "todos"},
                         {"before": "friday", "n1": "monday", "o1": "none"})
        # read once, not at every request after the change
        self.assertEqual(self.s.log().count("syncd: the database's schema changed"), 1)

    def test_a_column_the_database_lacks_is_still_refused(self):
        self.owner_sql(ADD_DUE)
        res = self.s.push("c", [ins(1, "a", nope=1), ins(2, "b")])
        self.assertEqual([r["status"] for r in res], ["rejected", "applied"], res)
        self.assertEqual(res[0]["reason"], "table todos has no column named nope")
        res = self.s.push("c", [ins(3, "c", title="x", due="d", nope=2)])
        self.assertEqual(res[0]["reason"], "table todos has no column named nope")

    def test_a_table_added_while_running_goes_only_to_clients_that_ask(self):
        self.s.push("c", [ins(1, "a")])
        self.owner_sql(ADD_TAGS)
        res = self.s.push("c", [{"id": 2, "table": "tags", "op": "insert", "pk": {"id": "g"},
                                 "data": {"id": "g", "label": "red"}}])
        self.assertEqual(res[0]["status"], "applied", res)
        self.assertEqual(res[0]["row"], {"id": "g", "label": "red"})
        self.assertEqual(set(self.pull_tables("old", "todos")), {("todos", "a")})
        self.assertEqual(set(self.pull_tables("new", "todos,tags")),
                         {("todos", "a"), ("tags", "g")})
        self.assertIn(("tags", "g"), self.pull_tables("all"))

    def test_rows_a_trigger_writes_in_a_new_table_are_sent(self):
        # the new table's catalog index moves the others': each connection
        # watches the tables again before its next push
        self.s.push("c", [ins(1, "a")])
        self.owner_sql(ADD_TAGS)
        self.owner_sql(self.TAG_TRIGGER)
        res = self.s.push("c", [ins(2, "b")])
        self.assertEqual(res[0]["status"], "applied", res)
        rows = self.pull_tables("new", "todos,tags")
        self.assertEqual(rows.get(("tags", "tag-b")), {"id": "tag-b", "label": "auto"}, rows)
        self.assertEqual(set(rows), {("todos", "a"), ("todos", "b"), ("tags", "tag-b")})

    def test_requests_running_across_a_change_all_succeed(self):
        errors, stop = [], threading.Event()

        def pusher(k):
            i = 0
            try:
                while not stop.is_set() or i < 5:
                    i += 1
                    res = self.s.push(f"p{k}", [ins(i, f"p{k}-{i}")])
                    if res[0]["status"] != "applied":
                        errors.append(res)
                    self.pull_tables(f"p{k}")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=pusher, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        self.owner_sql(ADD_DUE)
        self.owner_sql(ADD_TAGS)
        self.owner_sql("ALTER TABLE todos ADD COLUMN prio INTEGER NOT NULL DEFAULT 3")
        stop.set()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        res = self.s.push("last", [ins(1, "z", due="d", prio=1)])
        self.assertEqual((res[0]["row"]["due"], res[0]["row"]["prio"]), ("d", 1), res)


class SqliteSchemaChangeTest(SqliteStore, SchemaChangeTests, unittest.TestCase):
    TAG_TRIGGER = ("CREATE TRIGGER todo_tag AFTER INSERT ON todos"
                   " BEGIN INSERT INTO tags VALUES ('tag-' || new.id, 'auto'); END")

    def owner_sql(self, sql):
        sqlite_sql(os.path.join(self.tmp, "server.db"), sql)


    def test_a_push_waiting_on_the_owners_change_sees_it(self):
        # the push checks the schema before the owner's ALTER commits, then
        # waits for the write lock: inside its transaction, the unknown
        # column is found new and the batch runs again after a reload
        db = sqlite3.connect(os.path.join(self.tmp, "server.db"), timeout=30,
                             isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        db.execute(ADD_DUE)
        out = []
        t = threading.Thread(target=lambda: out.append(
            self.s.push("new", [ins(1, "n1", due="monday")])))
        t.start()
        t.join(0.5)
        db.execute("COMMIT")
        db.close()
        t.join(30)
        self.assertEqual((out[0][0]["status"], out[0][0]["row"]["due"]), ("applied", "monday"),
                         out)


class PgSchemaChangeTest(PgStore, SchemaChangeTests, unittest.TestCase):
    TAG_TRIGGER = ("CREATE FUNCTION tag_todo() RETURNS trigger LANGUAGE plpgsql AS"
                   " $$BEGIN INSERT INTO tags VALUES ('tag-' || NEW.id, 'auto'); RETURN NEW; END$$;"
                   " CREATE TRIGGER todo_tag AFTER INSERT ON todos"
                   " FOR EACH ROW EXECUTE FUNCTION tag_todo()")

    def store_args(self):
        self.pg = super().store_args()
        return self.pg

    def owner_sql(self, sql):
        pg_sql(self.pg[1], sql)

    def test_a_column_retyped_while_running(self):
        # PostgreSQL reads each value as its column's type: the catalog
        # must hold the new one
        self.assertEqual(self.s.push("c", [ins(1, "a", n="x1")])[0]["status"], "rejected")
        self.owner_sql("ALTER TABLE todos ALTER COLUMN n TYPE TEXT")
        res = self.s.push("c", [ins(2, "b", n="x2")])
        self.assertEqual((res[0]["status"], res[0]["row"]["n"]), ("applied", "x2"), res)


    def test_a_table_made_again_with_other_types(self):
        # every statement syncd keeps prepared on a pooled connection that
        # reads the table must not fail for good on its new result types
        for i in range(1, 6):
            self.assertEqual(self.s.push("c", [{"id": i, "table": "items", "op": "insert",
                                                "pk": {"list_id": 1, "pos": i},
                                                "data": {"label": "l%d" % i}}])[0]["status"],
                             "applied")
        for _ in range(3):
            status, _, page = self.s.request("GET", "/pull?client_id=x&tables=items")
            self.assertEqual(status, 200, page)
            status, _, v = self.s.request("POST", "/verify", {"client_id": "x", "table": "items",
                                                             "rows": True})
            self.assertEqual(status, 200, v)
        self.owner_sql("DROP TABLE items; CREATE TABLE items(list_id TEXT NOT NULL,"
                       " pos TEXT NOT NULL, label INTEGER, PRIMARY KEY (list_id, pos))")
        for i in range(1, 6):
            res = self.s.push("c", [{"id": 10 + i, "table": "items", "op": "insert",
                                     "pk": {"list_id": "a", "pos": "p%d" % i},
                                     "data": {"label": i}}])
            self.assertEqual(res[0]["status"], "applied", res)
        for _ in range(3):
            status, _, page = self.s.request("GET", "/pull?client_id=y&tables=items")
            self.assertEqual(status, 200, page)
            status, _, v = self.s.request("POST", "/verify", {"client_id": "y", "table": "items",
                                                             "rows": True})
            self.assertEqual((status, v.get("count")), (200, 5), v)


class PgTwoSyncdSchemaChangeTest(PgStore, ManySyncd, unittest.TestCase):
    """Two syncd on one PostgreSQL database: the one that did not see the
    change yet reads the catalog again when a pull asks for a table it
    lacks, rather than skip that table's changes past the cursor."""

    def test_a_pull_asking_for_a_table_another_syncd_wrote(self):
        args = self.store_args()
        a, b = Syncd("pg", args), Syncd("pg", args)
        self.servers += [a, b]
        pg_sql(args[1], ADD_TAGS)
        res = a.push("c", [{"id": 1, "table": "tags", "op": "insert", "pk": {"id": "g"},
                            "data": {"id": "g", "label": "red"}}])
        self.assertEqual(res[0]["status"], "applied", res)
        status, _, page = b.request("GET", "/pull?client_id=new&tables=tags")
        self.assertEqual(status, 200, page)
        self.assertEqual([(c["table"], c["pk"]) for c in page["changes"]], [("tags", {"id": "g"})])


RULES_SCHEMA = "CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT, owner TEXT);"
RULES = {"tables": {"todos": {"read": "owner = :sub", "write": "owner = :sub"}}}


class RulesSchemaChangeTests(ManySyncd):
    """Under --rules, the rules are compiled again against the new catalog."""
    backend = None

    def test_rules_follow_a_column_added(self):
        extra = ["--jwt-secret-file", self.file("secret", SECRET),
                 "--rules", self.file("rules.json", json.dumps(RULES))]
        s = Syncd(self.backend, self.store_args(), extra, self.file("schema.sql", RULES_SCHEMA))
        self.servers.append(s)
        alice, bob = (bearer(make_token(claims(sub=u))) for u in ("alice", "bob"))
        self.owner_sql(ADD_DUE)
        res = s.push("a1", [{"id": 1, "table": "todos", "op": "insert", "pk": {"id": "t"},
                             "data": {"id": "t", "owner": "alice", "due": "soon"}}], headers=alice)
        self.assertEqual((res[0]["status"], res[0]["row"]["due"]), ("applied", "soon"), res)
        res = s.push("b1", [{"id": 1, "table": "todos", "op": "update", "pk": {"id": "t"},
                             "data": {"due": "never"}}], headers=bob)
        self.assertEqual((res[0]["status"], res[0]["reason"]), ("rejected", "permission denied"))
        for user, client, want in ((alice, "a1", 1), (bob, "b1", 0)):
            status, _, page = s.request("GET", f"/pull?client_id={client}", headers=user)
            self.assertEqual((status, len(page["changes"])), (200, want), page)

    def test_rules_that_no_longer_fit_keep_the_old_catalog(self):
        extra = ["--jwt-secret-file", self.file("secret", SECRET),
                 "--rules", self.file("rules.json", json.dumps(RULES))]
        s = Syncd(self.backend, self.store_args(), extra, self.file("schema.sql", RULES_SCHEMA))
        self.servers.append(s)
        alice = bearer(make_token(claims(sub="alice")))
        self.owner_sql("ALTER TABLE todos DROP COLUMN owner")  # the rules name it
        for i in (1, 2):
            s.request("POST", "/push", {"client_id": "a1", "mutations": [
                {"id": i, "table": "todos", "op": "insert", "pk": {"id": f"t{i}"},
                 "data": {"id": f"t{i}", "title": "x"}}]}, headers=alice)
        self.assertEqual(s.log().count("the rules no longer fit it"), 1, s.log())
        self.assertIsNone(s.proc.poll())


class SqliteRulesSchemaChangeTest(SqliteStore, RulesSchemaChangeTests, unittest.TestCase):
    def owner_sql(self, sql):
        sqlite_sql(os.path.join(self.tmp, "server.db"), sql)


class PgRulesSchemaChangeTest(PgStore, RulesSchemaChangeTests, unittest.TestCase):
    def store_args(self):
        self.pg = super().store_args()
        return self.pg

    def owner_sql(self, sql):
        pg_sql(self.pg[1], sql)


if __name__ == "__main__":
    unittest.main()
