"""The process the crash tests kill with SIGKILL.

    child.py apply DB PAGE_FILE
        sync_apply() the page in PAGE_FILE on DB; prints "start" just before
        the call and "done" after it returns.
    child.py client DB URL FIRST COUNT BATCH
        A client of the syncd at URL: makes COUNT mutations on items (values
        FIRST, FIRST+1, ...; see mutations()) in one transaction while
        offline, then starts the worker; prints "ready" and sleeps.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crash_util import CLIENT_DDL, connect  # noqa: E402

ITEMS = 40


def mutations(first, count):
    """(item, n) of each mutation: n is unique, an item's first one inserts."""
    return [("i%02d" % (n % ITEMS), n) for n in range(first, first + count)]


def apply(db, page_file):
    with open(page_file) as f:
        page = f.read()
    c = connect(db)
    print("start", flush=True)
    c.execute("SELECT sync_apply(?)", (page,))
    print("done", flush=True)
    c.close()


def client(db, url, first, count, batch):
    c = connect(db)
    c.execute(CLIENT_DDL)
    c.execute("SELECT sync_init(?)", (url,))
    c.execute("SELECT sync_track('items')")
    c.execute("SELECT sync_config('batch_size', ?)", (int(batch),))
    c.execute("SELECT sync_config('backoff_min_ms', 20)")
    c.execute("SELECT sync_config('backoff_max_ms', 200)")
    c.execute("BEGIN")
    for item, n in mutations(int(first), int(count)):
        c.execute("INSERT INTO items(id, n, body) VALUES(?, ?, 'b') "
                  "ON CONFLICT(id) DO UPDATE SET n = excluded.n", (item, n))
    c.execute("COMMIT")
    c.execute("SELECT sync_start()")
    print("ready", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    {"apply": apply, "client": client}[sys.argv[1]](*sys.argv[2:])
