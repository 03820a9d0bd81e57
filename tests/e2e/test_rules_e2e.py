"""Two users on three devices against a syncd with JWTs and --rules: each
device ends up with exactly its user's rows, the server fills the owner
column from the token (the client's NULL is ignored), and a device whose
token expired keeps its queued writes until sync_config('token', ...) gives
it a new one.
"""
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import time
import unittest

from e2e_util import E2ETest, Syncd, connect

SECRET = "an-e2e-secret-of-at-least-32-bytes!!"
SERVER_SCHEMA = """
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL,
                   owner TEXT NOT NULL DEFAULT (coalesce(syncd_sub(), '?')));
"""
RULES = {"tables": {"todos": {"read": "owner = :sub", "write": "owner = :sub",
                              "server_columns": ["owner"]}}}
CLIENT_DDL = "CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, owner TEXT);"


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
        db.execute("SELECT sync_track('todos')")
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


if __name__ == "__main__":
    unittest.main()
