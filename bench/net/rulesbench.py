"""Benchmark of syncd's read rules (issue 15, "Speed"), ratios in one run.

    /usr/bin/python3 bench/net/rulesbench.py [--rows N] [--readable N] [--pg]
                                              [--users N] [--changes N] [--only a,b,c]
                                              [--own N] [--opens N] [--closes N]
                                              [--cover] [--mmap-size BYTES] [--first]
                                              [--syncd PATH]

Drives a real server/syncd (SQLite storage; --pg: figure a on a throwaway
PostgreSQL, tests/pg_env.sh) on 127.0.0.1 over HTTP with
HS256 JWTs, standard library only; `make bench-rules` runs it. It measures,
it never fails on speed. Each figure stands next to its baseline measured
in the same run.

  a initial  syncd's CPU (mean; and the median wall time) for one user's
             initial sync (GET /pull pages of 1000 from an empty cursor)
             of the --readable rows of a --rows table they may read under
             `"read": "owner = :sub"` (an index on owner), vs the initial
             sync of a --readable row table without rules; plus the same
             small table with the rule (every row readable), which splits
             the cost into the page query's own and the rows passed over.
             The index is items(owner, id), the rule's column then the key,
             as docs/RULES.md asks (--cover: items(owner, id, title), which
             holds the whole row, so the walk reads no page of the table).
             Then the query plans of syncd's page query under the rule (the
             rule inside it, a walk in key order reading the rows from the
             table: sqlite_walk.c, walk_sql), of the page query without
             rules and of the per-row read check an increment still runs,
             on the big table's server.db, and the SQLite time of the first
             two over the whole initial sync. --syncd runs another binary
             (a "before" copied aside, to compare in one window);
             --mmap-size BYTES starts every syncd on SQLite with it (the
             file mapped: the baseline's and the walk's reads alike).
             The big table's syncs are repeats of u000's after a first
             one; --first makes each the first of a user of its own
             (u001, u002, ...: their rows share the table's pages).
  b fanout   --users event streams (/events, one per user, plain sockets),
             each user a member of one of --users/10 projects; --changes
             task inserts pushed one at a time, each readable by one
             project's members: commit-to-visible (push sent -> the
             member's stream holds the row) p50/p99 over every (change,
             member) pair, vs the same streams and pushes without rules
             (every stream gets every change).
  c move-in  a user who may read --own tasks (a project of theirs) joins
             another project of --opens tasks (a members row they push):
             requests, rows, bytes and syncd's CPU of the pull after it
             (move-in: the rows it opens come in the increment) vs a full
             resync of the same user, what a 410 "moved" made the client
             do before (docs/RULES.md); --reps projects joined in turn,
             one resync after each.
  d move-out a user who may read --own tasks leaves a project of --closes
             tasks (deletes their members row): requests, rows, bytes
             and syncd's CPU of the pull after it (move-out: the rows it
             closes come as deletes in the increment) vs a full resync
             of the same user, what a 410 "moved" made the client do
             before; --reps projects left in turn.
  e kept     (--pg: on PostgreSQL) the pull after 1000 deletes of tasks of a project the user
             is not in (each judged by the former values the storage
             keeps, to see whether the user could read the row before:
             docs/RULES.md), with --kept former membership values kept
             (other users' members rows pushed and deleted, as churn
             leaves them) against the same pull with none kept; and the
             push of the last 1000 of those deletes against the first.
"""
import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import select
import selectors
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SYNCD = os.path.join(ROOT, "server", "syncd")  # --syncd
TICK = os.sysconf("SC_CLK_TCK")
SECRET = "a-benchmark-secret-of-at-least-32-bytes"
PAGE = 1000

rows_out = []  # (figure, what, value, baseline, ratio, target)


def out(fig, what, value, base="", ratio="", target=""):
    rows_out.append((fig, what, value, base, ratio, target))
    print(f"  [{fig}] {what}: {value}" + (f"  (baseline {base}, ratio {ratio})" if base else ""),
          file=sys.stderr, flush=True)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(sub):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": sub, "exp": int(time.time()) + 86400}).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


class Syncd:
    """syncd on 127.0.0.1:0, SQLite storage in a folder of its own, JWTs
    checked (HS256), with rules when given."""

    binary = SYNCD
    mmap_size = None  # --mmap-size, for every syncd on SQLite storage

    def __init__(self, tmp, schema, rules=None, pg=None):
        self.dir = tempfile.mkdtemp(dir=tmp)
        self.pg = pg
        files = {"schema.sql": schema, "secret": SECRET}
        if rules:
            files["rules.json"] = json.dumps(rules)
        for name, text in files.items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        self.db = os.path.join(self.dir, "server.db")
        self.pg_url = pg.fresh() if pg else None
        store = ["--pg", self.pg_url] if pg else ["--db", self.db]
        if self.mmap_size is not None and not pg:
            store += ["--mmap-size", str(self.mmap_size)]
        args = [self.binary, "--listen", "127.0.0.1:0", "--schema", os.path.join(self.dir, "schema.sql"),
                *store, "--max-connections", "2000",
                "--jwt-secret-file", os.path.join(self.dir, "secret")]
        if rules:
            args += ["--rules", os.path.join(self.dir, "rules.json")]
        self.log = open(os.path.join(self.dir, "syncd.log"), "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log)
        ready, _, _ = select.select([self.proc.stdout], [], [], 900)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError("syncd did not start (see %s/syncd.log)" % self.dir)
        self.startup = time.perf_counter() - t0
        self.url = line.strip()
        self.port = urllib.parse.urlsplit(self.url).port

    def cpu(self):
        """CPU seconds (user + system) syncd used so far, and on PostgreSQL
        storage the cluster's too (the server's cost is both)."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK + (self.pg.cpu() if self.pg else 0)


    def request(self, method, path, body=None, jwt=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        headers = {"Content-Type": "application/json"}
        if jwt:
            headers["Authorization"] = "Bearer " + jwt
        conn.request(method, path, body, headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        if r.status != 200:
            raise RuntimeError("%s %s: %d %s" % (method, path, r.status, data[:200]))
        return json.loads(data)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Pg:
    """A throwaway PostgreSQL cluster (tests/pg_env.sh) with a fresh
    database per syncd."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "pg")
        os.chmod(tmp, 0o755)  # the server runs as postgres when we are root
        self.url = subprocess.run(["bash", os.path.join(ROOT, "tests", "pg_env.sh"), "start",
                                   self.dir], capture_output=True, text=True,
                                  check=True).stdout.strip().splitlines()[-1]
        with open(os.path.join(self.dir, "data", "postmaster.pid")) as f:
            self.pid = int(f.readline())
        self.n = 0

    def fresh(self):
        self.n += 1
        name = "bench%d" % self.n
        subprocess.run(["psql", "-X", "-q", self.url, "-c", "CREATE DATABASE " + name], check=True)
        return self.url.rsplit("/", 1)[0] + "/" + name

    def cpu(self):
        """CPU seconds of the postmaster, its children now and those gone."""
        total = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(pid) == self.pid:
                total += sum(int(x) for x in fields[11:15])
            elif int(fields[1]) == self.pid:
                total += int(fields[11]) + int(fields[12])
        return total / TICK

    def explain(self, url, sql):
        """The generic plan of sql (parameters $1.., all text) on url."""
        n = max(int(x) for x in __import__("re").findall(r"\$(\d+)", sql))
        script = ("SET plan_cache_mode = force_generic_plan; PREPARE q(%s) AS %s;"
                  " EXPLAIN (COSTS OFF) EXECUTE q(%s);"
                  % (", ".join(["text"] * n), sql, ", ".join(["NULL"] * n)))
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", url, "-c", script],
                           capture_output=True, text=True, check=True)
        return "; ".join(line.strip() for line in r.stdout.splitlines() if line.strip())

    def stop(self):
        subprocess.run(["bash", os.path.join(ROOT, "tests", "pg_env.sh"), "stop", self.dir])


# ---- a: initial sync ----

ITEMS = ("CREATE TABLE items(id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL);"
         "CREATE INDEX items_owner ON items(owner, id%s);")
OWN = {"tables": {"items": {"read": "owner = :sub", "write": "owner = :sub"}}}


def items_schema(n, owners, pg=False, cover=False):
    """n rows, owner u000 .. u<owners-1> in turn: each owns n/owners rows;
    cover: the index holds the row's other column too (--cover)."""
    index = ITEMS % (", title" if cover else "")
    if pg:
        return index + ("INSERT INTO items SELECT format('r%%s', lpad(i::text, 7, '0')),"
                        " format('u%%s', lpad((i %% %d)::text, 3, '0')), 'row ' || i"
                        " FROM generate_series(0, %d) i;" % (owners, n - 1))
    return index + ("INSERT INTO items WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL"
                    " SELECT i + 1 FROM k WHERE i + 1 < %d) SELECT printf('r%%07d', i),"
                    " printf('u%%03d', i %% %d), 'row ' || i FROM k;" % (n, owners))


def initial_sync(s, jwt, client):
    """Rows one initial sync brings, its wall time and syncd's CPU for it."""
    cpu0, t0 = s.cpu(), time.perf_counter()
    cursor, n, pages = "", 0, 0
    while True:
        pages += 1
        q = urllib.parse.urlencode({"client_id": client, "cursor": cursor, "limit": PAGE})
        page = s.request("GET", "/pull?" + q, jwt=jwt)
        n += len(page["changes"])
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    return n, pages, time.perf_counter() - t0, s.cpu() - cpu0


def measure(s, jwt, want, reps, users=None):
    """users: a token per run, each user's first initial sync (--first)."""
    initial_sync(s, jwt, "warm")  # the client id's binding, a warm cache
    runs = []
    for r in range(reps):
        n, pages, wall, cpu = initial_sync(s, users[r] if users else jwt, "c%d" % r)
        if n != want:
            raise RuntimeError("initial sync brought %d rows, not %d" % (n, want))
        runs.append((wall, cpu))
    return statistics.median(w for w, _ in runs), sum(c for _, c in runs) / reps, pages


PAGE_SQL = ("SELECT tbl, pk, row, version FROM _syncd_changes WHERE version > ?1"
            " AND (?3 OR op = 'upsert') AND (?4 IS NULL OR tbl IN (SELECT value FROM"
            " json_each(?4))) ORDER BY version LIMIT ?2")
CHECK_SQL = ("SELECT EXISTS(SELECT 1 FROM \"items\" WHERE \"items\".\"id\" ="
             " json_extract(?1, '$.\"id\"') AND \"items\".\"owner\" = ?2)")
# syncd's page of an initial sync under `owner = :sub` (sqlite_walk.c,
# walk_sql, as it writes it for this table; ?1 the key the page goes on
# after, ?2 :sub, ?3 the limit): the rows from the table itself
WALK_SQL = ("SELECT \"items\".\"id\" AS \"id\", \"items\".\"owner\" AS \"owner\","
            " \"items\".\"title\" AS \"title\" FROM \"items\""
            " WHERE (\"items\".\"owner\" = ?2) AND \"items\".\"id\" IS NOT NULL"
            " AND (\"items\".\"id\") > (sync_val(?1 -> '$.\"id\"'))"
            " ORDER BY \"items\".\"id\" LIMIT ?3")


def plans(db, k):
    """The query plans of a pull on the big table's server.db: syncd's
    page query under the rule, the page query without rules and the read
    check an increment runs per change; and the SQLite time of the walk
    and of the plain page query over a whole initial sync, measured here in
    this process (python's sqlite3, the same system SQLite, with a python
    stand-in for syncd's function sync_val), not in syncd."""
    c = sqlite3.connect(db)
    c.create_function("sync_val", 1, json.loads, deterministic=True)
    try:
        for what, sql, args in (
                ("syncd's page query under the rule", WALK_SQL,
                 ('{"id":""}', "u000", PAGE + 1)),
                ("page query without rules (all logged rows)", PAGE_SQL,
                 (0, PAGE + 1, 0, '["items"]')),
                ("read check per row (increments)", CHECK_SQL, ('{"id":"r0000001"}', "u000"))):
            plan = "; ".join(r[3] for r in c.execute("EXPLAIN QUERY PLAN " + sql, args))
            out("a", "  plan, %s" % what, plan)
        t0, after, got = time.perf_counter(), '{"id":""}', 0
        while True:
            page = c.execute(WALK_SQL, (after, "u000", PAGE + 1)).fetchall()
            got += min(len(page), PAGE)
            if len(page) <= PAGE:
                break
            after = json.dumps({"id": page[PAGE - 1][0]})
        walk = time.perf_counter() - t0
        t0, after, n = time.perf_counter(), 0, 0
        while True:
            page = c.execute(PAGE_SQL, (after, PAGE + 1, 0, '["items"]')).fetchall()
            n += len(page)
            if len(page) <= PAGE:
                break
            after = page[PAGE - 1][3]
        scan = time.perf_counter() - t0
        if got != k:
            raise RuntimeError("%d readable rows, not %d" % (got, k))
        out("a", "  SQLite alone: syncd's page queries under the rule (%d queries)"
            % (k // PAGE + 1), "%.3f s" % walk)
        out("a", "  SQLite alone: the page query without rules over the whole log"
            " (%dk rows, %d queries)" % (n // 1000, n // PAGE + 1), "%.3f s" % scan)
    finally:
        c.close()


# syncd's query of a page on PostgreSQL under `owner = :sub` (pg_sql.c,
# pgsql_walk; $1 the key the page goes on after, $2 :sub, $3 the limit):
# the key, then the row, from the table itself
PG_WALK_SQL = ("SELECT \"id\",\"id\",\"owner\",\"title\" FROM \"items\""
               " WHERE (\"items\".\"owner\" = $2) AND \"id\" IS NOT NULL"
               " AND (\"id\") > ((jsonb_populate_record(NULL::\"items\", $1::jsonb)).\"id\")"
               " ORDER BY \"id\" LIMIT $3::bigint")


def fig_a(tmp, a):
    n, k = a.rows, a.readable
    jwt = token("u000")
    pg = Pg(tmp) if a.pg else None
    try:
        fig_a_on(tmp, a, n, k, jwt, pg)
    finally:
        if pg:
            pg.stop()


def fig_a_on(tmp, a, n, k, jwt, pg):
    small = Syncd(tmp, items_schema(k, 1, pg), pg=pg)
    try:
        base_wall, base_cpu, base_pages = measure(small, jwt, k, a.small_reps)
    finally:
        small.stop()
    small = Syncd(tmp, items_schema(k, 1, pg), OWN, pg=pg)
    try:
        small_wall, small_cpu, _ = measure(small, jwt, k, a.small_reps)
    finally:
        small.stop()
    big = Syncd(tmp, items_schema(n, n // k, pg, a.cover), OWN, pg=pg)
    try:
        firsts = [token("u%03d" % (r + 1)) for r in range(a.reps)] if a.first else None
        big_wall, big_cpu, big_pages = measure(big, jwt, k, a.reps, firsts)
        startup = big.startup
        if pg:
            url = pg.url.rsplit("/", 1)[0] + "/bench%d" % pg.n
            out("a", "  plan, syncd's page query under the rule (PostgreSQL, generic)",
                pg.explain(url, PG_WALK_SQL))
        else:
            plans(big.db, k)
    finally:
        big.stop()
    who = "syncd + PostgreSQL CPU" if pg else "syncd CPU"
    base = ("%dk rows, no rules: CPU %.3f s, wall %.3f s, %d requests"
            % (k // 1000, base_cpu, base_wall, base_pages))
    out("a", "initial sync of %dk readable rows of %dk under owner = :sub, %s"
        % (k // 1000, n // 1000, who),
        "%.3f s (wall %.3f s, %d requests)" % (big_cpu, big_wall, big_pages), base,
        ratio(big_cpu, base_cpu) + ", wall " + ratio(big_wall, base_wall), "<= 2x")
    out("a", "  the same %dk rows, all readable, with the rule, %s" % (k // 1000, who),
        "%.3f s (wall %.3f s)" % (small_cpu, small_wall), base,
        ratio(small_cpu, base_cpu) + ", wall " + ratio(small_wall, base_wall))
    out("a", "  (syncd start with backfill of %dk rows)" % (n // 1000), "%.1f s" % startup)


# ---- b: fan-out ----

TASKS = ("CREATE TABLE members(project TEXT NOT NULL, user_id TEXT NOT NULL,"
         " PRIMARY KEY (project, user_id));"
         "CREATE INDEX members_user ON members(user_id, project);"
         "CREATE TABLE tasks(id TEXT PRIMARY KEY, project TEXT NOT NULL, title TEXT NOT NULL);")
MINE = "project IN (SELECT project FROM members WHERE user_id = :sub)"
PROJECTS = {"tables": {"members": {"read": "user_id = :sub", "write": "false"},
                       "tasks": {"read": MINE, "write": MINE}}}


def user(j):
    return "u%03d" % j


def project(j):
    return "p%02d" % (j // 10)


def fanout(tmp, a, rules):
    """Commit-to-visible seconds of every (change, reader) pair that should
    see the change: a list."""
    schema = TASKS + "".join("INSERT INTO members VALUES ('%s', '%s');" % (project(j), user(j))
                             for j in range(a.users))
    s = Syncd(tmp, schema, PROJECTS if rules else None)
    socks = []
    try:
        sel = selectors.DefaultSelector()
        for j in range(a.users):
            so = socket.create_connection(("127.0.0.1", s.port), timeout=30)
            so.sendall(("GET /events?client_id=sse%d&tables=tasks HTTP/1.1\r\nHost: x\r\n"
                        "Authorization: Bearer %s\r\n\r\n" % (j, token(user(j)))).encode())
            so.setblocking(False)
            socks.append(so)
            sel.register(so, selectors.EVENT_READ, {"j": j, "buf": b"", "ok": False})
        ready, t_end = 0, time.monotonic() + 60
        while ready < a.users and time.monotonic() < t_end:
            for key, _ in sel.select(1):
                st = key.data
                st["buf"] += key.fileobj.recv(65536)
                if not st["ok"] and b": ok" in st["buf"]:
                    st["ok"], ready = True, ready + 1
                    st["buf"] = st["buf"].rsplit(b"\n", 1)[-1]  # a line begun
        if ready < a.users:
            raise RuntimeError("only %d of %d streams opened" % (ready, a.users))
        n_proj = a.users // 10
        sent, seen = {}, {}  # task id -> time pushed; (task id, reader) -> time seen
        want = 0

        def drain(timeout):
            for key, _ in sel.select(timeout):
                st = key.data
                data = key.fileobj.recv(1 << 20)
                if not data:
                    raise RuntimeError("a stream ended")
                now = time.perf_counter()
                st["buf"] += data
                *lines, st["buf"] = st["buf"].split(b"\n")
                for line in lines:
                    if line.startswith(b"data: "):
                        for ch in json.loads(line[6:])["changes"]:
                            seen.setdefault((ch["pk"]["id"], st["j"]), now)

        for i in range(a.changes):
            p = i % n_proj
            tid = "t%05d" % i
            # a member of the task's project pushes it (the write rule)
            writer = user(p * 10)
            body = json.dumps({"client_id": "writer-" + writer, "mutations": [
                {"id": i + 1, "table": "tasks", "op": "insert", "pk": {"id": tid},
                 "data": {"id": tid, "project": project(p * 10), "title": "task %d" % i}}]})
            sent[tid] = time.perf_counter()
            res = s.request("POST", "/push", body, jwt=token(writer))["results"][0]
            if res["status"] != "applied":
                raise RuntimeError("push: %s" % res)
            want += 10 if rules else a.users
            t_gap = time.perf_counter() + a.gap
            while time.perf_counter() < t_gap:
                drain(max(0.0, t_gap - time.perf_counter()))
        t_end = time.monotonic() + 120
        while len(seen) < want and time.monotonic() < t_end:
            drain(0.5)
        if rules:  # no stream may hold another project's task
            for (tid, j) in seen:
                if project(j) != project(int(tid[1:]) % n_proj * 10):
                    raise RuntimeError("reader %d got task %s" % (j, tid))
        if len(seen) < want:
            raise RuntimeError("%d of %d deliveries missing" % (want - len(seen), want))
        return [t - sent[tid] for (tid, _), t in seen.items()], s.cpu()
    finally:
        for so in socks:
            so.close()
        s.stop()


def ratio(x, base):
    return "%.2fx" % (x / base) if base else "n/a (baseline below a clock tick)"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def fig_b(tmp, a):
    base, base_cpu = fanout(tmp, a, False)
    got, got_cpu = fanout(tmp, a, True)
    ms = 1000
    out("b", "fan-out to %d streams, each change readable by 10 (a project), p99 push->seen"
        % a.users, "%.1f ms (p50 %.1f, %d deliveries)" % (ms * pct(got, 99), ms * pct(got, 50),
                                                          len(got)),
        "no rules, every stream gets each change: p99 %.1f ms (p50 %.1f, %d deliveries)"
        % (ms * pct(base, 99), ms * pct(base, 50), len(base)),
        ratio(pct(got, 99), pct(base, 99)), "<= 2x")
    out("b", "  syncd CPU for the whole run (start, %d pushes, fan-out)" % a.changes,
        "%.2f s" % got_cpu, "%.2f s" % base_cpu, ratio(got_cpu, base_cpu))


def pull_pages(s, jwt, client, cursor):
    """Pages from cursor ("": an initial sync) until has_more is false:
    (requests, rows, bytes, syncd CPU, wall, the last cursor)."""
    cpu0, t0 = s.cpu(), time.perf_counter()
    reqs = rows = size = 0
    while True:
        q = urllib.parse.urlencode({"client_id": client, "cursor": cursor, "limit": PAGE})
        page = s.request("GET", "/pull?" + q, jwt=jwt)
        reqs += 1
        rows += len(page["changes"])
        size += len(json.dumps(page))
        cursor = page["cursor"]
        if not page["has_more"]:
            return reqs, rows, size, s.cpu() - cpu0, time.perf_counter() - t0, cursor


def fig_move(tmp, a, leave):
    """c (leave false): joining a project of --opens tasks; d: leaving one of
    --closes tasks; the pull after each, against a full resync."""
    n, what = (a.closes, "leaving") if leave else (a.opens, "joining")
    gen = ("INSERT INTO tasks WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k"
           " WHERE i + 1 < %d) SELECT printf('%s-%%07d', i), '%s', 'task ' || i FROM k;")
    schema = (TASKS + "CREATE INDEX tasks_project ON tasks(project, id);"
              "INSERT INTO members VALUES ('home', 'u000');" + gen % (a.own, "home", "home") +
              "".join(("INSERT INTO members VALUES ('p%d', 'u000');" % r if leave else "") +
                      gen % (n, "p%d" % r, "p%d" % r) for r in range(a.reps)))
    rules = {"tables": {"members": {"read": "user_id = :sub", "write": "user_id = :sub"},
                        "tasks": {"read": MINE, "write": MINE}}}
    s = Syncd(tmp, schema, rules)
    jwt = token("u000")
    try:
        cursor = pull_pages(s, jwt, "c", "")[5]
        moved, resync = [], []
        for r in range(a.reps):
            key = {"project": "p%d" % r, "user_id": "u000"}
            mut = dict(id=r + 1, table="members", op="delete" if leave else "insert", pk=key)
            if not leave:
                mut["data"] = key
            s.request("POST", "/push", json.dumps({"client_id": "w", "mutations": [mut]}),
                      jwt=jwt)
            got = pull_pages(s, jwt, "c", cursor)
            cursor = got[5]
            if got[1] != n + 1:
                raise RuntimeError("the pull after %s sent %d rows, not %d" % (what, got[1], n + 1))
            moved.append(got)
            resync.append(pull_pages(s, jwt, "r%d" % r, ""))
    finally:
        s.stop()

    def mean(runs, i):
        return sum(x[i] for x in runs) / len(runs)
    for name, i, fmt in (("requests", 0, "%.0f"), ("rows", 1, "%.0f"), ("bytes", 2, "%.0f"),
                         ("syncd CPU s", 3, "%.4f"), ("wall s (median)", 4, "%.4f")):
        got = statistics.median(x[i] for x in moved) if i == 4 else mean(moved, i)
        base = statistics.median(x[i] for x in resync) if i == 4 else mean(resync, i)
        out("d" if leave else "c", "%s a project of %d tasks with %d readable: %s of the pull"
            " after it" % (what, n, a.own, name), fmt % got, "a full resync: " + fmt % base,
            ratio(got, base))


def fig_kept(tmp, a, pg):
    """e: a pull of 1000 task deletes, --kept membership values kept vs none."""
    gen = ("INSERT INTO tasks SELECT format('t%s', lpad(i::text, 7, '0')), 'other', 'task ' || i"
           " FROM generate_series(0, 999) i;" if pg else
           "INSERT INTO tasks WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k"
           " WHERE i + 1 < 1000) SELECT printf('t%07d', i), 'other', 'task ' || i FROM k;")
    rules = {"tables": {"members": {"read": "user_id = :sub", "write": "true"},
                        "tasks": {"read": MINE, "write": "true"}}}
    runs = {}
    for kept in (0, a.kept):
        churn = ("" if not kept else
                 "INSERT INTO members SELECT format('p%%s', lpad((i %% 997)::text, 5, '0')),"
                 " format('x%%s', lpad(i::text, 7, '0')) FROM generate_series(0, %d) i;"
                 % (kept - 1) if pg else
                 "INSERT INTO members WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1"
                 " FROM k WHERE i + 1 < %d) SELECT printf('p%%05d', i %% 997), printf('x%%07d', i)"
                 " FROM k;" % kept)
        s = Syncd(tmp, TASKS + "INSERT INTO members VALUES ('home', 'u000');" + gen + churn,
                  rules, pg)
        jwt, other = token("u000"), token("x")
        try:
            took = []
            for lo in range(0, kept, 1000):
                muts = [dict(id=i + 1, table="members", op="delete",
                             pk={"project": "p%05d" % (i % 997), "user_id": "x%07d" % i})
                        for i in range(lo, min(lo + 1000, kept))]
                t0 = time.perf_counter()
                s.request("POST", "/push", json.dumps({"client_id": "churn", "mutations": muts}),
                          jwt=other)
                took.append(time.perf_counter() - t0)
            if kept:
                out("e", "the push of 1000 members deletes (each keeps a value) with %d kept"
                    " before it (wall s)" % (kept - 1000), "%.4f" % took[-1],
                    "the first 1000: %.4f" % took[0], ratio(took[-1], took[0]))
            count = "SELECT count(*) FROM _syncd_was_members"
            held = int(subprocess.run(["psql", "-X", "-A", "-t", s.pg_url, "-c", count],
                                      capture_output=True, text=True, check=True).stdout
                       if s.pg_url else sqlite3.connect(s.db).execute(count).fetchone()[0])
            if held < kept:
                raise RuntimeError("fewer than %d membership values kept" % kept)
            runs[kept] = []
            for r in range(a.reps):
                cursor = pull_pages(s, jwt, "c%d" % r, "")[5]
                muts = [dict(id=i + 1, table="tasks", op="delete", pk={"id": "t%07d" % i})
                        for i in range(1000)]
                s.request("POST", "/push", json.dumps({"client_id": "d%d" % r, "mutations": muts}),
                          jwt=other)
                runs[kept].append(pull_pages(s, jwt, "c%d" % r, cursor))
                muts = [dict(id=i + 1, table="tasks", op="insert", pk={"id": "t%07d" % i},
                             data={"id": "t%07d" % i, "project": "other", "title": "again"})
                        for i in range(1000)]
                s.request("POST", "/push", json.dumps({"client_id": "i%d" % r, "mutations": muts}),
                          jwt=other)
        finally:
            s.stop()
    for name, i, fmt in (("syncd CPU s", 3, "%.4f"), ("wall s (median)", 4, "%.4f")):
        got, base = (statistics.median(x[i] for x in runs[k]) for k in (a.kept, 0))
        out("e", "the pull after 1000 deletes of unreadable tasks, %d membership values kept: %s"
            % (a.kept, name), fmt % got, "none kept: " + fmt % base, ratio(got, base))


def table():
    head = ("fig", "what", "figure", "baseline (same run)", "ratio", "target")
    rows = [head] + [tuple(str(x) for x in r) for r in rows_out]
    w = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for k, r in enumerate(rows):
        print(" | ".join(r[i].ljust(w[i]) for i in range(len(head))).rstrip())
        if k == 0:
            print("-+-".join("-" * x for x in w))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="a,b,c,d", help="figures to run, e.g. a")
    ap.add_argument("--rows", type=int, default=1000000, help="the big table's rows (a)")
    ap.add_argument("--readable", type=int, default=10000, help="rows the user may read (a)")
    ap.add_argument("--reps", type=int, default=10,
                    help="initial syncs measured on the big table's server (a)")
    ap.add_argument("--small-reps", type=int, default=50,
                    help="the same for the --readable row tables: each costs syncd a few clock"
                         " ticks of CPU, so many runs make the mean (a)")
    ap.add_argument("--pg", action="store_true",
                    help="(a) on PostgreSQL storage (tests/pg_env.sh), CPU of syncd and"
                         " the cluster together")
    ap.add_argument("--users", type=int, default=200, help="event streams, 10 per project (b)")
    ap.add_argument("--changes", type=int, default=200, help="tasks pushed (b)")
    ap.add_argument("--gap", type=float, default=0.02, help="seconds between pushes (b)")
    ap.add_argument("--own", type=int, default=10000, help="tasks the user may read (c)")
    ap.add_argument("--opens", type=int, default=1000, help="tasks of each project joined (c)")
    ap.add_argument("--closes", type=int, default=500,
                    help="tasks of each project left (d): one page of the pull holds them")
    ap.add_argument("--kept", type=int, default=100000,
                    help="former membership values kept (e)")
    ap.add_argument("--cover", action="store_true",
                    help="(a) the big table's index covers the row: items(owner, id, title)")
    ap.add_argument("--mmap-size", type=int,
                    help="(SQLite) every syncd maps this many bytes of its database file")
    ap.add_argument("--first", action="store_true",
                    help="(a) each measured sync of the big table is its user's first")
    ap.add_argument("--syncd", default=SYNCD,
                    help="the syncd binary (a \"before\" copied aside, for the same window)")
    a = ap.parse_args()
    Syncd.binary = a.syncd
    Syncd.mmap_size = a.mmap_size
    if a.rows % a.readable or a.users % 10:
        ap.error("--rows must be a multiple of --readable, --users of 10")
    if a.first and a.reps >= a.rows // a.readable:
        ap.error("--first needs --reps below --rows / --readable (the users there are)")
    figs = set(a.only.split(","))
    tmp = tempfile.mkdtemp(prefix="rulesbench-")
    started = time.time()
    before = os.getloadavg()
    try:
        if "a" in figs:
            fig_a(tmp, a)
        if "b" in figs:
            fig_b(tmp, a)
        if "c" in figs:
            fig_move(tmp, a, False)
        if "d" in figs:
            fig_move(tmp, a, True)
        if "e" in figs:
            pg = Pg(tmp) if a.pg else None
            try:
                fig_kept(tmp, a, pg)
            finally:
                if pg:
                    pg.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("rulesbench: %s, %.0f s; load average before %.1f, after %.1f; %d cores"
          % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)), time.time() - started,
             before[0], os.getloadavg()[0], os.cpu_count()))
    table()


if __name__ == "__main__":
    main()
