"""One chaos client process (started, SIGKILLed and restarted by run.py).

    client.py DB URL NAME MUTATIONS SEED KEYS PACE_MS

Opens DB with the extension, syncs table items through URL (the fault
proxy) with its worker, and makes random inserts, updates and deletes of
the shared keys k00.. (a transaction every PACE_MS on average) until
chaos_log holds MUTATIONS rows; then it prints "done" and keeps syncing
until killed. Each write and its chaos_log row (the mutation id the outbox
gave it, the op, key, val, the write's unique tag NAME:seq and the data the
mutation carries) commit in one transaction, so a SIGKILL at any point
leaves the log exactly matching the outbox's mutations. A val below 0 is
one the server's CHECK refuses (an update carries val only when it changes).
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
from e2e_util import connect  # noqa: E402

DDL = """
CREATE TABLE IF NOT EXISTS items(id TEXT PRIMARY KEY, val INTEGER NOT NULL, tag TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chaos_log(seq INTEGER PRIMARY KEY, mid INTEGER NOT NULL UNIQUE,
                                     op TEXT NOT NULL, key TEXT NOT NULL, val INTEGER,
                                     tag TEXT NOT NULL, data TEXT);
"""
OPTIONS = '{"backoff_min_ms": 20, "backoff_max_ms": 500, "timeout_ms": 2000}'


def write_one(db, rnd, name, keys):
    """One random write and its log row, inside the caller's transaction."""
    seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM chaos_log").fetchone()[0]
    tag = "%s:%d" % (name, seq)
    key = "k%02d" % rnd.randrange(keys)
    val = rnd.randint(-3, -1) if rnd.random() < 0.04 else rnd.randint(0, 999)
    exists = db.execute("SELECT 1 FROM items WHERE id = ?", (key,)).fetchone()
    if not exists:
        op = "insert"
        db.execute("INSERT INTO items VALUES(?, ?, ?)", (key, val, tag))
    elif rnd.random() < 0.65:
        op = "update"
        db.execute("UPDATE items SET val = ?, tag = ? WHERE id = ?", (val, tag, key))
    else:
        op, val = "delete", None
        db.execute("DELETE FROM items WHERE id = ?", (key,))
    # the write's mutation: ids only grow, so the newest one
    mid, data = db.execute("SELECT id, data FROM sync_outbox ORDER BY id DESC LIMIT 1").fetchone()
    db.execute("INSERT INTO chaos_log VALUES(?, ?, ?, ?, ?, ?, ?)",
               (seq, mid, op, key, val, tag, data))


def main():
    path, url, name, target, seed, keys, pace = sys.argv[1:8]
    target, keys = int(target), int(keys)
    rnd = random.Random("%s/%s/%d" % (seed, name, os.getpid()))
    db = connect(path)
    db.executescript(DDL)
    db.execute("SELECT sync_init(?, ?)", (url, OPTIONS)).fetchone()
    db.execute("SELECT sync_track('items')").fetchone()
    db.execute("SELECT sync_config('batch_size', ?)", (rnd.choice((1, 3, 10, 50)),)).fetchone()
    db.execute("SELECT sync_config('pull_limit', ?)", (rnd.choice((3, 1000)),)).fetchone()
    db.execute("SELECT sync_config('sse_stall_ms', 3000)").fetchone()
    # the worker's verification while others write (it finds the server
    # moved on and pulls), or none, so that a repair cannot hide a fault
    db.execute("SELECT sync_config('verify_interval_s', ?)", (rnd.choice((0, 1, 300)),)).fetchone()
    db.execute("SELECT sync_start()").fetchone()
    print("ready", flush=True)
    while db.execute("SELECT count(*) FROM chaos_log").fetchone()[0] < target:
        db.execute("BEGIN IMMEDIATE")
        for _ in range(rnd.choice((1, 1, 1, 2, 4))):
            write_one(db, rnd, name, keys)
        db.execute("COMMIT")
        time.sleep(rnd.uniform(0, 2 * float(pace) / 1000))
    print("done", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
