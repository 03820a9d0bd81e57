"""Live clients on one syncd (issue 17, part 2): N open event streams.

    /usr/bin/python3 bench/net/streambench.py [--sizes 100,1000,10000]
        [--changes K] [--syncd PATH] [--baseline PATH] [--pg URL]

For each size N, and for each syncd given (this build, then --baseline,
e.g. main's thread-per-connection syncd built in a scratch directory), a
fresh syncd on 127.0.0.1 with SQLite storage (or PostgreSQL at --pg) gets N
event streams, one per client id (c0 .. cN-1), opened in batches until
each has its ": ok". Then K pushes of --rows inserts each (default 1), one
at a time, each after the previous one reached every stream:

  rss       syncd's VmRSS with the N streams open (before the changes), at
            the end, and its peak while the changes went out (sampled every
            5 ms), and its thread count
  deliver   per stream and change, from just before the push is sent to
            the read in which that stream's "event: changes" arrived
            (so it includes the push's own time, and this client's time
            to get round N sockets on one thread: an upper bound)
  --gzip    the streams ask for gzip (Accept-Encoding), as the extension
            does unless its compress setting is off: each keeps a deflate
            state in syncd

  health    GET /health, and POST /push of an empty batch, from a second
            process, one after the other every 50 ms while the changes go
            out (and between them): their latency

The descriptor limit is raised here (to the hard limit) for this process
and for syncd, not in syncd's code. It measures, it never fails on speed.
Standard library only; no extension needed.
"""
import argparse
import http.client
import json
import os
import resource
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
DDL = "CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL);\n"
BATCH = 500  # streams opened at once: within the listen backlog

PROBE = r"""
import http.client, json, select, sys, time
host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
health, push = [], []
body = json.dumps({"client_id": "probe", "mutations": []})
while not select.select([sys.stdin], [], [], 0.05)[0]:
    for kind, lat in (("h", health), ("p", push)):
        c = http.client.HTTPConnection(host, port, timeout=30)
        t0 = time.perf_counter()
        try:
            if kind == "h":
                c.request("GET", "/health")
            else:
                c.request("POST", "/push", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            ok = r.status == 200
        except OSError:
            ok = False
        lat.append((time.perf_counter() - t0) * 1e3 if ok else -1.0)
        c.close()
with open(out, "w") as f:
    json.dump({"health": health, "push": push}, f)
"""


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def proc_status(pid):
    rss = threads = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


class Syncd:
    def __init__(self, binary, dir, n, pg=None):
        os.makedirs(dir, exist_ok=True)
        sp = os.path.join(dir, "schema.sql")
        with open(sp, "w") as f:
            f.write(DDL)
        store = ["--db", os.path.join(dir, "server.db")]
        if pg:
            subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", pg, "-c",
                            "DROP SCHEMA public CASCADE; CREATE SCHEMA public"],
                           check=True, capture_output=True)
            store = ["--pg", pg]
        self.log = open(os.path.join(dir, "syncd.log"), "ab")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--schema", sp,
             "--max-connections", str(n * 17 // 16 + 300), "--max-streams-per-client", "2",
             "--heartbeat", "15"] + store,
            stdout=subprocess.PIPE, stderr=self.log, preexec_fn=raise_nofile)
        ready, _, _ = select.select([self.proc.stdout], [], [], 120)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError("syncd did not start (see %s/syncd.log)" % dir)
        self.port = int(line.strip().rsplit(":", 1)[1])

    def push(self, client, mid, key, rows=1):
        """rows inserts in one batch, ids mid.., keys key.0, key.1, ..."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        body = json.dumps({"client_id": client, "mutations": [
            {"id": mid + i, "table": "todos", "op": "insert", "pk": {"id": "%s.%d" % (key, i)},
             "data": {"id": "%s.%d" % (key, i), "title": "a title of about forty characters %d" % i}}
            for i in range(rows)]})
        c.request("POST", "/push", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        if r.status != 200:
            raise RuntimeError("push: %d %s" % (r.status, data[:200]))

    def stop(self):
        """SIGTERM; the seconds it took to exit (None: killed after 60 s)."""
        t0 = time.perf_counter()
        took = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
                took = time.perf_counter() - t0
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        return took


class Streams:
    """n raw event streams on one epoll, counting "event: changes" (with
    gzip: in the body as decoded from its chunks and the gzip member)."""

    def __init__(self, port, n, gzip=False):
        self.gzip = gzip
        self.raw, self.body, self.gz = {}, {}, {}
        self.ep = select.epoll()
        self.socks, self.seen, self.tail, self.ok = {}, {}, {}, set()
        self.closed, self.started = set(), set()
        self.at = {}  # fd -> time its latest event arrived
        for start in range(0, n, BATCH):
            fresh = []
            for i in range(start, min(n, start + BATCH)):
                k = socket.socket()
                k.setblocking(False)
                k.connect_ex(("127.0.0.1", port))
                fresh.append((i, k))
            for i, k in fresh:
                self.socks[k.fileno()] = k
                self.seen[k.fileno()] = 0
                self.tail[k.fileno()] = b""
                k.setblocking(True)
                k.settimeout(60)
                k.sendall(b"GET /events?client_id=c%d HTTP/1.1\r\nHost: x\r\n"
                          b"Accept: text/event-stream\r\n%s\r\n" %
                          (i, b"Accept-Encoding: gzip\r\n" if gzip else b""))
                if gzip:
                    self.raw[k.fileno()] = b""
                    self.body[k.fileno()] = False
                    self.gz[k.fileno()] = zlib.decompressobj(16 + 15)
                k.setblocking(False)
                self.ep.register(k.fileno(), select.EPOLLIN)
            t0 = time.monotonic()
            while len(self.ok) < min(n, start + BATCH):
                if time.monotonic() - t0 > 120:
                    raise RuntimeError("only %d of %d streams opened" % (len(self.ok), n))
                self.poll(1.0)

    def poll(self, timeout):
        for fd, _ in self.ep.poll(timeout):
            k = self.socks[fd]
            try:
                data = k.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            now = time.perf_counter()
            if not data:
                self.ep.unregister(fd)
                self.closed.add(fd)
                continue
            if self.gzip:
                data = self.decode(fd, data)
            buf = self.tail[fd] + data
            if fd not in self.started and buf:
                self.started.add(fd)
                if not buf.startswith(b"HTTP/1.1 200 "):
                    raise RuntimeError("stream refused: %r" % buf[:200])
            if fd not in self.ok and b": ok" in buf:
                self.ok.add(fd)
            got = buf.count(b"event: changes")
            if got:
                self.seen[fd] += got
                self.at[fd] = now
            self.tail[fd] = buf[-16:]

    def decode(self, fd, data):
        """The head as it came, then the body's chunks inflated."""
        raw = self.raw[fd] + data
        out = b""
        if not self.body[fd]:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                self.raw[fd] = raw
                return b""
            out, raw = raw[:end + 4], raw[end + 4:]
            if b"content-encoding: gzip" not in out.lower():
                raise RuntimeError("stream not gzipped: %r" % out[:300])
            self.body[fd] = True
        while True:
            eol = raw.find(b"\r\n")
            if eol < 0:
                break
            size = int(raw[:eol].split(b";")[0], 16)
            if len(raw) < eol + 2 + size + 2:
                break
            out += self.gz[fd].decompress(raw[eol + 2:eol + 2 + size])
            raw = raw[eol + 2 + size + 2:]
        self.raw[fd] = raw
        return out

    def close(self):
        for k in self.socks.values():
            k.close()
        self.ep.close()


def run(binary, label, n, changes, pg, tmp, gzip, rows):
    d = tempfile.mkdtemp(prefix="streams-", dir=tmp)
    s = Syncd(binary, d, n, pg)
    out = {"label": label, "n": n}
    streams = None
    try:
        t0 = time.perf_counter()
        streams = Streams(s.port, n, gzip)
        out["open_s"] = time.perf_counter() - t0
        time.sleep(1)
        out["rss_open"], out["threads"] = proc_status(s.proc.pid)
        probe_out = os.path.join(d, "probe.json")
        probe = subprocess.Popen([sys.executable, "-c", PROBE, "127.0.0.1", str(s.port),
                                  probe_out], stdin=subprocess.PIPE, text=True)
        lat, missing = [], 0
        peak, sampling = [out["rss_open"]], []

        def sample():  # the RSS peak while events are built and sent
            while not sampling:
                try:
                    peak[0] = max(peak[0], proc_status(s.proc.pid)[0])
                except OSError:
                    return
                time.sleep(0.005)
        sampler = threading.Thread(target=sample)
        sampler.start()
        for k in range(changes):
            want = k + 1
            t0 = time.perf_counter()
            s.push("writer", k * rows + 1, "k%d" % k, rows)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if all(v >= want for fd, v in streams.seen.items() if fd not in streams.closed):
                    break
                streams.poll(0.05)
            for fd, v in streams.seen.items():
                if v >= want and fd in streams.at:
                    lat.append((streams.at[fd] - t0) * 1e3)
                else:
                    missing += 1
            time.sleep(0.2)
        sampling.append(1)
        sampler.join()
        out["rss_peak"] = peak[0]
        probe.stdin.write("stop\n")
        probe.stdin.flush()
        probe.stdin.close()
        probe.wait(60)
        with open(probe_out) as f:
            pr = json.load(f)
        out["rss_end"], _ = proc_status(s.proc.pid)
        out["p50"], out["p99"], out["max"] = pct(lat, 50), pct(lat, 99), max(lat or [0])
        out["missing"] = missing
        out["closed"] = len(streams.closed)
        for kind in ("health", "push"):
            ok = [x for x in pr[kind] if x >= 0]
            out[kind + "_p50"], out[kind + "_p99"] = pct(ok, 50), pct(ok, 99)
            out[kind + "_max"] = max(ok or [0])
            out[kind + "_failed"] = len(pr[kind]) - len(ok)
            out[kind + "_n"] = len(pr[kind])
    except Exception as e:  # a model that cannot hold N streams is a result too
        out["error"] = str(e)[:200]
        try:
            out["rss_open"], out["threads"] = proc_status(s.proc.pid)
        except OSError:
            pass
    finally:
        out["stop_s"] = s.stop()
        if streams:
            streams.close()
        shutil.rmtree(d, ignore_errors=True)
    return out


def show(r):
    if "error" in r:
        print("%-9s %6d  FAILED: %s (rss %.0f MB, %s threads)" %
              (r["label"], r["n"], r["error"], r.get("rss_open", 0), r.get("threads", "?")),
              flush=True)
        return
    print("%-9s %6d  open %5.1fs  rss %6.1f/%6.1f MB peak %6.1f  thr %5d  deliver p50 %6.1f p99 %6.1f "
          "max %6.1f ms  miss %d  health p99 %5.1f max %5.1f  push p99 %5.1f max %5.1f ms "
          "(n %d, %d failed)  stop %s" %
          (r["label"], r["n"], r["open_s"], r["rss_open"], r["rss_end"], r["rss_peak"],
           r["threads"],
           r["p50"], r["p99"], r["max"], r["missing"], r["health_p99"], r["health_max"],
           r["push_p99"], r["push_max"], r["health_n"], r["health_failed"] + r["push_failed"],
           "%.2fs" % r["stop_s"] if r["stop_s"] is not None else "killed"), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--syncd", default=os.path.join(TOP, "server", "syncd"))
    ap.add_argument("--baseline", help="another syncd to measure alongside")
    ap.add_argument("--pg", help="PostgreSQL storage at this URL (emptied for each run)")
    ap.add_argument("--json", help="write every result to this file")
    ap.add_argument("--rows", type=int, default=1,
                    help="rows per change (one push of that many inserts)")
    ap.add_argument("--gzip", action="store_true",
                    help="streams ask for gzip, as the extension does (compress on)")
    args = ap.parse_args()
    hard = raise_nofile()
    sizes = [int(x) for x in args.sizes.split(",")]
    if max(sizes) + 600 > hard:
        sys.exit("streambench: the descriptor hard limit (%d) is too low for %d streams"
                 % (hard, max(sizes)))
    with open("/proc/loadavg") as f:
        print("load before: %s" % " ".join(f.read().split()[:3]), flush=True)
    tmp = tempfile.mkdtemp(prefix="streambench-")
    results = []
    try:
        for n in sizes:
            for binary, label in [(args.syncd, "this")] + (
                    [(args.baseline, "baseline")] if args.baseline else []):
                r = run(binary, label + ("+gz" if args.gzip else ""), n, args.changes,
                        args.pg, tmp, args.gzip, args.rows)
                results.append(r)
                show(r)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open("/proc/loadavg") as f:
        print("load after: %s" % " ".join(f.read().split()[:3]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
