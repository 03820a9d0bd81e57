"""The convergence test with two users and rules (issue 15, docs/RULES.md).

    rules_run.py [--seed N | --seeds "1 2 3" | --seeds 1-50 | --replay LOG...]
                 [--ops 120] [--owner-change] [--third-user] [--watch] [--no-worker]
                 [--seats [--seat-cascade]] [--max-tombstones N]
                 [--pg [--pg-optional]] [--show] [--timeout S] [--keep] [-v]

One syncd with JWTs (HS256, --jwt-secret-file) and --rules (rules/rules.json)
over rules/server.sql; three clients (rules/client.sql): alice's phone
(client 0, on the background worker in about half the seeds), alice's
laptop (client 1) and bob's device (client 2); with --third-user also
carol's device (client 3), and each user's writes and attacks then aim at
either of the two others, so most membership changes concern someone
else than the user pulling across them (docs/RULES.md: they end only
their users' pulls); with --watch also bob's watch (the last client),
which tracks todos and tasks only and writes nothing, so the memberships
that move tasks in and out of it are of tables it does not track. The
schema:

  todos(id, owner, title, done, rev)  read and write: owner = :sub (alice
      may write any todo when her token says role=admin, --owner-change).
      owner is set by the client, not server-owned, so that an insert for
      another user and a row given away reach the write check (a
      server-owned owner would silently become the writer). rev is
      server-owned (NOT NULL DEFAULT 0 on the server, bumped by its trigger
      on every update; nullable on the clients).
  projects(id, owner, name)  read: its owner and its members; write: owner.
  members(project, user_id)  read: the user's own rows and every row of the
      projects the user owns; write: the project's owner (so a project's
      owner adds and removes members: move-in and move-out).
  tasks(id, project, title, done)  read and write: members of the project
      (and, with seats, those with a seat in it).

With --seats (rules/seats.sql, rules_seats.json, client_seats.sql):

  seats(id, project, user_id)  a membership keyed by an id of its own, read
      and written as members are. The key pool (s1..s6) is shared by every
      user, and the log makes, moves (an update of project or of user_id),
      deletes, deletes and makes again in one transaction (one push batch
      unless batch_size is 1), and renames (an update of the key: its
      delete and an insert) seats often, so a key a device saw deleted
      comes back naming another project or user, in the same push, a later
      one, or while the device is offline: the server's move-in through
      membership (docs/RULES.md) meets keys made again.
  notes(id, project, body)  read and write: a seat in the project.
  projects  read also through a seat.

With seats, bob's and carol's devices and the watch are on the worker
(the event stream) in about a third of the seeds each, and the watch
tracks notes too. --seat-cascade (implies --seats) makes seats.project
reference projects ON DELETE CASCADE on the server: a project's delete
then deletes its seats, keeping no values of them, and their keys are made
again (docs/RULES.md: judged by the values pushes gave the seat). Without
--seats a seed gives the op log it gave before seats were added.

--max-tombstones N runs syncd with that option: its compaction purges all
but the newest N deletes as the run goes, and with them the former values
kept for their keys (docs/RULES.md), so cursors fall below the horizon
(410, a resync) and keys deleted and made again lose the delete the change
log's gap points at. The log records it, so a replay runs the same way.

A seed gives an op log: each user's own writes (todos, projects, members of
the projects they own, tasks of any project), attacks (kept apart in the
log: a todo inserted for the other user or given away, a project inserted
for or taken from the other user, a membership added to or removed from the
other user's project, a task inserted into a project the user is not a
member of; with seats, a seat made in or moved to the other user's project
and a note inserted into a project the user has no seat in), pushes and
pulls at random points, clients going offline and online. With --pg, syncd
stores in PostgreSQL (rules/server_pg.sql, the same tables, seed rows, rev
trigger and audit in PostgreSQL's dialect): a throwaway cluster
(tests/pg_env.sh) for the whole invocation, a fresh database for each run;
when no cluster can start, the invocation fails, or with --pg-optional says
SKIPPED and exits 0 (make test-converge, as test-server and test-chaos-pg
do). The key pools are split by user (alice's todos a*, her projects pa*;
bob's b*, pb*) so an attack is one whatever happened before; tasks share one
pool. With --owner-change alice's token carries role=admin and the log also
gives todos away (alice to bob) and moves tasks between projects: a row's
own columns change who may read it (move-out on a row's own change,
docs/RULES.md), and a todo alice inserts for bob leaves her device with the
push's answer.

Checks:
  - after each attack made online by a manual client, that client pushes at
    once: the attack's mutation must come back rejected "permission denied"
    (an insert of a key the server holds may say "constraint failed"; an
    update or delete of a row the server no longer holds, before the push or
    after it (deleted first by a mutation queued before), is not judged, nor
    an update writing the values the row has, for which the client queues
    nothing);
  - the server's audit (a trigger of rules/server.sql on every table,
    judging each change with SQL of its own) holds no change the write rule
    forbids and none without a user;
  - at quiescence every client's tables equal exactly the server's rows
    filtered by its user's read rule (computed here with a query of its own
    on the server's SQLite file, not through syncd; with --pg, on a copy of
    the server's tables that psql reads as JSON), value for value; every
    outbox is empty; every refusal names permission denied, a constraint or
    a row that is gone (an update racing a delete, "no such row"); no
    sync_status is in 'error'; and a fresh device of each user gets exactly
    the same rows by its initial sync.

A failing seed prints its op log and saves it to build/converge/rules-seed-N.json
(--replay runs it again). Exit status 0 when every run passes; the last
line is "converge-rules: N passed, N failed".
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.append(os.path.join(ROOT, "tests", "e2e"))
sys.path.append(os.path.join(ROOT, "tests", "server"))
# run first: harness puts tests/e2e (which has a run.py too) first on the path
from run import parse_seeds, save  # noqa: E402
from e2e_util import PG_ENVIRON, SLOW, Syncd, connect  # noqa: E402
from gen import TEXT_EXTREMES  # noqa: E402
from harness import Failures, diff, norm  # noqa: E402
from syncd_util import SECRET, claims, make_token, pg_fresh_db  # noqa: E402

RULES_DIR = os.path.join(HERE, "rules")
PG_ENV = os.path.join(ROOT, "tests", "pg_env.sh")
OUT = os.path.join(ROOT, "build", "converge")
TABLES = {"todos": "id", "projects": "id", "members": "project, user_id", "tasks": "id",
          "seats": "id", "notes": "id"}
KEYS = {"todos": ("id",), "projects": ("id",), "members": ("project", "user_id"),
        "tasks": ("id",), "seats": ("id",), "notes": ("id",)}
BASE = ("todos", "projects", "members", "tasks")  # the tables of every run
SEATS = ("seats", "notes")  # and those of a run with --seats
OPTIONS = {"backoff_min_ms": 10, "backoff_max_ms": 200, "timeout_ms": 5000}
# "violates": PostgreSQL's words for a constraint ("duplicate key value
# violates unique constraint ...")
CONSTRAINT = ("constraint failed", "violates")
REASON_OK = ("permission denied", "no such row") + CONSTRAINT
USERS = ("alice", "bob")
DEVICES = ("alice", "alice", "bob")  # client i belongs to DEVICES[i]
CAROL = "carol"  # --third-user: one more user, with a device of her own
WATCH = ("todos", "tasks")  # --watch: what bob's watch tracks

# What each user may read, written here without syncd: the expected replica.
EXPECTED = {
    "todos": "SELECT * FROM todos WHERE owner = ?1 ORDER BY id",
    "projects": "SELECT * FROM projects WHERE owner = ?1 OR EXISTS (SELECT 1 FROM members m"
                " WHERE m.project = projects.id AND m.user_id = ?1) ORDER BY id",
    "members": "SELECT * FROM members WHERE user_id = ?1 OR EXISTS (SELECT 1 FROM projects p"
               " WHERE p.id = members.project AND p.owner = ?1) ORDER BY project, user_id",
    "tasks": "SELECT * FROM tasks WHERE EXISTS (SELECT 1 FROM members m"
             " WHERE m.project = tasks.project AND m.user_id = ?1) ORDER BY id",
}
# With seats (rules_seats.json): projects and tasks are read through members
# or seats, notes through seats alone.
EXPECTED_SEATS = dict(
    EXPECTED,
    projects="SELECT * FROM projects WHERE owner = ?1 OR EXISTS (SELECT 1 FROM members m"
             " WHERE m.project = projects.id AND m.user_id = ?1) OR EXISTS (SELECT 1 FROM"
             " seats s WHERE s.project = projects.id AND s.user_id = ?1) ORDER BY id",
    seats="SELECT * FROM seats WHERE user_id = ?1 OR EXISTS (SELECT 1 FROM projects p"
          " WHERE p.id = seats.project AND p.owner = ?1) ORDER BY id",
    tasks="SELECT * FROM tasks WHERE EXISTS (SELECT 1 FROM members m"
          " WHERE m.project = tasks.project AND m.user_id = ?1) OR EXISTS (SELECT 1 FROM"
          " seats s WHERE s.project = tasks.project AND s.user_id = ?1) ORDER BY id",
    notes="SELECT * FROM notes WHERE EXISTS (SELECT 1 FROM seats s"
          " WHERE s.project = notes.project AND s.user_id = ?1) ORDER BY id",
)


def read(name):
    with open(os.path.join(RULES_DIR, name)) as f:
        return f.read()


def run_tables(log):
    """The tables a run's schema has."""
    return BASE + SEATS if log.get("seats") else BASE


def snapshot(db, tables):
    return {t: [tuple(norm(v) for v in r) for r in
                db.execute("SELECT * FROM %s ORDER BY %s" % (t, TABLES[t]))] for t in tables}


def expected(srvdb, user, tables, seats):
    rules = EXPECTED_SEATS if seats else EXPECTED
    return {t: [tuple(norm(v) for v in r) for r in srvdb.execute(rules[t], (user,))]
            for t in tables}


def token(user, admin):
    extra = {"role": "admin"} if admin and user == "alice" else {}
    return make_token(claims(user, ttl=3600, **extra))


# ---- the generator ----

class Gen:
    def __init__(self, rnd, owner_change, users, seats=False):
        self.r = rnd
        self.owner_change = owner_change
        self.users = users
        self.seats = seats

    def other(self, u):
        """Another user than u (with two, the other one: no draw)."""
        others = [v for v in self.users if v != u]
        return others[0] if len(others) == 1 else self.r.choice(others)

    def text(self):
        if self.r.random() < 0.15:
            return self.r.choice(TEXT_EXTREMES)
        return "t%d" % self.r.randrange(50)

    def todo_id(self, u):
        return "%s%d" % (u[0], self.r.randrange(1, 6))

    def pid(self, u):
        return "p%s%d" % (u[0], self.r.randrange(1, 4))

    def any_pid(self):
        return self.pid(self.r.choice(self.users))

    def task_id(self):
        return "t%d" % self.r.randrange(1, 9)

    def seat_id(self):
        """Seat keys are one pool: a key made again may name any project."""
        return "s%d" % self.r.randrange(1, 7)

    def note_id(self):
        return "n%d" % self.r.randrange(1, 7)

    def legit(self, u, admin):
        """What a user may well be allowed, mostly one statement:
        (kind, [[sql, params], ...])."""
        v = self.other(u)
        r = self.r
        menu = [
            (5, "todo insert", lambda: (
                "INSERT INTO todos(id, owner, title, done) VALUES(?, ?, ?, ?)",
                [self.todo_id(u), u, self.text(), r.randrange(2)])),
            (5, "todo update", lambda: (
                "UPDATE todos SET title = ?, done = ? WHERE id = ?",
                [self.text(), r.randrange(2), self.todo_id(u)])),
            (2, "todo delete", lambda: ("DELETE FROM todos WHERE id = ?", [self.todo_id(u)])),
            (2, "project insert", lambda: (
                "INSERT INTO projects(id, owner, name) VALUES(?, ?, ?)",
                [self.pid(u), u, self.text()])),
            (2, "project update", lambda: ("UPDATE projects SET name = ? WHERE id = ?",
                                           [self.text(), self.pid(u)])),
            (1, "project delete", lambda: ("DELETE FROM projects WHERE id = ?", [self.pid(u)])),
            (4, "member add", lambda: ("INSERT INTO members(project, user_id) VALUES(?, ?)",
                                       [self.pid(u), r.choice((u, v, v))])),
            (3, "member remove", lambda: (
                "DELETE FROM members WHERE project = ? AND user_id = ?",
                [self.pid(u), r.choice((u, v, v))])),
            (4, "task insert", lambda: (
                "INSERT INTO tasks(id, project, title) VALUES(?, ?, ?)",
                [self.task_id(), self.any_pid(), self.text()])),
            (4, "task update", lambda: ("UPDATE tasks SET title = ?, done = ? WHERE id = ?",
                                        [self.text(), r.randrange(2), self.task_id()])),
            (2, "task delete", lambda: ("DELETE FROM tasks WHERE id = ?", [self.task_id()])),
        ]
        if self.owner_change:
            menu.append((2, "task move", lambda: ("UPDATE tasks SET project = ? WHERE id = ?",
                                                  [self.any_pid(), self.task_id()])))
            if admin:
                menu.append((3, "todo give", lambda: (
                    "UPDATE todos SET owner = ? WHERE id = ?", [v, self.todo_id(u)])))
                menu.append((1, "todo insert for", lambda: (
                    "INSERT INTO todos(id, owner, title) VALUES(?, ?, ?)",
                    [self.todo_id(u), v, self.text()])))
        if self.seats:
            menu += self.seat_menu(u, v)
        total = sum(w for w, _, _ in menu)
        x = r.uniform(0, total)
        for w, kind, f in menu:
            x -= w
            if x <= 0:
                break
        made = f()
        return kind, made if isinstance(made, list) else [list(made)]

    def seat_menu(self, u, v):
        """Seats of u's projects made, moved to another project or user,
        deleted, deleted and made again at once (one transaction: one push
        batch unless batch_size is 1) or under another key; notes written
        through them. Seat keys move often, so a key a user's device saw
        deleted comes back naming another project or user."""
        r = self.r

        def remake():
            i = self.seat_id()
            return [["DELETE FROM seats WHERE id = ?", [i]],
                    ["INSERT INTO seats(id, project, user_id) VALUES(?, ?, ?)",
                     [i, self.pid(u), r.choice((u, v, v))]]]

        return [
            (3, "seat add", lambda: ("INSERT INTO seats(id, project, user_id) VALUES(?, ?, ?)",
                                     [self.seat_id(), self.pid(u), r.choice((u, v, v))])),
            (3, "seat move", lambda: ("UPDATE seats SET project = ? WHERE id = ?",
                                      [self.pid(u), self.seat_id()])),
            (2, "seat reassign", lambda: ("UPDATE seats SET user_id = ? WHERE id = ?",
                                          [r.choice((u, v)), self.seat_id()])),
            (2, "seat remove", lambda: ("DELETE FROM seats WHERE id = ?", [self.seat_id()])),
            (3, "seat remake", remake),
            (1, "seat rekey", lambda: ("UPDATE seats SET id = ? WHERE id = ?",
                                       [self.seat_id(), self.seat_id()])),
            (3, "note insert", lambda: ("INSERT INTO notes(id, project, body) VALUES(?, ?, ?)",
                                        [self.note_id(), self.any_pid(), self.text()])),
            (3, "note update", lambda: ("UPDATE notes SET body = ? WHERE id = ?",
                                        [self.text(), self.note_id()])),
            (1, "note move", lambda: ("UPDATE notes SET project = ? WHERE id = ?",
                                      [self.any_pid(), self.note_id()])),
            (1, "note delete", lambda: ("DELETE FROM notes WHERE id = ?", [self.note_id()])),
        ]

    def attack(self, u, admin):
        """One statement the rules must refuse, with the key it writes:
        (kind, sql, params, table, pk)."""
        v = self.other(u)
        r = self.r
        choices = ["project for", "project take", "project edit", "project drop",
                   "member add", "member leave", "task outside"]
        if not admin:
            choices += ["todo for", "todo for", "todo give"]
        if self.seats:
            choices += ["seat for", "seat give", "note outside"]
        kind = r.choice(choices)
        if kind == "seat for":
            i = "sx%s%d" % (u[0], r.randrange(1, 3))
            return (kind, "INSERT INTO seats(id, project, user_id) VALUES(?, ?, ?)",
                    [i, self.pid(v), u], "seats", {"id": i})
        if kind == "seat give":
            # to a project of another user's: the write check after fails
            i = self.seat_id()
            return (kind, "UPDATE seats SET project = ? WHERE id = ?", [self.pid(v), i],
                    "seats", {"id": i})
        if kind == "note outside":
            i = "nx%s%d" % (u[0], r.randrange(1, 3))
            return (kind, "INSERT INTO notes(id, project, body) VALUES(?, ?, ?)",
                    [i, self.pid(v), self.text()], "notes", {"id": i})
        if kind == "todo for":
            # an id of u's attack pool: no legitimate write ever makes it
            i = "x%s%d" % (u[0], r.randrange(1, 3))
            return (kind, "INSERT INTO todos(id, owner, title) VALUES(?, ?, ?)",
                    [i, v, self.text()], "todos", {"id": i})
        if kind == "todo give":
            i = self.todo_id(u)
            return (kind, "UPDATE todos SET owner = ? WHERE id = ?", [v, i], "todos", {"id": i})
        if kind == "project for":
            i = "px%s" % u[0]
            return (kind, "INSERT INTO projects(id, owner, name) VALUES(?, ?, ?)",
                    [i, v, self.text()], "projects", {"id": i})
        if kind == "project take":
            i = self.pid(v)
            return (kind, "UPDATE projects SET owner = ? WHERE id = ?", [u, i], "projects",
                    {"id": i})
        if kind == "project edit":
            i = self.pid(v)
            return (kind, "UPDATE projects SET name = ? WHERE id = ?", [self.text(), i],
                    "projects", {"id": i})
        if kind == "project drop":
            i = self.pid(v)
            return (kind, "DELETE FROM projects WHERE id = ?", [i], "projects", {"id": i})
        if kind == "member add":
            p, who = self.pid(v), r.choice((u, v))
            return (kind, "INSERT INTO members(project, user_id) VALUES(?, ?)", [p, who],
                    "members", {"project": p, "user_id": who})
        if kind == "member leave":
            p = self.pid(v)
            return (kind, "DELETE FROM members WHERE project = ? AND user_id = ?", [p, u],
                    "members", {"project": p, "user_id": u})
        # a task of u's attack pool into the other user's project
        i, p = "tx%s%d" % (u[0], r.randrange(1, 3)), self.pid(v)
        return (kind, "INSERT INTO tasks(id, project, title) VALUES(?, ?, ?)",
                [i, p, self.text()], "tasks", {"id": i})


def generate(seed, nops, owner_change, worker=True, third=False, watch=False, seats=False):
    """The op log of a seed: a function of its arguments only (without
    seats, the one it was before seats were added)."""
    rnd = random.Random(seed)
    users = USERS + (CAROL,) if third else USERS
    g = Gen(rnd, owner_change, users, seats)
    clients = [{"user": u, "worker": i == 0 and worker and rnd.random() < 0.5,
                "batch_size": rnd.choice((1, 3, 1000)), "pull_limit": rnd.choice((1, 3, 1000))}
               for i, u in enumerate(DEVICES + (CAROL,) if third else DEVICES)]
    if watch:  # bob's watch: tracks todos and tasks, not the tables of memberships
        clients.append({"user": "bob", "worker": False,
                        "tracks": list(WATCH) + (["notes"] if seats else []),
                        "batch_size": 1000, "pull_limit": rnd.choice((1, 3, 1000))})
    if seats and worker:
        # more devices on the event stream: bob's, carol's, the watch
        for cl in clients[2:]:
            cl["worker"] = rnd.random() < 0.3
    ops, offline = [], [False] * len(clients)
    for _ in range(nops):
        c = rnd.randrange(len(clients))
        u, worker_c = clients[c]["user"], clients[c]["worker"]
        admin = owner_change and u == "alice"
        x = rnd.random()
        if "tracks" in clients[c]:  # it writes nothing
            x = 0.62 + x * (1 - 0.62)
        if x < 0.5:
            n = rnd.choice((1, 1, 1, 2, 3))
            stmts, kinds = [], []
            for _ in range(n):
                kind, made = g.legit(u, admin)
                kinds.append(kind)
                stmts += made
            end = "rollback" if rnd.random() < 0.05 else "commit"
            ops.append({"c": c, "op": "tx", "kind": "+".join(kinds) +
                        (" (rolled back)" if end == "rollback" else ""),
                        "stmts": stmts, "end": end})
        elif x < 0.62:
            kind, sql, params, table, pk = g.attack(u, admin)
            ops.append({"c": c, "op": "attack", "kind": "attack: " + kind,
                        "stmts": [[sql, params]], "table": table, "pk": pk})
        elif x < 0.92:
            if worker_c:
                ops.append({"c": c, "op": "wsync", "kind": "wsync"})
            elif not offline[c]:
                op = rnd.choice(("push", "pull"))
                ops.append({"c": c, "op": op, "kind": op})
        elif not worker_c:
            offline[c] = not offline[c]
            op = "offline" if offline[c] else "online"
            ops.append({"c": c, "op": op, "kind": op})
    log = {"seed": seed, "owner_change": owner_change, "clients": clients, "ops": ops}
    if third:
        log["users"] = list(users)
    if seats:
        log["seats"] = True
    return log


def describe(log):
    lines = ["clients: " + json.dumps(log["clients"]) +
             ("  (alice is admin: --owner-change)" if log.get("owner_change") else "")]
    for i, op in enumerate(log["ops"]):
        who = "c%d(%s)" % (op["c"], log["clients"][op["c"]]["user"])
        if op["op"] in ("tx", "attack"):
            body = "; ".join("%s %s" % (s, json.dumps(p)) for s, p in op["stmts"])
            tail = " [attack, pushed at once]" if op["op"] == "attack" else \
                " [%s]" % op["end"]
            lines.append("%3d %s: %s%s" % (i, who, body, tail))
        else:
            lines.append("%3d %s: %s" % (i, who, op["op"]))
    return "\n".join(lines)


def client_sql(tables):
    return read("client.sql") + (read("client_seats.sql") if "seats" in tables else "")


# ---- the server's tables, read without syncd ----

class SqliteServer:
    """The server's SQLite file, read directly."""

    def __init__(self, path):
        self.db = sqlite3.connect(path, timeout=30)

    def tables(self):
        return self.db

    def audit(self):
        """(the changes the write rule forbids or made without a user, the
        number of changes audited)"""
        bad = self.db.execute(
            "SELECT seq, sub, tbl, op, old, new, ok_old, ok_new FROM audit WHERE sub IS NULL"
            " OR NOT coalesce(ok_old, 1) OR NOT coalesce(ok_new, 1) ORDER BY seq").fetchall()
        return bad, self.db.execute("SELECT count(*) FROM audit").fetchone()[0]

    def close(self):
        self.db.close()


class PgServer:
    """The server's PostgreSQL database, read with psql: tables() copies the
    synced tables into an in-memory SQLite database (values through JSON:
    BIGINT as integers, TEXT as text), where the queries of EXPECTED run."""

    def __init__(self, url, tables):
        self.url = url
        self.dump = "SELECT json_build_object(%s)" % ", ".join(
            "'%s', (SELECT coalesce(json_agg(x), '[]') FROM %s x)" % (t, t) for t in tables)
        self.db = sqlite3.connect(":memory:")
        self.db.executescript(client_sql(tables))

    def psql(self, sql):
        env = dict(PG_ENVIRON, PGCLIENTENCODING="UTF8")
        p = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", self.url,
                            "-c", sql], capture_output=True, env=env, timeout=60)
        if p.returncode:
            raise RuntimeError("psql failed: %s" % p.stderr.decode(errors="replace"))
        return json.loads(p.stdout.decode())

    def tables(self):
        dump = self.psql(self.dump)
        with self.db:
            for t, rows in dump.items():
                self.db.execute("DELETE FROM " + t)
                for r in rows:
                    self.db.execute("INSERT INTO %s(%s) VALUES(%s)" % (
                        t, ", ".join(r), ", ".join("?" * len(r))), list(r.values()))
        return self.db

    def audit(self):
        r = self.psql(
            "SELECT json_build_object('bad', (SELECT coalesce(json_agg(json_build_array("
            "seq, sub, tbl, op, old, new, ok_old, ok_new) ORDER BY seq), '[]') FROM audit"
            " WHERE sub IS NULL OR NOT coalesce(ok_old, true) OR NOT coalesce(ok_new, true)),"
            " 'n', (SELECT count(*) FROM audit))")
        return [tuple(x) for x in r["bad"]], r["n"]

    def close(self):
        self.db.close()


# ---- the run ----

class Client:
    def __init__(self, path, url, settings, admin, tables):
        self.name = os.path.basename(path)[:-3] + "(" + settings["user"] + ")"
        self.user = settings["user"]
        self.db = connect(path)
        self.db.executescript(client_sql(tables))
        self.one("SELECT sync_init(?, ?)", (url, json.dumps(OPTIONS)))
        self.one("SELECT sync_config('token', ?)", (token(self.user, admin),))
        self.tables = settings.get("tracks") or list(tables)
        for t in self.tables:
            self.one("SELECT sync_track(?)", (t,))
        self.one("SELECT sync_config('batch_size', ?)", (settings.get("batch_size", 1000),))
        self.one("SELECT sync_config('pull_limit', ?)", (settings.get("pull_limit", 1000),))
        self.offline = False
        self.worker = settings.get("worker", False)

    def one(self, sql, args=()):
        r = self.db.execute(sql, args).fetchone()
        return r[0] if r else None

    def status(self):
        cur = self.db.execute("SELECT * FROM sync_status")
        return dict(zip([d[0] for d in cur.description], cur.fetchone()))

    def rejected(self):
        return {r[0]: r[1:] for r in self.db.execute(
            "SELECT id, table_name, op, pk, reason FROM sync_rejected")}

    def close(self):
        try:
            if self.worker:
                self.one("SELECT sync_stop()")
        except sqlite3.Error:
            pass
        self.db.close()


class Run:
    def __init__(self, log, opts):
        self.log = log
        self.o = opts
        self.admin = bool(log.get("owner_change"))
        self.f = Failures()
        self.f.verbose = opts.verbose
        self.seen = set()
        self.stuck = set()
        self.attacks = 0
        self.dir = tempfile.mkdtemp(prefix="sync-converge-rules-")
        self.pg = pg_fresh_db() if opts.pg else None
        self.seats = bool(log.get("seats"))
        self.tables = run_tables(log)
        schema = read("server_pg.sql" if opts.pg else "server.sql")
        if self.seats:
            schema += read("seats_pg.sql" if opts.pg else "seats.sql")
            if not log.get("cascade"):
                schema = re.sub(r"/\*cascade\*/.*?/\*end\*/", "", schema, flags=re.S)
        for name, text in (("secret", SECRET), ("schema.sql", schema),
                           ("rules.json", read("rules_seats.json" if self.seats else
                                               "rules.json"))):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        purge = log.get("max_tombstones")
        # no cap on each user's requests: three devices of two users sync
        # as fast as they can here, pages of one change included, and a
        # one-shot sync_pull answered 429 fails (the cap has its own tests)
        self.srv = Syncd(self.dir, ["--heartbeat", "1", "--max-requests-per-user", "0",
                                    "--jwt-secret-file", os.path.join(self.dir, "secret"),
                                    "--rules", os.path.join(self.dir, "rules.json")] +
                         (["--max-tombstones", str(purge)] if purge is not None else []),
                         schema=os.path.join(self.dir, "schema.sql"),
                         store=["--pg", self.pg] if self.pg else None)
        self.server = PgServer(self.pg, self.tables) if self.pg else SqliteServer(self.srv.db)
        self.clients = []

    def fail_once(self, kind, msg):
        key = (kind, msg.split(":")[0])
        if key not in self.seen:
            self.seen.add(key)
            self.f.add(kind, msg)

    @property
    def srvdb(self):
        """The server's tables as they are now, as an SQLite connection."""
        return self.server.tables()

    def want(self, c):
        return expected(self.srvdb, c.user, c.tables, self.seats)

    def start(self):
        for i, st in enumerate(self.log["clients"]):
            c = Client(os.path.join(self.dir, "c%d.db" % i), self.srv.url, st, self.admin,
                       self.tables)
            self.clients.append(c)
            if c.worker:
                c.one("SELECT sync_online(0)")
                c.one("SELECT sync_start()")

    def sync_call(self, c, fn, when):
        try:
            c.one("SELECT %s()" % fn)
            return True
        except sqlite3.Error as e:
            self.fail_once(fn.replace("sync_", "") + "-error",
                           "%s: %s() failed (%s): %s" % (c.name, fn, when, e))
            return False

    def worker_quiet(self, c, timeout):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if c.one("SELECT sync_pending()") == 0 and snapshot(c.db, c.tables) == self.want(c):
                return True
            time.sleep(0.02)
        return False

    def wsync(self, c, when, timeout=4):
        c.one("SELECT sync_online(1)")
        ok = self.worker_quiet(c, 0.5 if c.name in self.stuck else timeout)
        if not ok:
            self.stuck.add(c.name)
            st = c.status()
            self.fail_once("worker-stuck", "%s: the worker client is not quiescent after %ss "
                           "(%s): pending %s, state %s, last_error %s; %s" % (
                               c.name, timeout, when, st.get("pending"), st.get("state"),
                               st.get("last_error"),
                               diff(snapshot(c.db, c.tables), self.want(c), c.name,
                                    "its user's rows")))
        c.one("SELECT sync_online(0)")
        return ok

    def run_tx(self, c, stmts, end):
        """The statements in one transaction, each skipped when the client's
        own database refuses it; returns how many rows each changed."""
        changed = []
        c.db.execute("BEGIN")
        try:
            for sql, params in stmts:
                try:
                    changed.append(c.db.execute(sql, params).rowcount)
                except sqlite3.Error:
                    changed.append(0)
            c.db.execute("COMMIT" if end == "commit" else "ROLLBACK")
        except sqlite3.Error:
            if c.db.in_transaction:
                c.db.execute("ROLLBACK")
            return [0] * len(stmts)
        return changed

    def server_has(self, table, pk):
        where = " AND ".join("%s = ?" % k for k in KEYS[table])
        return self.srvdb.execute("SELECT 1 FROM %s WHERE %s" % (table, where),
                                  [pk[k] for k in KEYS[table]]).fetchone() is not None

    def local_row(self, c, table, pk):
        where = " AND ".join("%s = ?" % k for k in KEYS[table])
        return c.db.execute("SELECT * FROM %s WHERE %s" % (table, where),
                            [pk[k] for k in KEYS[table]]).fetchall()

    def attack(self, i, c, op):
        t, pk = op["table"], op["pk"]
        row_before = self.local_row(c, t, pk)
        changed = self.run_tx(c, op["stmts"], "commit")
        if not changed[0] or c.worker or c.offline:
            return  # no mutation, or not pushed now: the audit still judges it
        if op["stmts"][0][0].startswith("UPDATE") and self.local_row(c, t, pk) == row_before:
            return  # it wrote the values the row had: the client queues nothing
        is_insert = op["stmts"][0][0].startswith("INSERT")
        held = self.server_has(t, pk)
        if op["kind"] == "attack: task outside" and self.srvdb.execute(
                "SELECT 1 FROM members WHERE project = ? AND user_id = ?",
                (op["stmts"][0][1][1], c.user)).fetchone():
            return  # a member by now: not an attack
        if self.seats and op["kind"] in ("attack: task outside", "attack: note outside") and \
                self.srvdb.execute(
                "SELECT 1 FROM seats WHERE project = ? AND user_id = ?",
                (op["stmts"][0][1][1], c.user)).fetchone():
            return  # a seat by now: not an attack
        if not is_insert and not held:
            return  # an update or delete of a row that is gone: not judged
        before = c.rejected()
        if not self.sync_call(c, "sync_push", "op %d, right after an attack" % i):
            return
        if op["stmts"][0][0].startswith("UPDATE") and not self.server_has(t, pk):
            return  # gone in the same push (a delete queued before, a cascade): not judged
        self.attacks += 1
        new = [r for k, r in c.rejected().items() if k not in before and r[0] == t
               and json.loads(r[2]) == pk]
        # with --seat-cascade, a seat into a project that does not exist
        # fails its foreign key first (the write check runs on the row as
        # written)
        gone = self.log.get("cascade") and op["kind"] in (
            "attack: seat for", "attack: seat give") and not self.server_has(
            "projects", {"id": op["stmts"][0][1][1 if is_insert else 0]})
        ok = ("permission denied",) + CONSTRAINT if (is_insert and held) or gone else \
            ("permission denied",)
        if not any(r[3] and any(x in r[3] for x in ok) for r in new):
            pending = c.db.execute("SELECT id, op, pk, last_error FROM sync_pending WHERE"
                                   " table_name = ?", (t,)).fetchall()
            self.f.add("attack-not-refused", "%s: op %d (%s %s): the push did not come back "
                       "rejected %s; new rejections of that key: %s; pending in %s: %s; "
                       "the server's row: %s" % (
                           c.name, i, op["kind"], json.dumps(pk), " or ".join(ok), new, t,
                           pending[:4], self.server_row(t, pk)))

    def server_row(self, table, pk):
        where = " AND ".join("%s = ?" % k for k in KEYS[table])
        return self.srvdb.execute("SELECT * FROM %s WHERE %s" % (table, where),
                                  [pk[k] for k in KEYS[table]]).fetchall()

    def op(self, i, op):
        c = self.clients[op["c"]]
        kind = op["op"]
        when = "op %d" % i
        if kind == "tx":
            self.run_tx(c, op["stmts"], op["end"])
        elif kind == "attack":
            self.attack(i, c, op)
        elif kind in ("push", "pull"):
            if not c.offline and not c.worker:
                self.sync_call(c, "sync_" + kind, when)
        elif kind in ("offline", "online"):
            if not c.worker:
                c.offline = kind == "offline"
                c.one("SELECT sync_online(?)", (0 if c.offline else 1,))
        elif kind == "wsync":
            if c.worker:
                self.wsync(c, when)

    def quiesce(self):
        for c in self.clients:
            if c.offline:
                c.offline = False
                c.one("SELECT sync_online(1)")
        manual = [c for c in self.clients if not c.worker]
        workers = [c for c in self.clients if c.worker]
        for rnd in range(6):
            for c in manual:
                self.sync_call(c, "sync_push", "quiescence")
                self.sync_call(c, "sync_pull", "quiescence")
            for c in workers:
                c.one("SELECT sync_online(1)")
                if not self.worker_quiet(c, 0.5 if c.name in self.stuck else 3):
                    self.stuck.add(c.name)
            if all(c.one("SELECT sync_pending()") == 0 for c in self.clients) and rnd >= 1:
                break
        for c in manual:
            self.sync_call(c, "sync_pull", "quiescence")
        for c in workers:
            if not self.worker_quiet(c, 1 if c.name in self.stuck else 8):
                self.wsync(c, "quiescence", 0.1)

    def check(self):
        for c in self.clients:
            d = diff(snapshot(c.db, c.tables), self.want(c), c.name,
                     "its user's rows on the server")
            if d:
                self.f.add("differs", "%s differs from %s's rows on the server: %s" % (
                    c.name, c.user, d))
            n = c.one("SELECT sync_pending()")
            if n:
                errs = c.db.execute("SELECT id, table_name, op, pk, last_error FROM sync_pending"
                                    " LIMIT 3").fetchall()
                self.f.add("outbox", "%s: %d mutations still pending, e.g. %s" % (c.name, n, errs))
            for mid, (t, op, pk, reason) in c.rejected().items():
                if not reason or not any(r in reason for r in REASON_OK):
                    self.f.add("reason", "%s: mutation %d (%s %s %s) refused for a reason "
                               "naming neither permission nor a constraint: %r" % (
                                   c.name, mid, op, t, pk, reason))
            st = c.status()
            if st.get("state") == "error":
                self.f.add("status-error", "%s: sync_status state 'error': %s" % (
                    c.name, st.get("last_error")))
        bad, n = self.server.audit()
        if bad:
            self.f.add("audit", "the server made %d changes the write rule forbids, e.g. %s" % (
                len(bad), bad[:4]))
        if not n:
            self.f.add("audit", "the audit recorded nothing: its triggers did not run")
        for u in self.log.get("users", USERS):
            fresh = Client(os.path.join(self.dir, "fresh-%s.db" % u), self.srv.url,
                           {"user": u}, self.admin, self.tables)
            try:
                fresh.one("SELECT sync_pull()")
                d = diff(snapshot(fresh.db, self.tables),
                         expected(self.srvdb, u, self.tables, self.seats),
                         "a fresh device of " + u, "its rows on the server")
                if d:
                    self.f.add("fresh-differs", "a fresh device's initial sync: " + d)
            except sqlite3.Error as e:
                self.f.add("fresh-error", "a fresh device of %s: initial sync failed: %s" % (u, e))
            finally:
                fresh.close()

    def run(self):
        deadline = time.monotonic() + self.o.timeout * SLOW
        try:
            self.start()
            for i, op in enumerate(self.log["ops"]):
                if time.monotonic() > deadline:
                    self.f.add("timeout", "run timed out after %ss at op %d of %d" % (
                        self.o.timeout, i, len(self.log["ops"])))
                    return self.f
                try:
                    self.op(i, op)
                except sqlite3.Error as e:
                    self.fail_once("driver-error", "op %d (%s): %s" % (i, op["kind"], e))
            try:
                self.quiesce()
                self.check()
            except sqlite3.Error as e:
                self.f.add("driver-error", "at quiescence: %s" % e)
        finally:
            self.close()
        return self.f

    def close(self):
        for c in self.clients:
            c.close()
        self.server.close()
        self.srv.stop()
        if self.pg:
            drop_db(self.pg)
        if self.o.keep:
            print("converge-rules: files kept in", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def drop_db(url):
    """Drop a run's database from the cluster (its syncd has stopped)."""
    admin = os.environ["SYNCD_TEST_PG_URL"]
    name = url.rsplit("/", 1)[1]
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", admin, "-c",
                    "DROP DATABASE IF EXISTS %s" % name], capture_output=True, timeout=60,
                   env=PG_ENVIRON)


def start_pg():
    """Start the throwaway cluster (tests/pg_env.sh); returns its folder
    and sets SYNCD_TEST_PG_URL, where pg_fresh_db finds it."""
    d = tempfile.mkdtemp(prefix="sync-converge-rules-pg-")
    p = subprocess.run(["bash", PG_ENV, "start", d], capture_output=True, text=True,
                       timeout=120, env=PG_ENVIRON)
    url = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    if p.returncode or not url.startswith("postgresql://"):
        stop_pg(d)
        raise RuntimeError("PostgreSQL could not start: " + (p.stderr.strip() or "no url"))
    os.environ["SYNCD_TEST_PG_URL"] = url
    return d


def stop_pg(d):
    subprocess.run(["bash", PG_ENV, "stop", d], capture_output=True, timeout=120, env=PG_ENVIRON)
    shutil.rmtree(d, ignore_errors=True)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int)
    ap.add_argument("--seeds", help='"1 2 3" or "1-50"')
    ap.add_argument("--replay", nargs="+", metavar="LOG")
    ap.add_argument("--ops", type=int, default=120)
    ap.add_argument("--owner-change", action="store_true",
                    help="alice is admin: todos given away, tasks moved between projects")
    ap.add_argument("--no-worker", action="store_true", help="no client on the worker")
    ap.add_argument("--watch", action="store_true",
                    help="bob's watch too: a device that tracks todos and tasks only, and"
                    " writes nothing")
    ap.add_argument("--third-user", action="store_true",
                    help="carol too, with one device: the others are added to and removed"
                    " from her projects, and she from theirs")
    ap.add_argument("--seats", action="store_true",
                    help="seats too (a membership keyed by an id of its own, moved, deleted and"
                    " made again often) and notes, read through them")
    ap.add_argument("--seat-cascade", action="store_true",
                    help="--seats, and seats.project references projects ON DELETE CASCADE on"
                    " the server: a project's delete deletes its seats")
    ap.add_argument("--max-tombstones", type=int, metavar="N",
                    help="syncd --max-tombstones N: the compaction purges deletes (and the"
                    " former values kept with them) as the runs go, kept in the log")
    ap.add_argument("--pg", action="store_true",
                    help="syncd on PostgreSQL (a throwaway cluster, rules/server_pg.sql)")
    ap.add_argument("--pg-optional", action="store_true",
                    help="with --pg: when no cluster can start, say SKIPPED and exit 0")
    ap.add_argument("--timeout", type=float, default=120, help="per run")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--show", action="store_true", help="print the op log first")
    ap.add_argument("-v", "--verbose", action="store_true", help="print failures as they happen")
    o = ap.parse_args()
    if o.replay:
        runs = []
        for path in o.replay:
            with open(path) as f:
                runs.append(("replay " + path, json.load(f)))
    else:
        seeds = parse_seeds(o.seeds) if o.seeds else [o.seed or 1]
        runs = [("seed %d" % s, generate(s, o.ops, o.owner_change, not o.no_worker,
                                         o.third_user, o.watch, o.seats or o.seat_cascade))
                for s in seeds]
        for _, log in runs:
            if o.seat_cascade and log.get("seats"):
                log["cascade"] = True
            if o.max_tombstones is not None:
                log["max_tombstones"] = o.max_tombstones
    pg_dir = None
    if o.pg:
        try:
            pg_dir = start_pg()
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            if o.pg_optional:
                print("converge-rules: SKIPPED: %s" % e)
                return 0
            print("converge-rules: %s" % e)
            print("converge-rules: 0 passed, %d failed" % len(runs))
            return 1
    try:
        return run_all(runs, o)
    finally:
        if pg_dir:
            stop_pg(pg_dir)


def run_all(runs, o):
    passed = failed = 0
    store = " on PostgreSQL" if o.pg else ""
    for name, log in runs:
        t0 = time.monotonic()
        print("converge-rules: %s: %d ops%s%s" % (name, len(log["ops"]), ", owner changes"
                                                  if log.get("owner_change") else "", store),
              flush=True)
        if o.show:
            print(describe(log))
        r = Run(log, o)
        f = r.run()
        dt = time.monotonic() - t0
        if not f:
            passed += 1
            print("converge-rules: %s passed (%.1fs, %d attacks refused)" % (name, dt, r.attacks),
                  flush=True)
            continue
        failed += 1
        if not o.show:
            print(describe(log))
        for k, msg in f[:12]:
            print("  [%s] %s" % (k, msg[:2000]))
        if len(f) > 12:
            print("  ... %d more" % (len(f) - 12))
        path = name[7:]
        if not o.replay:
            path = os.path.join(OUT, "rules-" + name.replace(" ", "-") +
                                ("-owner-change" if log.get("owner_change") else "") +
                                ("-3" if log.get("users") else "") +
                                ("-watch" if any("tracks" in c for c in log["clients"]) else "") +
                                ("-seats" if log.get("seats") else "") +
                                ("-cascade" if log.get("cascade") else "") +
                                ("-pg" if o.pg else "") + ".json")
            save(log, path)
        print("converge-rules: %s FAILED (%.1fs): %s; replay: tests/converge/rules_run.py "
              "%s--replay %s" % (name, dt, ", ".join(sorted({k for k, _ in f})),
                                 "--pg " if o.pg else "", path), flush=True)
    print("converge-rules: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
