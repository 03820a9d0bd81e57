"""One client process for the hostile-server tests: builds a database with
known local state (rows, a pending mutation, a cursor), runs one sync action
against the given server, and prints one JSON line with the state before and
after, the error, and the process's peak RSS before and after the action.

    python3 client.py SPEC_JSON

SPEC: {"ext", "db", "url", "action": "pull" | "push" | "worker" | "none",
       "config": {key: value}, "token": str or null,
       "wait_s": worker: give up after this long,
       "want": worker: a regex; stop once sync_status.last_error matches,
       "until_idle": worker: stop once idle, outbox empty, a pull done, no last_error,
       "reuse": the database exists: skip the setup}

A separate process per case, so that a crash shows as an exit status and
VmHWM (/proc/self/status) measures this action alone on top of the setup.
"""
import json
import re
import sqlite3
import sys
import time

DDL = """
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL);
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
"""
SEED_PAGE = {"changes": [
    {"table": "todos", "op": "upsert", "pk": {"id": "s"}, "row": {"id": "s", "title": "server"},
     "version": 1},
    {"table": "t", "op": "upsert", "pk": {"id": 1}, "row": {"id": 1, "v": "one"}, "version": 2}],
    "cursor": "c-2", "has_more": False}


def vm_hwm_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def snapshot(db):
    """Everything an error must leave alone."""
    q = lambda sql: [list(r) for r in db.execute(sql)]
    return {
        "schema": q("SELECT type, name, sql FROM sqlite_master ORDER BY name"),
        "todos": q("SELECT * FROM todos ORDER BY id"),
        "t": q("SELECT * FROM t ORDER BY id"),
        "outbox": q("SELECT id, table_name, op, pk, data FROM sync_pending ORDER BY id"),
        "rejected": q("SELECT id, table_name, op, pk, data, reason FROM sync_rejected"),
        "cursor": db.execute("SELECT sync_cursor()").fetchone()[0],
    }


def files_holding(path, token):
    """The database's files (main, -wal, -shm, -journal) whose bytes hold
    the token, with how many bytes each file had."""
    found, sizes = [], {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            with open(path + suffix, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        sizes[suffix or "db"] = len(data)
        if token.encode() in data:
            found.append(suffix or "db")
    return {"found": found, "sizes": sizes}


def setup(db, spec):
    db.executescript(DDL)
    db.execute("SELECT sync_init(?)", (spec["url"],))
    db.execute("SELECT sync_track('todos')")
    db.execute("SELECT sync_track('t')")
    db.execute("SELECT sync_apply(?)", (json.dumps(SEED_PAGE),))
    db.execute("INSERT INTO todos VALUES ('p', 'pending')")
    db.execute("UPDATE t SET v = 'local' WHERE id = 1")


def configure(db, spec):
    for k, v in (spec.get("config") or {}).items():
        db.execute("SELECT sync_config(?, ?)", (k, v))
    if spec.get("token") is not None:
        db.execute("SELECT sync_config('token', ?)", (spec["token"],))


def status(db):
    cur = db.execute("SELECT * FROM sync_status")
    return dict(zip([d[0] for d in cur.description], cur.fetchone()))


def run_worker(db, spec, out):
    want = re.compile(spec["want"]) if spec.get("want") else None
    seen = []
    db.execute("SELECT sync_start()")
    deadline = time.monotonic() + spec.get("wait_s", 20)
    while time.monotonic() < deadline:
        st = status(db)
        err = st["last_error"]
        if err and err not in seen:
            seen.append(err)
        if want and err and want.search(err):
            out["matched"] = err
            break
        if (spec.get("until_idle") and st["state"] == "idle" and not err and st["pending"] == 0
                and st["last_pull_at"]):
            out["matched"] = "idle"
            break
        time.sleep(0.02)
    out["status"] = status(db)
    db.execute("SELECT sync_stop()")
    out["errors_seen"] = seen


def main():
    spec = json.loads(sys.argv[1])
    db = sqlite3.connect(spec["db"], isolation_level=None, check_same_thread=False)
    db.enable_load_extension(True)
    db.load_extension(spec["ext"])
    if not spec.get("reuse"):
        setup(db, spec)
    configure(db, spec)
    out = {"before": snapshot(db), "error": None, "result": None}
    out["hwm_before_kb"] = vm_hwm_kb()
    t0 = time.monotonic()
    action = spec["action"]
    try:
        if action in ("pull", "push"):
            out["result"] = db.execute(f"SELECT sync_{action}()").fetchone()[0]
        elif action == "worker":
            run_worker(db, spec, out)
    except sqlite3.Error as e:
        out["error"] = str(e)
    out["elapsed"] = time.monotonic() - t0
    out["hwm_after_kb"] = vm_hwm_kb()
    out["after"] = snapshot(db)
    out["config_token"] = db.execute("SELECT sync_config('token')").fetchone()[0]
    if spec.get("token"):
        # Before close: the last close checkpoints and removes the -wal file.
        out["token_in_files"] = files_holding(spec["db"], spec["token"])
    db.close()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
