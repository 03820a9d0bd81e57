"""A client in its own process, for kill -9 and standby tests.

    client_proc.py DB URL [--insert N] [--batch N] [--start] [--wait-sse]

Creates the tables, sync_init(URL), tracks them, optionally inserts N rows
(ids r00000..) while forced offline, then sync_start() and sync_online(1);
prints "ready" and sleeps until killed.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_util import Client  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("url")
    ap.add_argument("--insert", type=int, default=0)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--start", action="store_true")
    ap.add_argument("--wait-sse", action="store_true", help="wait until the event stream is up")
    a = ap.parse_args()
    c = Client(a.db, a.url)
    c.one("SELECT sync_config('batch_size', ?)", (a.batch,))
    if a.insert:
        c.db.execute("BEGIN")
        for i in range(a.insert):
            c.db.execute("INSERT INTO todos(id, title) VALUES(?, ?)", ("r%05d" % i, "row %d" % i))
        c.db.execute("COMMIT")
    if a.start:
        c.one("SELECT sync_start()")
        deadline = time.monotonic() + 10
        while a.wait_sse and not c.status()["sse_connected"] and time.monotonic() < deadline:
            time.sleep(0.01)
    print("ready", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
