"""Compression benchmark (issue 16): what gzip saves and costs.

    /usr/bin/python3 bench/net/gzbench.py [--rows N] [--changes K] [--reps R]
    (--rows 0: the live figures only)

Two syncds on 127.0.0.1 with the same seeded data, one as built (gzip for
clients that ask) and one with --no-compress, and clients that load
ext/sync.so (Debian's /usr/bin/python3):

  initial   sync_pull() of N typical rows into an empty database (in a
            child process), from each server in turn, the fastest of
            --reps runs each; the bytes are those of the
            same pages fetched again with and without Accept-Encoding: gzip
            (bodies plus heads, as the client's libcurl receives them)
  live      a one-row push to syncd until the row is readable in a client
            whose worker holds the event stream (woken by sync_wait),
            K changes, the two servers (fresh, unseeded) interleaved change
            by change

Loopback has no bandwidth limit, so the times here are compression's cost;
the saving is in the bytes (a line per link speed derives what they would
take). It measures, it never fails on speed. Standard library only.
"""
import argparse
import glob
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import zlib

import netbench
from netbench import client, load, one, pct, status

# Typical rows: a random uuid, a title of words, a flag, an owner among
# fifty, a timestamp, a note on one row in four.
DDL = ("CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL"
       " DEFAULT 0, owner TEXT, created_at TEXT, note TEXT);")
SEED = ("INSERT INTO todos WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k"
        " WHERE i + 1 < %d) SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-'"
        " || hex(randomblob(2)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(6))),"
        " printf('%%s the %%s for %%s', CASE i %% 4 WHEN 0 THEN 'buy' WHEN 1 THEN 'call about'"
        " WHEN 2 THEN 'fix' ELSE 'write up' END, CASE i %% 5 WHEN 0 THEN 'milk' WHEN 1 THEN"
        " 'invoice' WHEN 2 THEN 'garden fence' WHEN 3 THEN 'quarterly report' ELSE 'bike' END,"
        " CASE i %% 3 WHEN 0 THEN 'Monday' WHEN 1 THEN 'the team' ELSE 'next week' END) || ' #' || i,"
        " i %% 3 = 0, 'user' || (i %% 50) || '@example.com',"
        " strftime('%%Y-%%m-%%dT%%H:%%M:%%SZ', 1767225600 + i * 37, 'unixepoch'),"
        " CASE WHEN i %% 4 = 0 THEN 'remember to check the details with ' || (i %% 7) ||"
        " ' people before it is done' END FROM k;")


class Syncd(netbench.Syncd):
    """netbench's syncd with extra arguments (--no-compress)."""

    def __init__(self, dir, schema, extra):
        real = netbench.SYNCD
        wrapper = os.path.join(dir, "syncd.sh")
        os.makedirs(dir, exist_ok=True)
        with open(wrapper, "w") as f:
            f.write('#!/bin/sh\nexec %s "$@" %s\n' % (real, " ".join(extra)))
        os.chmod(wrapper, 0o755)
        netbench.SYNCD = wrapper
        try:
            super().__init__(dir, schema)
        finally:
            netbench.SYNCD = real


def pull_child(dbpath, url):
    """Child process: sync_pull() into an empty database; prints JSON."""
    c = client(dbpath, url)
    c.execute(DDL.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
    t0, cpu0 = time.perf_counter(), time.process_time()
    n = one(c, "SELECT sync_pull()")
    t, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(json.dumps({"pulled": n, "rows": one(c, "SELECT count(*) FROM todos"), "secs": t,
                      "cpu": cpu}))


def wire_bytes(url, gzip):
    """Bytes of the pages of a first sync (limit 1000, as the client asks)
    as received: status line, heads and body; and the decoded size."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    cursor, wire, plain = "", 0, 0
    hdrs = {"Accept-Encoding": "gzip"} if gzip else {}
    while True:
        q = urllib.parse.urlencode({"client_id": "bytes", "cursor": cursor, "limit": 1000})
        conn.request("GET", "/pull?" + q, headers=hdrs)
        r = conn.getresponse()
        body = r.read()
        head = len("HTTP/1.1 200 OK\r\n") + sum(len(k) + len(v) + 4 for k, v in r.getheaders()) + 2
        wire += head + len(body)
        if r.getheader("Content-Encoding") == "gzip":
            body = zlib.decompress(body, 16 + 15)
        plain += len(body)
        page = json.loads(body)
        cursor = page["cursor"]
        if not page["has_more"]:
            return wire, plain


def initial(tmp, servers, n, reps):
    """The fastest of reps first syncs from each server, the servers taking
    turns (gzip first, then identity first, ...), with the bytes."""
    res = {}
    names = list(servers)
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            s = servers[name]
            dbpath = os.path.join(tmp, "c-%s-%d.db" % (name, rep))
            cpu0 = s.cpu()
            p = subprocess.run([sys.executable, __file__, "--pull-child", dbpath, s.url],
                               capture_output=True, text=True, timeout=7200)
            if p.returncode:
                raise RuntimeError("pull child: " + p.stderr[-500:])
            r = json.loads(p.stdout)
            r["server_cpu"] = s.cpu() - cpu0
            for f in glob.glob(dbpath + "*"):
                os.unlink(f)
            if r["rows"] != n:
                raise RuntimeError("initial sync: %d of %d rows" % (r["rows"], n))
            print("  %s, run %d: %.2f s" % (name, rep + 1, r["secs"]), flush=True)
            if name not in res or r["secs"] < res[name]["secs"]:
                res[name] = r
    for name, s in servers.items():
        res[name]["wire"], res[name]["plain"] = wire_bytes(s.url, name == "gzip")
    return res


def live(tmp, servers, k):
    cs = {}
    for name, s in servers.items():
        b = client(os.path.join(tmp, "live-%s.db" % name), s.url)
        b.execute(DDL.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
        one(b, "SELECT sync_start()")
        t_end = time.monotonic() + 60
        while not status(b)["sse_connected"]:
            if time.monotonic() > t_end:
                raise RuntimeError("SSE did not connect")
            time.sleep(0.01)
        while one(b, "SELECT sync_wait(200)") is not None:
            pass
        cs[name] = (b, s.conn())
    lat = {name: [] for name in servers}
    for i in range(k):
        for name, (b, conn) in cs.items():
            key = "live-%06d" % i
            body = json.dumps({"client_id": "writer", "mutations": [
                {"id": i + 1, "table": "todos", "op": "insert", "pk": {"id": key},
                 "data": {"id": key, "title": "a live change number %d" % i, "done": 0,
                          "owner": "user7@example.com", "created_at": "2026-12-02T10:00:00Z"}}]})
            t0 = time.perf_counter()
            netbench.post(conn, "/push", body)
            while one(b, "SELECT 1 FROM todos WHERE id = ?", (key,)) is None:
                if one(b, "SELECT sync_wait(10000)") is None:
                    raise RuntimeError("change %d never arrived" % i)
            lat[name].append(time.perf_counter() - t0)
    for b, conn in cs.values():
        one(b, "SELECT sync_stop()")
        b.close()
        conn.close()
    return lat


def seeded(tmp, servers, a):
    """The initial sync figures, from two syncds seeded with a.rows rows."""
    t0 = time.perf_counter()
    servers["gzip"] = Syncd(os.path.join(tmp, "gz"), DDL + SEED % a.rows, [])
    servers["identity"] = Syncd(os.path.join(tmp, "id"), DDL + SEED % a.rows,
                                ["--no-compress"])
    print("two syncds seeded with %d rows in %.1f s" % (a.rows, time.perf_counter() - t0),
          flush=True)
    r = initial(tmp, servers, a.rows, a.reps)
    g, i = r["gzip"], r["identity"]
    mb = 1e6
    print("| initial sync of %d rows (best of %d) | gzip | identity | gzip / identity |"
          % (a.rows, a.reps))
    print("|---|---|---|---|")
    print("| bytes received (heads + bodies) | %.2f MB | %.2f MB | %.3f (%.1fx fewer) |"
          % (g["wire"] / mb, i["wire"] / mb, g["wire"] / i["wire"], i["wire"] / g["wire"]))
    print("| JSON decoded | %.2f MB | %.2f MB | |" % (g["plain"] / mb, i["plain"] / mb))
    print("| sync_pull() on loopback | %.2f s | %.2f s | %.2fx |"
          % (g["secs"], i["secs"], g["secs"] / i["secs"]))
    print("| client CPU | %.2f s | %.2f s | |" % (g["cpu"], i["cpu"]))
    print("| syncd CPU | %.2f s | %.2f s | |" % (g["server_cpu"], i["server_cpu"]))
    for mbit in (10, 100):
        print("| derived: bytes at %d Mbit/s | %.1f s | %.1f s | |"
              % (mbit, g["wire"] * 8 / (mbit * 1e6), i["wire"] * 8 / (mbit * 1e6)))
    sys.stdout.flush()


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--pull-child":
        return pull_child(sys.argv[2], sys.argv[3])
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--changes", type=int, default=300)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="gzbench-")
    servers = {}
    print("load before: %s" % load(), flush=True)
    try:
        if a.rows:
            seeded(tmp, servers, a)
        # the live clients start from empty servers: a first sync of the
        # seeded rows would only delay them
        for s in servers.values():
            s.stop()
        servers.clear()
        servers["gzip"] = Syncd(os.path.join(tmp, "live-gz"), DDL, [])
        servers["identity"] = Syncd(os.path.join(tmp, "live-id"), DDL, ["--no-compress"])
        lat = live(tmp, servers, a.changes)
        ms = 1000
        print()
        print("| push to readable, %d changes, interleaved | gzip | identity | difference |"
              % a.changes)
        print("|---|---|---|---|")
        for p in (50, 90, 99):
            print("| p%d | %.2f ms | %.2f ms | %+.2f ms |"
                  % (p, ms * pct(lat["gzip"], p), ms * pct(lat["identity"], p),
                     ms * (pct(lat["gzip"], p) - pct(lat["identity"], p))))
        print("\nload after: %s" % load())
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
