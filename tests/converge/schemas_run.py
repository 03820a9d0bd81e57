"""Convergence over a schema the model-based test does not use.

    schemas_run.py [--seeds "1 2 3" | --seeds 1-50] [--ops 400] [--worker]
                   [--solo] [--batch N] [--kills 0.01] [--faults] [--keep]
                   [--schema 2]

Schema 1 (the default) (the same on syncd and on every client) has what apps have and
tests/converge/schema.sql does not: a tree of folders that cascades to
itself and is UNIQUE on (parent, name); docs whose text key other rows
follow ON UPDATE CASCADE, a NOCASE UNIQUE slug, a partial UNIQUE index on
an expression (lower(body)), a CHECK and ON DELETE SET NULL to folders;
labels WITHOUT ROWID with a composite key; blobs, a STRICT table with a
BLOB and a generated column that a UNIQUE index is on. Three clients write
at random through plain SQL: inserts that collide, INSERT OR REPLACE
through every unique index, UPDATE OR REPLACE, key changes, UPSERTs,
deletes that cascade, and transactions that roll back; a write SQLite
refuses is the app's error and is skipped. The first two clients sync (sync_push, then sync_pull) at
random moments; the third runs the background worker with --worker, else
syncs as they do (then a seed replays exactly). syncd is SIGKILLed and
restarted at random (--kills: the chance after each write). --faults puts
each client behind a fault proxy (tests/chaos/proxy.py: connections
reset, answers stalled, cut or lost behind a 502, pushes replayed), calmed
before the end; a sync that fails is tried again at the client's next
turn. --schema 2
runs the same over a CRM / to-do app's schema instead (schema_crm.py:
AUTOINCREMENT keys, a composite key and foreign key, SET DEFAULT and
RESTRICT, a junction table).

Checked:
  - without --worker, after each sync of a client, every key it has
    nothing pending for equals the server's row (or is absent on both): a
    write lost locally (a REPLACE whose delete was not queued, say) shows
    at once;
  - at the end, once every client has pushed and pulled until nothing is
    pending, every table of every client equals the server's and no pull
    fails.

There is no model: what the server holds is whatever the writes that it
accepted made, and the clients must agree with it. With --solo only the
first client writes (the others read), so nothing can conflict: the
server must accept every mutation it sends (none in its sync_rejected),
and so hold exactly the writer's rows. A write the server refuses where
SQLite took it (a key change's children checked before the new key's
row, say) shows there. --batch N sets every client's push batch_size, so
that batches are cut often. Each seed prints one
line; the last is "schemas: N passed, N failed".
"""
import argparse
import os
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
from e2e_util import Syncd, connect  # noqa: E402
import schema_crm  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(HERE), "chaos"))
from proxy import FaultProxy  # noqa: E402

SCHEMA = """
CREATE TABLE folders(id INTEGER PRIMARY KEY,
  parent INTEGER REFERENCES folders(id) ON DELETE CASCADE,
  name TEXT NOT NULL, UNIQUE(parent, name));
CREATE TABLE docs(id TEXT PRIMARY KEY,
  folder INTEGER REFERENCES folders(id) ON DELETE SET NULL,
  slug TEXT NOT NULL COLLATE NOCASE UNIQUE, body TEXT,
  size INTEGER NOT NULL DEFAULT 0 CHECK(size >= 0), score REAL);
CREATE UNIQUE INDEX docs_body ON docs(lower(body)) WHERE body IS NOT NULL AND length(body) > 3;
CREATE TABLE labels(doc TEXT NOT NULL REFERENCES docs(id) ON DELETE CASCADE ON UPDATE CASCADE,
  label TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(doc, label)) WITHOUT ROWID;
CREATE TABLE blobs(id INTEGER PRIMARY KEY,
  doc TEXT REFERENCES docs(id) ON DELETE CASCADE ON UPDATE CASCADE,
  data BLOB, n INTEGER, twice INTEGER GENERATED ALWAYS AS (n * 2) VIRTUAL,
  CHECK (n >= 0)) STRICT;
CREATE UNIQUE INDEX blobs_twice ON blobs(twice);
"""
# each table's key as the engine writes it, to compare rows key by key
KEYS = {"folders": "json_object('id', id)", "docs": "json_object('id', id)",
        "labels": "json_object('doc', doc, 'label', label)", "blobs": "json_object('id', id)"}
SERVER_SEED = ""  # rows only the server's schema makes
PULL_FIRST = False  # whether a client pulls (the seed) before it writes
NAMES = ["a", "b", "c", "d"]
SLUGS = ["x", "X", "y", "Y", "z", "w"]
BODIES = [None, "hello", "HELLO", "world", "ok", "abcd", "Abcd"]
SCORES = [None, 0.1, 1e300, -2.5]


class Failed(Exception):
    pass


def server_tables(srv, s):
    """Every table's rows on the server, read in one transaction."""
    db = sqlite3.connect(srv.db, timeout=20, isolation_level=None)
    try:
        db.execute("BEGIN")
        return {t: rows(db, s, t) for t in s.KEYS}
    finally:
        db.close()


def client(path, url, s, batch=None, faults=False):
    c = connect(path)
    c.execute("PRAGMA foreign_keys = ON")
    c.executescript(s.SCHEMA)
    c.execute("SELECT sync_init(?)", (url,))
    for t in s.KEYS:
        c.execute("SELECT sync_track(?)", (t,))
    if batch:
        c.execute("SELECT sync_config('batch_size', ?)", (batch,))
    # the server's seeded rows come before any write (through faults too)
    if s.PULL_FIRST and not any(sync(c, faults, push=False) for _ in range(50)):
        raise Failed("%s: no first pull went through" % path)
    return c


def rows(c, s, table):
    return {r[0]: r[1:] for r in c.execute("SELECT %s, * FROM %s" % (s.KEYS[table], table))}


def write(c, rng):
    """One random write of an app; SQLite may refuse it (sqlite3.Error)."""
    k = rng.randrange(17)
    fid, did = rng.randrange(1, 12), "d%d" % rng.randrange(10)
    if k == 0:
        c.execute("INSERT INTO folders VALUES(?,?,?)",
                  (fid, rng.choice([None, rng.randrange(1, 12)]), rng.choice(NAMES)))
    elif k == 1:
        c.execute("UPDATE folders SET name = ? WHERE id = ?", (rng.choice(NAMES), fid))
    elif k == 2:
        c.execute("DELETE FROM folders WHERE id = ?", (fid,))
    elif k in (3, 4):
        c.execute("INSERT INTO docs(id, folder, slug, body, size, score) VALUES(?,?,?,?,?,?)",
                  (did, rng.choice([None, fid]), rng.choice(SLUGS), rng.choice(BODIES),
                   rng.randrange(100), rng.choice(SCORES)))
    elif k == 5:
        c.execute("INSERT OR REPLACE INTO docs(id, folder, slug, body) VALUES(?,?,?,?)",
                  (did, rng.choice([None, fid]), rng.choice(SLUGS), rng.choice(BODIES)))
    elif k == 6:
        c.execute("UPDATE OR REPLACE docs SET body = ?, size = size + 1 WHERE id = ?",
                  (rng.choice(BODIES), did))
    elif k == 7:
        c.execute("UPDATE docs SET slug = ? WHERE id = ?", (rng.choice(SLUGS), did))
    elif k == 8:
        c.execute("UPDATE docs SET id = ? WHERE id = ?", ("d%d" % rng.randrange(10), did))
    elif k == 9:
        c.execute("DELETE FROM docs WHERE id = ?", (did,))
    elif k in (10, 11):
        c.execute("INSERT INTO labels(doc, label, n) VALUES(?,?,?) ON CONFLICT(doc, label)"
                  " DO UPDATE SET n = n + 1", (did, rng.choice(NAMES), rng.randrange(5)))
    elif k == 12:
        c.execute("DELETE FROM labels WHERE doc = ? AND label = ?", (did, rng.choice(NAMES)))
    elif k == 13:
        c.execute("BEGIN")
        try:
            c.execute("UPDATE docs SET folder = ? WHERE id = ?", (fid, did))
            c.execute("INSERT OR REPLACE INTO folders VALUES(?,?,?)",
                      (fid, None, rng.choice(NAMES)))
            c.execute("COMMIT" if rng.random() < 0.8 else "ROLLBACK")
        except sqlite3.Error:
            c.execute("ROLLBACK")
            raise
    elif k == 14:
        c.execute("INSERT OR REPLACE INTO blobs(id, doc, data, n) VALUES(?,?,?,?)",
                  (rng.randrange(1, 6), did, bytes(rng.randrange(256) for _ in range(rng.randrange(8))),
                   rng.randrange(-1, 9)))
    elif k == 15:
        c.execute("UPDATE blobs SET n = n + 1, data = ? WHERE id = ?",
                  (b"\x00\xff", rng.randrange(1, 6)))
    else:
        c.execute("DELETE FROM blobs WHERE id = ?", (rng.randrange(1, 6),))


def sync(c, faults, push=True):
    """sync_push then sync_pull; True when both went through. Under --faults
    either may fail (a reset, a 502, a cut answer): the client tries again
    at its next turn, as an app would."""
    try:
        if push:
            c.execute("SELECT sync_push()")
        c.execute("SELECT sync_pull()")
        return True
    except sqlite3.Error:
        if not faults:
            raise
        return False


def check_settled_keys(srv, s, c, who):
    """Every key c has nothing pending for equals the server's row."""
    pending = set(c.execute("SELECT table_name, pk FROM sync_pending").fetchall())
    if c.execute("SELECT count(*) FROM sync_inbox").fetchone()[0]:
        return  # rows waiting for the rest of a pull: not settled
    server = server_tables(srv, s)
    for t in s.KEYS:
        mine, theirs = rows(c, s, t), server[t]
        for k in set(mine) | set(theirs):
            if (t, k) not in pending and mine.get(k) != theirs.get(k):
                raise Failed("%s, nothing pending for %s %s: server %r, client %r"
                             % (who, t, k, theirs.get(k), mine.get(k)))


def run(seed, a):
    s = SCHEMAS[a.schema]
    rng = random.Random(seed)
    dir = tempfile.mkdtemp(prefix="schemas-%d-" % seed)
    schema = os.path.join(dir, "schema.sql")
    with open(schema, "w") as f:
        f.write(s.SCHEMA + s.SERVER_SEED)
    srv = Syncd(dir, schema=schema)
    clients = []
    # --faults: each client reaches syncd through its own fault proxy
    proxies = [FaultProxy("127.0.0.1", srv.port, random.Random(rng.random()))
               for _ in range(3 if a.faults else 0)]
    ok = False
    try:
        clients = [client(os.path.join(dir, "c%d.db" % i),
                          proxies[i].url if proxies else srv.url, s, a.batch, a.faults)
                   for i in range(3)]
        manual = clients[:2] if a.worker else clients
        if a.worker:
            clients[2].execute("SELECT sync_start()")
        refused = wrote = 0
        for n in range(a.ops):
            i = rng.randrange(3)
            try:
                if not (a.solo and i):
                    wrote += 1
                    s.write(clients[i], rng)
            except sqlite3.Error:
                refused += 1
            if clients[i] in manual and rng.random() < 0.15:
                if sync(clients[i], a.faults) and not a.worker:
                    # (the worker may push between the pull and the check)
                    check_settled_keys(srv, s, clients[i], "client %d after write %d" % (i, n))
            if rng.random() < a.kills:
                srv.restart(signal.SIGKILL)  # the same port: the clients keep its url
        for p in proxies:
            p.calm()
        deadline = time.monotonic() + a.timeout
        while True:
            for c in manual:
                sync(c, a.faults)
            if a.worker:
                time.sleep(0.3)
                for c in manual:
                    sync(c, a.faults, push=False)
            want = server_tables(srv, s)
            got = [{t: rows(c, s, t) for t in s.KEYS} for c in clients]
            pending = [c.execute("SELECT count(*) FROM sync_pending").fetchone()[0] for c in clients]
            if all(g == want for g in got) and not any(pending):
                break
            if time.monotonic() > deadline:
                diff = ["client %d %s: %r != server %r" % (i, t, got[i][t], want[t])
                        for i in range(3) for t in s.KEYS if got[i][t] != want[t]]
                raise Failed("not converged after %ds, pending %s; %s"
                             % (a.timeout, pending, "; ".join(diff)[:2000]))
        rejected = [c.execute("SELECT count(*) FROM sync_rejected").fetchone()[0] for c in clients]
        if a.solo and rejected[0]:
            why = clients[0].execute(
                "SELECT group_concat(table_name || ' ' || op || ' ' || pk || ': ' || reason, '; ')"
                " FROM sync_rejected").fetchone()[0]
            raise Failed("the only writer had %d mutations rejected: %s" % (rejected[0], why[:2000]))
        ok = True
        return "%d writes (%d refused locally), rows %s, rejected by the server %s" % (
            wrote, refused, {t: len(want[t]) for t in s.KEYS}, rejected)
    finally:
        if a.worker and clients:
            clients[2].execute("SELECT sync_stop()")
        for c in clients:
            c.close()
        for p in proxies:
            p.close()
        srv.stop()
        if a.keep or not ok:
            print("schemas: seed %d: its databases and syncd's log are kept in %s" % (seed, dir))
        else:
            shutil.rmtree(dir, ignore_errors=True)


def seeds(spec):
    out = []
    for part in spec.replace(",", " ").split():
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def rerun(a, seed):
    flags = [f for f, on in (("--worker", a.worker), ("--solo", a.solo), ("--faults", a.faults))
             if on]
    flags += ["--%s %s" % (f, getattr(a, f)) for f, usual in
              (("batch", None), ("schema", 1), ("ops", 400), ("kills", 0.01)) if getattr(a, f) != usual]
    return "rerun with %s--seeds %d" % ("".join(f + " " for f in flags), seed)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="1-5")
    ap.add_argument("--ops", type=int, default=400)
    ap.add_argument("--worker", action="store_true", help="the third client on the worker")
    ap.add_argument("--solo", action="store_true", help="only the first client writes")
    ap.add_argument("--batch", type=int, help="every client's push batch_size")
    ap.add_argument("--kills", type=float, default=0.01, help="chance of a SIGKILL after a write")
    ap.add_argument("--faults", action="store_true",
                    help="each client through a fault proxy (tests/chaos/proxy.py)")
    ap.add_argument("--timeout", type=int, default=120, help="seconds to converge at the end")
    ap.add_argument("--keep", action="store_true", help="keep each run's folder (a failing one is kept)")
    ap.add_argument("--schema", type=int, choices=sorted(SCHEMAS), default=1,
                    help="1: folders and docs (above); 2: a CRM / to-do app (schema_crm.py)")
    a = ap.parse_args()
    passed = failed = 0
    for seed in seeds(a.seeds):
        t0 = time.monotonic()
        try:
            what = run(seed, a)
            passed += 1
            print("schemas: seed %d passed (%.1fs): %s" % (seed, time.monotonic() - t0, what))
        except (Failed, sqlite3.Error) as e:
            failed += 1
            print("schemas: seed %d FAILED (%s): %s" % (seed, rerun(a, seed), e))
        sys.stdout.flush()
    print("schemas: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


SCHEMAS = {1: sys.modules[__name__], 2: schema_crm}

if __name__ == "__main__":
    sys.exit(main())
