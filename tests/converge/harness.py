"""Runs one op log (gen.py) against a fresh syncd and fresh clients, brings
everything to quiescence and checks it. run.py drives it (seeds, replay,
shrinking).

Clients are connections in this process with the extension loaded (as in
tests/e2e). Every client but the worker one syncs only when an op says so,
so a log gives the same run on the same engine. The worker client
(sync_start) is kept offline except inside a "wsync" op, which waits until
it is quiescent (nothing pending, its tables equal to the server's): its
timing only decides when inside that window things happen. With
--worker-live it stays online all along (realistic, not repeatable).

run_log returns a list of failures: (kind, message); kind is what the
shrinker keeps failing on.
"""
import json
import math
import os
import shutil
import sqlite3
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
from e2e_util import SLOW, Syncd, connect  # noqa: E402
from gen import dec  # noqa: E402

TABLES = {"users": "id", "projects": "id", "tasks": "project, n", "tags": "name",
          "counters": "name"}
# tables a client writes (counters is the server trigger's alone)
WRITTEN = ("users", "projects", "tasks", "tags")
# verify_interval_s 0: the worker's sync_verify would repair a divergence the
# engine left (it did for seed 357) and hide it from the checks
OPTIONS = {"backoff_min_ms": 10, "backoff_max_ms": 200, "timeout_ms": 5000,
           "verify_interval_s": 0}
REASON_OK = ("constraint failed", "no such row")


def ddl():
    with open(os.path.join(HERE, "schema.sql")) as f:
        return f.read()


def norm(v):
    """A value as its storage class and exact bytes (REAL: its 8 bytes)."""
    if v is None:
        return ("null",)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        return ("real", struct.pack(">d", v).hex())
    if isinstance(v, str):
        return ("text", v)
    return ("blob", bytes(v).hex())


def show(v):
    if isinstance(v, float):
        return repr(v) if not (v == 0 and math.copysign(1, v) < 0) else "-0.0"
    if isinstance(v, (bytes, bytearray)):
        return "x'%s'" % bytes(v).hex()
    return repr(v)


def snapshot(db, tables=TABLES):
    return {t: [tuple(norm(v) for v in r) for r in
                db.execute("SELECT * FROM %s ORDER BY %s" % (t, TABLES[t]))] for t in tables}


def raw_rows(db, t):
    return db.execute("SELECT * FROM %s ORDER BY %s" % (t, TABLES[t])).fetchall()


def diff(a, b, an, bn, db_a=None, db_b=None):
    """The first differences of two snapshots, as text; None when equal."""
    out = []
    for t in a:
        if a[t] == b.get(t):
            continue
        sa, sb = set(a[t]), set(b.get(t, []))
        only_a = [r for r in a[t] if r not in sb][:3]
        only_b = [r for r in b.get(t, []) if r not in sa][:3]
        fmt = lambda rows: "; ".join("(" + ", ".join(
            v[0] if len(v) == 1 else "%s %r" % v for v in r) + ")" for r in rows)
        out.append("%s: %d rows in %s, %d in %s; only in %s: %s; only in %s: %s" % (
            t, len(a[t]), an, len(b.get(t, [])), bn, an, fmt(only_a) or "-", bn,
            fmt(only_b) or "-"))
    return " | ".join(out) or None


class Failures(list):
    def add(self, kind, msg):
        self.append((kind, msg))
        if self.verbose:
            print("  FAIL [%s] %s" % (kind, msg), flush=True)


class Client:
    def __init__(self, path, url, settings):
        self.name = os.path.basename(path)[:-3]
        self.s = settings
        self.db = connect(path)
        self.db.executescript(ddl())
        self.db.execute("PRAGMA foreign_keys = %d" % bool(settings.get("foreign_keys")))
        self.db.execute("PRAGMA recursive_triggers = %d" %
                        bool(settings.get("recursive_triggers")))
        self.one("SELECT sync_init(?, ?)", (url, json.dumps(OPTIONS)))
        for t in TABLES:
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

    def close(self):
        try:
            if self.worker:
                self.one("SELECT sync_stop()")
        except sqlite3.Error:
            pass
        self.db.close()


def run_tx(db, stmts, end):
    """Runs the statements in one transaction; the ones the database refuses
    are skipped. Returns which ran (a list of booleans)."""
    ran = []
    db.execute("BEGIN")
    try:
        for sql, params in stmts:
            try:
                db.execute(sql, [dec(p) for p in params])
                ran.append(True)
            except sqlite3.Error:
                ran.append(False)
        db.execute("COMMIT" if end == "commit" else "ROLLBACK")
    except sqlite3.Error:
        if db.in_transaction:
            db.execute("ROLLBACK")
        return [False] * len(stmts)
    return ran


class Run:
    def __init__(self, log, opts):
        self.log = log
        self.o = opts
        self.f = Failures()
        self.f.verbose = opts.verbose
        self.dir = tempfile.mkdtemp(prefix="sync-converge-")
        schema = os.path.join(self.dir, "schema.sql")
        with open(schema, "w") as out:
            out.write(ddl())
            if log.get("trigger", True):
                with open(os.path.join(HERE, "server_only.sql")) as f:
                    out.write(f.read())
        self.srv = Syncd(self.dir, ["--heartbeat", "1"], schema=schema)
        self.srvdb = sqlite3.connect(self.srv.db, timeout=30)
        self.clients = []
        self.shadow = None
        self.seen = set()
        self.stuck = set()

    def fail_once(self, kind, msg):
        """Reports a failure of a kind once per client: a stuck client
        fails every call after the first."""
        key = (kind, msg.split(":")[0])
        if key not in self.seen:
            self.seen.add(key)
            self.f.add(kind, msg)

    def server(self):
        return snapshot(self.srvdb)

    def start(self):
        for i, st in enumerate(self.log["clients"]):
            c = Client(os.path.join(self.dir, "c%d.db" % i), self.srv.url, st)
            self.clients.append(c)
            if c.worker:
                c.one("SELECT sync_online(?)", (1 if self.o.worker_live else 0,))
                c.one("SELECT sync_start()")
        if self.single:
            st = self.log["clients"][0]
            self.shadow = sqlite3.connect(":memory:", isolation_level=None)
            self.shadow.executescript(ddl())
            self.shadow.execute("PRAGMA foreign_keys = %d" % bool(st.get("foreign_keys")))
            self.shadow.execute("PRAGMA recursive_triggers = %d" %
                                bool(st.get("recursive_triggers")))

    @property
    def single(self):
        return self.log.get("mode", "multi" if len(self.log["clients"]) > 1 else "single") == \
            "single"

    # ---- sync calls ----
    def sync_call(self, c, fn, when):
        before = snapshot(c.db, WRITTEN) if self.single else None
        try:
            c.one("SELECT %s()" % fn)
        except sqlite3.Error as e:
            self.sync_failed(c, fn, when, e)
            return False
        if before is not None:
            d = diff(before, snapshot(c.db, WRITTEN), "before", "after")
            if d:
                self.fail_once("sync-changed-view", "%s: %s() (%s) changed what the client "
                               "sees: %s" % (c.name, fn, when, d))
        return True

    def sync_failed(self, c, fn, when, e):
        kind = "not-an-error" if "not an error" in str(e) else fn.replace("sync_", "") + "-error"
        self.fail_once(kind, "%s: %s() failed (%s): %s" % (c.name, fn, when, e))

    def worker_quiet(self, c, timeout):
        """Waits until the worker client has nothing pending and holds the
        server's rows. False on timeout."""
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if c.one("SELECT sync_pending()") == 0 and snapshot(c.db) == self.server():
                return True
            time.sleep(0.02)
        return False

    def wsync(self, c, when, timeout=4):
        c.one("SELECT sync_online(1)")
        # once stuck, a client is not waited for long again: the run stays short
        ok = self.worker_quiet(c, 0.5 if c.name in self.stuck else timeout)
        if not ok:
            self.stuck.add(c.name)
            st = c.status()
            self.fail_once("worker-stuck", "%s: the worker client is not quiescent after %ss "
                           "(%s): pending %s, state %s, last_error %s; %s" % (
                               c.name, timeout, when, st.get("pending"), st.get("state"),
                               st.get("last_error"),
                               diff(snapshot(c.db), self.server(), c.name, "server")))
        if not self.o.worker_live:
            c.one("SELECT sync_online(0)")
        return ok

    # ---- ops ----
    def op(self, i, op):
        c = self.clients[op["c"]]
        kind = op["op"]
        when = "op %d" % i
        if kind == "tx":
            ran = run_tx(c.db, op["stmts"], op["end"])
            if self.shadow is not None:
                sran = run_tx(self.shadow, op["stmts"], op["end"])
                if ran != sran:
                    self.fail_once("local-differs", "%s: op %d: statements ran %s on the client, "
                                   "%s without sync" % (c.name, i, ran, sran))
        elif kind in ("push", "pull"):
            if not c.offline and not c.worker:
                self.sync_call(c, "sync_" + kind, when)
        elif kind in ("offline", "online"):
            if not c.worker:
                c.offline = kind == "offline"
                c.one("SELECT sync_online(?)", (0 if c.offline else 1,))
        elif kind == "wsync":
            if c.worker and not self.o.worker_live:
                self.wsync(c, when)
        elif kind == "txsync":
            if c.worker or c.offline:
                return
            self.txsync(c, op, when)
        if self.shadow is not None:
            d = diff(snapshot(c.db, WRITTEN), snapshot(self.shadow, WRITTEN), c.name,
                     "what it wrote")
            if d:
                self.fail_once("view-differs", "%s: after op %d (%s): %s" % (c.name, i,
                                                                           op["kind"], d))

    def txsync(self, c, op, when):
        c.db.execute("BEGIN")
        try:
            for sql, params in op["stmts"]:
                try:
                    c.db.execute(sql, [dec(p) for p in params])
                except sqlite3.Error:
                    pass
            try:
                c.one("SELECT %s()" % op["call"])
            except sqlite3.Error as e:
                # refusing to sync inside the host's transaction is fine, if it says so
                if "not an error" in str(e) or "transaction" not in str(e):
                    self.sync_failed(c, op["call"], when + ", inside a transaction", e)
        finally:
            if c.db.in_transaction:
                c.db.execute("ROLLBACK")

    # ---- the end ----
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
        srv = self.server()
        for c in self.clients:
            d = diff(snapshot(c.db), srv, c.name, "server")
            if d:
                self.f.add("differs", "%s differs from the server: %s" % (c.name, d))
            n = c.one("SELECT sync_pending()")
            if n:
                errs = c.db.execute("SELECT id, table_name, op, last_error FROM sync_pending"
                                    " LIMIT 3").fetchall()
                self.f.add("outbox", "%s: %d mutations still pending, e.g. %s" % (c.name, n, errs))
            for mid, t, op, pk, reason in c.db.execute(
                    "SELECT id, table_name, op, pk, reason FROM sync_rejected"):
                if self.single:
                    self.f.add("refused", "%s: the only client's mutation %d (%s %s %s) was "
                               "refused: %s" % (c.name, mid, op, t, pk, reason))
                elif not reason or not any(r in reason for r in REASON_OK):
                    self.f.add("reason", "%s: mutation %d (%s %s %s) refused for a reason "
                               "naming no constraint: %r" % (c.name, mid, op, t, pk, reason))
            st = c.status()
            if st.get("state") == "error":
                self.f.add("status-error", "%s: sync_status state 'error': %s" % (
                    c.name, st.get("last_error")))
            fk = c.db.execute("PRAGMA foreign_key_check").fetchall()
            if fk:
                self.f.add("orphans", "%s: foreign_key_check finds %d orphans, e.g. %s" % (
                    c.name, len(fk), fk[:3]))
        if self.shadow is not None:
            d = diff(snapshot(self.clients[0].db, WRITTEN), snapshot(self.shadow, WRITTEN),
                     "client", "what it wrote")
            if d:
                self.f.add("view-differs", "the client's tables at the end: %s" % d)
        fresh = Client(os.path.join(self.dir, "fresh.db"), self.srv.url,
                       {"foreign_keys": True})
        try:
            try:
                fresh.one("SELECT sync_pull()")
                d = diff(snapshot(fresh.db), srv, "a fresh client", "server")
                if d:
                    self.f.add("fresh-differs", "a fresh client's initial sync: " + d)
            except sqlite3.Error as e:
                self.f.add("fresh-error", "a fresh client's initial sync failed: %s" % e)
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
                if self.o.pace:
                    time.sleep(self.o.pace / 1000)
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
        self.srvdb.close()
        self.srv.stop()
        if self.o.keep or (self.f and self.o.keep_failed):
            print("converge: files kept in", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def run_log(log, opts):
    return Run(log, opts).run()
