"""The chaos test: clients syncing through a fault-injecting proxy while
they are SIGKILLed and restarted at random; then nothing lost, nothing
doubled, everyone equal.

    run.py [--clients 3] [--mutations 5000] [--keys 24] [--pace MS] [--seed S]
           [--server-kills SHARE] [--timeout S] [--converge S] [--trace] [--keep]

A syncd (SQLite storage, tests/chaos/schema.sql) behind a FaultProxy
(proxy.py); --clients client.py processes write --mutations mutations each
on --keys shared keys through it while the driver kills one of them every
0.3 to 2 s and starts it again (or, for a --server-kills share of those
kills, SIGKILLs syncd and starts it again on the same port and database).
When all have written their share the proxy calms down and the driver
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
  - every fault kind happened, and clients were killed.

The seed (printed) drives the proxy's faults, the kills and the clients'
writes; process timing still varies from run to run. Exit status 0 when
every check holds.
"""
import argparse
import collections
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
from e2e_util import Syncd  # noqa: E402
from proxy import KINDS, FaultProxy  # noqa: E402

PYTHON = os.environ.get("CHAOS_PYTHON") or os.environ.get("E2E_PYTHON") or "/usr/bin/python3"
# under a sanitizer (make asan, make tsan) everything runs several times slower
SLOW = float(os.environ.get("SYNC_TEST_SLOW") or 1)
REASONS = ("CHECK constraint failed: val >= 0", "UNIQUE constraint failed: items.id",
           "no such row")


def query(path, sql, args=()):
    c = sqlite3.connect(path, timeout=30)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


class Proc:
    """One client: its database file and, while it runs, its process."""

    def __init__(self, dir, name, url, a):
        self.db = os.path.join(dir, name + ".db")
        self.args = [PYTHON, os.path.join(HERE, "client.py"), self.db, url, name,
                     str(a.mutations), str(a.seed), str(a.keys), str(a.pace)]
        self.log = open(os.path.join(dir, name + ".log"), "ab")
        self.p = None
        self.starts = 0

    def start(self):
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
    a = ap.parse_args()
    if not a.seed:
        a.seed = random.SystemRandom().randrange(1, 1 << 31)
    # the server keeps at least 10000 outcomes per client (docs/PROTOCOL.md)
    assert a.mutations + 8 <= 10000, "the outcome check needs every outcome kept"
    print(f"chaos: seed {a.seed} (rerun: CHAOS_SEED={a.seed}), {a.clients} clients x "
          f"{a.mutations} mutations on {a.keys} keys", flush=True)
    rnd = random.Random(a.seed)
    t0 = time.monotonic()
    deadline = t0 + a.timeout * SLOW
    dir = tempfile.mkdtemp(prefix="sync-chaos-")
    s = Syncd(dir, ["--heartbeat", "1"], schema=os.path.join(HERE, "schema.sql"))
    proxy = FaultProxy("127.0.0.1", s.port, random.Random(rnd.random()),
                       trace=os.path.join(dir, "proxy.trace") if a.trace else None)
    procs = [Proc(dir, "c%d" % i, proxy.url, a) for i in range(a.clients)]
    failures = []
    kills = server_kills = 0
    finished = False
    try:
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
            if rnd.random() < a.server_kills:
                s.restart(signal.SIGKILL)
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
        proxy.calm()

        def converged():
            srv = query(s.db, "SELECT * FROM items ORDER BY id")
            for p in procs:
                if query(p.db, "SELECT count(*) FROM sync_outbox")[0][0]:
                    return False
                if query(p.db, "SELECT * FROM items ORDER BY id") != srv:
                    return False
            return True

        until = min(deadline, time.monotonic() + a.converge * SLOW)
        while not converged():
            if time.monotonic() > until:
                print("chaos: no convergence before the timeout", flush=True)
                break
            time.sleep(0.2)
        t_conv = time.monotonic() - t0 - t_write
        for p in procs:
            p.kill()

        # ---- the checks, from the files alone ----
        srv_items = query(s.db, "SELECT * FROM items ORDER BY id")
        audit = collections.Counter(t for (t,) in query(s.db, "SELECT tag FROM chaos_audit"))
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
            outcomes = {i: (st, r) for i, st, r in
                        query(s.db, "SELECT id, status, reason FROM _syncd_outcomes"
                                    " WHERE client_id = ?", (cid,))}
            check(set(outcomes) == set(log),
                  f"{name}: server outcomes differ from the mutations made: "
                  f"missing {sorted(set(log) - set(outcomes))[:10]}, "
                  f"extra {sorted(set(outcomes) - set(log))[:10]}", failures)
            last = query(s.db, "SELECT last_id FROM _syncd_clients WHERE client_id = ?", (cid,))
            check(last == [(max(log),)], f"{name}: server last_id {last}, client {max(log)}",
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
                    check(reason in REASONS, f"{name}: mutation {mid} refused: {reason}",
                          failures)
                    check(not reason.startswith("CHECK") or (sent is not None and sent < 0),
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
        counts = dict(proxy.counts)
        for k in KINDS:
            check(counts[k] > 0, f"no fault of kind {k} happened", failures)
        check(kills > 0, "no client was killed", failures)
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
        proxy.close()
        s.stop()
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
