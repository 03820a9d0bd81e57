"""The chaos test: clients syncing through a fault-injecting proxy while
they are SIGKILLed and restarted at random; then nothing lost, nothing
doubled, everyone equal.

    run.py [--clients 3] [--mutations 5000] [--keys 24] [--pace MS] [--seed S]
           [--server-kills SHARE] [--timeout S] [--converge S] [--trace] [--keep]
           [--pg [--pg-optional]]

A syncd (SQLite storage, tests/chaos/schema.sql) behind a FaultProxy
(proxy.py); --clients client.py processes write --mutations mutations each
on --keys shared keys through it while the driver kills one of them every
0.3 to 2 s and starts it again (or, for a --server-kills share of those
kills, SIGKILLs syncd and starts it again on the same port and database).

With --pg the storage is PostgreSQL (a throwaway cluster from
tests/pg_env.sh, tests/chaos/schema_pg.sql): TWO syncd over the one
database, each behind its own FaultProxy, the clients spread over both and
switching to the other at each restart (so a push cut short by a kill is
sent again through the other server, and a client's events come from the
other server's NOTIFY as often as not);
server kills pick one of the two, and one is SIGKILLed and restarted
mid-run in any case. The server's state is read with psql.

When all have written their share the proxies calm down and the driver
waits for convergence, kills the clients and checks, from their files and
the server's:

  - every client's items table equals the server's, and no outbox holds
    anything;
  - the server recorded an outcome for each (client, mutation id) the
    client's chaos_log lists, and for no other; its last processed id is
    the client's last mutation id;
  - the server's audit log (schema.sql) holds each applied insert's and
    update's tag exactly once, and no other tag: nothing applied twice;
  - each client's sync_rejected is exactly the server's rejected outcomes
    for it (ids and reasons); each of those is the CHECK on val (for
    every mutation carrying a negative val), a key another client inserted
    first, or a row another client deleted;
  - every fault kind happened, and clients were killed (with --pg: a
    syncd too, and both served requests).

The seed (printed) drives the proxy's faults, the kills and the clients'
writes; process timing still varies from run to run. Exit status 0 when
every check holds.
"""
import argparse
import collections
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
from e2e_util import SYNCD, Syncd  # noqa: E402
from proxy import KINDS, FaultProxy  # noqa: E402

PYTHON = os.environ.get("CHAOS_PYTHON") or os.environ.get("E2E_PYTHON") or "/usr/bin/python3"
# under a sanitizer (make asan, make tsan) everything runs several times slower
SLOW = float(os.environ.get("SYNC_TEST_SLOW") or 1)
REASONS = {
    "sqlite": ("CHECK constraint failed: val >= 0", "UNIQUE constraint failed: items.id",
               "no such row"),
    "pg": ('new row for relation "items" violates check constraint "items_val_check"',
           'duplicate key value violates unique constraint "items_pkey"', "no such row"),
}
PG_ENV = os.path.join(os.path.dirname(HERE), "pg_env.sh")
# PostgreSQL and psql without the sanitizer runtime that make asan/tsan
# preload into this python (PostgreSQL hangs under a preloaded ASan).
PG_ENVIRON = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def query(path, sql, args=()):
    c = sqlite3.connect(path, timeout=30)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def psql(url, sql):
    """Rows of sql on PostgreSQL as tuples of text (psql -At: no libpq
    binding needed); fields and rows are split on ASCII separators, which
    no value of this test holds."""
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-F", "\x1f",
                          "-R", "\x1e", url, "-c", sql],
                         capture_output=True, text=True, timeout=60, env=PG_ENVIRON)
    if out.returncode:
        raise RuntimeError("psql: " + out.stderr.strip())
    return [tuple(r.split("\x1f")) for r in out.stdout.rstrip("\n").split("\x1e") if r]


class PgSyncd(Syncd):
    """A syncd on PostgreSQL at url, restartable on the same port like
    e2e_util's SQLite one."""

    def __init__(self, dir, url, extra=(), schema=None):
        self.pg = url
        os.makedirs(dir, exist_ok=True)
        super().__init__(dir, extra, schema=schema)

    def start(self):
        self.log = open(os.path.join(self.dir, "syncd.log"), "ab")
        args = [SYNCD, "--listen", f"127.0.0.1:{self.port}", "--schema", self.schema,
                "--pg", self.pg] + self.extra
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("http://"):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("syncd did not start")
        self.url = line.strip()
        self.port = urllib.parse.urlsplit(self.url).port


class ServerState:
    """What the checks read of the server: from the SQLite file, or with
    psql from PostgreSQL; values as the client's SQLite gives them."""

    def __init__(self, db=None, pg=None):
        self.db, self.pg = db, pg

    def rows(self, sql):
        return query(self.db, sql) if self.pg is None else psql(self.pg, sql)

    def items(self):
        return [(i, int(v), t) for i, v, t in self.rows("SELECT id, val, tag FROM items ORDER BY id")]

    def head(self):
        return int(self.rows("SELECT version FROM _syncd_state")[0][0])

    def audit_tags(self):
        return [t for (t,) in self.rows("SELECT tag FROM chaos_audit")]

    def outcomes(self):
        """{client_id: {mutation id: (status, reason)}}"""
        out = collections.defaultdict(dict)
        for c, i, st, r in self.rows("SELECT client_id, id, status, coalesce(reason, '')"
                                     " FROM _syncd_outcomes"):
            out[c][int(i)] = (st, r)
        return out

    def last_ids(self):
        return {c: int(i) for c, i in self.rows("SELECT client_id, last_id FROM _syncd_clients")}


class Proc:
    """One client: its database file and, while it runs, its process."""

    def __init__(self, dir, name, urls, a):
        self.db = os.path.join(dir, name + ".db")
        self.urls = urls
        self.args = [PYTHON, os.path.join(HERE, "client.py"), self.db, None, name,
                     str(a.mutations), str(a.seed), str(a.keys), str(a.pace)]
        self.log = open(os.path.join(dir, name + ".log"), "ab")
        self.p = None
        self.starts = 0

    def start(self):
        """Each start takes the next of urls: with two servers a client's
        pushes cut short by a kill are sent again through the other one."""
        self.args[3] = self.urls[self.starts % len(self.urls)]
        self.p = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=self.log)
        self.starts += 1

    def kill(self):
        if self.p:
            self.p.send_signal(signal.SIGKILL)
            self.p.wait()
            self.p = None

    def written(self):
        try:
            return query(self.db, "SELECT count(*) FROM chaos_log")[0][0]
        except sqlite3.Error:
            return 0  # not created yet

    def log_tail(self, lines=20):
        """The end of the client's stderr, so a CI log shows why it died."""
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return b"".join(f.readlines()[-lines:]).decode("utf-8", "replace")

    def crashed(self):
        return self.p is not None and self.p.poll() is not None


def check(cond, what, failures):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--mutations", type=int, default=5000)
    ap.add_argument("--keys", type=int, default=24)
    ap.add_argument("--pace", type=float, default=20, help="ms between a client's transactions")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", "0") or 0))
    ap.add_argument("--timeout", type=float, default=900, help="give up after this long")
    ap.add_argument("--converge", type=float, default=60,
                    help="seconds allowed for convergence once the faults stop")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--trace", action="store_true", help="log the traffic in the temp dir")
    ap.add_argument("--server-kills", type=float, default=0,
                    help="the share of kills that SIGKILL and restart syncd instead")
    ap.add_argument("--pg", action="store_true",
                    help="PostgreSQL storage, two syncd over it (a throwaway cluster)")
    ap.add_argument("--pg-optional", action="store_true",
                    help="with --pg: when no cluster can start, say SKIPPED and exit 0")
    a = ap.parse_args()
    if not a.seed:
        a.seed = random.SystemRandom().randrange(1, 1 << 31)
    # the server keeps at least 10000 outcomes per client (docs/PROTOCOL.md)
    assert a.mutations + 8 <= 10000, "the outcome check needs every outcome kept"
    backend = "pg" if a.pg else "sqlite"
    print(f"chaos: seed {a.seed} (rerun: CHAOS_SEED={a.seed}), {a.clients} clients x "
          f"{a.mutations} mutations on {a.keys} keys, {backend}", flush=True)
    rnd = random.Random(a.seed)
    t0 = time.monotonic()
    deadline = t0 + a.timeout * SLOW
    dir = tempfile.mkdtemp(prefix="sync-chaos-")
    servers, proxies, pg_dir = [], [], None
    procs = []
    failures = []
    kills = server_kills = 0
    finished = False
    try:
        if a.pg:
            # its own folder: as root the cluster runs as postgres, which
            # cannot enter ours (mkdtemp makes it 0700)
            pg_dir = tempfile.mkdtemp(prefix="sync-chaos-pg-")
            out = subprocess.run(["bash", PG_ENV, "start", pg_dir], capture_output=True,
                                 text=True, timeout=120, env=PG_ENVIRON)
            if out.returncode:
                why = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
                if a.pg_optional:
                    print("chaos: SKIPPED: PostgreSQL could not start: " + why, flush=True)
                    finished = True
                    return 0
                raise SystemExit("chaos: PostgreSQL could not start: " + why)
            url = out.stdout.strip().splitlines()[-1]
            # the second opens the database the first has set up
            servers = [PgSyncd(os.path.join(dir, "syncd%d" % i), url, ["--heartbeat", "1"],
                               schema=os.path.join(HERE, "schema_pg.sql")) for i in range(2)]
            state = ServerState(pg=url)
        else:
            servers = [Syncd(dir, ["--heartbeat", "1"], schema=os.path.join(HERE, "schema.sql"))]
            state = ServerState(db=servers[0].db)
        proxies = [FaultProxy("127.0.0.1", srv.port, random.Random(rnd.random()),
                              trace=os.path.join(dir, "proxy%d.trace" % i) if a.trace else None)
                   for i, srv in enumerate(servers)]
        urls = [proxy.url for proxy in proxies]
        procs = [Proc(dir, "c%d" % i, urls[i % len(urls):] + urls[:i % len(urls)], a)
                 for i in range(a.clients)]
        for p in procs:
            p.start()
        # chaos: kill and restart clients until all have written their share
        while time.monotonic() < deadline:
            written = [p.written() for p in procs]
            if all(w >= a.mutations for w in written):
                break
            time.sleep(rnd.uniform(0.3, 2.0))
            for p in procs:
                if p.crashed():
                    raise SystemExit(f"{p.db}: client exited by itself ({p.p.returncode});"
                                     f" the end of its log:\n{p.log_tail()}")
            # with two servers one is killed mid-run whatever the dice say
            due = a.pg and not server_kills and min(written) >= a.mutations // 2
            if due or rnd.random() < a.server_kills:
                (rnd.choice(servers) if a.pg else servers[0]).restart(signal.SIGKILL)
                server_kills += 1
                continue
            victim = rnd.choice(procs)
            victim.kill()
            kills += 1
            time.sleep(rnd.uniform(0, 0.3))
            victim.start()
        else:
            raise SystemExit("timed out while the clients were writing: %s" %
                             [p.written() for p in procs])
        t_write = time.monotonic() - t0
        for proxy in proxies:
            proxy.calm()

        def caught_up(p, head):
            """The client's pull has reached the server's head: until then
            its rows are what it has pulled so far, not the end state.
            The cursor is read as syncd writes it, <database id>-<version>."""
            cur = query(p.db, "SELECT value FROM sync_meta WHERE key = 'cursor'")
            ver = cur[0][0].rsplit("-", 1)[-1] if cur else ""
            return ver.isdigit() and int(ver) >= head

        def converged():
            srv = state.items()
            head = state.head()
            for p in procs:
                if query(p.db, "SELECT count(*) FROM sync_outbox")[0][0]:
                    return False
                if not caught_up(p, head):
                    return False
                if query(p.db, "SELECT * FROM items ORDER BY id") != srv:
                    return False
            return True

        def progress():
            """Where each client stands: outbox size, equal to the server."""
            srv = state.items()
            return ", ".join("%s outbox %d %s" % (
                os.path.basename(p.db), query(p.db, "SELECT count(*) FROM sync_outbox")[0][0],
                "equal" if query(p.db, "SELECT * FROM items ORDER BY id") == srv else "differs")
                for p in procs)

        until = min(deadline, time.monotonic() + a.converge * SLOW)
        next_report = time.monotonic() + 10
        while not converged():
            if time.monotonic() > until:
                print("chaos: no convergence before the timeout: " + progress(), flush=True)
                break
            if time.monotonic() > next_report:  # a slow convergence shows why
                print("chaos: converging: " + progress(), flush=True)
                next_report += 10
            time.sleep(0.2)
        t_conv = time.monotonic() - t0 - t_write
        for p in procs:
            p.kill()

        # ---- the checks, from the files alone ----
        srv_items = state.items()
        audit = collections.Counter(state.audit_tags())
        all_outcomes, last_ids = state.outcomes(), state.last_ids()
        total = n_rejected = 0
        applied_tags = set()
        for p in procs:
            name = os.path.basename(p.db)
            cid = query(p.db, "SELECT value FROM sync_meta WHERE key = 'client_id'")[0][0]
            # sent: the val the mutation carries (None: a delete, or an update
            # that left val as it was)
            log = {mid: (op, sent, tag) for mid, op, sent, tag in
                   query(p.db, "SELECT mid, op, data ->> '$.val', tag FROM chaos_log")}
            total += len(log)
            check(len(log) >= a.mutations, f"{name}: only {len(log)} mutations written", failures)
            check(query(p.db, "SELECT * FROM items ORDER BY id") == srv_items,
                  f"{name}: items differ from the server's", failures)
            check(query(p.db, "SELECT count(*) FROM sync_outbox")[0][0] == 0,
                  f"{name}: outbox not empty", failures)
            outcomes = all_outcomes.get(cid, {})
            check(set(outcomes) == set(log),
                  f"{name}: server outcomes differ from the mutations made: "
                  f"missing {sorted(set(log) - set(outcomes))[:10]}, "
                  f"extra {sorted(set(outcomes) - set(log))[:10]}", failures)
            last = last_ids.get(cid)
            check(last == max(log), f"{name}: server last_id {last}, client {max(log)}",
                  failures)
            rejected = {i: r for i, (st, r) in outcomes.items() if st == "rejected"}
            n_rejected += len(rejected)
            local = dict(query(p.db, "SELECT id, reason FROM sync_rejected"))
            check(local == rejected,
                  f"{name}: sync_rejected differs from the server's refusals: "
                  f"{len(local)} vs {len(rejected)}, e.g. "
                  f"{sorted(set(local.items()) ^ set(rejected.items()))[:5]}", failures)
            for mid, (op, sent, tag) in log.items():
                st, reason = outcomes.get(mid, (None, None))
                if st is None:
                    continue  # reported above
                if sent is not None and sent < 0:
                    check(st == "rejected", f"{name}: mutation {mid} (val {sent}) was applied",
                          failures)
                if st == "rejected":
                    check(reason in REASONS[backend],
                          f"{name}: mutation {mid} refused: {reason}", failures)
                    check(reason != REASONS[backend][0] or (sent is not None and sent < 0),
                          f"{name}: mutation {mid} (val {sent}) failed the CHECK", failures)
                    check(audit.get(tag, 0) == 0, f"{name}: refused {mid} is in the audit log",
                          failures)
                elif op != "delete":
                    applied_tags.add(tag)
                    check(audit.get(tag, 0) == 1,
                          f"{name}: applied {op} {mid} ({tag}) ran {audit.get(tag, 0)} times",
                          failures)
        check(all(n == 1 for n in audit.values()),
              f"tags run more than once: {[t for t, n in audit.items() if n > 1][:10]}", failures)
        check(set(audit) == applied_tags,
              f"audit tags of no applied mutation: {sorted(set(audit) - applied_tags)[:10]}",
              failures)
        counts = collections.Counter()
        for proxy in proxies:
            counts.update(proxy.counts)
            check(proxy.counts["requests"] > 0, f"{proxy.url} served no request", failures)
        for k in KINDS:
            check(counts[k] > 0, f"no fault of kind {k} happened", failures)
        check(kills > 0, "no client was killed", failures)
        check(server_kills > 0 or not a.pg, "no syncd was killed", failures)
        print(f"chaos: {total} mutations ({a.clients} clients), {n_rejected} refused by the "
              f"server, {sum(audit.values())} inserts/updates in the audit log, "
              f"{len(srv_items)} rows at the end", flush=True)
        print("chaos: faults " + ", ".join(f"{k} {counts[k]}" for k in
                                           KINDS + ("http_5xx", "stale_replay")) +
              f" in {counts['requests']} requests; {kills} SIGKILLs of clients, "
              f"{server_kills} of syncd, "
              f"{sum(p.starts for p in procs)} client starts", flush=True)
        print(f"chaos: writing {t_write:.1f}s, converging {t_conv:.1f}s, "
              f"total {time.monotonic() - t0:.1f}s", flush=True)
        finished = True
    finally:
        for p in procs:
            p.kill()
            p.log.close()
        for proxy in proxies:
            proxy.close()
        for srv in servers:
            srv.stop()
        if pg_dir:
            subprocess.run(["bash", PG_ENV, "stop", pg_dir], capture_output=True, env=PG_ENVIRON)
            shutil.rmtree(pg_dir, ignore_errors=True)
        if a.keep or failures or not finished:
            print("chaos: files kept in", dir)
        else:
            shutil.rmtree(dir, ignore_errors=True)
    if failures:
        print(f"chaos: FAILED ({len(failures)} checks)")
        return 1
    print("chaos: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
