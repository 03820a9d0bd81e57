#!/usr/bin/python3
"""Two users, one shared project: the multi-user example (docs/RULES.md).

    /usr/bin/python3 examples/multi_user/run.py [--syncd PATH] [--ext PATH]

Run from anywhere after `make`; it needs a python whose sqlite3 module can
load extensions (Debian's /usr/bin/python3). It starts server/syncd on a
free loopback port with this folder's schema.sql and rules.json and an
HS256 secret, mints a token for alice and one for bob (here with the
standard library; a real app gets them from its sign-in service), and gives
each user a client database of their own. Then:

  1. each pushes a private todo: each sees only their own (owner = :sub;
     the server fills `owner` from the token, whatever the client sends);
  2. alice adds a task to her project 'garden': bob sees no task;
  3. alice adds bob to 'garden' (a members row): bob's next pull brings the
     task (move-in), and a task bob adds reaches alice;
  4. bob tries to take over alice's private todo (by hand: his database
     never held it): the server answers `permission denied`, and alice's
     todo is unchanged;
  5. alice removes bob from 'garden' while bob, offline, edits a task: his
     edit is rejected (`permission denied`, in his sync_rejected) and his
     next pull takes the project's tasks and members away (move-out); bob
     keeps his own todo.

It prints what each user holds after each step and checks it; the last
line is "multi_user: ok" (exit status 0) or "multi_user: N checks failed"
(exit status 1). tests/e2e/test_examples.py runs it. Standard library only.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import select
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# The client's tables: the server's, without its defaults and indexes.
# `owner` stays nullable here: the client never fills it, the server does.
CLIENT_DDL = """
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, owner TEXT);
CREATE TABLE members(project TEXT NOT NULL, user_id TEXT NOT NULL,
                     PRIMARY KEY (project, user_id));
CREATE TABLE tasks(id TEXT PRIMARY KEY, project TEXT NOT NULL, title TEXT NOT NULL);
"""
SECRET = base64.b64encode(os.urandom(32)).decode()
failed = 0


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(sub, ttl=600):
    """An HS256 JWT for user sub, signed with SECRET (syncd checks it with
    libjwt against --jwt-secret-file)."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": sub, "exp": int(time.time()) + ttl}).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def start_syncd(syncd, tmp):
    secret = os.path.join(tmp, "jwt.secret")
    with open(secret, "w") as f:
        f.write(SECRET)
    log = open(os.path.join(tmp, "syncd.log"), "wb")
    proc = subprocess.Popen([syncd, "--listen", "127.0.0.1:0",
                             "--schema", os.path.join(HERE, "schema.sql"),
                             "--db", os.path.join(tmp, "server.db"),
                             "--jwt-secret-file", secret,
                             "--rules", os.path.join(HERE, "rules.json")],
                            stdout=subprocess.PIPE, stderr=log)
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    url = proc.stdout.readline().decode().strip() if ready else ""
    if not url.startswith("http://"):
        proc.kill()
        proc.wait()
        log.close()
        with open(os.path.join(tmp, "syncd.log")) as f:
            sys.exit("syncd did not start:\n" + f.read())
    return proc, log, url


def device(ext, path, url, user):
    """A client database of user's, synced with url under user's token."""
    db = sqlite3.connect(path, isolation_level=None)
    db.enable_load_extension(True)
    db.load_extension(ext)
    db.executescript(CLIENT_DDL)
    db.execute("SELECT sync_init(?)", (url,))
    db.execute("SELECT sync_config('token', ?)", (token(user),))
    for t in ("todos", "members", "tasks"):
        db.execute("SELECT sync_track(?)", (t,))
    return db


def raw_push(url, jwt, client_id, mutations):
    """POST /push as the extension would, and the server's answer."""
    req = urllib.request.Request(url + "/push", json.dumps(
        {"client_id": client_id, "mutations": mutations}).encode(),
        {"Content-Type": "application/json", "Authorization": "Bearer " + jwt})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def sync(*dbs):
    for db in dbs:
        db.execute("SELECT sync_push()")
    for db in dbs:
        db.execute("SELECT sync_pull()")


def holds(db):
    """What a client database holds, table by table."""
    return {
        "todos": db.execute("SELECT id, title, owner FROM todos ORDER BY id").fetchall(),
        "members": db.execute("SELECT project, user_id FROM members ORDER BY 1, 2").fetchall(),
        "tasks": db.execute("SELECT id, project, title FROM tasks ORDER BY id").fetchall(),
    }


def expect(who, db, want):
    """Print what who's database holds and count a difference from want."""
    global failed
    got = holds(db)
    for table in ("todos", "members", "tasks"):
        rows = ", ".join("(" + ", ".join(str(v) for v in r) + ")" for r in got[table])
        ok = got[table] == want[table]
        print(f"  {who:5} {table:7} {rows or '-'}" + ("" if ok else f"   EXPECTED {want[table]}"))
        failed += not ok


def check(what, ok):
    global failed
    print(f"  {what}: {'yes' if ok else 'NO'}")
    failed += not ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--syncd", default=os.path.join(ROOT, "server", "syncd"))
    ap.add_argument("--ext", default=os.path.join(ROOT, "ext", "sync"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="multi_user-")
    proc, log, url = start_syncd(a.syncd, tmp)
    try:
        alice = device(a.ext, os.path.join(tmp, "alice.db"), url, "alice")
        bob = device(a.ext, os.path.join(tmp, "bob.db"), url, "bob")

        print("1. each user pushes a private todo (bob's client even names alice as owner)")
        alice.execute("INSERT INTO todos(id, title) VALUES ('a1', 'call the dentist')")
        bob.execute("INSERT INTO todos(id, title, owner) VALUES ('b1', 'buy seeds', 'alice')")
        sync(alice, bob)
        alice_todo = [("a1", "call the dentist", "alice")]
        bob_todo = [("b1", "buy seeds", "bob")]
        garden = [("garden", "alice")]
        expect("alice", alice, {"todos": alice_todo, "members": garden, "tasks": []})
        expect("bob", bob, {"todos": bob_todo, "members": [], "tasks": []})

        print("2. alice adds a task to her project 'garden'")
        alice.execute("INSERT INTO tasks VALUES ('t1', 'garden', 'dig the beds')")
        sync(alice, bob)
        t1 = [("t1", "garden", "dig the beds")]
        expect("alice", alice, {"todos": alice_todo, "members": garden, "tasks": t1})
        expect("bob", bob, {"todos": bob_todo, "members": [], "tasks": []})

        print("3. alice adds bob to 'garden'; bob gets its tasks (move-in) and adds one")
        alice.execute("INSERT INTO members VALUES ('garden', 'bob')")
        sync(alice, bob)
        bob.execute("INSERT INTO tasks VALUES ('t2', 'garden', 'sow the beans')")
        sync(bob, alice)
        both = [("garden", "alice"), ("garden", "bob")]
        t12 = t1 + [("t2", "garden", "sow the beans")]
        expect("alice", alice, {"todos": alice_todo, "members": both, "tasks": t12})
        expect("bob", bob, {"todos": bob_todo, "members": both, "tasks": t12})

        print("4. bob tries to take over alice's private todo a1")
        # bob's database never held a1, so his app cannot even name it; a
        # hostile bob posts the update himself, with his own token
        answer = raw_push(url, token("bob"), "bob-by-hand", [
            {"id": 1, "table": "todos", "op": "update", "pk": {"id": "a1"},
             "data": {"title": "hacked", "owner": "bob"}}])
        print(f"  the server answers: {json.dumps(answer['results'])}")
        check("rejected with 'permission denied'", answer["results"] == [
            {"id": 1, "status": "rejected", "reason": "permission denied"}])
        sync(bob, alice)
        expect("alice", alice, {"todos": alice_todo, "members": both, "tasks": t12})
        expect("bob", bob, {"todos": bob_todo, "members": both, "tasks": t12})

        print("5. alice removes bob from 'garden'; its rows leave bob's database (move-out)")
        # meanwhile bob, offline, renames t1: his push comes after his removal
        bob.execute("UPDATE tasks SET title = 'dig deeper' WHERE id = 't1'")
        alice.execute("DELETE FROM members WHERE project = 'garden' AND user_id = 'bob'")
        sync(alice, bob)
        reasons = bob.execute("SELECT table_name, op, pk, reason FROM sync_rejected").fetchall()
        print(f"  bob's sync_rejected: {reasons}")
        check("bob's late edit of t1 rejected with 'permission denied'",
              reasons == [("tasks", "update", '{"id":"t1"}', "permission denied")])
        expect("alice", alice, {"todos": alice_todo, "members": garden, "tasks": t12})
        expect("bob", bob, {"todos": bob_todo, "members": [], "tasks": []})

        alice.close()
        bob.close()
    finally:
        proc.terminate()
        proc.wait()
        proc.stdout.close()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("multi_user: ok" if not failed else f"multi_user: {failed} checks failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
