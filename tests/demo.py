"""make demo: two client databases syncing through syncd, step by step.

Client A goes offline and writes; its outbox fills and B sees nothing. A comes
back online; the outbox drains and B receives the rows over the event stream.
Timings are wall-clock on this machine.
"""
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from e2e_util import Client, Syncd, wait_for  # noqa: E402

T0 = time.monotonic()


def say(msg):
    print(f"[{(time.monotonic() - T0) * 1000:8.1f} ms] {msg}", flush=True)


def table(c, sql):
    cur = c.db.execute(sql)
    rows = cur.fetchall()
    names = [d[0] for d in cur.description]
    cells = [names] + [["NULL" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(names))]
    for k, r in enumerate(cells):
        print(("      " + " | ".join(v.ljust(w) for v, w in zip(r, widths))).rstrip())
        if k == 0:
            print("      " + "-+-".join("-" * w for w in widths))
    if not rows:
        print("      (no rows)")


def main():
    d = tempfile.mkdtemp(prefix="sync-demo-")
    server = a = b = None
    try:
        server = Syncd(d)
        say(f"syncd listening on {server.url} (SQLite storage in {d})")
        a = Client(os.path.join(d, "a.db"), server.url)
        b = Client(os.path.join(d, "b.db"), server.url)
        say(f"client A {a.client_id}, client B {b.client_id}: todos tracked")
        for c in (a, b):
            c.one("SELECT sync_start()")
        wait_for(lambda: a.status()["sse_connected"] and b.status()["sse_connected"])
        say("both workers started, event streams connected")

        print()
        say("A: SELECT sync_online(0)  -- forced offline")
        a.one("SELECT sync_online(0)")
        for i, title in enumerate(["buy milk", "call mom", "write the report"]):
            a.db.execute("INSERT INTO todos(id, title) VALUES(?, ?)", (f"t{i + 1}", title))
        say("A: three INSERTs into todos (plain SQL)")
        say("A: SELECT id, table_name, op, pk, data FROM sync_pending")
        table(a, "SELECT id, table_name, op, pk, data FROM sync_pending")
        time.sleep(0.3)
        say("B: SELECT * FROM todos  -- nothing has left A")
        table(b, "SELECT * FROM todos")
        say("A: SELECT state, online, pending FROM sync_status")
        table(a, "SELECT state, online, pending FROM sync_status")
        b.one("SELECT sync_wait(0)")

        print()
        t = time.monotonic()
        say("A: SELECT sync_online(1)  -- back online: drain at once")
        a.one("SELECT sync_online(1)")
        wait_for(lambda: a.one("SELECT sync_pending()") == 0, step=0.001)
        drained = (time.monotonic() - t) * 1000
        say(f"A: outbox drained in {drained:.1f} ms")
        wait_for(lambda: b.one("SELECT count(*) FROM todos") == 3, step=0.001)
        got = (time.monotonic() - t) * 1000
        say(f"B: received the rows over SSE {got:.1f} ms after A came online")
        say("B: SELECT sync_wait(1000)  -- tables the server changed")
        print("      " + str(b.one("SELECT sync_wait(1000)")))
        say("B: SELECT * FROM todos")
        table(b, "SELECT * FROM todos")
        wait_for(lambda: a.status()["sse_connected"] == 1)
        say("A and B: SELECT state, pending, sse_connected, pushed_total, pulled_total"
            " FROM sync_status")
        table(a, "SELECT 'A' AS client, state, pending, sse_connected, pushed_total,"
                 " pulled_total FROM sync_status")
        table(b, "SELECT 'B' AS client, state, pending, sse_connected, pushed_total,"
                 " pulled_total FROM sync_status")
        print()
        ok = b.todos() == a.todos() == server.query("SELECT id, title, done FROM todos")
        say("A, B and the server agree" if ok else "MISMATCH between A, B and the server")
        return 0 if ok else 1
    finally:
        for c in (a, b):
            if c:
                c.close()
        if server:
            server.stop()
        shutil.rmtree(d, ignore_errors=True)
        say("cleaned up: workers stopped, syncd stopped, temp files removed")


if __name__ == "__main__":
    sys.exit(main())
