"""Helpers for the crash-safety tests (tests/crash): the builds to use, a
syncd on a free port with the crash schema, a child process that can be
killed with SIGKILL, and a fingerprint of a client database's whole state.

SYNC_EXT and SYNCD_TEST_BINARY pick other builds (make asan, make tsan);
SYNC_TEST_SLOW multiplies the timeouts. Standard library only.
"""
import hashlib
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXT = os.environ.get("SYNC_EXT") or os.path.join(ROOT, "ext", "sync")
SYNCD = os.environ.get("SYNCD_TEST_BINARY") or os.path.join(ROOT, "server", "syncd")
SLOW = float(os.environ.get("SYNC_TEST_SLOW") or 1)
CHILD = os.path.join(HERE, "child.py")

# The server counts every application of a mutation in audit (a table
# without a primary key is not synced): a mutation applied twice shows
# twice, one lost does not show.
SERVER_SCHEMA = """
CREATE TABLE items(id TEXT PRIMARY KEY, n INTEGER NOT NULL, body TEXT);
CREATE TABLE audit(item TEXT NOT NULL, n INTEGER NOT NULL);
CREATE TRIGGER items_ai AFTER INSERT ON items BEGIN INSERT INTO audit VALUES(new.id, new.n); END;
CREATE TRIGGER items_au AFTER UPDATE ON items BEGIN INSERT INTO audit VALUES(new.id, new.n); END;
"""
CLIENT_DDL = "CREATE TABLE IF NOT EXISTS items(id TEXT PRIMARY KEY, n INTEGER NOT NULL, body TEXT)"


def connect(path, ext=True):
    c = sqlite3.connect(path, timeout=30, isolation_level=None)
    if ext:
        c.enable_load_extension(True)
        c.load_extension(EXT)
    return c


def fingerprint(path):
    """Everything sync_apply may change, read without the extension."""
    c = connect(path, ext=False)
    try:
        h = hashlib.sha256()
        for sql in ("SELECT id, n, body FROM items ORDER BY id",
                    "SELECT key, value FROM sync_meta WHERE key = 'cursor'",
                    "SELECT id, tbl, op, pk, data FROM sync_outbox ORDER BY id",
                    "SELECT * FROM sync_shadow ORDER BY 1, 2"):
            for row in c.execute(sql):
                h.update(repr(row).encode())
            h.update(b"|")
        cursor = c.execute("SELECT value FROM sync_meta WHERE key = 'cursor'").fetchone()
        return h.hexdigest(), cursor[0] if cursor else None
    finally:
        c.close()


class Child:
    """python child.py ARGS...; lines() reads what it printed so far."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, CHILD] + [str(a) for a in args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.buf = b""

    def wait_line(self, want, timeout):
        deadline = time.monotonic() + timeout * SLOW
        while want.encode() not in self.buf.split(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not self.read(left):
                raise AssertionError(f"child did not print {want!r}; stderr: {self.stderr()}")

    def read(self, timeout=0.0):
        """Read what is available within timeout; False at end of output."""
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return True
        data = os.read(self.proc.stdout.fileno(), 65536)
        self.buf += data
        return bool(data)

    def printed(self, line):
        self.read()
        return line.encode() in self.buf.split(b"\n")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()

    def stderr(self):
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read().decode(errors="replace")[-3000:]


class Syncd:
    """syncd on 127.0.0.1:0 with SERVER_SCHEMA and SQLite storage in dir."""

    def __init__(self, dir):
        self.db = os.path.join(dir, "server.db")
        schema = os.path.join(dir, "schema.sql")
        with open(schema, "w") as f:
            f.write(SERVER_SCHEMA)
        self.log = open(os.path.join(dir, "syncd.log"), "ab")
        self.proc = subprocess.Popen([SYNCD, "--listen", "127.0.0.1:0", "--schema", schema,
                                      "--db", self.db], stdout=subprocess.PIPE, stderr=self.log)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20 * SLOW)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError("syncd did not start")
        self.url = line.strip()
        self.port = int(self.url.rsplit(":", 1)[1])

    def query(self, sql):
        c = sqlite3.connect(self.db, timeout=30)
        try:
            return c.execute(sql).fetchall()
        finally:
            c.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout * SLOW:.0f}s waiting for {what}")
        time.sleep(0.05)
