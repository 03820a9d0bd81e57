"""Benchmark of sync_verify on the client (issue 14, "Speed"): its time
against a plain read of the table, and the bytes it sends and receives,
in sync and repairing rows changed behind syncd, in one run.

    /usr/bin/python3 bench/net/verifyclient.py [--rows N] [--changes N]
                                                [--reps N] [--pull-limit N]
                                                [--ext PATH]

Builds a --rows table (id, title, n, r; verifybench.py's rows) in a SQLite
server database, starts server/syncd on it (its first start logs every row
for the initial sync), and a client (ext/sync.so in Debian's
/usr/bin/python3) that reaches syncd through a counting TCP relay on
127.0.0.1, so every byte either way is counted as sent: HTTP heads and
bodies, compressed when the client's `compress` setting asks gzip. Then:

  initial   the client's first sync (sync_pull() with --pull-limit): its
            time and bytes, with gzip (as the client asks by default) and
            without (the same pages fetched again without Accept-Encoding):
            the baseline of the repair's bytes
  scan      SELECT count(*), sum(length(id)+length(title)+length(n)+
            length(r)) FROM todos on the client: the baseline of the time
  build     the first sync_verify('todos'): syncd builds its fingerprint
            cache (once per table), reported apart
  in sync   sync_verify('todos') with nothing diverged, interleaved with
            the scan (and, for context, the same read without length()
            printing the numbers as text), median of --reps (wall time and the calling thread's
            CPU), its bytes on the wire and its report's "bytes"
            (request bodies plus decoded answer bodies, no heads, without
            the pull sync_verify makes first)
  repair    --changes random rows updated on syncd's database with
            sqlite3 (behind syncd), then the sync_verify that repairs them:
            time, requests, bytes; once with gzip and once with
            compress off, each against the full sync's bytes in the same
            encoding

The targets (issue 14): in sync, sync_verify within 1.5x the scan and at
most 64 KB on the wire; repairing 100 keys of a 1M-row table, at most 1%
of a full sync's bytes. It measures, it never fails on speed; it fails if
the repair leaves the client unlike the server.
"""
import argparse
import hashlib
import http.client
import json
import os
import select
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SYNCD = os.path.join(ROOT, "server", "syncd")
EXT = os.path.join(ROOT, "ext", "sync")
DDL = "CREATE TABLE IF NOT EXISTS todos(id INTEGER PRIMARY KEY, title TEXT, n INTEGER, r REAL);"
SCAN = "SELECT count(*), sum(length(id) + length(title) + length(n) + length(r)) FROM todos"
# the same read without length() printing the numbers as text (context)
READ = "SELECT count(*), sum(length(title)), sum(id), sum(n), total(r) FROM todos"


class Relay:
    """A TCP relay from 127.0.0.1:port to target that counts the bytes
    each way (sent: client to server; received: server to client)."""

    def __init__(self, target):
        self.target = target
        self.lock = threading.Lock()
        self.sent = self.received = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                a, _ = self.sock.accept()
            except OSError:
                return
            b = socket.create_connection(self.target)
            for s in (a, b):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns += [a, b]
            threading.Thread(target=self.pump, args=(a, b, "sent"), daemon=True).start()
            threading.Thread(target=self.pump, args=(b, a, "received"), daemon=True).start()

    def pump(self, src, dst, way):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                with self.lock:
                    setattr(self, way, getattr(self, way) + len(data))
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def counts(self):
        with self.lock:
            return self.sent, self.received

    def close(self):
        self.sock.close()
        for s in self.conns:
            s.close()


class Syncd:
    def __init__(self, tmp, db):
        schema = os.path.join(tmp, "schema.sql")
        with open(schema, "w") as f:
            f.write(DDL + "\n")
        self.log = open(os.path.join(tmp, "syncd.log"), "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([SYNCD, "--listen", "127.0.0.1:0", "--schema", schema,
                                      "--db", db, "--request-timeout", "3600"],
                                     stdout=subprocess.PIPE, stderr=self.log)
        ready, _, _ = select.select([self.proc.stdout], [], [], 1200)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError("syncd did not start (see %s/syncd.log)" % tmp)
        self.startup = time.perf_counter() - t0
        u = urllib.parse.urlsplit(line.strip())
        self.addr = (u.hostname, u.port)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()


def fill(path, rows):
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(DDL)
    db.execute("WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < ?)"
               " INSERT INTO todos SELECT x, 'title ' || x, x * 7919 % 1000003, x / 7.0"
               " FROM i", (rows,))
    db.commit()
    db.close()


def tamper(path, n, round_):
    """n random rows changed on syncd's database behind its back; their ids."""
    db = sqlite3.connect(path, timeout=60)
    ids = [r[0] for r in db.execute("SELECT id FROM todos ORDER BY random() LIMIT ?", (n,))]
    db.executemany("UPDATE todos SET title = ?, n = n + 1 WHERE id = ?",
                   [("changed %d %d" % (round_, i), i) for i in ids])
    db.commit()
    db.close()
    return ids


def digest(db, ids):
    rows = db.execute("SELECT id, title, n, r FROM todos WHERE id IN (%s) ORDER BY id"
                      % ",".join("?" * len(ids)), ids).fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def pages_bytes(addr, limit, gzip):
    """The bytes of a first sync's pages at limit, fetched as a client with
    or without Accept-Encoding: gzip (status line, heads and bodies as
    received), and the decoded bodies' size."""
    conn = http.client.HTTPConnection(*addr, timeout=600)
    cursor, wire, plain = "", 0, 0
    hdrs = {"Accept-Encoding": "gzip"} if gzip else {}
    while True:
        q = urllib.parse.urlencode({"client_id": "bytes", "cursor": cursor, "limit": limit})
        conn.request("GET", "/pull?" + q, headers=hdrs)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError("/pull answered %d: %s" % (r.status, body[:200]))
        head = len("HTTP/1.1 200 OK\r\n") + sum(len(k) + len(v) + 4 for k, v in r.getheaders()) + 2
        wire += head + len(body)
        if r.getheader("Content-Encoding") == "gzip":
            body = zlib.decompress(body, 16 + 15)
        plain += len(body)
        page = json.loads(body)
        cursor = page["cursor"]
        if not page["has_more"]:
            conn.close()
            return wire, plain


def timed(db, sql):
    """sql's first value, its wall time and the calling thread's CPU (the
    extension and SQLite run on it; the relay's threads do not count)."""
    t0, c0 = time.perf_counter(), time.thread_time()
    v = db.execute(sql).fetchone()[0]
    return v, time.perf_counter() - t0, time.thread_time() - c0


def verify(db, relay):
    s0, r0 = relay.counts()
    out, wall, cpu = timed(db, "SELECT sync_verify('todos')")
    s1, r1 = relay.counts()
    t = json.loads(out)["tables"][0]
    return {"wall": wall, "cpu": cpu, "sent": s1 - s0, "received": r1 - r0,
            "wire": s1 - s0 + r1 - r0, "report": t}


def walk_steps(db, addr, sdb, changes):
    """n more rows changed behind syncd, then the repair walked with
    sync_verify_request / sync_verify_answer, each answer asked with gzip:
    per request, the prefixes asked, the split or rows, the body's bytes,
    the answer's decoded and gzip bytes (bodies only)."""
    ids = tamper(sdb, changes, 99)
    conn = http.client.HTTPConnection(*addr, timeout=600)
    body = db.execute("SELECT sync_verify_request('todos')").fetchone()[0]
    steps = []
    while True:
        req = json.loads(body)
        conn.request("POST", "/verify", body, {"Content-Type": "application/json",
                                               "Accept-Encoding": "gzip"})
        r = conn.getresponse()
        raw = r.read()
        if r.status != 200:
            raise RuntimeError("/verify answered %d: %s" % (r.status, raw[:200]))
        answer = zlib.decompress(raw, 16 + 15) if r.getheader("Content-Encoding") == "gzip" else raw
        steps.append((len(req["prefixes"]), "rows" if req["rows"] else "split %d" % req["split"],
                      len(body), len(answer), len(raw)))
        out = db.execute("SELECT sync_verify_answer(?)", (answer.decode(),)).fetchone()[0]
        out = json.loads(out)
        if "tables" in out:
            break
        body = json.dumps(out)
    conn.close()
    if out["diverged"] != len(ids):
        raise RuntimeError("the walk found %d of %d keys" % (out["diverged"], len(ids)))
    return steps


def kb(n):
    return "%.1f KB" % (n / 1024)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--pull-limit", type=int, default=10000)
    ap.add_argument("--ext", default=EXT, help="the extension to load (another build)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="verifyclient-")
    server = relay = db = None
    out = []

    def row(what, figure, base="", ratio="", target=""):
        out.append((what, figure, base, ratio, target))
        print("  %s: %s" % (what, figure), flush=True)

    try:
        t0 = time.perf_counter()
        sdb = os.path.join(tmp, "server.db")
        fill(sdb, a.rows)
        filled = time.perf_counter() - t0
        server = Syncd(tmp, sdb)
        relay = Relay(server.addr)
        print("verifyclient: %s, %d rows (filled in %.1f s, syncd's start with its backfill %.1f s)"
              % (a.ext, a.rows, filled, server.startup), flush=True)

        db = sqlite3.connect(os.path.join(tmp, "client.db"), timeout=60, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA journal_mode = WAL")
        db.enable_load_extension(True)
        db.load_extension(a.ext)
        db.execute(DDL)
        db.execute("SELECT sync_init(?)", ("http://127.0.0.1:%d" % relay.port,)).fetchone()
        db.execute("SELECT sync_track('todos')").fetchone()
        db.execute("SELECT sync_config('pull_limit', ?)", (a.pull_limit,)).fetchone()

        s0, r0 = relay.counts()
        pulled, wall, cpu = timed(db, "SELECT sync_pull()")
        s1, r1 = relay.counts()
        full_gz = s1 - s0 + r1 - r0
        have = db.execute("SELECT count(*) FROM todos").fetchone()[0]
        if have != a.rows:
            raise RuntimeError("initial sync: %d of %d rows" % (have, a.rows))
        full_id, full_plain = pages_bytes(server.addr, a.pull_limit, False)
        row("initial sync (sync_pull, pull_limit %d), gzip" % a.pull_limit,
            "%.1f MB on the wire (%d changes, %.1f s, client CPU %.1f s)"
            % (full_gz / 1e6, pulled, wall, cpu))
        row("the same pages without gzip", "%.1f MB on the wire (%.1f MB of JSON)"
            % (full_id / 1e6, full_plain / 1e6))

        build = verify(db, relay)
        row("first sync_verify (syncd builds its cache)", "%.0f ms, %s"
            % (build["wall"] * 1e3, kb(build["wire"])))

        scans, reads, verifies = [], [], []
        for _ in range(a.reps):
            _, w, c = timed(db, SCAN)
            scans.append((w, c))
            _, w, c = timed(db, READ)
            reads.append((w, c))
            v = verify(db, relay)
            if v["report"]["diverged"]:
                raise RuntimeError("in sync, yet diverged: %s" % v["report"])
            verifies.append(v)
        sw = statistics.median(w for w, _ in scans)
        sc = statistics.median(c for _, c in scans)
        vw = statistics.median(v["wall"] for v in verifies)
        vc = statistics.median(v["cpu"] for v in verifies)
        last = verifies[-1]
        row("scan: count(*), sum(length(...)) (baseline)", "%.0f ms (CPU %.0f ms)"
            % (sw * 1e3, sc * 1e3))
        row("sync_verify in sync, time", "%.0f ms (CPU %.0f ms)" % (vw * 1e3, vc * 1e3),
            "%.0f ms (CPU %.0f ms)" % (sw * 1e3, sc * 1e3),
            "%.2fx (CPU %.2fx)" % (vw / sw, vc / sc), "<= 1.5x")
        rw = statistics.median(w for w, _ in reads)
        rc = statistics.median(c for _, c in reads)
        row("  against count(*), sum(length(title)), sum(id), sum(n), total(r)",
            "%.0f ms (CPU %.0f ms)" % (vw * 1e3, vc * 1e3),
            "%.0f ms (CPU %.0f ms)" % (rw * 1e3, rc * 1e3),
            "%.2fx (CPU %.2fx)" % (vw / rw, vc / rc))
        row("sync_verify in sync, wire (gzip)", "%s (sent %s, received %s; %d requests)"
            % (kb(last["wire"]), kb(last["sent"]), kb(last["received"]),
               last["report"]["requests"] + 1), "", "", "<= 64 KB")
        row("  its report's bytes (bodies, decoded)", "%d" % last["report"]["bytes"])
        db.execute("SELECT sync_config('compress', 'off')").fetchone()
        plain = verify(db, relay)
        db.execute("SELECT sync_config('compress', 'on')").fetchone()
        row("sync_verify in sync, wire (compress off)", "%s (sent %s, received %s)"
            % (kb(plain["wire"]), kb(plain["sent"]), kb(plain["received"])), "", "", "<= 64 KB")

        for round_, (mode, full) in enumerate((("on", full_gz), ("off", full_id))):
            db.execute("SELECT sync_config('compress', ?)", (mode,)).fetchone()
            ids = tamper(sdb, a.changes, round_)
            want = digest(sqlite3.connect(sdb, timeout=60), ids)
            v = verify(db, relay)
            if v["report"]["diverged"] != len(ids) or digest(db, ids) != want:
                raise RuntimeError("the repair left the client unlike the server: %s"
                                   % v["report"])
            label = "gzip" if mode == "on" else "compress off"
            row("repair of %d keys (%s), time" % (len(ids), label),
                "%.0f ms (CPU %.0f ms), %d requests"
                % (v["wall"] * 1e3, v["cpu"] * 1e3, v["report"]["requests"] + 1),
                "in sync %.0f ms" % (vw * 1e3), "%.2fx" % (v["wall"] / vw))
            row("repair of %d keys (%s), wire" % (len(ids), label),
                "%s (sent %s, received %s; report's bytes %s)"
                % (kb(v["wire"]), kb(v["sent"]), kb(v["received"]), kb(v["report"]["bytes"])),
                "full sync %.1f MB" % (full / 1e6), "%.3f%%" % (100 * v["wire"] / full), "<= 1%")
        db.execute("SELECT sync_config('compress', 'on')").fetchone()
        steps = walk_steps(db, server.addr, sdb, a.changes)

        print("\n| what | figure | baseline (same run) | ratio | target |")
        print("| --- | --- | --- | --- | --- |")
        for r in out:
            print("| %s |" % " | ".join(r))
        print("\nThe repair of %d more keys request by request (sync_verify_request and"
              " sync_verify_answer, straight to syncd):\n" % a.changes)
        print("| request | prefixes | split / rows | body | answer | answer gzip |")
        print("| --- | ---: | --- | ---: | ---: | ---: |")
        tot = [0, 0, 0]
        for i, (n, kind, body, plain, gz) in enumerate(steps):
            print("| %d | %d | %s | %s | %s | %s |" % (i + 1, n, kind, kb(body), kb(plain), kb(gz)))
            tot = [tot[0] + body, tot[1] + plain, tot[2] + gz]
        print("| all | | | %s | %s | %s |" % tuple(kb(x) for x in tot))
    finally:
        if db:
            db.close()
        if relay:
            relay.close()
        if server:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
