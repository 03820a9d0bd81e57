"""Helpers for the end-to-end tests: a syncd on a free loopback port, client
databases with the extension loaded, a hung server, a relaying proxy, and
polling.

Runs under /usr/bin/python3 (Debian's python, whose sqlite3 module can load
extensions). Standard library only.
"""
import http.client
import http.server
import json
import os
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# SYNCD_TEST_BINARY and SYNC_EXT run other builds (make asan, make tsan).
SYNCD = os.environ.get("SYNCD_TEST_BINARY") or os.path.join(ROOT, "server", "syncd")
EXT = os.environ.get("SYNC_EXT") or os.path.join(ROOT, "ext", "sync")
SCHEMA = os.path.join(HERE, "schema.sql")
SCHEMA_PG = os.path.join(HERE, "schema_pg.sql")
PG_ENV = os.path.join(ROOT, "tests", "pg_env.sh")
# PostgreSQL's programs and psql run without a sanitizer's preloaded
# runtime (make asan/tsan): bash crashes under it
PG_ENVIRON = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
CLIENT_DDL = """
CREATE TABLE IF NOT EXISTS todos(id TEXT PRIMARY KEY, title TEXT NOT NULL,
                                 done INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT);
"""


# make asan/tsan set SYNC_TEST_SLOW: code runs that many times slower.
SLOW = float(os.environ.get("SYNC_TEST_SLOW") or 1)


def wait_for(pred, timeout=10.0, step=0.01, what="condition"):
    """Poll pred() until it returns a true value; returns it or raises.
    The timeout is scaled by SYNC_TEST_SLOW."""
    timeout *= SLOW
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


class Syncd:
    """One syncd process on 127.0.0.1:0 with SQLite storage in dir, or the
    storage that store names instead of "--db dir/server.db" (say
    ["--pg", URL]; self.db is then unused)."""

    def __init__(self, dir, extra=(), port=0, schema=SCHEMA, store=None):
        self.dir = dir
        self.schema = schema
        self.db = os.path.join(dir, "server.db")
        self.store = list(store) if store else ["--db", self.db]
        self.extra = list(extra)
        self.port = port
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "syncd.log"), "ab")
        args = [SYNCD, "--listen", f"127.0.0.1:{self.port}", "--schema", self.schema] + \
            self.store + self.extra
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("http://"):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("syncd did not start")
        self.url = line.strip()
        self.port = urllib.parse.urlsplit(self.url).port

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.proc.stdout.close()
        self.log.close()
        self.proc = None

    def restart(self, sig=signal.SIGTERM):
        """Stop (with sig) and start again on the same port and data."""
        self.stop(sig)
        for _ in range(100):
            try:
                self.start()
                return
            except RuntimeError:
                time.sleep(0.05)
        raise RuntimeError("syncd did not restart")

    def pg(self):
        """The PostgreSQL url of the storage, or None (SQLite)."""
        return self.store[1] if self.store[0] == "--pg" else None

    def query(self, sql, args=()):
        """Rows of sql (? parameters) on the storage, behind syncd."""
        if self.pg():
            return [tuple(r) for r in pg_query(self.pg(), sql, args)]
        c = sqlite3.connect(self.db, timeout=10)
        try:
            return c.execute(sql, args).fetchall()
        finally:
            c.close()

    def execute(self, *sql):
        """Statements run on the storage in one transaction, behind syncd
        (its change log knows nothing of them)."""
        if self.pg():
            pg_run(self.pg(), "BEGIN;" + ";".join(sql) + ";COMMIT")
            return
        c = sqlite3.connect(self.db, timeout=10)
        try:
            for q in sql:
                c.execute(q)
            c.commit()
        finally:
            c.close()

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def push(self, client_id, mutations, token=None):
        req = urllib.request.Request(self.url + "/push",
                                     json.dumps({"client_id": client_id,
                                                 "mutations": mutations}).encode(),
                                     {"Content-Type": "application/json"})
        if token:
            req.add_header("Authorization", "Bearer " + token)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())


def connect(path):
    """A connection in autocommit mode with the extension loaded."""
    c = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    c.enable_load_extension(True)
    c.load_extension(EXT)
    return c


class Client:
    """A client database: tables created, sync_init'd, tracked."""

    def __init__(self, path, url, options=None):
        self.path = path
        self.url = url
        self.db = connect(path)
        self.db.executescript(CLIENT_DDL)
        args = (url,) if options is None else (url, json.dumps(options))
        self.client_id = self.one(f"SELECT sync_init({','.join('?' * len(args))})", args)
        self.one("SELECT sync_track('todos')")
        self.one("SELECT sync_track('notes')")

    def one(self, sql, args=()):
        row = self.db.execute(sql, args).fetchone()
        return row[0] if row else None

    def rows(self, sql, args=()):
        return self.db.execute(sql, args).fetchall()

    def status(self):
        cur = self.db.execute("SELECT * FROM sync_status")
        names = [d[0] for d in cur.description]
        return dict(zip(names, cur.fetchone()))

    def todos(self):
        return self.rows("SELECT id, title, done FROM todos ORDER BY id")

    def close(self):
        if self.db:
            self.db.close()
            self.db = None


class HungServer:
    """Accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.conns = []
        self.done = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.sock.settimeout(0.1)
        while not self.done:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        self.done = True
        self.t.join()
        for c in self.conns:
            c.close()
        self.sock.close()


class RelayProxy(http.server.ThreadingHTTPServer):
    """Forwards requests to a syncd (the Authorization header included) and
    serves the event stream itself, heartbeats only, so that no event makes
    a pull due. A test changes what passes by overriding relay()."""

    daemon_threads = True

    def __init__(self, upstream):
        super().__init__(("127.0.0.1", 0), RelayHandler)
        self.upstream = urllib.parse.urlsplit(upstream).netloc
        self.url = "http://127.0.0.1:%d" % self.server_address[1]
        self.done = threading.Event()
        self.t = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        self.t.start()

    def relay(self, h, body):
        """Answers h's request (body: the POST's, else None); as is by default."""
        h.answer(*h.forward(body))

    def stream(self, h):
        """Serves h's event stream: heartbeats only, by default."""
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.end_headers()
        try:
            while not self.done.wait(0.2):
                h.wfile.write(b": heartbeat\n\n")
                h.wfile.flush()
        except OSError:
            pass
        h.close_connection = True

    def stop(self):
        self.done.set()
        self.shutdown()
        self.server_close()
        self.t.join()


class RelayHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self, body=None):
        """The upstream's (status, body) for this request."""
        hdrs = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
        c = http.client.HTTPConnection(self.server.upstream, timeout=10)
        try:
            c.request(self.command, self.path, body, hdrs)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def answer(self, status, data):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.startswith("/events"):
            return self.server.stream(self)
        self.server.relay(self, None)

    def do_POST(self):
        self.server.relay(self, self.rfile.read(int(self.headers["Content-Length"])))


def pg_run(url, sql, args=()):
    """psql's unaligned output of sql on url; each ? is a parameter, quoted
    by psql (:'pN'), never spliced."""
    parts = sql.split("?")
    assert len(parts) == len(args) + 1, sql
    text = parts[0] + "".join(":'p%d'%s" % (i, p) for i, p in enumerate(parts[1:]))
    cmd = ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", url]
    for i, a in enumerate(args):
        cmd += ["-v", "p%d=%s" % (i, a)]
    return subprocess.run(cmd, input=text, capture_output=True, text=True, check=True,
                          env=PG_ENVIRON).stdout


def pg_query(url, sql, args=()):
    """The rows of a SELECT on url, each a list in column order."""
    out = pg_run(url, "SELECT coalesce(json_agg(q), '[]') FROM (%s) AS q" % sql, args)
    return [list(r.values()) for r in json.loads(out)]


class PgCluster:
    """A throwaway PostgreSQL cluster (tests/pg_env.sh) shared by a test
    module: start() once (SkipTest when it cannot start), a fresh database
    per test, stop() at the module's end. SYNCD_TEST_PG_URL names a running
    one instead."""

    def __init__(self):
        self.dir = self.url = None

    def start(self):
        self.url = os.environ.get("SYNCD_TEST_PG_URL")
        if self.url:
            return
        self.dir = tempfile.mkdtemp(prefix="sync-e2e-pg-")
        p = subprocess.run(["bash", PG_ENV, "start", self.dir], capture_output=True, text=True,
                           timeout=120, env=PG_ENVIRON)
        lines = p.stdout.strip().splitlines()
        if p.returncode != 0 or not lines or not lines[-1].startswith("postgresql://"):
            self.stop()
            raise unittest.SkipTest("PostgreSQL did not start: " + p.stderr.strip()[-300:])
        self.url = lines[-1]

    def stop(self):
        if self.dir:
            subprocess.run(["bash", PG_ENV, "stop", self.dir], capture_output=True, timeout=60,
                           env=PG_ENVIRON)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def db(self, name):
        """The url of database name on the cluster."""
        return urllib.parse.urlunsplit(urllib.parse.urlsplit(self.url)._replace(path="/" + name))

    def create(self, name, template=None):
        pg_run(self.url, "CREATE DATABASE %s%s" % (name, " TEMPLATE " + template
                                                   if template else ""))
        return self.db(name)

    def drop(self, name):
        pg_run(self.url, "DROP DATABASE IF EXISTS %s" % name)


class E2ETest(unittest.TestCase):
    """Base: a temp dir, cleanup of clients and servers."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sync-e2e-")
        self.clients = []
        self.servers = []

    def tearDown(self):
        for c in self.clients:
            try:
                c.close()
            except Exception:
                pass
        for s in self.servers:
            s.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def syncd(self, *extra, schema_sql=None):
        """A syncd in this test's folder; schema_sql: its schema's text
        (else the suite's schema.sql)."""
        if schema_sql is None:
            s = Syncd(self.dir, extra)
        else:
            path = os.path.join(self.dir, "schema.sql")
            with open(path, "w") as f:
                f.write(schema_sql)
            s = Syncd(self.dir, extra, schema=path)
        self.servers.append(s)
        return s

    def client(self, name, url, options=None):
        c = Client(os.path.join(self.dir, name + ".db"), url, options)
        self.clients.append(c)
        return c
