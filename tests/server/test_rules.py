"""syncd --rules: the rules file checked at startup (a refused expression
stops syncd with a message), write checks before and after each mutation
(rejected "permission denied", nothing changed), read filters on pulls and
event streams, deny by default for tables without a rule, and server-owned
columns, on SQLite and PostgreSQL storage. Two users, alice and bob, with
JWTs; bob is hostile.
"""
import urllib.parse
import json
import os
import subprocess
import threading
import time
import unittest

from syncd_util import (SECRET, SYNCD, ManySyncd, PgStore, SqliteStore, Syncd, bearer, claims,
                        make_token, pg_fresh_db)

SCHEMA = """
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT, owner TEXT,
                   updated_at TEXT NOT NULL DEFAULT 'server-default');
CREATE TABLE members(project TEXT NOT NULL, user_id TEXT NOT NULL,
                     PRIMARY KEY (project, user_id));
CREATE TABLE tasks(id TEXT PRIMARY KEY, project TEXT, title TEXT);
CREATE TABLE secrets(id TEXT PRIMARY KEY, v TEXT);
CREATE TABLE seats(id TEXT PRIMARY KEY, project TEXT, user_id TEXT);
CREATE TABLE teams(id TEXT PRIMARY KEY);
CREATE TABLE chairs(id TEXT PRIMARY KEY,
                    team TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE, user_id TEXT);
CREATE TABLE boards(id TEXT PRIMARY KEY, team TEXT);
CREATE TABLE people(id TEXT PRIMARY KEY, name TEXT);
CREATE TABLE berths(id TEXT PRIMARY KEY, crew TEXT, person TEXT, user_id TEXT);
CREATE TABLE cargo(id TEXT PRIMARY KEY, crew TEXT);
INSERT INTO members VALUES ('p1', 'alice'), ('p2', 'bob');
INSERT INTO secrets VALUES ('s1', 'hidden');
"""
# rows of two users interleaved, keyed by two integers (their order is not
# their text's: 2 < 10), with the index docs/RULES.md asks for
SCHEMA += ("CREATE TABLE items(g INTEGER NOT NULL, n INTEGER NOT NULL, owner TEXT,"
           " PRIMARY KEY (g, n));\nCREATE INDEX items_owner ON items(owner, g, n);\n"
           "INSERT INTO items VALUES %s;\n" % ", ".join(
               "(%d, %d, '%s')" % (g, n, "alice" if (g * 20 + n) % 4 == 0 else "bob")
               for g in range(3) for n in range(20)))
# a table with more columns than a rule may name (RULES_MAX_COLS)
SCHEMA += "CREATE TABLE wide(id TEXT PRIMARY KEY, %s);\n" % ", ".join(
    f"c{i} TEXT" for i in range(33))

# How the user reaches each store's defaults and triggers (docs/RULES.md).
NOTES = {
    "sqlite": "CREATE TABLE notes(id TEXT PRIMARY KEY, body TEXT, owner TEXT DEFAULT (syncd_sub()));"
              "CREATE TABLE logs(id TEXT PRIMARY KEY, owner TEXT DEFAULT (syncd_sub()));",
    "pg": "CREATE TABLE notes(id TEXT PRIMARY KEY, body TEXT,"
          " owner TEXT DEFAULT current_setting('syncd.sub', true));"
          "CREATE TABLE logs(id TEXT PRIMARY KEY,"
          " owner TEXT DEFAULT nullif(current_setting('syncd.sub', true), ''));",
}
# Rows keyed by bytes.
NOTES["sqlite"] += "CREATE TABLE files(id BLOB PRIMARY KEY, owner TEXT, body TEXT);"
NOTES["pg"] += "CREATE TABLE files(id bytea PRIMARY KEY, owner TEXT, body TEXT);"
# A person's berths follow their name: a membership written by a trigger.
NOTES["sqlite"] += ("CREATE TRIGGER people_name AFTER UPDATE OF name ON people BEGIN"
                    " UPDATE berths SET user_id = new.name WHERE person = new.id; END;")
NOTES["pg"] += ("CREATE FUNCTION people_name() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " UPDATE berths SET user_id = NEW.name WHERE person = NEW.id; RETURN NULL; END $$;"
                "CREATE TRIGGER people_name AFTER UPDATE OF name ON people"
                " FOR EACH ROW EXECUTE FUNCTION people_name();")

RULES = {"tables": {
    "todos": {"read": "owner = :sub", "write": "owner = :sub",
              "server_columns": ["updated_at"]},
    "members": {"read": "user_id = :sub", "write": "false"},
    "tasks": {"read": "project IN (SELECT project FROM members WHERE user_id = :sub)",
              "write": "project IN (SELECT project FROM members WHERE user_id = :sub)"
                       " AND (:claim_role IS NULL OR :claim_role <> 'viewer')"},
    "notes": {"read": "owner = :sub", "write": "owner = :sub", "server_columns": ["owner"]},
    "logs": {"read": "true", "write": "true", "server_columns": ["owner"]},
}}


def co_member_rules():
    """RULES with members readable by the project's members and writable by
    them (a membership table that its own rule selects from)."""
    rules = json.loads(json.dumps(RULES))
    rules["tables"]["members"] = {
        "read": "user_id = :sub OR project IN (SELECT project FROM members WHERE user_id = :sub)",
        "write": "project IN (SELECT project FROM members WHERE user_id = :sub)"}
    return rules


def walk_table(cursor):
    """The table an initial sync's walk under rules stands in, from its
    cursor "<db>-<head>w<hex name>.<hex pk>"; "~" past the walk."""
    tail = cursor.split("-")[-1]
    return bytes.fromhex(tail.split("w")[1].split(".")[0]).decode() if "w" in tail else "~"


def ins(mid, table, **row):
    cols = {"members": ("project", "user_id"), "items": ("g", "n")}.get(table, ("id",))
    key = {k: row[k] for k in cols}
    return {"id": mid, "table": table, "op": "insert", "pk": key, "data": row}


def upd(mid, table, pk, **cols):
    return {"id": mid, "table": table, "op": "update", "pk": pk, "data": cols}


def dele(mid, table, pk):
    return {"id": mid, "table": table, "op": "delete", "pk": pk}


class RulesTests(ManySyncd):

    def setUp(self):
        super().setUp()
        self.secret = self.file("secret", SECRET)
        self.schema = self.file("schema.sql", SCHEMA + NOTES[self.backend])

    def server(self, rules=RULES, store_args=None, more=()):
        extra = ["--jwt-secret-file", self.secret, "--token", "shared"] + list(more)
        if rules is not None:
            extra += ["--rules", self.file("rules.json", json.dumps(rules))]
        args = store_args or getattr(self, "args", None) or self.store_args()
        if rules is not None:
            self.args = args
        s = Syncd(self.backend, args, extra, self.schema)
        self.servers.append(s)
        return s

    def as_user(self, sub, **more):
        return bearer(make_token(claims(sub=sub, **more)))

    def push(self, s, user, client, muts):
        return s.push(client, muts, headers=user)

    def rows(self, s, table):
        """Every row of table, read through a syncd without rules on the
        same storage."""
        if not hasattr(self, "plain"):
            self.plain = self.server(rules=None, store_args=self.args)
        status, _, page = self.plain.request("GET", "/pull?client_id=admin&limit=10000",
                                             headers=bearer("shared"))
        self.assertEqual(status, 200, page)
        return {json.dumps(c["pk"], sort_keys=True): c["row"] for c in page["changes"]
                if c["table"] == table}

    def assertDenied(self, results):
        for r in results:
            self.assertEqual((r["status"], r.get("reason")), ("rejected", "permission denied"), r)

    def test_write_checks(self):
        s = self.server()
        alice, bob = self.as_user("alice"), self.as_user("bob")
        res = self.push(s, alice, "a1", [ins(1, "todos", id="t1", title="mine", owner="alice")])
        self.assertEqual(res[0]["status"], "applied", res)
        before = self.rows(s, "todos")
        # bob: edit, delete, insert as alice, and all in one batch with his own
        self.assertDenied(self.push(s, bob, "b1", [
            upd(1, "todos", {"id": "t1"}, title="bob was here"),
            dele(2, "todos", {"id": "t1"}),
            ins(3, "todos", id="t2", title="fake", owner="alice"),
            upd(4, "todos", {"id": "t1"}, owner="bob")]))
        res = self.push(s, bob, "b1", [ins(5, "todos", id="t3", title="bob's", owner="bob")])
        self.assertEqual(res[0]["status"], "applied", res)
        after = self.rows(s, "todos")
        self.assertEqual(after[json.dumps({"id": "t1"})], before[json.dumps({"id": "t1"})])
        self.assertNotIn(json.dumps({"id": "t2"}), after)
        # alice may not give her row away (the check after the update)
        self.assertDenied(self.push(s, alice, "a1", [upd(2, "todos", {"id": "t1"}, owner="bob")]))
        self.assertEqual(self.rows(s, "todos")[json.dumps({"id": "t1"})]["owner"], "alice")
        res = self.push(s, alice, "a1", [upd(3, "todos", {"id": "t1"}, title="edited"),
                                         dele(4, "todos", {"id": "t1"})])
        self.assertEqual([r["status"] for r in res], ["applied", "applied"], res)
        # no user (the shared token): every rule's :sub is NULL
        self.assertDenied(s.push("admin", [ins(1, "todos", id="t9", owner="alice")],
                                 headers=bearer("shared")))

    def test_membership(self):
        s = self.server()
        alice, bob = self.as_user("alice"), self.as_user("bob")
        res = self.push(s, alice, "a1", [ins(1, "tasks", id="k1", project="p1", title="x")])
        self.assertEqual(res[0]["status"], "applied", res)
        self.assertDenied(self.push(s, alice, "a1", [
            ins(2, "tasks", id="k2", project="p2", title="not my project"),
            upd(3, "tasks", {"id": "k1"}, project="p2")]))
        self.assertDenied(self.push(s, bob, "b1", [
            upd(1, "tasks", {"id": "k1"}, title="bob"), dele(2, "tasks", {"id": "k1"}),
            ins(3, "members", project="p1", user_id="bob")]))
        # a claim in the rule: a viewer of p1 may not write there
        viewer = self.as_user("alice", role="viewer")
        self.assertDenied(self.push(s, viewer, "a2", [upd(1, "tasks", {"id": "k1"}, title="v")]))
        self.assertEqual(self.rows(s, "tasks")[json.dumps({"id": "k1"})]["title"], "x")
        self.assertNotIn(json.dumps({"id": "k2"}), self.rows(s, "tasks"))
        self.assertEqual(len(self.rows(s, "members")), 2)

    def test_deny_by_default(self):
        s = self.server()
        self.assertDenied(self.push(s, self.as_user("alice"), "a1",
                                    [ins(1, "secrets", id="s2", v="x")]))
        for user in (self.as_user("alice"), bearer("shared")):
            for tables in (None, "secrets,todos"):
                got, _ = self.seen(s, user, "a1", tables=tables)
                self.assertNotIn("secrets", {t for t, _ in got})
        # without --rules, the same table is shared as before (and s2 never came)
        self.assertEqual(list(self.rows(s, "secrets")), [json.dumps({"id": "s1"})])

    def test_server_columns(self):
        s = self.server()
        alice = self.as_user("alice")
        res = self.push(s, alice, "a1", [ins(1, "todos", id="t1", owner="alice",
                                               updated_at="from the client")])
        self.assertEqual(res[0]["status"], "applied", res)
        self.assertEqual(res[0]["row"]["updated_at"], "server-default")
        res = self.push(s, alice, "a1", [upd(2, "todos", {"id": "t1"}, updated_at="again"),
                                         upd(3, "todos", {"id": "t1"}, title="t", updated_at=None)])
        self.assertEqual([r["status"] for r in res], ["applied", "applied"], res)
        self.assertEqual(res[1]["row"]["updated_at"], "server-default")
        self.assertEqual(self.rows(s, "todos")[json.dumps({"id": "t1"})]["updated_at"],
                         "server-default")

    def test_owner_from_the_user(self):
        s = self.server()
        alice, bob = self.as_user("alice"), self.as_user("bob")
        res = self.push(s, alice, "a1", [ins(1, "notes", id="n1", body="a", owner="bob")])
        self.assertEqual((res[0]["status"], res[0]["row"]["owner"]), ("applied", "alice"), res)
        self.assertDenied(self.push(s, bob, "b1", [upd(1, "notes", {"id": "n1"}, body="b"),
                                                   dele(2, "notes", {"id": "n1"})]))
        res = self.push(s, bob, "b1", [ins(3, "notes", id="n2", body="b", owner="alice")])
        self.assertEqual((res[0]["status"], res[0]["row"]["owner"]), ("applied", "bob"), res)
        # no user: the default is NULL, whoever pushed before on the connection
        for i in range(3):
            self.assertDenied(s.push("admin", [ins(1 + i, "notes", id="n9", body="x")],
                                     headers=bearer("shared")))
        self.assertEqual(self.rows(s, "notes")[json.dumps({"id": "n1"})]["body"], "a")
        # the user of one push never leaks into the next one's defaults
        for i in range(4):
            who = bob if i % 2 == 0 else bearer("shared")
            res = s.push("b1" if i % 2 == 0 else "admin", [ins(10 + i, "logs", id=f"l{i}")],
                         headers=who)
            self.assertEqual((res[0]["status"], res[0]["row"]["owner"]),
                             ("applied", "bob" if i % 2 == 0 else None), res)

    def test_user_kept_when_a_batch_runs_again(self):
        # the duplicate key aborts PostgreSQL's transaction, and the batch
        # runs again (push.c): the rows after it still get the user
        s = self.server()
        bob = self.as_user("bob")
        res = self.push(s, bob, "b1", [ins(1, "logs", id="l1"), ins(2, "logs", id="l1"),
                                       ins(3, "logs", id="l2")])
        self.assertEqual([(r["status"], r.get("row", {}).get("owner")) for r in res],
                         [("applied", "bob"), ("rejected", None), ("applied", "bob")], res)

    def seen(self, s, user, client, cursor=None, tables=None, limit=3):
        """(table, pk) of every change a pull from cursor gives."""
        q = {"client_id": client, "limit": str(limit)}
        if cursor:
            q["cursor"] = cursor
        if tables:
            q["tables"] = tables
        out = set()
        while True:
            status, _, page = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=user)
            self.assertEqual(status, 200, page)
            out |= {(c["table"], json.dumps(c["pk"], sort_keys=True)) for c in page["changes"]}
            q["cursor"] = page["cursor"]
            if not page["has_more"]:
                return out, page["cursor"]

    def test_verify_covers_the_rows_the_user_may_read(self):
        # a fingerprint under rules covers what the user's client holds once
        # caught up: the rows its read rule passes, never the others
        s = self.server()
        alice, bob = self.as_user("alice"), self.as_user("bob")
        self.push(s, alice, "a1", [ins(1, "todos", id="t1", owner="alice"),
                                   ins(2, "tasks", id="k1", project="p1")])
        self.push(s, bob, "b1", [ins(1, "todos", id="t2", owner="bob"),
                                 ins(2, "todos", id="t3", owner="bob"),
                                 ins(3, "tasks", id="k2", project="p2")])

        def verify(user, client, table, **more):
            body = dict({"client_id": client, "table": table, "rows": True}, **more)
            status, _, data = s.request("POST", "/verify", body, headers=user)
            return status, data

        def keys(user, client, table):
            status, data = verify(user, client, table)
            self.assertEqual(status, 200, data)
            got = sorted(r["pk"]["id"] for r in data["rows"])
            self.assertEqual(data["count"], len(got), data)
            return got
        self.assertEqual(keys(alice, "a1", "todos"), ["t1"])
        self.assertEqual(keys(bob, "b1", "todos"), ["t2", "t3"])
        self.assertEqual(keys(alice, "a1", "tasks"), ["k1"])
        self.assertEqual(keys(bob, "b1", "tasks"), ["k2"])
        # buckets count only those rows too
        status, data = verify(bob, "b1", "todos", rows=False, split=1)
        self.assertEqual(status, 200, data)
        self.assertEqual(sum(b[0] for r in data["ranges"] for b in r["buckets"]), 2, data)
        # through membership: bob joins p1 (written without rules, as an
        # admin would), and p1's task is his to hold now
        self.plain = self.server(rules=None, store_args=self.args)
        res = self.plain.push("admin", [ins(1, "members", project="p1", user_id="bob")],
                              headers=bearer("shared"))
        self.assertEqual(res[0]["status"], "applied", res)
        self.assertEqual(keys(bob, "b1", "tasks"), ["k1", "k2"])
        # a table without a rule is not synced, answered as one that does
        # not exist (unknown_table as well); another user's client id is
        # refused; the shared token has no user, so it may read nothing
        self.assertEqual(verify(alice, "a1", "secrets"),
                         (400, {"error": "no such table: secrets", "unknown_table": "secrets"}))
        self.assertEqual(verify(alice, "b1", "todos")[0], 403)
        self.assertEqual(keys(bearer("shared"), "x1", "todos"), [])

    def test_read_filter(self):
        s = self.server()
        alice, bob = self.as_user("alice"), self.as_user("bob")
        self.push(s, alice, "a1", [ins(1, "todos", id="t1", owner="alice"),
                                   ins(2, "tasks", id="k1", project="p1"),
                                   ins(3, "notes", id="n1")])
        self.push(s, bob, "b1", [ins(1, "todos", id="t3", owner="bob"),
                                 ins(2, "tasks", id="k3", project="p2"),
                                 ins(3, "notes", id="n3"),
                                 ins(4, "todos", id="t4", owner="bob")])

        def key(table, **pk):
            return (table, json.dumps(pk, sort_keys=True))
        mine = {key("todos", id="t1"), key("tasks", id="k1"), key("notes", id="n1"),
                key("members", project="p1", user_id="alice")}
        got, cursor = self.seen(s, alice, "a1")
        self.assertEqual(got, mine)
        got, _ = self.seen(s, bob, "b1")
        self.assertEqual(got, {key("todos", id="t3"), key("todos", id="t4"), key("tasks", id="k3"),
                               key("notes", id="n3"), key("members", project="p2", user_id="bob")})
        # hostile reads: a fresh device, an old cursor, a table without a rule
        got, _ = self.seen(s, bob, "b2")
        self.assertFalse(got & mine, got)
        db_id = cursor.rsplit("-", 1)[0]
        got, _ = self.seen(s, bob, "b1", cursor=db_id + "-0", tables="todos,secrets,notes")
        self.assertEqual(got, {key("todos", id="t3"), key("todos", id="t4"), key("notes", id="n3")})
        # no user: nothing that a rule guards by :sub
        got, _ = self.seen(s, bearer("shared"), "admin", tables="todos,tasks,notes,members")
        self.assertEqual(got, set())
        # after the cursor: bob's new row is not alice's to see, hers is
        self.push(s, bob, "b1", [ins(5, "todos", id="t6", owner="bob")])
        self.push(s, alice, "a1", [ins(4, "todos", id="t7", owner="alice")])
        got, _ = self.seen(s, alice, "a1", cursor=cursor)
        self.assertEqual(got, {key("todos", id="t7")})

    def test_client_ids_belong_to_their_user(self):
        s = self.server()
        alice, bob = self.as_user("alice"), self.as_user("bob")
        self.push(s, alice, "a1", [ins(1, "todos", id="t1", owner="alice")])
        # bob on alice's device id: a push that would move its last id, a
        # pull of its outcomes, a stream
        body = {"client_id": "a1", "mutations": [ins(99, "todos", id="t9", owner="bob")]}
        forbidden = (403, {"error": "forbidden: this client_id belongs to another user"})
        status, _, data = s.request("POST", "/push", body, headers=bob)
        self.assertEqual((status, data), forbidden)
        status, _, data = s.request("GET", "/pull?client_id=a1&pending_from=1", headers=bob)
        self.assertEqual((status, data), forbidden)
        status, _, data = s.request("GET", "/events?client_id=a1", headers=bob)
        self.assertEqual((status, data), forbidden)
        # alice's next mutation is hers to apply, not a replay of bob's
        res = self.push(s, alice, "a1", [ins(2, "todos", id="t2", owner="alice")])
        self.assertEqual(res[0]["status"], "applied", res)
        self.assertNotIn(json.dumps({"id": "t9"}), self.rows(s, "todos"))
        # a second device of hers is fine
        self.assertEqual(self.push(s, alice, "a2", [ins(1, "todos", id="t3", owner="alice")])[0]
                         ["status"], "applied")

    def test_membership_moves_rows_in_and_out(self):
        s = self.server(co_member_rules())
        alice, bob, carol = self.as_user("alice"), self.as_user("bob"), self.as_user("carol")
        self.push(s, alice, "a1", [ins(1, "tasks", id="k1", project="p1")])
        got, bob_cursor = self.seen(s, bob, "b1")
        self.assertNotIn(("tasks", json.dumps({"id": "k1"})), got)
        _, carol_cursor = self.seen(s, carol, "c1")
        # alice adds bob to p1: k1 did not change, yet bob's increment
        # brings it, with no resync (move-in)
        res = self.push(s, alice, "a1", [ins(2, "members", project="p1", user_id="bob")])
        self.assertEqual(res[0]["status"], "applied", res)
        got, bob_cursor = self.seen(s, bob, "b1", cursor=bob_cursor, limit=10)
        self.assertIn(("tasks", json.dumps({"id": "k1"})), got)
        # carol sees no membership change: her increment goes on
        got, _ = self.seen(s, carol, "c1", cursor=carol_cursor)
        self.assertEqual(got, set())
        # bob's own increments go on too until his membership changes
        self.push(s, alice, "a1", [ins(3, "tasks", id="k2", project="p1")])
        got, bob_cursor = self.seen(s, bob, "b1", cursor=bob_cursor)
        self.assertEqual(got, {("tasks", json.dumps({"id": "k2"}))})
        # alice removes bob: his next increment deletes p1's tasks and
        # members rows, with no resync (move-out)
        res = self.push(s, alice, "a1", [dele(4, "members", {"project": "p1", "user_id": "bob"})])
        self.assertEqual(res[0]["status"], "applied", res)
        gone, _ = self.moved_out(s, bob, "b1", bob_cursor)
        self.assertLessEqual({("tasks", json.dumps({"id": "k1"})), ("tasks", json.dumps({"id": "k2"})),
                              ("members", json.dumps({"project": "p1", "user_id": "alice"}))}, gone)
        got, _ = self.seen(s, bob, "b1")
        self.assertFalse({("tasks", json.dumps({"id": "k1"})), ("tasks", json.dumps({"id": "k2"}))}
                         & got, got)

    def test_other_users_memberships_end_no_pull(self):
        # a membership change answers 410 only to the users whose selects it
        # changes (docs/RULES.md): carol joining and leaving p1 and p2 ends
        # neither bob's increments nor his initial sync, though bob may read
        # her members row of p2; bob's own membership still does
        s = self.server(co_member_rules())
        alice, bob = self.as_user("alice"), self.as_user("bob")
        self.push(s, alice, "a1", [ins(1, "tasks", id="k1", project="p1")])
        self.push(s, bob, "b1", [ins(1, "tasks", id="k2", project="p2")] +
                  [ins(2 + i, "todos", id="b%d" % i, owner="bob") for i in range(6)])
        got, cursor = self.seen(s, bob, "b1")
        mid = {"a": 2, "b": 8}

        def churn(user, name, project):
            for op in (ins(mid[name], "members", project=project, user_id="carol"),
                       dele(mid[name] + 1, "members", {"project": project, "user_id": "carol"})):
                res = self.push(s, user, name + "1", [op])
                self.assertEqual(res[0]["status"], "applied", res)
                mid[name] += 1
            mid[name] += 1

        carol_p2 = ("members", json.dumps({"project": "p2", "user_id": "carol"}, sort_keys=True))
        churn(alice, "a", "p1")
        churn(bob, "b", "p2")
        got, cursor = self.seen(s, bob, "b1", cursor=cursor)
        self.assertIn(carol_p2, got)
        # an initial sync a page at a time, with carol joining and leaving
        # between its pages: it ends, with every row bob may read
        q = {"client_id": "b2", "limit": "1"}
        pages, got = 0, set()
        while True:
            status, _, page = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=bob)
            self.assertEqual(status, 200, page)
            pages += 1
            got |= {(c["table"], json.dumps(c["pk"], sort_keys=True)) for c in page["changes"]}
            q["cursor"] = page["cursor"]
            if not page["has_more"]:
                break
            if pages <= 6:
                churn(alice, "a", "p1")
                churn(bob, "b", "p2")
        self.assertGreater(pages, 6)
        self.assertIn(carol_p2, got)
        # a membership made and deleted by a syncd without --rules on the
        # same storage: the storage's triggers keep its values all the
        # same (dave's), so bob's increment across it is not disturbed
        self.rows(s, "members")
        res = self.plain.push("admin", [ins(1, "members", project="p3", user_id="dave")],
                              headers=bearer("shared"))
        self.assertEqual(res[0]["status"], "applied", res)
        got, cursor = self.seen(s, bob, "b1", cursor=cursor)
        res = self.plain.push("admin", [dele(2, "members", {"project": "p3", "user_id": "dave"})],
                              headers=bearer("shared"))
        self.assertEqual(res[0]["status"], "applied", res)
        status, _, data = s.request("GET", "/pull?client_id=b1&cursor=" + cursor, headers=bob)
        self.assertEqual(status, 200, data)
        self.assertEqual(data["changes"], [])
        got, cursor = self.seen(s, bob, "b1")
        # bob's own: alice adds him to p1 (his increment brings k1: a
        # move-in), then removes him (his increment deletes k1: a move-out)
        res = self.push(s, alice, "a1", [ins(mid["a"], "members", project="p1", user_id="bob")])
        self.assertEqual(res[0]["status"], "applied", res)
        got, cursor = self.seen(s, bob, "b1", cursor=cursor, limit=10)
        self.assertIn(("tasks", json.dumps({"id": "k1"})), got)
        res = self.push(s, alice, "a1", [dele(mid["a"] + 1, "members",
                                              {"project": "p1", "user_id": "bob"})])
        self.assertEqual(res[0]["status"], "applied", res)
        gone, _ = self.moved_out(s, bob, "b1", cursor)
        self.assertIn(("tasks", json.dumps({"id": "k1"})), gone)

    def page(self, s, user, client, cursor, limit):
        q = {"client_id": client, "cursor": cursor, "limit": str(limit)}
        return s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=user)

    def moved_out(self, s, user, client, cursor, limit=100):
        """An increment across a membership change that closed rows: a page
        (not 410) whose deletes take them away (docs/RULES.md, move-out
        through membership). The (table, pk) it deletes, and the page."""
        status, _, page = self.page(s, user, client, cursor, limit)
        self.assertEqual(status, 200, page)
        return {(c["table"], json.dumps(c["pk"], sort_keys=True)) for c in page["changes"]
                if c["op"] == "delete"}, page

    def test_a_new_membership_brings_its_rows_without_a_resync(self):
        # move-in (docs/RULES.md): a membership inserted after a client's
        # cursor brings the rows it opens within the increment, ahead of its
        # own change: the page before ends early to make room, and rows
        # that no page holds are walked over the next pages. A key that
        # existed at the cursor closes what its former values opened first
        # (move-out), then opens its rows the same way; with no value kept
        # it answers 410 (a resync)
        s = self.server()
        bob = self.as_user("bob")
        self.rows(s, "members")
        admin = bearer("shared")
        mid = iter(range(1, 1000))

        def plain(*ops):
            res = self.plain.push("admin", [op(next(mid)) for op in ops], headers=admin)
            self.assertEqual({r["status"] for r in res}, {"applied"}, res)

        def task(tid, project):
            return lambda m: ins(m, "tasks", id=tid, project=project)

        def member(project, op=ins):
            return lambda m: (op(m, "members", project=project, user_id="bob") if op is ins else
                              op(m, "members", {"project": project, "user_id": "bob"}))

        plain(*[task("p1-%d" % i, "p1") for i in range(5)], *[task("p3-%d" % i, "p3")
                                                             for i in range(30)],
              *[task("p4-%d" % i, "p4") for i in range(40)])
        got, cursor = self.seen(s, bob, "b1", limit=100)
        self.assertEqual({k for t, k in got if t == "tasks"}, set())

        def tasks(page):
            return {c["pk"]["id"] for c in page["changes"] if c["table"] == "tasks"}

        # alice's p1 opens to bob: its five tasks, in one page of ten
        ev = s.events("b1", cursor=cursor, headers=bob)
        plain(member("p1"))
        status, _, page = self.page(s, bob, "b1", cursor, 10)
        self.assertEqual(status, 200, page)
        self.assertEqual(tasks(page), {"p1-%d" % i for i in range(5)})
        self.assertEqual([c["table"] for c in page["changes"]][-1], "members")
        self.assertFalse(page["has_more"])
        # the event stream carries them as well, and stays open (a push
        # through this syncd wakes it: the membership came through another)
        self.assertEqual(self.push(s, bob, "b9", [ins(1, "todos", id="wake", owner="bob")])[0]
                         ["status"], "applied")
        streamed = set()
        while not streamed >= {"p1-%d" % i for i in range(5)}:
            streamed |= tasks(ev.next_event(10)["data"])
        self.assertEqual(self.push(s, bob, "b9", [ins(2, "tasks", id="p1-late", project="p1")])[0]
                         ["status"], "applied")
        while "p1-late" not in streamed:
            streamed |= tasks(ev.next_event(10)["data"])
        ev.close()
        _, cursor = self.seen(s, bob, "b1", cursor=cursor, limit=100)
        # p3's thirty do not fit after three changes in a page of 32: that
        # page ends before the membership, the next holds them
        plain(*[lambda m, i=i: ins(m, "todos", id="b%d" % i, owner="bob") for i in range(3)],
              member("p3"))
        status, _, page = self.page(s, bob, "b1", cursor, 32)
        self.assertEqual(status, 200, page)
        self.assertEqual(([c["table"] for c in page["changes"]], page["has_more"]),
                         (["todos"] * 3, True))
        status, _, page = self.page(s, bob, "b1", page["cursor"], 32)
        self.assertEqual(status, 200, page)
        self.assertEqual(tasks(page), {"p3-%d" % i for i in range(30)})
        cursor = page["cursor"]
        # p4's forty do not fit in a page of 32 at all: that page holds 31
        # and the membership, and its cursor walks on through the rest
        # before the changes after it (a task added meanwhile among them)
        plain(member("p4"))
        status, _, page = self.page(s, bob, "b1", cursor, 32)
        self.assertEqual(status, 200, page)
        self.assertEqual((len(tasks(page)), page["changes"][-1]["table"], page["has_more"]),
                         (31, "members", True))
        got = tasks(page)
        plain(task("p4-late", "p4"))
        while page["has_more"]:
            status, _, page = self.page(s, bob, "b1", page["cursor"], 32)
            self.assertEqual(status, 200, page)
            got |= tasks(page)
        self.assertEqual(got, {"p4-%d" % i for i in range(40)} | {"p4-late"})
        cursor = page["cursor"]
        # the same a row a page: no 410 either
        plain(*[task("p5-%d" % i, "p5") for i in range(4)], member("p5"))
        got, pages, page = set(), 0, {"cursor": cursor, "has_more": True}
        while page["has_more"]:
            status, _, page = self.page(s, bob, "b1", page["cursor"], 1)
            self.assertEqual(status, 200, page)
            got |= tasks(page)
            pages += 1
        self.assertEqual(got, {"p5-%d" % i for i in range(4)})
        self.assertGreaterEqual(pages, 5)
        cursor = page["cursor"]
        # a crafted move-in cursor naming another user's membership brings
        # nothing bob may not read; one naming no membership table resyncs
        plain(*[task("p9-%d" % i, "p9") for i in range(3)],
              lambda m: ins(m, "members", project="p9", user_id="alice"))
        db, version = cursor.rsplit("-", 1)
        hexed = "%s.%s" % ("members".encode().hex(), json.dumps(
            {"project": "p9", "user_id": "alice"}, sort_keys=True).encode().hex())
        status, _, page = self.page(s, bob, "b1", "%s-%si%s" % (db, version, hexed), 100)
        self.assertEqual(status, 200, page)
        self.assertEqual(tasks(page), set())
        status, _, data = self.page(s, bob, "b1", "%s-%si%s" % (db, version, hexed.replace(
            "members".encode().hex(), "secrets".encode().hex())), 100)
        self.assertEqual((status, data), (410, {"error": "cursor expired", "moved": True}))
        got, cursor = self.seen(s, bob, "b1", limit=100)
        self.assertEqual(len([k for t, k in got if t == "tasks"]), 5 + 1 + 30 + 41 + 4)
        # bob leaves p1 and comes back after the cursor: his key existed at
        # it, and no value of it is kept (the insert dropped the delete's,
        # the same), so the pull cannot tell what the change closed: 410
        _, cursor = self.seen(s, bob, "b1", cursor=cursor, limit=100)
        plain(member("p1", dele), member("p1"))
        status, _, data = self.page(s, bob, "b1", cursor, 100)
        self.assertEqual((status, data), (410, {"error": "cursor expired", "moved": True}))

    def test_a_membership_moved_closes_and_opens_rows(self):
        # bob's seat moves from p1 to p2 (an update): his increment deletes
        # p1's tasks, except one he still reads through members, and brings
        # p2's, ahead of the seat's own change, with no resync. When the
        # rows it closes and opens do not fit in a page, the pages walk
        # through them (an "o" cursor, then an "i" one), with no resync
        rules = json.loads(json.dumps(RULES))
        mine = ("project IN (SELECT project FROM seats WHERE user_id = :sub)"
                " OR project IN (SELECT project FROM members WHERE user_id = :sub)")
        rules["tables"]["tasks"] = {"read": mine, "write": mine}
        rules["tables"]["seats"] = {"read": "user_id = :sub", "write": "true"}
        s = self.server(rules)
        bob, admin = self.as_user("bob"), bearer("shared")
        self.rows(s, "members")
        res = self.plain.push("admin", [ins(1, "seats", id="s1", project="p1", user_id="bob")] +
                              [ins(2 + i, "tasks", id="a%d" % i, project="p1") for i in range(4)] +
                              [ins(10 + i, "tasks", id="b%d" % i, project="p3") for i in range(3)] +
                              [ins(20, "tasks", id="m1", project="p2")], headers=admin)
        self.assertEqual({r["status"] for r in res}, {"applied"}, res)
        got, cursor = self.seen(s, bob, "b1", limit=100)
        self.assertEqual({json.loads(k)["id"] for t, k in got if t == "tasks"},
                         {"a0", "a1", "a2", "a3", "m1"})
        res = self.plain.push("admin", [upd(21, "seats", {"id": "s1"}, project="p3"),
                                        ins(22, "members", project="p1", user_id="bob")],
                              headers=admin)
        self.assertEqual({r["status"] for r in res}, {"applied"}, res)
        status, _, page = self.page(s, bob, "b1", cursor, 100)
        self.assertEqual(status, 200, page)
        ops = [(c["op"], c["table"], c["pk"].get("id")) for c in page["changes"]]
        # a0-a3 stay (p1 through members now, which brings them again):
        # nothing closes; p3's come
        self.assertEqual({o for o in ops if o[1] == "tasks" and o[0] == "delete"}, set())
        self.assertLessEqual({("upsert", "tasks", "b%d" % i) for i in range(3)}, set(ops))
        cursor = page["cursor"]
        res = self.plain.push("admin", [dele(23, "members", {"project": "p1", "user_id": "bob"}),
                                        upd(24, "seats", {"id": "s1"}, project="p2")],
                              headers=admin)
        self.assertEqual({r["status"] for r in res}, {"applied"}, res)
        for limit in (100, 4, 2, 1):
            pages, ops, page = 0, [], {"cursor": cursor, "has_more": True}
            while page["has_more"]:
                status, _, page = self.page(s, bob, "b1", page["cursor"], limit)
                self.assertEqual(status, 200, page)
                ops += [(c["op"], c["table"], c["pk"].get("id")) for c in page["changes"]]
                pages += 1
                self.assertLess(pages, 40)
            self.check_moved_out(ops)
            if limit < 100:
                self.assertGreater(pages, 2)
        # a crafted move-out cursor naming another user's membership closes
        # nothing of bob's; one naming no membership table resyncs
        db, version = page["cursor"].rsplit("-", 1)
        hexed = "%s.%s" % ("members".encode().hex(), json.dumps(
            {"project": "p1", "user_id": "alice"}, sort_keys=True).encode().hex())
        status, _, data = self.page(s, bob, "b1", "%s-%so%s" % (db, version, hexed), 100)
        self.assertEqual(status, 200, data)
        self.assertEqual([c for c in data["changes"] if c["op"] == "delete"], [])
        status, _, data = self.page(s, bob, "b1", "%s-%so%s" % (db, version, hexed.replace(
            "members".encode().hex(), "secrets".encode().hex())), 100)
        self.assertEqual((status, data), (410, {"error": "cursor expired", "moved": True}))

    def check_moved_out(self, ops):
        # (a0-a3 twice: the seat's value p1, kept from its first move, closes
        # them again, a delete the client applies once)
        self.assertEqual({o for o in ops if o[1] == "tasks"},
                         {("delete", "tasks", "a%d" % i) for i in range(4)} |
                         {("delete", "tasks", "b%d" % i) for i in range(3)} |
                         {("upsert", "tasks", "m1")})
        self.assertIn(("upsert", "seats", "s1"), ops)

    def test_a_membership_key_made_again_between_pages(self):
        # seats are keyed by an id, so a seat deleted and made again may
        # name another project. Bob's seat s1 moves from p1 to p2 (deleted
        # and inserted again) while he is offline; his pages from then pass
        # the slot of the delete before they meet the insert, which replaced
        # it in the log. He never saw the delete, so the insert may have
        # closed rows he holds: the value the delete kept (p1) deletes k1,
        # and the insert brings k2, with no resync. A client that follows
        # the pages, resyncing on 410, ends with exactly what bob may read
        rules = json.loads(json.dumps(RULES))
        mine = "project IN (SELECT project FROM seats WHERE user_id = :sub)"
        rules["tables"]["tasks"] = {"read": mine, "write": mine}
        rules["tables"]["seats"] = {"read": "user_id = :sub", "write": "false"}
        s = self.server(rules)
        bob, admin = self.as_user("bob"), bearer("shared")
        self.rows(s, "members")
        mid = iter(range(1, 100))

        def plain(*ops):
            res = self.plain.push("admin", [op(next(mid)) for op in ops], headers=admin)
            self.assertEqual({r["status"] for r in res}, {"applied"}, res)

        def todo(i):
            return lambda m: ins(m, "todos", id="f%d" % i, owner="bob")

        plain(lambda m: ins(m, "tasks", id="k1", project="p1"),
              lambda m: ins(m, "tasks", id="k2", project="p2"),
              lambda m: ins(m, "seats", id="s1", project="p1", user_id="bob"))

        def everything():
            held = {}
            q = {"client_id": "b1", "limit": "4"}
            while True:
                status, _, page = s.request("GET", "/pull?" + urllib.parse.urlencode(q),
                                            headers=bob)
                self.assertEqual(status, 200, page)
                for c in page["changes"]:
                    key = (c["table"], json.dumps(c["pk"], sort_keys=True))
                    held[key] = c.get("row")
                q["cursor"] = page["cursor"]
                if not page["has_more"]:
                    return {k: v for k, v in held.items() if v is not None}, page["cursor"]

        held, cursor = everything()
        self.assertIn(("tasks", json.dumps({"id": "k1"})), held)
        plain(*[todo(i) for i in range(3)],
              lambda m: dele(m, "seats", {"id": "s1"}),
              *[todo(i) for i in range(3, 6)],
              lambda m: ins(m, "seats", id="s1", project="p2", user_id="bob"))
        q, resynced = {"client_id": "b1", "limit": "4", "cursor": cursor}, False
        while True:
            status, _, page = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=bob)
            if status == 410:
                self.assertEqual(page, {"error": "cursor expired", "moved": True})
                held, cursor = everything()
                resynced = True
                break
            self.assertEqual(status, 200, page)
            for c in page["changes"]:
                held[(c["table"], json.dumps(c["pk"], sort_keys=True))] = c.get("row")
            q["cursor"] = page["cursor"]
            if not page["has_more"]:
                break
        self.assertFalse(resynced)
        tasks = {k for k, v in held.items() if k[0] == "tasks" and v is not None}
        self.assertEqual(tasks, {("tasks", json.dumps({"id": "k2"}))})

    def test_a_membership_key_made_again_after_its_cascade(self):
        # a chair (a membership keyed by an id) that no push of these rules
        # wrote (the application's backend did), deleted by its team's
        # delete (ON DELETE CASCADE), keeps the values the cascade deleted;
        # made again for alice in another push, the log
        # keeps only the insert, which does not name bob (and keeps its
        # own values). Bob, who held board b1 through the chair, still
        # gets deletes of b1 and the chair (tests/converge/rules_run.py
        # --seats found it)
        rules = json.loads(json.dumps(RULES))
        rules["tables"]["boards"] = {
            "read": "team IN (SELECT team FROM chairs WHERE user_id = :sub)", "write": "true"}
        rules["tables"]["chairs"] = {"read": "user_id = :sub", "write": "true"}
        rules["tables"]["teams"] = {"read": "true", "write": "true"}
        s = self.server(rules)
        alice, bob = self.as_user("alice"), self.as_user("bob")
        res = self.push(s, alice, "a1", [ins(1, "teams", id="t1"), ins(2, "teams", id="t2"),
                                         ins(4, "boards", id="b1", team="t1"),
                                         ins(5, "boards", id="b2", team="t2")])
        self.rows(s, "chairs")
        res += self.plain.push("admin", [ins(1, "chairs", id="c1", team="t1", user_id="bob")],
                               headers=bearer("shared"))
        self.assertEqual({r["status"] for r in res}, {"applied"}, res)
        b1 = ("boards", json.dumps({"id": "b1"}))
        got, cursor = self.seen(s, bob, "b1", limit=100)
        self.assertIn(b1, got)
        res = self.push(s, alice, "a1", [dele(6, "teams", {"id": "t1"})])
        res += self.push(s, alice, "a1", [ins(7, "chairs", id="c1", team="t2", user_id="alice")])
        self.assertEqual([r["status"] for r in res], ["applied", "applied"], res)
        self.assertEqual(self.rows(s, "chairs"),
                         {json.dumps({"id": "c1"}): {"id": "c1", "team": "t2",
                                                     "user_id": "alice"}})
        gone, _ = self.moved_out(s, bob, "b1", cursor)
        self.assertLessEqual({b1, ("chairs", json.dumps({"id": "c1"}))}, gone)
        got, _ = self.seen(s, bob, "b1", limit=100)
        self.assertNotIn(b1, got)
        self.assertNotIn(("chairs", json.dumps({"id": "c1"})), got)

    def test_a_membership_moved_then_deleted_by_a_cascade(self):
        # chair c1 is alice's, then moved to bob by a push (its former value,
        # alice's, is kept), then deleted by its team's delete (ON DELETE
        # CASCADE). The storage's triggers keep the values the cascade
        # deleted, so bob, whom the deleted row named, gets deletes of board
        # b1 and the chair itself (tests/converge/rules_run.py --seat-cascade
        # found it)
        rules = json.loads(json.dumps(RULES))
        rules["tables"]["boards"] = {
            "read": "team IN (SELECT team FROM chairs WHERE user_id = :sub)", "write": "true"}
        rules["tables"]["chairs"] = {"read": "user_id = :sub", "write": "true"}
        rules["tables"]["teams"] = {"read": "true", "write": "true"}
        s = self.server(rules)
        alice, bob = self.as_user("alice"), self.as_user("bob")
        res = self.push(s, alice, "a1", [ins(1, "teams", id="t1"),
                                         ins(2, "chairs", id="c1", team="t1", user_id="alice"),
                                         ins(3, "boards", id="b1", team="t1"),
                                         upd(4, "chairs", {"id": "c1"}, user_id="bob")])
        self.assertEqual({r["status"] for r in res}, {"applied"}, res)
        b1, c1 = ("boards", json.dumps({"id": "b1"})), ("chairs", json.dumps({"id": "c1"}))
        got, cursor = self.seen(s, bob, "b1", limit=100)
        self.assertLessEqual({b1, c1}, got)
        res = self.push(s, alice, "a1", [dele(5, "teams", {"id": "t1"})])
        self.assertEqual(res[0]["status"], "applied", res)
        self.assertEqual(self.rows(s, "chairs"), {})
        gone, _ = self.moved_out(s, bob, "b1", cursor)
        self.assertLessEqual({b1, c1}, gone)
        got, _ = self.seen(s, bob, "b1", limit=100)
        self.assertFalse({b1, c1} & got, got)

    def test_a_membership_a_trigger_moved_twice(self):
        # berth b1 is pushed for x; renaming person p to bob moves it to bob
        # (a trigger on people, no push names bob), and renaming them to
        # carol moves it on. The storage's triggers keep the value the
        # first move set, so bob's increment deletes crew c1's cargo and the
        # berth; when only what pushes gave was kept, bob kept them
        rules = json.loads(json.dumps(RULES))
        rules["tables"]["people"] = {"read": "true", "write": "true"}
        rules["tables"]["berths"] = {"read": "user_id = :sub", "write": "true"}
        rules["tables"]["cargo"] = {
            "read": "crew IN (SELECT crew FROM berths WHERE user_id = :sub)", "write": "true"}
        s = self.server(rules)
        alice, bob = self.as_user("alice"), self.as_user("bob")
        res = self.push(s, alice, "a1", [ins(1, "people", id="p", name="x"),
                                         ins(2, "berths", id="b1", crew="c1", person="p",
                                             user_id="x"),
                                         ins(3, "cargo", id="g1", crew="c1")])
        self.assertEqual({r["status"] for r in res}, {"applied"}, res)
        _, cursor = self.seen(s, bob, "b1", limit=100)
        res = self.push(s, alice, "a1", [upd(4, "people", {"id": "p"}, name="bob")])
        self.assertEqual(res[0]["status"], "applied", res)
        self.assertEqual(self.rows(s, "berths")[json.dumps({"id": "b1"})]["user_id"], "bob")
        b1, g1 = ("berths", json.dumps({"id": "b1"})), ("cargo", json.dumps({"id": "g1"}))
        # the first move opens b1 and g1 to bob within his increment
        gone, page = self.moved_out(s, bob, "b1", cursor)
        self.assertEqual(gone, set())
        got = {(c["table"], json.dumps(c["pk"], sort_keys=True)) for c in page["changes"]}
        self.assertLessEqual({b1, g1}, got)
        self.assertFalse(page["has_more"])
        cursor = page["cursor"]
        res = self.push(s, alice, "a1", [upd(5, "people", {"id": "p"}, name="carol")])
        self.assertEqual(res[0]["status"], "applied", res)
        self.assertEqual(self.rows(s, "berths")[json.dumps({"id": "b1"})]["user_id"], "carol")
        gone, _ = self.moved_out(s, bob, "b1", cursor)
        self.assertLessEqual({b1, g1}, gone)
        got, _ = self.seen(s, bob, "b1", limit=100)
        self.assertFalse({b1, g1} & got, got)

    def test_a_membership_table_without_a_rule(self):
        # members has no rule (never synced), only tasks' select reads it:
        # its rows' former values are kept all the same, so deleting dave's
        # membership leaves bob's increment alone, and deleting bob's own
        # deletes p2's task in his
        rules = json.loads(json.dumps(RULES))
        del rules["tables"]["members"]
        s = self.server(rules)
        bob, admin = self.as_user("bob"), bearer("shared")
        self.rows(s, "members")
        res = self.plain.push("admin", [ins(1, "members", project="p3", user_id="dave"),
                                        ins(2, "tasks", id="k2", project="p2"),
                                        ins(3, "tasks", id="k3", project="p3")], headers=admin)
        self.assertEqual({r["status"] for r in res}, {"applied"}, res)
        got, cursor = self.seen(s, bob, "b1", limit=100)
        k2 = ("tasks", json.dumps({"id": "k2"}))
        self.assertIn(k2, got)
        self.assertFalse({t for t, _ in got} & {"members"}, got)
        res = self.plain.push("admin", [dele(4, "members", {"project": "p3", "user_id": "dave"})],
                              headers=admin)
        self.assertEqual(res[0]["status"], "applied", res)
        status, _, data = self.page(s, bob, "b1", cursor, 100)
        self.assertEqual(status, 200, data)
        self.assertEqual(data["changes"], [])
        res = self.plain.push("admin", [dele(5, "members", {"project": "p2", "user_id": "bob"})],
                              headers=admin)
        self.assertEqual(res[0]["status"], "applied", res)
        gone, _ = self.moved_out(s, bob, "b1", data["cursor"])
        self.assertIn(k2, gone)
        got, _ = self.seen(s, bob, "b1", limit=100)
        self.assertNotIn(k2, got)

    def test_a_membership_key_too_long_for_a_cursor(self):
        # a move-in walked over pages names its membership row in the
        # cursor; a key longer than a cursor holds (2048 bytes with its
        # table's name) moves in when one page holds the rows, and
        # otherwise walks on over pages, the cursor naming the row by
        # reference (docs/RULES.md): no 410
        s = self.server()
        bob, admin = self.as_user("bob"), bearer("shared")
        self.rows(s, "members")
        long1, long2 = "p" * 2100, "q" * 2100
        res = self.plain.push("admin", [ins(1, "tasks", id="a1", project=long1)] +
                              [ins(2 + i, "tasks", id="b%d" % i, project=long2)
                               for i in range(5)], headers=admin)
        self.assertEqual({r["status"] for r in res}, {"applied"}, res)
        _, cursor = self.seen(s, bob, "b1", tables="tasks", limit=100)

        def join(mid, project):
            res = self.plain.push("admin", [ins(mid, "members", project=project, user_id="bob")],
                                  headers=admin)
            self.assertEqual(res[0]["status"], "applied", res)

        join(10, long1)
        q = {"client_id": "b1", "cursor": cursor, "limit": "3", "tables": "tasks"}
        status, _, page = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=bob)
        self.assertEqual(status, 200, page)
        self.assertEqual([c["pk"]["id"] for c in page["changes"]], ["a1"])
        self.assertFalse(page["has_more"])
        join(11, long2)
        got, _ = self.seen(s, bob, "b1", page["cursor"], tables="tasks", limit=3)
        self.assertEqual({json.loads(k)["id"] for t, k in got if t == "tasks"},
                         {"b%d" % i for i in range(5)})

    def test_a_move_in_cursor_after_the_rules_changed(self):
        # a move-in walked over pages, its cursor then served by a syncd
        # whose rules read the membership table under NOT: the walk cannot
        # go on as it began, so 410 "moved"; the resync brings the rule's rows
        s = self.server()
        bob, admin = self.as_user("bob"), bearer("shared")
        self.rows(s, "members")
        res = self.plain.push("admin", [ins(1 + i, "tasks", id="k%d" % i, project="p1")
                                        for i in range(5)], headers=admin)
        self.assertEqual({r["status"] for r in res}, {"applied"}, res)
        _, cursor = self.seen(s, bob, "b1", limit=100)
        res = self.plain.push("admin", [ins(9, "members", project="p1", user_id="bob")],
                              headers=admin)
        self.assertEqual(res[0]["status"], "applied", res)
        status, _, page = self.page(s, bob, "b1", cursor, 3)
        self.assertEqual((status, page["has_more"]), (200, True), page)
        self.assertIn("i", page["cursor"].rsplit("-", 1)[1])
        rules = json.loads(json.dumps(RULES))
        rules["tables"]["tasks"]["read"] = (
            "NOT project IN (SELECT project FROM members WHERE user_id = :sub)")
        other = self.server(rules)
        status, _, data = self.page(other, bob, "b1", page["cursor"], 3)
        self.assertEqual((status, data), (410, {"error": "cursor expired", "moved": True}))

    def test_a_membership_that_may_close_rows_resyncs(self):
        # a select under NOT may close rows when its table gains one, so
        # no move-in is tried: 410, as before
        rules = json.loads(json.dumps(RULES))
        rules["tables"]["tasks"]["read"] = (
            "NOT project IN (SELECT project FROM members WHERE user_id = :sub)")
        s = self.server(rules)
        bob = self.as_user("bob")
        self.rows(s, "members")
        res = self.plain.push("admin", [ins(1, "tasks", id="k1", project="p1")],
                              headers=bearer("shared"))
        self.assertEqual(res[0]["status"], "applied", res)
        got, cursor = self.seen(s, bob, "b1", limit=100)
        self.assertIn(("tasks", json.dumps({"id": "k1"})), got)
        res = self.plain.push("admin", [ins(2, "members", project="p1", user_id="bob")],
                              headers=bearer("shared"))
        self.assertEqual(res[0]["status"], "applied", res)
        status, _, data = self.page(s, bob, "b1", cursor, 100)
        self.assertEqual((status, data), (410, {"error": "cursor expired", "moved": True}))
        got, _ = self.seen(s, bob, "b1", limit=100)
        self.assertNotIn(("tasks", json.dumps({"id": "k1"})), got)

    def test_a_membership_table_not_tracked_still_moves_rows(self):
        # the tasks rule selects from members; a pull that does not send
        # members (the client tracks tasks and todos only) still meets its
        # changes: bob's own brings p1's task (move-in), carol's does not,
        # and bob's removal answers 410 (move-out)
        self.check_membership_not_sent(RULES, "tasks,todos")

    def test_a_membership_table_without_a_rule_still_moves_rows(self):
        # the same with members kept by the application's backend, without
        # a rule: never sent, never written by a client, and its changes
        # still move rows in and out
        rules = json.loads(json.dumps(RULES))
        del rules["tables"]["members"]
        s = self.check_membership_not_sent(rules, None)
        bob = self.as_user("bob")
        res = self.push(s, bob, "b3", [ins(1, "tasks", id="kb", project="p2")])
        self.assertEqual(res[0]["status"], "applied", res)
        got, _ = self.seen(s, bob, "b2", tables="members,tasks")
        self.assertEqual({t for t, _ in got}, {"tasks"})
        self.assertDenied(self.push(s, bob, "b1", [
            ins(1, "members", project="p1", user_id="bob")]))

    def check_membership_not_sent(self, rules, tables):
        s = self.server(rules)
        alice, bob = self.as_user("alice"), self.as_user("bob")
        self.push(s, alice, "a1", [ins(1, "tasks", id="k1", project="p1")])
        got, cursor = self.seen(s, bob, "b1", tables=tables)
        self.assertNotIn(("tasks", json.dumps({"id": "k1"})), got)
        self.rows(s, "members")
        for mid, user in ((1, "carol"), (2, "bob")):
            res = self.plain.push("admin", [ins(mid, "members", project="p1", user_id=user)],
                                  headers=bearer("shared"))
            self.assertEqual(res[0]["status"], "applied", res)
            if user == "carol":
                got, cursor = self.seen(s, bob, "b1", cursor=cursor, tables=tables)
                self.assertEqual(got, set())
        got, cursor = self.seen(s, bob, "b1", cursor=cursor, tables=tables)
        self.assertIn(("tasks", json.dumps({"id": "k1"})), got)
        res = self.plain.push("admin", [dele(3, "members", {"project": "p1", "user_id": "bob"})],
                              headers=bearer("shared"))
        self.assertEqual(res[0]["status"], "applied", res)
        q = {"client_id": "b1", "cursor": cursor}
        if tables:
            q["tables"] = tables
        status, _, data = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=bob)
        self.assertEqual(status, 200, data)
        self.assertEqual([(c["op"], c["table"], c["pk"]) for c in data["changes"]],
                         [("delete", "tasks", {"id": "k1"})])
        got, _ = self.seen(s, bob, "b1", tables=tables)
        self.assertNotIn(("tasks", json.dumps({"id": "k1"})), got)
        return s

    def test_a_delete_reaches_only_who_could_read_the_row(self):
        # a deleted key goes to the users a value the row had passes the
        # read rule for (docs/RULES.md), not to everyone: bob never learns
        # the keys of alice's todo t1 nor of p1's task k1; alice's other
        # device does. A row made and deleted by a syncd without --rules
        # keeps its values too (the storage's triggers): carol's t9 reaches
        # neither. bob's t3, pushed last, ends each read
        s = self.server()
        alice, bob = self.as_user("alice"), self.as_user("bob")
        self.push(s, alice, "a1", [ins(1, "todos", id="t1", owner="alice"),
                                   ins(2, "tasks", id="k1", project="p1")])
        self.push(s, bob, "b1", [ins(1, "todos", id="t2", owner="bob")])
        _, a2 = self.seen(s, alice, "a2")
        _, b1 = self.seen(s, bob, "b1")
        self.rows(s, "todos")
        res = self.plain.push("admin", [ins(1, "todos", id="t9", owner="carol")],
                              headers=bearer("shared"))
        self.assertEqual(res[0]["status"], "applied", res)
        b0 = self.seen(s, bob, "b1", cursor=b1)[1]
        res = self.push(s, alice, "a1", [dele(3, "todos", {"id": "t1"}),
                                         dele(4, "tasks", {"id": "k1"})])
        self.assertEqual([r["status"] for r in res], ["applied", "applied"], res)
        res = self.plain.push("admin", [dele(2, "todos", {"id": "t9"}),
                                        ins(3, "todos", id="t3", owner="bob")],
                              headers=bearer("shared"))
        self.assertEqual([r["status"] for r in res], ["applied", "applied"], res)
        t1, k1 = ("todos", json.dumps({"id": "t1"})), ("tasks", json.dumps({"id": "k1"}))
        t3 = ("todos", json.dumps({"id": "t3"}))
        self.assertEqual(self.seen(s, alice, "a2", cursor=a2)[0], {t1, k1})
        self.assertEqual(self.seen(s, bob, "b1", cursor=b0)[0], {t3})
        # the event stream judges them the same way
        for user, client, cursor, want in ((alice, "a2", a2, {t1, k1}), (bob, "b1", b0, {t3})):
            ev = s.events(client, cursor=cursor, headers=user)
            self.assertEqual(ev.status, 200)
            got = set()
            while not want <= got:
                e = ev.next_event(10)
                got |= {(c["table"], json.dumps(c["pk"], sort_keys=True))
                        for c in e["data"]["changes"]}
            ev.close()
            self.assertEqual(got, want)

    def test_initial_sync_reads_only_readable_rows(self):
        # the read rule is part of the page query (docs/RULES.md, "Initial
        # sync"): a page of 4 holds 4 of alice's rows, where a filter after
        # the query held about one (3 of 4 rows are bob's)
        rules = json.loads(json.dumps(RULES))
        rules["tables"]["items"] = {"read": "owner = :sub", "write": "true"}
        s = self.server(rules)
        alice = self.as_user("alice")
        mine = {(g, n) for g in range(3) for n in range(20) if (g * 20 + n) % 4 == 0}
        q = {"client_id": "a1", "limit": "4", "tables": "items"}
        pages = []
        while True:
            status, _, page = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=alice)
            self.assertEqual(status, 200, page)
            pages.append([(c["pk"]["g"], c["pk"]["n"]) for c in page["changes"]])
            q["cursor"] = page["cursor"]
            if not page["has_more"]:
                break
        self.assertEqual([len(p) for p in pages], [4, 4, 4, 3], pages)
        # in key order, each row once
        got = [k for p in pages for k in p]
        self.assertEqual(got, sorted(mine))
        # rows that change while it pages: one inserted behind its position,
        # one it sent then deleted, one it sent then given away, one ahead
        # of it given away, one ahead of it updated: the last page brings
        # the changes since the walk began, so alice ends with her rows
        held = {}
        q = {"client_id": "a2", "limit": "4", "tables": "items"}
        step = 0
        while True:
            status, _, page = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=alice)
            self.assertEqual(status, 200, page)
            for c in page["changes"]:
                k = (c["pk"]["g"], c["pk"]["n"])
                if c["op"] == "delete":
                    held.pop(k, None)
                else:
                    self.assertEqual(c["row"]["owner"], "alice", c)
                    held[k] = c["row"]
            q["cursor"] = page["cursor"]
            if not page["has_more"]:
                break
            step += 1
            if step == 2:
                res = self.push(s, alice, "a9", [
                    ins(1, "items", g=0, n=-1, owner="alice"),
                    dele(2, "items", {"g": 0, "n": 0}),
                    upd(3, "items", {"g": 0, "n": 4}, owner="bob"),
                    upd(4, "items", {"g": 2, "n": 16}, owner="bob"),
                    upd(5, "items", {"g": 2, "n": 12}, owner="alice")])
                self.assertEqual([r["status"] for r in res], ["applied"] * 5, res)
        want = (mine | {(0, -1)}) - {(0, 0), (0, 4), (2, 16)}
        self.assertEqual(set(held), want)
        # through membership (the page sorts the keys the rule selects):
        # alice's tasks are p1's, interleaved with p2's
        res = self.push(s, self.as_user("bob"), "b1", [
            ins(i, "tasks", id="k%02d" % i, project="p2") for i in range(1, 12, 2)])
        self.assertEqual([r["status"] for r in res], ["applied"] * 6, res)
        res = self.push(s, alice, "a1", [
            ins(i, "tasks", id="k%02d" % i, project="p1") for i in range(2, 12, 2)])
        self.assertEqual([r["status"] for r in res], ["applied"] * 5, res)
        q = {"client_id": "a3", "limit": "2", "tables": "tasks"}
        pages = []
        while True:
            status, _, page = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=alice)
            self.assertEqual(status, 200, page)
            pages.append([c["pk"]["id"] for c in page["changes"]])
            q["cursor"] = page["cursor"]
            if not page["has_more"]:
                break
        self.assertEqual(pages, [["k02", "k04"], ["k06", "k08"], ["k10"]])
        # a crafted position is only a position: a malformed one is refused,
        # and one in another table or at another key still sends alice only
        # her rows
        db, head = page["cursor"].split("-")[0], page["cursor"].split("-")[-1]
        head = head.split("w")[0]
        for bad in ("zz.7b7d", "7461736b73.5b5d", "7461736b73", "7461736b73.7b"):
            q = {"client_id": "a3", "tables": "tasks", "cursor": "%s-%sw%s" % (db, head, bad)}
            status, _, data = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=alice)
            self.assertEqual((status, data), (400, {"error": "malformed cursor"}), bad)
        # a key of the wrong type: PostgreSQL cannot read "x" as an integer
        # key, so it is no position at all (not a storage failure); SQLite
        # orders it after every integer, an end of the table
        pos = "items".encode().hex() + "." + json.dumps({"g": "x", "n": 0}).encode().hex()
        q = {"client_id": "a3", "tables": "items", "cursor": "%s-%sw%s" % (db, head, pos)}
        status, _, data = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=alice)
        if isinstance(self, PgStore):
            self.assertEqual((status, data), (400, {"error": "malformed cursor"}))
        else:
            self.assertEqual(status, 200, data)
            self.assertFalse([c for c in data["changes"] if (c.get("row") or {}).get("owner",
                                                                                   "alice") != "alice"])
        # a walk of a database this server is not, or above its head: the
        # server went back in time (docs/PROTOCOL.md), as for any cursor
        pos = "7461736b73." + json.dumps({"id": "k02"}).encode().hex()
        for cursor in ("ZZZZZZZZZZZZ-%sw%s" % (head, pos), "%s-%dw%s" % (db, int(head) + 99, pos)):
            q = {"client_id": "a3", "tables": "tasks", "cursor": cursor}
            status, _, data = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=alice)
            self.assertEqual((status, data), (410, {"error": "cursor expired", "reset": True}))
        # the same storage served without rules cannot go on with a walk
        plain = self.server(rules=None, store_args=self.args)
        q = {"client_id": "a4", "cursor": "%s-%sw%s" % (db, head, pos)}
        status, _, data = plain.request("GET", "/pull?" + urllib.parse.urlencode(q),
                                        headers=bearer("shared"))
        self.assertEqual((status, data), (410, {"error": "cursor expired"}))
        for table, key in (("items", {"g": 0, "n": 0}), ("members", {"project": "p9"})):
            pos = table.encode().hex() + "." + json.dumps(key).encode().hex()
            got, _ = self.seen(s, alice, "a3", cursor="%s-%sw%s" % (db, head, pos))
            self.assertEqual({(t, k) for t, k in got if t != "members"} - {
                ("items", json.dumps({"g": g, "n": n}, sort_keys=True)) for g, n in want} - {
                ("tasks", json.dumps({"id": "k%02d" % i})) for i in range(2, 12, 2)}, set())

    def test_initial_sync_meets_a_membership_change(self):
        # bob's initial sync pages past k1 (hidden: not a member of p1 yet);
        # alice then adds him to p1. A later page runs past the head the
        # sync began at and meets that membership: it brings k1 (unchanged,
        # below the cursor, so no change of its own would) as an increment
        # does (move-in); a removal deletes it (move-out)
        s = self.server(co_member_rules())
        alice, bob = self.as_user("alice"), self.as_user("bob")
        self.push(s, alice, "a1", [ins(1, "tasks", id="k1", project="p1")])
        self.push(s, bob, "b1", [ins(i, "todos", id=f"b{i}", owner="bob") for i in (1, 2)])
        q = {"client_id": "b1", "limit": "1"}
        while True:  # one change a page, until the page that passed k1
            status, _, page = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=bob)
            self.assertEqual(status, 200, page)
            self.assertTrue(page["has_more"], page)
            self.assertNotIn({"id": "k1"}, [c["pk"] for c in page["changes"]])
            q["cursor"] = page["cursor"]
            # the walk (docs/RULES.md) goes table by table, in name order
            if walk_table(page["cursor"]) > "tasks":
                break
        res = self.push(s, alice, "a1", [ins(2, "members", project="p1", user_id="bob")])
        self.assertEqual(res[0]["status"], "applied", res)
        q["limit"] = "100"
        status, _, page = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=bob)
        self.assertEqual(status, 200, page)
        self.assertIn({"id": "k1"}, [c["pk"] for c in page["changes"]])
        # a key that existed while the sync paged (bob left p1 and came
        # back after its head) with no value kept may have let rows in that
        # its pages sent: 410. Before that head, it is new to the sync: a
        # move-in
        q = {"client_id": "b4", "limit": "1"}
        status, _, page = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=bob)
        self.assertEqual((status, page["has_more"]), (200, True), page)
        q["cursor"] = page["cursor"]
        for op in (dele(3, "members", {"project": "p1", "user_id": "bob"}),
                   ins(4, "members", project="p1", user_id="bob")):
            self.assertEqual(self.push(s, alice, "a1", [op])[0]["status"], "applied")
        q["limit"] = "100"
        status, _, data = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=bob)
        self.assertEqual((status, data), (410, {"error": "cursor expired", "moved": True}))
        got, _ = self.seen(s, bob, "b4", limit=100)
        self.assertIn(("tasks", json.dumps({"id": "k1"})), got)
        # the same for a move-out: alice removes bob from p1 while his next
        # initial sync pages past k1, which it sent him
        q = {"client_id": "b3", "limit": "1"}
        while True:
            status, _, page = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=bob)
            self.assertEqual((status, page["has_more"]), (200, True), page)
            q["cursor"] = page["cursor"]
            if {"id": "k1"} in [c["pk"] for c in page["changes"]]:
                break
        res = self.push(s, alice, "a1", [dele(5, "members", {"project": "p1", "user_id": "bob"})])
        self.assertEqual(res[0]["status"], "applied", res)
        q["limit"] = "100"
        status, _, data = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=bob)
        self.assertEqual(status, 200, data)
        self.assertIn(("delete", {"id": "k1"}), [(c["op"], c["pk"]) for c in data["changes"]])
        got, _ = self.seen(s, bob, "b3")
        self.assertNotIn(("tasks", json.dumps({"id": "k1"})), got)
        # any other change above that head is sent as before
        q = {"client_id": "b2", "limit": "1"}
        status, _, page = s.request("GET", "/pull?" + urllib.parse.urlencode(q), headers=bob)
        self.assertEqual((status, page["has_more"]), (200, True), page)
        self.push(s, bob, "b1", [ins(3, "todos", id="b3", owner="bob")])
        got, _ = self.seen(s, bob, "b2", cursor=page["cursor"])
        self.assertIn(("todos", json.dumps({"id": "b3"})), got)

    def test_owner_change_moves_the_row(self):
        # an admin may give a row away; its former reader gets a delete for
        # it (move-out), its new one the row (move-in), live and from an
        # old cursor, however many times it changed since
        rules = json.loads(json.dumps(RULES))
        rules["tables"]["todos"]["write"] = "owner = :sub OR :claim_role = 'admin'"
        s = self.server(rules)
        alice, bob, carol = self.as_user("alice"), self.as_user("bob"), self.as_user("carol")
        admin = self.as_user("root", role="admin")
        self.push(s, alice, "a1", [ins(1, "todos", id="t1", owner="alice", title="x"),
                                   ins(2, "todos", id="t2", owner="alice")])
        got, alice_cursor = self.seen(s, alice, "a1")
        self.assertIn(("todos", json.dumps({"id": "t1"})), got)
        _, bob_cursor = self.seen(s, bob, "b1")
        _, carol_cursor = self.seen(s, carol, "c1")
        alice_ev = s.events("a1", cursor=alice_cursor, headers=alice)
        bob_ev = s.events("b1", cursor=bob_cursor, headers=bob)
        res = self.push(s, admin, "r1", [upd(1, "todos", {"id": "t1"}, owner="bob")])
        self.assertEqual(res[0]["status"], "applied", res)

        def next_change(ev):
            while True:
                changes = ev.next_event(10)["data"]["changes"]
                if changes:
                    self.assertEqual(len(changes), 1, changes)
                    return changes[0]["op"], changes[0]["pk"]["id"]
        self.assertEqual(next_change(alice_ev), ("delete", "t1"))
        self.assertEqual(next_change(bob_ev), ("upsert", "t1"))
        alice_ev.close()
        bob_ev.close()

        def pulled(user, client, cursor):
            q = urllib.parse.urlencode({"client_id": client, "cursor": cursor})
            status, _, page = s.request("GET", "/pull?" + q, headers=user)
            self.assertEqual(status, 200, page)
            return {(c["op"], c["pk"]["id"]) for c in page["changes"]}
        # bob edits it (the change logged for t1 is now his), then it goes
        # on to carol: alice's old cursor still brings the delete
        res = self.push(s, bob, "b1", [upd(1, "todos", {"id": "t1"}, title="bob's")])
        self.assertEqual(res[0]["status"], "applied", res)
        self.assertEqual(pulled(alice, "a1", alice_cursor), {("delete", "t1")})
        self.assertEqual(pulled(bob, "b1", bob_cursor), {("upsert", "t1")})
        self.assertEqual(pulled(carol, "c1", carol_cursor), set())
        res = self.push(s, admin, "r1", [upd(2, "todos", {"id": "t1"}, owner="carol")])
        self.assertEqual(res[0]["status"], "applied", res)
        self.assertEqual(pulled(alice, "a1", alice_cursor), {("delete", "t1")})
        self.assertEqual(pulled(bob, "b1", bob_cursor), {("delete", "t1")})
        self.assertEqual(pulled(carol, "c1", carol_cursor), {("upsert", "t1")})
        # a user who never could read it is not told of it; an update that
        # moves nothing keeps nothing; a delete forgets its former values
        _, dave_cursor = self.seen(s, self.as_user("dave"), "d1")
        res = self.push(s, carol, "c1", [upd(1, "todos", {"id": "t1"}, title="carol's")])
        self.assertEqual(res[0]["status"], "applied", res)
        self.assertEqual(pulled(self.as_user("dave"), "d1", dave_cursor), set())
        res = self.push(s, admin, "r1", [upd(3, "todos", {"id": "t1"}, owner="alice")])
        self.assertEqual(pulled(alice, "a1", alice_cursor), {("upsert", "t1")})
        self.assertEqual(pulled(carol, "c1", carol_cursor), {("delete", "t1")})
        # the initial sync of a former reader holds neither
        got, _ = self.seen(s, bob, "b2")
        self.assertNotIn(("todos", json.dumps({"id": "t1"})), got)
        # a row an initial sync sent on an earlier page, moved away before
        # its last page: that page brings the delete
        self.push(s, alice, "a1", [ins(3, "tasks", id="k9", project="p1")])
        q = urllib.parse.urlencode({"client_id": "a3", "limit": "1", "tables": "todos"})
        status, _, page = s.request("GET", "/pull?" + q, headers=alice)
        self.assertEqual((status, len(page["changes"]), page["has_more"]), (200, 1, True), page)
        sent = page["changes"][0]["pk"]["id"]
        res = self.push(s, admin, "r1", [upd(4, "todos", {"id": sent}, owner="bob")])
        self.assertEqual(res[0]["status"], "applied", res)
        ops = []
        while page["has_more"]:
            q = urllib.parse.urlencode({"client_id": "a3", "limit": "1", "tables": "todos",
                                        "cursor": page["cursor"]})
            status, _, page = s.request("GET", "/pull?" + q, headers=alice)
            self.assertEqual(status, 200, page)
            ops += [(c["op"], c["pk"]["id"]) for c in page["changes"]]
        self.assertIn(("delete", sent), ops)

    def test_a_change_log_from_before_move_in(self):
        # a log written before syncd kept since when each key was absent
        # (_syncd_changes.gap) gets the column at startup: a membership
        # logged then has no known past (and no value kept) and still
        # answers 410; one logged after moves its rows in
        s = self.server()
        bob, admin = self.as_user("bob"), bearer("shared")
        self.rows(s, "members")
        res = self.plain.push("admin", [ins(1, "tasks", id="k1", project="p1"),
                                        ins(2, "tasks", id="k3", project="p3")], headers=admin)
        self.assertEqual({r["status"] for r in res}, {"applied"}, res)
        _, cursor = self.seen(s, bob, "b1", limit=100)
        res = self.plain.push("admin", [ins(3, "members", project="p1", user_id="bob")],
                              headers=admin)
        self.assertEqual(res[0]["status"], "applied", res)
        for x in (s, self.plain):
            self.assertEqual(x.stop(), 0, x.log()[-2000:])
        has_gap = ("SELECT count(*) FROM pragma_table_info('_syncd_changes') WHERE name = 'gap'"
                   if self.backend == "sqlite" else
                   "SELECT count(*) FROM information_schema.columns"
                   " WHERE table_name = '_syncd_changes' AND column_name = 'gap'")
        self.store_rows("ALTER TABLE _syncd_changes DROP COLUMN gap")
        self.assertEqual(self.store_rows(has_gap), [("0",)])
        for x in (s, self.plain):
            x.start()
        self.assertEqual(self.store_rows(has_gap), [("1",)])
        status, _, data = self.page(s, bob, "b1", cursor, 100)
        self.assertEqual((status, data), (410, {"error": "cursor expired", "moved": True}))
        got, cursor = self.seen(s, bob, "b1", limit=100)
        self.assertIn(("tasks", json.dumps({"id": "k1"})), got)
        res = self.plain.push("admin", [ins(4, "members", project="p3", user_id="bob")],
                              headers=admin)
        self.assertEqual(res[0]["status"], "applied", res)
        status, _, page = self.page(s, bob, "b1", cursor, 100)
        self.assertEqual(status, 200, page)
        self.assertIn("k3", {c["pk"]["id"] for c in page["changes"] if c["table"] == "tasks"})

    def test_rows_keyed_by_bytes(self):
        # a BLOB (bytea) key passes through every rule: the write checks
        # before and after, the initial sync's walk, an increment, a
        # move-out by an owner change and the delete that follows it
        rules = json.loads(json.dumps(RULES))
        rules["tables"]["files"] = {"read": "owner = :sub",
                                    "write": "owner = :sub OR :sub = 'admin'"}
        s = self.server(rules)
        alice, bob, admin = self.as_user("alice"), self.as_user("bob"), self.as_user("admin")
        keys = [{"id": {"$base64": b}} for b in ("AAE=", "/w==", "AAEC", "")]
        res = self.push(s, alice, "a1", [
            {"id": 1 + i, "table": "files", "op": "insert", "pk": k,
             "data": dict(k, owner="alice", body="b%d" % i)} for i, k in enumerate(keys)])
        self.assertEqual([r["status"] for r in res], ["applied"] * 4, res)
        res = self.push(s, bob, "b1", [upd(1, "files", keys[0], body="mine now"),
                                       dele(2, "files", keys[1]),
                                       {"id": 3, "table": "files", "op": "insert", "pk": keys[2],
                                        "data": dict(keys[2], owner="bob")}])
        self.assertEqual([r["status"] for r in res], ["rejected"] * 3, res)
        self.assertDenied(res[:2])
        files = lambda got: sorted(pk for t, pk in got if t == "files")
        want = sorted(json.dumps(k) for k in keys)
        got, a2 = self.seen(s, alice, "a2", limit=2)
        self.assertEqual(files(got), want)
        got, b2 = self.seen(s, bob, "b2", limit=2)
        self.assertEqual(files(got), [])
        res = self.push(s, alice, "a1", [upd(5, "files", keys[0], body="edited")])
        self.assertEqual(res[0]["status"], "applied", res)
        res = self.push(s, admin, "x1", [upd(1, "files", keys[3], owner="bob")])
        self.assertEqual(res[0]["status"], "applied", res)
        status, _, page = self.page(s, alice, "a2", a2, 100)
        self.assertEqual(status, 200, page)
        self.assertEqual(sorted((c["op"], json.dumps(c["pk"])) for c in page["changes"]),
                         [("delete", json.dumps(keys[3])), ("upsert", json.dumps(keys[0]))])
        got, _ = self.seen(s, bob, "b2", cursor=b2)
        self.assertEqual(files(got), [json.dumps(keys[3])])

    def test_restart_with_other_rules_moves_the_triggers(self):
        # the former values of todos follow the rules syncd starts with:
        # kept for owner, then for title (its table of values made anew;
        # on SQLite an unknown name in the probe read as a string, and
        # syncd refused to start), then not at all (PostgreSQL's trigger
        # dropped); pushes work across each restart. SQLite's triggers are
        # TEMP, on syncd's own connections (none in the schema)
        def triggers():
            sql = ("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
                   " AND name GLOB '_syncd_was*'" if self.backend == "sqlite" else
                   "SELECT count(*) FROM pg_trigger WHERE tgname = '_syncd_was'"
                   " AND tgrelid = 'todos'::regclass")
            return int(self.store_rows(sql)[0][0])

        alice = self.as_user("alice")
        s = self.server()
        self.assertEqual(self.push(s, alice, "a1", [ins(1, "todos", id="t1", title="alice",
                                                        owner="alice")])[0]["status"], "applied")
        self.assertEqual(s.stop(), 0, s.log()[-2000:])
        self.assertEqual(triggers(), 0 if self.backend == "sqlite" else 1)
        by_title = json.loads(json.dumps(RULES))
        by_title["tables"]["todos"]["read"] = "title = :sub"
        s = self.server(by_title)
        _, cursor = self.seen(s, alice, "a2", limit=100)
        res = self.push(s, alice, "a1", [upd(2, "todos", {"id": "t1"}, title="bob")])
        self.assertEqual(res[0]["status"], "applied", res)
        status, _, page = self.page(s, alice, "a2", cursor, 100)
        self.assertEqual(status, 200, page)
        self.assertEqual([(c["op"], c["pk"]) for c in page["changes"]], [("delete", {"id": "t1"})])
        self.assertEqual(s.stop(), 0, s.log()[-2000:])
        self.assertEqual(triggers(), 0 if self.backend == "sqlite" else 1)
        everyone = json.loads(json.dumps(RULES))
        everyone["tables"]["todos"]["read"] = "true"
        s = self.server(everyone)
        self.assertEqual(triggers(), 0)
        res = self.push(s, alice, "a1", [upd(3, "todos", {"id": "t1"}, title="carol")])
        self.assertEqual(res[0]["status"], "applied", res)

    def test_kept_membership_values_are_read_by_their_concern(self):
        # every check of a former value (every delete a pull judges) reads
        # the kept membership values through the select's WHERE
        # (user_id = :sub): they are indexed by it, then by the column
        # selected, as members itself; by the key alone each check read
        # every value kept (bench/net/rulesbench.py, figure e)
        s = self.server()
        self.assertEqual(s.stop(), 0, s.log()[-2000:])
        if self.backend == "sqlite":
            plan = self.store_rows("EXPLAIN QUERY PLAN SELECT project FROM _syncd_was_members"
                                   " WHERE user_id = 'bob'")
            self.assertIn("USING COVERING INDEX _syncd_was_members_concern (user_id=?)",
                          " ".join(r[-1] for r in plan))
        else:
            got = self.store_rows("SELECT indexdef FROM pg_indexes"
                                  " WHERE indexname = '_syncd_was_members_concern'")
            self.assertEqual(len(got), 1, got)
            self.assertIn("(user_id, project)", got[0][0])
            # the trigger finds a row's kept values by the key's index:
            # IS NOT DISTINCT FROM uses none, so each write scanned them all
            body = self.store_rows("SELECT prosrc FROM pg_proc WHERE proname = '_syncd_was_members'")
            self.assertIn('_syncd_w."project" = _syncd_o."project" AND _syncd_w."user_id" ='
                          ' _syncd_o."user_id"', body[0][0])

    def store_rows(self, sql):
        """The rows sql selects from the storage itself (not through syncd)."""
        if self.backend == "sqlite":
            import sqlite3
            db = sqlite3.connect(self.args[1])
            try:
                rows = [tuple(str(v) for v in r) for r in db.execute(sql)]
                db.commit()
                return rows
            finally:
                db.close()
        out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
                              self.args[1], "-c", sql], check=True, capture_output=True, text=True)
        return [tuple(line.split("|")) for line in out.stdout.splitlines() if line]

    def test_delete_and_insert_again_moves_the_row(self):
        # the change log keeps only the insert of a key deleted and inserted
        # again, for another user: its former reader still gets a delete,
        # in one push or two; the former values of a deleted key go when
        # its tombstone is purged
        rules = json.loads(json.dumps(RULES))
        rules["tables"]["todos"]["write"] = "owner = :sub OR :claim_role = 'admin'"
        s = self.server(rules, more=["--max-tombstones", "2"])
        alice, bob = self.as_user("alice"), self.as_user("bob")
        admin = self.as_user("root", role="admin")
        self.push(s, alice, "a1", [ins(1, "todos", id="t1", owner="alice"),
                                   ins(2, "todos", id="t2", owner="alice")])
        _, alice_cursor = self.seen(s, alice, "a1")
        _, bob_cursor = self.seen(s, bob, "b1")
        res = self.push(s, admin, "r1", [dele(1, "todos", {"id": "t1"}),
                                         ins(2, "todos", id="t1", owner="bob", title="again")])
        self.assertEqual([r["status"] for r in res], ["applied", "applied"], res)
        res = self.push(s, admin, "r1", [dele(3, "todos", {"id": "t2"})])
        res += self.push(s, admin, "r1", [ins(4, "todos", id="t2", owner="bob")])
        self.assertEqual([r["status"] for r in res], ["applied", "applied"], res)

        def pulled(user, client, cursor):
            q = urllib.parse.urlencode({"client_id": client, "cursor": cursor})
            status, _, page = s.request("GET", "/pull?" + q, headers=user)
            self.assertEqual(status, 200, page)
            return {(c["op"], c["pk"]["id"]) for c in page["changes"]}
        self.assertEqual(pulled(alice, "a1", alice_cursor), {("delete", "t1"), ("delete", "t2")})
        self.assertEqual(pulled(bob, "b1", bob_cursor), {("upsert", "t1"), ("upsert", "t2")})
        # a key deleted for good: its former values stay while its
        # tombstone does, and go with it (the two newest are kept)
        self.push(s, alice, "a1", [ins(3, "todos", id="t3", owner="alice")])
        self.push(s, admin, "r1", [dele(5, "todos", {"id": "t3"})])
        was = "SELECT id, owner FROM _syncd_was_todos WHERE id = 't3'"
        self.assertEqual(self.store_rows(was), [("t3", "alice")])
        for i, key in enumerate(("t8", "t9")):
            self.push(s, admin, "r1", [ins(6 + 2 * i, "todos", id=key, owner="x"),
                                       dele(7 + 2 * i, "todos", {"id": key})])
        self.assertEqual(self.store_rows(was), [])
        self.assertEqual(self.store_rows("SELECT count(*) FROM _syncd_was_todos WHERE id IN"
                                         " ('t8', 't9')"), [("2",)])

    def test_project_change_moves_the_task(self):
        # a read rule through membership: a task moved from alice's project
        # to bob's leaves her and reaches him
        rules = json.loads(json.dumps(RULES))
        rules["tables"]["tasks"]["write"] = "true"
        s = self.server(rules)
        alice, bob = self.as_user("alice"), self.as_user("bob")
        self.push(s, alice, "a1", [ins(1, "tasks", id="k1", project="p1")])
        _, alice_cursor = self.seen(s, alice, "a1")
        _, bob_cursor = self.seen(s, bob, "b1")
        res = self.push(s, bob, "b1", [upd(1, "tasks", {"id": "k1"}, project="p2")])
        self.assertEqual(res[0]["status"], "applied", res)
        for user, client, cursor, op in ((alice, "a1", alice_cursor, "delete"),
                                         (bob, "b1", bob_cursor, "upsert")):
            q = urllib.parse.urlencode({"client_id": client, "cursor": cursor})
            status, _, page = s.request("GET", "/pull?" + q, headers=user)
            self.assertEqual((status, [(c["op"], c["pk"]["id"]) for c in page["changes"]]),
                             (200, [(op, "k1")]), page)

    def test_stream_filter(self):
        s = self.server()
        alice, bob = self.as_user("alice"), self.as_user("bob")
        status, _, head = s.request("GET", "/pull?client_id=a1", headers=alice)
        ev = s.events("a1", cursor=head["cursor"], headers=alice)
        self.assertEqual(ev.status, 200)
        self.push(s, bob, "b1", [ins(1, "todos", id="t6", owner="bob", title="secret")])
        self.push(s, alice, "a1", [ins(1, "todos", id="t7", owner="alice")])
        got = set()
        while ("todos", "t7") not in got:
            e = ev.next_event(10)
            got |= {(c["table"], c["pk"]["id"]) for c in e["data"]["changes"]}
        ev.close()
        self.assertEqual(got, {("todos", "t7")})

    def test_streams_per_user(self):
        # one user's devices may not hold more than their share of streams;
        # a device reconnecting replaces its own, and other users go on
        s = self.server(more=["--max-streams-per-user", "2", "--heartbeat", "1"])
        alice, bob = self.as_user("alice"), self.as_user("bob")
        a1, a2 = s.events("a1", headers=alice), s.events("a2", headers=alice)
        self.assertEqual((a1.status, a2.status), (200, 200))
        a3 = s.events("a3", headers=alice)
        self.assertEqual(a3.status, 429)
        self.assertEqual(a3.resp.getheader("Retry-After"), "5")
        self.assertEqual(json.loads(a3.resp.read()),
                         {"error": "too many event streams for this user: try again later"})
        a3.close()
        b1 = s.events("b1", headers=bob)
        self.assertEqual(b1.status, 200)
        again = s.events("a1", headers=alice)
        self.assertEqual(again.status, 200)
        # a stream that ends gives its slot back (noticed at its next heartbeat)
        a2.close()
        deadline = time.monotonic() + 10
        while True:
            a3 = s.events("a3", headers=alice)
            if a3.status == 200 or time.monotonic() > deadline:
                break
            a3.close()
            time.sleep(0.2)
        self.assertEqual(a3.status, 200)
        for ev in (a1, again, a3, b1):
            ev.close()

    def test_requests_per_user(self):
        # a user past its requests per second gets 429 with Retry-After; the
        # others, and requests without a JWT, go on; the bucket refills
        s = self.server(more=["--max-requests-per-user", "3"])
        alice, bob = self.as_user("alice"), self.as_user("bob")
        statuses = [s.request("GET", "/pull?client_id=a1", headers=alice)[0] for _ in range(3)]
        self.assertEqual(statuses, [200] * 3)
        for _ in range(20):
            status, resp, data = s.request("GET", "/pull?client_id=a1", headers=alice)
            if status != 200:
                break
        self.assertEqual((status, data),
                         (429, {"error": "too many requests for this user: try again later"}))
        self.assertEqual(resp.getheader("Retry-After"), "1")
        self.assertEqual(s.request("GET", "/pull?client_id=b1", headers=bob)[0], 200)
        self.assertEqual(s.request("GET", "/pull?client_id=admin", headers=bearer("shared"))[0],
                         200)
        time.sleep(1.1)
        self.assertEqual(s.request("GET", "/pull?client_id=a1", headers=alice)[0], 200)

    def refused(self, rules, msg, store_args=None, path=None):
        """syncd stops at startup with msg for the rules (or the file at path)."""
        path = path or self.file("bad.json", rules if isinstance(rules, str) else json.dumps(rules))
        args = [SYNCD, "--listen", "127.0.0.1:0", "--schema", self.schema, "--rules", path]
        p = subprocess.run(args + (store_args or self.store_args()), capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(msg, p.stderr)

    def test_unreadable_rules_file(self):
        self.refused(None, "--rules: cannot read", path=os.path.join(self.tmp, "missing.json"))

    def test_refused_at_startup(self):
        def one(expr):
            return {"tables": {"todos": {"read": expr}}}
        self.refused("{", "not valid JSON")
        self.refused({"todos": {}}, 'expected {"tables": {...}}')
        self.refused({"tables": {"nope": {}}}, "no synced table named nope")
        self.refused({"tables": {"_syncd_state": {}}}, "no synced table named _syncd_state")
        self.refused(one("ownr = :sub"), "rules: table todos, read: no column ownr in table todos")
        self.refused(one("owner = :user"), "unknown parameter")
        self.refused(one("lower(owner) = :sub"), "function calls are not allowed")
        self.refused(one("owner LIKE 'a%'"), "unexpected text")
        self.refused(one("owner = :sub; DROP TABLE todos"), "unexpected text")
        self.refused(one("owner = 1.5"), "only integers")
        self.refused(one("(" * 5000 + "owner = :sub" + ")" * 5000), "nested too deeply")
        self.refused(one("owner IN (SELECT project FROM members WHERE project IN "
                         "(SELECT id FROM tasks WHERE 1 = 1))"), "a select inside a select")
        self.refused(one("owner IN (SELECT project FROM nope WHERE 1 = 1)"),
                     "expected a synced table after FROM")
        self.refused(one("owner IN (SELECT owner FROM members WHERE user_id = :sub)"),
                     "no such column in the selected table")
        self.refused({"tables": {"todos": {"read": 1}}}, "read must be a string")
        self.refused({"tables": {"wide": {"read": " OR ".join(f"c{i} = :sub" for i in range(33))}}},
                     "rules: table wide, read: too many distinct columns")
        self.refused({"tables": {"todos": {"server_columns": ["id"]}}},
                     "server_columns: id is a primary key column")
        self.refused({"tables": {"todos": {"server_columns": ["nope"]}}},
                     "server_columns: nope is no column of it")


class SqliteRulesTest(SqliteStore, RulesTests, unittest.TestCase):
    pass


class PgRulesTest(PgStore, RulesTests, unittest.TestCase):

    def test_owner_change_waits_for_a_concurrent_one(self):
        # another transaction is giving t1 to carol when an admin's push
        # gives it to bob: the push waits for it and keeps carol's value, so
        # carol, who could have read t1 in between, gets the delete
        rules = json.loads(json.dumps(RULES))
        rules["tables"]["todos"]["write"] = "owner = :sub OR :claim_role = 'admin'"
        s = self.server(rules)
        alice, carol = self.as_user("alice"), self.as_user("carol")
        admin = self.as_user("root", role="admin")
        self.push(s, alice, "a1", [ins(1, "todos", id="t1", owner="alice")])
        _, carol_cursor = self.seen(s, carol, "c1")
        other = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                  self.args[1]],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        other.stdin.write("BEGIN; UPDATE todos SET owner = 'carol' WHERE id = 't1';"
                          " SELECT 'held';\n")
        other.stdin.flush()
        self.assertEqual(other.stdout.readline().strip(), "held")
        done = []
        pusher = threading.Thread(target=lambda: done.append(self.push(
            s, admin, "r1", [upd(1, "todos", {"id": "t1"}, owner="bob")])))
        pusher.start()
        time.sleep(0.5)
        self.assertFalse(done, "the push did not wait for the row")
        other.stdin.write("COMMIT;\n")
        other.stdin.close()
        other.wait(10)
        pusher.join(10)
        self.assertEqual(done[0][0]["status"], "applied", done)
        q = urllib.parse.urlencode({"client_id": "c1", "cursor": carol_cursor})
        status, _, page = s.request("GET", "/pull?" + q, headers=carol)
        self.assertEqual((status, [(c["op"], c["pk"]["id"]) for c in page["changes"]]),
                         (200, [("delete", "t1")]), page)

    def test_storage_refuses(self):
        # text compared with an integer: PostgreSQL's own check, at startup
        self.refused({"tables": {"todos": {"read": "owner = 5"}}}, "the storage refuses it",
                     store_args=["--pg", pg_fresh_db()])


if __name__ == "__main__":
    unittest.main()
