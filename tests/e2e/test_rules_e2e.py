"""Two users on three devices against a syncd with JWTs and --rules: each
device ends up with exactly its user's rows, the server fills the owner
column from the token (the client's NULL is ignored), tasks move in and out
of a device with its user's membership, a todo moves out of and into a
device when its owner changes (a queued edit of it is rejected), and a device whose token expired
keeps its queued writes until sync_config('token', ...) gives it a new one.
"""
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import time
import unittest

from e2e_util import E2ETest, Syncd, connect, wait_for

SECRET = "an-e2e-secret-of-at-least-32-bytes!!"
SERVER_SCHEMA = """
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL,
                   owner TEXT NOT NULL DEFAULT (coalesce(syncd_sub(), '?')));
CREATE TABLE members(project TEXT NOT NULL, user_id TEXT NOT NULL,
                     PRIMARY KEY (project, user_id));
CREATE TABLE tasks(id TEXT PRIMARY KEY, project TEXT NOT NULL);
INSERT INTO members VALUES ('p1', 'alice');
"""
IN_MY_PROJECTS = "project IN (SELECT project FROM members WHERE user_id = :sub)"
RULES = {"tables": {
    "todos": {"read": "owner = :sub", "write": "owner = :sub", "server_columns": ["owner"]},
    "members": {"read": "user_id = :sub OR " + IN_MY_PROJECTS, "write": IN_MY_PROJECTS},
    "tasks": {"read": IN_MY_PROJECTS, "write": IN_MY_PROJECTS}}}
CLIENT_DDL = """
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, owner TEXT);
CREATE TABLE members(project TEXT NOT NULL, user_id TEXT NOT NULL,
                     PRIMARY KEY (project, user_id));
CREATE TABLE tasks(id TEXT PRIMARY KEY, project TEXT NOT NULL);
"""


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(sub, ttl=600):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": sub, "exp": int(time.time()) + ttl}).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


class RulesE2ETest(E2ETest):

    def setUp(self):
        super().setUp()
        for name, text in (("schema.sql", SERVER_SCHEMA), ("secret", SECRET),
                           ("rules.json", json.dumps(RULES))):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        s = Syncd(self.dir, ["--jwt-secret-file", os.path.join(self.dir, "secret"),
                             "--jwt-leeway", "0", "--rules", os.path.join(self.dir, "rules.json")],
                  schema=os.path.join(self.dir, "schema.sql"))
        self.servers.append(s)
        self.srv = s

    def device(self, name, sub):
        db = connect(os.path.join(self.dir, name + ".db"))
        self.clients.append(db)
        db.executescript(CLIENT_DDL)
        db.execute("SELECT sync_init(?)", (self.srv.url,))
        db.execute("SELECT sync_config('token', ?)", (token(sub),))
        for t in ("todos", "members", "tasks"):
            db.execute("SELECT sync_track(?)", (t,))
        return db

    def rows(self, db):
        return db.execute("SELECT id, title, owner FROM todos ORDER BY id").fetchall()

    def test_two_users_three_devices(self):
        phone, laptop, bobs = (self.device("phone", "alice"), self.device("laptop", "alice"),
                               self.device("bob", "bob"))
        phone.execute("INSERT INTO todos(id, title) VALUES ('a1', 'from the phone')")
        laptop.execute("INSERT INTO todos(id, title, owner) VALUES ('a2', 'laptop', 'bob')")
        bobs.execute("INSERT INTO todos(id, title) VALUES ('b1', 'bob''s')")
        for db in (phone, laptop, bobs):
            db.execute("SELECT sync_push()")
        for db in (phone, laptop, bobs):
            db.execute("SELECT sync_pull()")
        alice_rows = [("a1", "from the phone", "alice"), ("a2", "laptop", "alice")]
        self.assertEqual(self.rows(phone), alice_rows)
        self.assertEqual(self.rows(laptop), alice_rows)
        self.assertEqual(self.rows(bobs), [("b1", "bob's", "bob")])
        self.assertEqual(phone.execute("SELECT count(*) FROM sync_rejected").fetchone()[0], 0)

    def test_membership_moves_tasks_in_and_out(self):
        alice, bob = self.device("alice", "alice"), self.device("bob", "bob")
        alice.execute("INSERT INTO tasks VALUES ('k1', 'p1')")
        alice.execute("SELECT sync_push()")
        bob.execute("SELECT sync_pull()")
        self.assertEqual(bob.execute("SELECT id FROM tasks").fetchall(), [])
        # alice adds bob to p1 while he is offline: his next pull brings k1,
        # though k1 itself never changed (move-in)
        alice.execute("INSERT INTO members VALUES ('p1', 'bob')")
        alice.execute("SELECT sync_push()")
        bob.execute("SELECT sync_pull()")
        self.assertEqual(bob.execute("SELECT id FROM tasks").fetchall(), [("k1",)])
        # and removing him takes it away (move-out)
        alice.execute("DELETE FROM members WHERE user_id = 'bob'")
        alice.execute("SELECT sync_push()")
        bob.execute("SELECT sync_pull()")
        self.assertEqual(bob.execute("SELECT id FROM tasks").fetchall(), [])
        self.assertEqual(bob.execute("SELECT * FROM members").fetchall(), [])
        alice.execute("SELECT sync_pull()")
        self.assertEqual(alice.execute("SELECT * FROM members").fetchall(), [("p1", "alice")])
        self.assertEqual(alice.execute("SELECT id FROM tasks").fetchall(), [("k1",)])

    def test_todos_with_keys_too_long_for_a_cursor(self):
        # ids of 3000 and 10000 bytes, alice's and bob's interleaved: a new
        # device of alice's pulls 2 rows a page, its pages ending on long
        # keys (named in the cursor by reference, docs/RULES.md), and ends
        # with exactly her rows
        alice, bobs = self.device("alice", "alice"), self.device("bob", "bob")
        mine = set()
        for i in range(12):
            tid = "abc"[i % 3] * (5, 3000, 10000)[i % 3] + "%02d" % i
            db = bobs if i % 4 == 1 else alice
            db.execute("INSERT INTO todos(id, title) VALUES (?, ?)", (tid, "t%d" % i))
            if db is alice:
                mine.add((tid, "t%d" % i, "alice"))
        for db in (alice, bobs):
            db.execute("SELECT sync_push()")
        tablet = self.device("tablet", "alice")
        tablet.execute("SELECT sync_config('pull_limit', 2)")
        tablet.execute("SELECT sync_pull()")
        self.assertEqual(set(self.rows(tablet)), mine)
        self.assertEqual(len(mine), 9)

    def admin_rules(self):
        """Restart the server with rules that let 'admin' read every todo
        and hand it to anyone."""
        rules = json.loads(json.dumps(RULES))
        rules["tables"]["todos"] = {"read": "owner = :sub OR :sub = 'admin'",
                                    "write": "owner = :sub OR :sub = 'admin'"}
        with open(os.path.join(self.dir, "rules.json"), "w") as f:
            f.write(json.dumps(rules))
        self.srv.stop()
        self.srv.start()

    def test_owner_change_moves_a_todo_out_and_in(self):
        # an admin may hand a todo to someone else: the former owner's
        # device drops it, the new owner's gets it
        self.admin_rules()
        alice, bob, admin = (self.device("alice", "alice"), self.device("bob", "bob"),
                             self.device("admin", "admin"))
        alice.execute("INSERT INTO todos VALUES ('a1', 'hers', 'alice'), ('a2', 'kept', 'alice')")
        alice.execute("SELECT sync_push()")
        # each device has a cursor: what follows are increments, not resyncs
        for db in (alice, bob, admin):
            db.execute("SELECT sync_pull()")
        self.assertEqual(self.rows(bob), [])
        admin.execute("UPDATE todos SET owner = 'bob' WHERE id = 'a1'")
        admin.execute("SELECT sync_push()")
        for db in (alice, bob):
            db.execute("SELECT sync_pull()")
        self.assertEqual(self.rows(alice), [("a2", "kept", "alice")])
        self.assertEqual(self.rows(bob), [("a1", "hers", "bob")])
        # bob edits it and hands it back: alice's device has it again
        bob.execute("UPDATE todos SET title = 'his' WHERE id = 'a1'")
        bob.execute("SELECT sync_push()")
        admin.execute("SELECT sync_pull()")
        admin.execute("UPDATE todos SET owner = 'alice' WHERE id = 'a1'")
        admin.execute("SELECT sync_push()")
        for db in (alice, bob):
            db.execute("SELECT sync_pull()")
        self.assertEqual(self.rows(alice), [("a1", "his", "alice"), ("a2", "kept", "alice")])
        self.assertEqual(self.rows(bob), [])

    def test_a_row_written_for_another_user_leaves_the_writer(self):
        # anyone may leave a todo for anyone (a drop box), each reads only
        # their own: the push answer takes the writer's copy away at once,
        # an insert for bob and a todo alice hands to him alike
        rules = json.loads(json.dumps(RULES))
        rules["tables"]["todos"] = {"read": "owner = :sub", "write": "owner IS NOT NULL"}
        with open(os.path.join(self.dir, "rules.json"), "w") as f:
            f.write(json.dumps(rules))
        self.srv.stop()
        self.srv.start()
        alice, bob = self.device("alice", "alice"), self.device("bob", "bob")
        alice.execute("INSERT INTO todos VALUES ('a1', 'for bob', 'bob'), ('a2', 'mine', 'alice')")
        alice.execute("SELECT sync_push()")
        self.assertEqual(self.rows(alice), [("a2", "mine", "alice")])
        alice.execute("UPDATE todos SET owner = 'bob' WHERE id = 'a2'")
        alice.execute("SELECT sync_push()")
        self.assertEqual(self.rows(alice), [])
        for db in (alice, bob):
            db.execute("SELECT sync_pull()")
        self.assertEqual(self.rows(alice), [])
        self.assertEqual(self.rows(bob), [("a1", "for bob", "bob"), ("a2", "mine", "bob")])
        self.assertEqual(alice.execute("SELECT count(*) FROM sync_rejected").fetchone()[0], 0)

    def test_pending_edit_of_a_todo_moved_away(self):
        # alice edits her todo offline while an admin hands it to bob: her
        # pull takes it away, and her queued edit is rejected, not applied
        self.admin_rules()
        alice, admin = self.device("alice", "alice"), self.device("admin", "admin")
        alice.execute("INSERT INTO todos VALUES ('a1', 'hers', 'alice')")
        alice.execute("SELECT sync_push()")
        alice.execute("SELECT sync_pull()")
        admin.execute("SELECT sync_pull()")
        alice.execute("UPDATE todos SET title = 'offline edit' WHERE id = 'a1'")
        admin.execute("UPDATE todos SET owner = 'bob' WHERE id = 'a1'")
        admin.execute("SELECT sync_push()")
        alice.execute("SELECT sync_pull()")
        self.assertEqual(self.rows(alice), [])
        alice.execute("SELECT sync_push()")
        alice.execute("SELECT sync_pull()")
        self.assertEqual(self.rows(alice), [])
        self.assertEqual(alice.execute("SELECT op, reason FROM sync_rejected").fetchall(),
                         [("update", "permission denied")])

    def test_expired_token_keeps_the_queue(self):
        phone = self.device("phone", "alice")
        phone.execute("SELECT sync_config('token', ?)", (token("alice", ttl=-5),))
        phone.execute("INSERT INTO todos(id, title) VALUES ('a1', 'queued')")
        with self.assertRaises(sqlite3.Error):
            phone.execute("SELECT sync_push()")
        self.assertEqual(phone.execute("SELECT needs_token, pending FROM sync_status").fetchone(),
                         (1, 1))
        phone.execute("SELECT sync_config('token', ?)", (token("alice"),))
        phone.execute("SELECT sync_push()")
        phone.execute("SELECT sync_pull()")
        self.assertEqual(self.rows(phone), [("a1", "queued", "alice")])
        self.assertEqual(phone.execute("SELECT needs_token, pending FROM sync_status").fetchone(),
                         (0, 0))

    def test_verify_skips_a_table_the_server_does_not_sync(self):
        # A tracked table without a rule is not synced: /verify answers "no
        # such table" for it, and the other tables are verified all the same
        phone = self.device("phone", "alice")
        phone.execute("CREATE TABLE drafts(id TEXT PRIMARY KEY, body TEXT)")
        phone.execute("SELECT sync_track('drafts')")
        phone.execute("INSERT INTO todos(id, title) VALUES ('a1', 'x')")
        phone.execute("SELECT sync_push()")
        phone.execute("SELECT sync_pull()")
        self.behind_engine(phone, "DELETE FROM todos")
        report = json.loads(phone.execute("SELECT sync_verify()").fetchone()[0])
        by = {t["table"]: t for t in report["tables"]}
        self.assertEqual(by["drafts"]["skipped"], "the server does not sync it")
        self.assertEqual((by["todos"]["diverged"], by["todos"]["repaired"]), (1, 1))
        self.assertNotIn("skipped", by["todos"])
        self.assertEqual(self.rows(phone), [("a1", "x", "alice")])

    def behind_engine(self, db, sql):
        """A write to a tracked table that capture does not see."""
        db.execute("BEGIN")
        db.execute("UPDATE sync_control SET applying = 1")
        db.execute(sql)
        db.execute("UPDATE sync_control SET applying = 0")
        db.execute("COMMIT")

    def test_verify_repairs_a_device_to_its_users_rows(self):
        # Under rules /verify covers the rows the user may read: a device
        # holding another user's todo and a task of a project it is not in
        # (written behind the engine), and missing one of its own todos
        # (deleted behind it), is repaired to exactly its user's rows,
        # while bob's rows stay his; then the worker verifies on its own.
        phone, bobs = self.device("phone", "alice"), self.device("bob", "bob")
        phone.execute("INSERT INTO todos(id, title) VALUES ('a1', 'x'), ('a2', 'y')")
        phone.execute("INSERT INTO tasks VALUES ('k1', 'p1')")
        bobs.execute("INSERT INTO todos(id, title) VALUES ('b1', 'z')")
        for db in (phone, bobs):
            db.execute("SELECT sync_push()")
            db.execute("SELECT sync_pull()")
        self.behind_engine(phone, "INSERT INTO todos VALUES ('b1', 'z', 'bob')")
        self.behind_engine(phone, "INSERT INTO tasks VALUES ('k9', 'p9')")
        self.behind_engine(phone, "DELETE FROM todos WHERE id = 'a2'")
        report = json.loads(phone.execute("SELECT sync_verify()").fetchone()[0])
        diverged = {t["table"]: (t["diverged"], t["repaired"]) for t in report["tables"]}
        self.assertEqual(diverged, {"todos": (2, 2), "members": (0, 0), "tasks": (1, 1)}, report)
        self.assertEqual(self.rows(phone), [("a1", "x", "alice"), ("a2", "y", "alice")])
        self.assertEqual(phone.execute("SELECT id FROM tasks").fetchall(), [("k1",)])
        report = json.loads(bobs.execute("SELECT sync_verify()").fetchone()[0])
        self.assertEqual(sum(t["diverged"] for t in report["tables"]), 0, report)
        self.assertEqual(self.rows(bobs), [("b1", "z", "bob")])
        # the worker's verification after its first sync and on its interval
        self.behind_engine(phone, "DELETE FROM tasks")
        phone.execute("SELECT sync_config('verify_interval_s', 1)")
        phone.execute("SELECT sync_start()")
        wait_for(lambda: phone.execute("SELECT id FROM tasks").fetchall() == [("k1",)],
                 what="the worker's verification to bring k1 back")
        state, err, total = phone.execute(
            "SELECT state, last_error, diverged_total FROM sync_status").fetchone()
        phone.execute("SELECT sync_stop()")
        self.assertEqual((err, total), (None, 4))
        self.assertNotEqual(state, "error")


if __name__ == "__main__":
    unittest.main()
