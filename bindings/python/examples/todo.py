"""A to-do list that syncs through syncd.

    server/syncd --listen 127.0.0.1:8080 --schema bindings/todos.sql --db server.db
    python3 todo.py a.db http://127.0.0.1:8080 add "buy milk"
    python3 todo.py b.db http://127.0.0.1:8080 list       # - [ ] 1a2b3c4d buy milk
    python3 todo.py b.db http://127.0.0.1:8080 done 1a2b3c4d
    python3 todo.py a.db http://127.0.0.1:8080 watch      # live, until Ctrl-C
"""
import os
import sqlite3
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import sqlite_sync  # noqa: E402


def show(conn):
    for id, title, done in conn.execute("SELECT id, title, done FROM todos ORDER BY title"):
        print(f"- [{'x' if done else ' '}] {id[:8]} {title}")


def main(path, url, cmd="list", *args):
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    sync = sqlite_sync.load(conn)
    conn.execute("CREATE TABLE IF NOT EXISTS todos(id TEXT PRIMARY KEY, title TEXT NOT NULL,"
                 " done INTEGER NOT NULL DEFAULT 0, data BLOB)")
    sync.init(url)
    sync.track("todos")
    if cmd == "add":
        conn.execute("INSERT INTO todos(id, title) VALUES (?, ?)", (str(uuid.uuid4()), " ".join(args)))
    elif cmd == "done":
        conn.execute("UPDATE todos SET done = 1 WHERE id LIKE ? || '%'", (args[0],))
    elif cmd == "watch":
        with sync, sync.on_change(lambda tables: show(conn)):
            show(conn)
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                return
    try:  # send what is queued, fetch what is new; offline, it all waits in the outbox
        sync.push()
        sync.pull()
    except sqlite_sync.SyncError as e:
        print(f"offline ({e}); {sync.pending()} change(s) queued")
    show(conn)


if __name__ == "__main__":
    main(*sys.argv[1:])
