"""Helpers for the syncd protocol tests: start a syncd on a free port, talk
HTTP+JSON to it, read its event stream, and (when tests/server/run.py could
start one) make fresh PostgreSQL databases.

Standard library only. JSON is parsed with int-preserving defaults (Python
ints are exact) so 64-bit values are checked exactly.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# SYNCD_TEST_BINARY runs another build (e.g. with sanitizers); SYNCD_TEST_WRAPPER
# prefixes the command, e.g. "valgrind -q --error-exitcode=99 --leak-check=full".
SYNCD = os.environ.get("SYNCD_TEST_BINARY") or os.path.join(ROOT, "server", "syncd")
WRAPPER = os.environ.get("SYNCD_TEST_WRAPPER", "").split()
SCHEMAS = {
    "sqlite": os.path.join(HERE, "schema_sqlite.sql"),
    "pg": os.path.join(HERE, "schema_pg.sql"),
}


def pg_url():
    """The admin url of the test cluster, or raise SkipTest."""
    url = os.environ.get("SYNCD_TEST_PG_URL")
    if not url:
        raise unittest.SkipTest(os.environ.get("SYNCD_TEST_PG_SKIP", "PostgreSQL not started"))
    return url


def pg_fresh_db():
    """Create an empty database on the test cluster; returns its url."""
    admin = pg_url()
    name = "t_" + uuid.uuid4().hex[:12]
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", admin, "-c",
                    f"CREATE DATABASE {name}"], check=True, capture_output=True,
                   env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
    parts = urllib.parse.urlsplit(admin)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def store_sql(backend, store_args, text):
    """Run the SQL script text on a syncd's storage (its --db or --pg
    store_args) behind syncd's back."""
    if backend == "sqlite":
        db = sqlite3.connect(store_args[1], timeout=10)
        db.executescript(text)
        db.close()
    else:
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", store_args[1], "-c", text],
                       check=True, capture_output=True,
                       env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})



class OneSyncd:
    """Mixin for a test case that runs one syncd (self.s) in a fresh folder
    (self.tmp) and requires it to exit cleanly."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="syncd-test-")
        self.s = Syncd(self.backend, self.store_args())

    def tearDown(self):
        rc = self.s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.assertEqual(rc, 0, self.s.log()[-2000:])


class ManySyncd:
    """Mixin for a test case that starts syncds of its own (self.server()
    appends them to self.servers) in a fresh folder (self.tmp); each one
    still running at the end must exit cleanly."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="syncd-test-")
        self.servers = []

    def tearDown(self):
        unclean = [(s.stop(), s.log()[-2000:]) for s in self.servers if s.proc.poll() is None]
        shutil.rmtree(self.tmp, ignore_errors=True)
        for rc, log in unclean:
            self.assertEqual(rc, 0, log)

    def file(self, name, text):
        p = os.path.join(self.tmp, name)
        with open(p, "w") as f:
            f.write(text)
        return p


class SqliteStore:
    """Mixin for a test case: syncd on a SQLite file in the test's folder."""
    backend = "sqlite"

    def store_args(self):
        return ["--db", os.path.join(self.tmp, "server.db")]


class PgStore:
    """Mixin for a test case: syncd on a fresh database of the test cluster
    (the class is skipped when the cluster did not start)."""
    backend = "pg"

    @classmethod
    def setUpClass(cls):
        pg_url()

    def store_args(self):
        return ["--pg", pg_fresh_db()]

class Syncd:
    """One syncd process. backend is "sqlite" or "pg"; store_args are the
    --db/--pg arguments, kept so that restart() reopens the same data."""

    def __init__(self, backend, store_args, extra=(), schema=None, env=None):
        self.backend = backend
        self.env = env
        self.store_args = list(store_args)
        self.extra = list(extra)
        self.schema = schema or SCHEMAS[backend]
        self.proc = None
        self.url = None
        self.start()

    def start(self):
        self.stderr = tempfile.TemporaryFile()
        args = WRAPPER + [SYNCD, "--listen", "127.0.0.1:0", "--schema", self.schema, "--verbose"]
        self.proc = subprocess.Popen(args + self.store_args + self.extra, env=self.env,
                                     stdout=subprocess.PIPE, stderr=self.stderr)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("http://"):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("syncd did not start: " + self.log())
        self.url = line.strip()
        u = urllib.parse.urlsplit(self.url)
        self.host, self.port = u.hostname, u.port

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal syncd and return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "hung"
        self.proc.stdout.close()
        return rc

    def restart(self):
        rc = self.stop()
        self.start()
        return rc

    # ---- HTTP ----

    def request(self, method, path, body=None, headers=None, timeout=30, raw=False):
        """Returns (status, response, parsed JSON, or bytes when raw or
        not JSON)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            ctype = resp.getheader("Content-Type", "")
            if ctype.startswith("application/json") and not raw:
                data = json.loads(data)
            return resp.status, resp, data
        finally:
            conn.close()

    def push(self, client_id, mutations, headers=None):
        status, _, data = self.request("POST", "/push",
                                       {"client_id": client_id, "mutations": mutations},
                                       headers=headers)
        if status != 200:
            raise AssertionError(f"push answered {status}: {data}")
        return data["results"]

    def pull(self, client_id="c", cursor=None, limit=None, expect=200, pending_from=None):
        q = {"client_id": client_id}
        if cursor is not None:
            q["cursor"] = cursor
        if limit is not None:
            q["limit"] = str(limit)
        if pending_from is not None:
            q["pending_from"] = str(pending_from)
        status, _, data = self.request("GET", "/pull?" + urllib.parse.urlencode(q))
        if status != expect:
            raise AssertionError(f"pull answered {status}, expected {expect}: {data}")
        return data

    def pull_all(self, client_id="c", cursor=None, limit=None):
        """Follow has_more; returns (changes, final page)."""
        changes = []
        while True:
            page = self.pull(client_id, cursor, limit)
            changes += page["changes"]
            cursor = page["cursor"]
            if not page["has_more"]:
                return changes, page

    def events(self, client_id="c", cursor=None, last_event_id=None, headers=None, timeout=10):
        return EventStream(self, client_id, cursor, last_event_id, headers, timeout)


class EventStream:
    """A GET /events connection, parsed per the event-stream format."""

    def __init__(self, server, client_id, cursor, last_event_id, headers, timeout):
        q = {"client_id": client_id}
        if cursor is not None:
            q["cursor"] = cursor
        headers = dict(headers or {}, Accept="text/event-stream")
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
        self.conn.request("GET", "/events?" + urllib.parse.urlencode(q), headers=headers)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status

    def next(self, timeout=10):
        """The next event or comment: ("event", {"event","id","data"}) or
        ("comment", text). Raises TimeoutError, EOFError at end of stream."""
        self.conn.sock.settimeout(timeout)
        ev = {}
        while True:
            line = self.resp.readline()
            if not line:
                raise EOFError("stream ended")
            line = line.decode().rstrip("\r\n")
            if line == "":
                if ev:
                    if "data" in ev:
                        ev["data"] = json.loads(ev["data"])
                    return "event", ev
                continue
            if line.startswith(":"):
                return "comment", line[1:].strip()
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data" and "data" in ev:
                ev["data"] += "\n" + value
            else:
                ev[field] = value

    def next_event(self, timeout=10):
        """The next real event, skipping comments."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no event")
            kind, ev = self.next(left)
            if kind == "event":
                return ev

    def close(self):
        self.conn.close()


def todo(id_, title="t", **cols):
    row = {"id": id_, "title": title}
    row.update(cols)
    return row


def ins(mid, id_, title="t", table="todos", **cols):
    return {"id": mid, "table": table, "op": "insert", "pk": {"id": id_},
            "data": todo(id_, title, **cols)}


def upd(mid, id_, table="todos", **cols):
    return {"id": mid, "table": table, "op": "update", "pk": {"id": id_}, "data": cols}


def dele(mid, id_, table="todos"):
    return {"id": mid, "table": table, "op": "delete", "pk": {"id": id_}}


# JSON Web Tokens, made with hmac (HS256) and the openssl command (RS256,
# ES256), so the tests need no JWT library.
SECRET = "a-test-secret-of-at-least-32-bytes!!"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der_to_raw(der, size=32):
    """An ECDSA signature from DER (SEQUENCE of two INTEGERs) to r || s."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        out += v.rjust(size, b"\0")
        i += 2 + n
    return out


def make_token(claims, alg="HS256", key=SECRET, header=None):
    head = dict({"alg": alg, "typ": "JWT"}, **(header or {}))
    signing = (b64(json.dumps(head).encode()) + "." + b64(json.dumps(claims).encode())).encode()
    if alg == "none":
        return signing.decode() + "."
    if alg == "HS256":
        k = key.encode() if isinstance(key, str) else key
        sig = hmac.new(k, signing, hashlib.sha256).digest()
    else:
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing,
                             capture_output=True, check=True).stdout
        if alg == "ES256":
            sig = der_to_raw(sig)
    return signing.decode() + "." + b64(sig)


def claims(sub="alice", ttl=300, **more):
    c = {"sub": sub, "exp": int(time.time()) + ttl}
    c.update(more)
    return c


def bearer(tok):
    return {"Authorization": "Bearer " + tok}
