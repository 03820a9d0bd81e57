"""Network benchmark of the sync path (issue 6, figures 4 to 8).

    /usr/bin/python3 bench/net/netbench.py [--only 4,5,6,7,8] [--quick] [--no-pg]

Drives a real server/syncd on 127.0.0.1 and clients that load ext/sync.so
(Debian's /usr/bin/python3, whose sqlite3 module can load extensions), and
prints one table: every figure next to a baseline measured in the same run
(the machine is shared and noisy, so ratios drift less than times), plus
the machine's load. `make bench-net` runs it; it measures, it never fails on
speed. Standard library only.

  4 drain     sync_push() of N pending mutations vs the same rows inserted
              directly into a store like the server's in one transaction,
              and vs raw HTTP POSTs of the same bodies (the server alone);
              then the same N drained by the background worker (sync_start)
  5 initial   sync_pull() of N rows into an empty database (in a child
              process, for its peak RSS) vs fetching the same pages over
              HTTP and loading them with INSERT ... SELECT FROM json_each
  6 latency   a push to syncd until the row is readable in another client
              (worker + SSE, woken by sync_wait) vs a loopback HTTP round trip
  7 scale     200 SSE clients get every change (fan-out vs one client);
              50 clients pushing for 30 s (vs one client); both again with
              syncd on PostgreSQL (tests/pg_env.sh) unless --no-pg
  8 growth    drain and apply time per mutation at 10k, 100k, 1M; the query
              plans of the outbox and change-log lookups
"""
import argparse
import glob
import http.client
import json
import os
import select
import selectors
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SYNCD = os.path.join(ROOT, "server", "syncd")
EXT = os.path.join(ROOT, "ext", "sync")
PG_ENV = os.path.join(ROOT, "tests", "pg_env.sh")
DDL = ("CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL,"
       " done INTEGER NOT NULL DEFAULT 0);")
TICK = os.sysconf("SC_CLK_TCK")

rows_out = []  # (figure, what, value, baseline, ratio, target)


def out(fig, what, value, base="", ratio="", target=""):
    rows_out.append((fig, what, value, base, ratio, target))
    print(f"  [{fig}] {what}: {value}" + (f"  (baseline {base}, ratio {ratio})" if base else ""),
          file=sys.stderr, flush=True)


def rid(i):
    return "r%07d" % i


# ---- processes ----

class Syncd:
    """syncd on 127.0.0.1:0 with SQLite storage in dir (or PostgreSQL at pg)."""

    def __init__(self, dir, schema=DDL, pg=None, fresh=True):
        os.makedirs(dir, exist_ok=True)
        sp = os.path.join(dir, "schema.sql")
        with open(sp, "w") as f:
            f.write(schema)
        self.db = os.path.join(dir, "server.db")
        store = ["--pg", pg] if pg else ["--db", self.db]
        if pg and fresh:  # every run starts from an empty database, as with SQLite
            subprocess.run([psql(), "-q", "-v", "ON_ERROR_STOP=1", pg, "-c",
                            "DROP SCHEMA public CASCADE; CREATE SCHEMA public"],
                           check=True, capture_output=True)
        self.log = open(os.path.join(dir, "syncd.log"), "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([SYNCD, "--listen", "127.0.0.1:0", "--schema", sp,
                                      "--max-connections", "2000"] + store,
                                     stdout=subprocess.PIPE, stderr=self.log)
        ready, _, _ = select.select([self.proc.stdout], [], [], 600)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError("syncd did not start (see %s/syncd.log)" % dir)
        self.startup = time.perf_counter() - t0
        self.url = line.strip()
        self.port = urllib.parse.urlsplit(self.url).port

    def cpu(self):
        """CPU seconds (user + system) syncd used so far."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

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


def psql():
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))
    return bins[-1] if bins else "psql"


def post(conn, path, body):
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError("POST %s: %d %s" % (path, r.status, data[:200]))
    return data


def get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError("GET %s: %d %s" % (path, r.status, data[:200]))
    return data


def client(path, url, batch=None):
    """A client database: todos created, sync_init'd, tracked."""
    c = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    c.execute("PRAGMA journal_mode = WAL")
    c.enable_load_extension(True)
    c.load_extension(EXT)
    c.execute(DDL.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
    c.execute("SELECT sync_init(?)", (url,)).fetchone()
    c.execute("SELECT sync_track('todos')").fetchone()
    if batch:
        c.execute("SELECT sync_config('batch_size', ?)", (batch,)).fetchone()
    return c


def one(c, sql, args=()):
    row = c.execute(sql, args).fetchone()
    return row[0] if row else None


def status(c):
    cur = c.execute("SELECT * FROM sync_status")
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchone()))


def fill(c, n, start=0):
    c.execute("BEGIN")
    c.executemany("INSERT INTO todos(id, title) VALUES(?, ?)",
                  ((rid(i), "row %d" % i) for i in range(start, start + n)))
    c.execute("COMMIT")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---- 4: drain ----

def drain(tmp, n, batch):
    """Seconds for sync_push() of n pending inserts, and the CPU seconds of
    syncd and of this process (the client: sync_push runs on this thread)."""
    d = tempfile.mkdtemp(dir=tmp)
    s = Syncd(d)
    try:
        c = client(os.path.join(d, "a.db"), s.url, batch)
        fill(c, n)
        cpu0, t0, own0 = s.cpu(), time.perf_counter(), time.process_time()
        pushed = one(c, "SELECT sync_push()")
        wall, cpu = time.perf_counter() - t0, s.cpu() - cpu0
        own = time.process_time() - own0
        if pushed != n or one(c, "SELECT sync_pending()") != 0:
            raise RuntimeError("drain: pushed %s of %d" % (pushed, n))
        c.close()
        got = sqlite3.connect(s.db).execute("SELECT count(*) FROM todos").fetchone()[0]
        if got != n:
            raise RuntimeError("drain: server has %d of %d rows" % (got, n))
        return wall, cpu, own
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


def drain_worker(tmp, n):
    """Seconds for the background worker (sync_start, default batch_size)
    to drain n pending inserts, from its start until sync_pending() is 0
    (polled every 5 ms), and syncd's CPU seconds meanwhile."""
    d = tempfile.mkdtemp(dir=tmp)
    s = Syncd(d)
    try:
        c = client(os.path.join(d, "a.db"), s.url)
        one(c, "SELECT sync_pull()")  # the worker pushes once it has a cursor
        fill(c, n)
        cpu0, t0 = s.cpu(), time.perf_counter()
        one(c, "SELECT sync_start()")
        while one(c, "SELECT sync_pending()") > 0:
            time.sleep(0.005)
        wall, cpu = time.perf_counter() - t0, s.cpu() - cpu0
        one(c, "SELECT sync_stop()")
        c.close()
        got = sqlite3.connect(s.db).execute("SELECT count(*) FROM todos").fetchone()[0]
        if got != n:
            raise RuntimeError("worker drain: server has %d of %d rows" % (got, n))
        return wall, cpu
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


def bodies(n, batch, client_id="raw"):
    for k in range(0, n, batch):
        yield json.dumps({"client_id": client_id, "mutations": [
            {"id": i + 1, "table": "todos", "op": "insert", "pk": {"id": rid(i)},
             "data": {"id": rid(i), "title": "row %d" % i, "done": 0}}
            for i in range(k, min(n, k + batch))]})


def raw_posts(tmp, n, batch):
    """Seconds to POST the same mutations straight to a fresh syncd."""
    d = tempfile.mkdtemp(dir=tmp)
    s = Syncd(d)
    try:
        conn = s.conn()
        pre = list(bodies(n, batch))
        cpu0, t0 = s.cpu(), time.perf_counter()
        for b in pre:
            post(conn, "/push", b)
        return time.perf_counter() - t0, s.cpu() - cpu0
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


def direct(tmp, n):
    """Seconds to insert the same rows into a WAL store in one transaction."""
    p = os.path.join(tmp, "direct.db")
    c = sqlite3.connect(p, isolation_level=None)
    c.execute("PRAGMA journal_mode = WAL")
    c.execute(DDL)
    t0 = time.perf_counter()
    fill(c, n)
    t = time.perf_counter() - t0
    c.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(p + suffix):
            os.remove(p + suffix)
    return t


def fig4(tmp, a):
    n = a.drain
    for batch in (100, 1000):
        wall, cpu, own = drain(tmp, n, batch)
        raw, rawcpu = raw_posts(tmp, n, batch)
        base = direct(tmp, n)
        tag = "batch_size %d%s" % (batch, " (default)" if batch == 1000 else "")
        out(4, "drain %d, %s: mutations/s (target >= 50000)" % (n, tag),
            "%.0f/s (%.2f s)" % (n / wall, wall), "direct INSERT %.2f s" % base,
            "%.1fx" % (wall / base), ">= 50000/s")
        out(4, "  server's share (%s): syncd CPU / drain wall" % tag,
            "%.2f s CPU = %.0f%%" % (cpu, 100 * cpu / wall), "raw POSTs of the bodies %.2f s"
            % raw, "%.0f%% of drain" % (100 * raw / wall))
        out(4, "  CPU per mutation (%s): client + syncd" % tag, "%.1f + %.1f us" %
            (1e6 * own / n, 1e6 * cpu / n), "= %.0f/s if they ran back to back on an idle core"
            % (n / (own + cpu)))
        if batch == 100:
            a.growth_drain[n] = (wall, cpu + own)
    pushed = wall
    wall, cpu = drain_worker(tmp, n)
    out(4, "drain %d by the worker (sync_start, batch_size 1000): mutations/s" % n,
        "%.0f/s (%.2f s)" % (n / wall, wall), "sync_push() above %.2f s" % pushed,
        "%.2fx" % (wall / pushed), ">= 50000/s")
    out(4, "  server's share (worker): syncd CPU / drain wall",
        "%.2f s CPU = %.0f%%" % (cpu, 100 * cpu / wall))


# ---- 5: initial sync ----

def seeded_server(tmp, n, pg=None):
    """A syncd whose schema file inserts n rows (logged by its backfill)."""
    d = tempfile.mkdtemp(dir=tmp)
    seed = DDL
    if n:
        seed += ("INSERT INTO todos(id, title) WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL"
                 " SELECT i + 1 FROM k WHERE i + 1 < %d) SELECT printf('r%%07d', i),"
                 " 'row ' || i FROM k;" % n)
    return d, Syncd(d, seed, pg)


def pull_child(dbpath, url):
    """Child process: sync_pull() into an empty database; prints JSON."""
    c = client(dbpath, url)
    rss0 = vm("VmHWM")
    t0, cpu0 = time.perf_counter(), time.process_time()
    n = one(c, "SELECT sync_pull()")
    t, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rows = one(c, "SELECT count(*) FROM todos")
    print(json.dumps({"pulled": n, "rows": rows, "secs": t, "cpu": cpu, "hwm_before": rss0,
                      "hwm": vm("VmHWM")}))


def vm(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def plain_load(url, limit):
    """Seconds to GET the same pages and load them into a plain table with
    INSERT ... SELECT FROM json_each, one transaction per page."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.execute(DDL)
    cursor, total = "", 0
    t0 = time.perf_counter()
    while True:
        q = urllib.parse.urlencode({"client_id": "plain", "cursor": cursor, "limit": limit})
        page = get(conn, "/pull?" + q)
        c.execute("BEGIN")
        total += c.execute(
            "INSERT INTO todos(id, title, done) SELECT value->>'$.row.id',"
            " value->>'$.row.title', value->>'$.row.done' FROM json_each(?1, '$.changes')",
            (page,)).rowcount
        c.execute("COMMIT")
        meta = c.execute("SELECT ?1->>'$.cursor', ?1->>'$.has_more'", (page,)).fetchone()
        cursor = meta[0]
        if not meta[1]:
            break
    return time.perf_counter() - t0, total


def initial(tmp, n):
    d, s = seeded_server(tmp, n)
    try:
        cpu0 = s.cpu()
        p = subprocess.run([sys.executable, __file__, "--pull-child",
                            os.path.join(d, "c.db"), s.url],
                           capture_output=True, text=True, timeout=3600)
        if p.returncode:
            raise RuntimeError("pull child: " + p.stderr[-500:])
        r = json.loads(p.stdout)
        r["server_cpu"] = s.cpu() - cpu0
        if r["rows"] != n:
            raise RuntimeError("initial sync: %d of %d rows" % (r["rows"], n))
        base, got = plain_load(s.url, 1000)
        if got != n:
            raise RuntimeError("plain load: %d of %d rows" % (got, n))
        return r, base, s.startup
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


def fig5(tmp, a):
    n = a.initial
    r, base, startup = initial(tmp, n)
    mb = 1 << 20
    out(5, "initial sync of %d rows (target <= 10 s)" % n, "%.2f s (%.0f rows/s)"
        % (r["secs"], n / r["secs"]), "GET pages + INSERT..SELECT json_each %.2f s" % base,
        "%.2fx" % (r["secs"] / base), "<= 10 s")
    out(5, "  client peak RSS (target <= 64 MB)", "%.1f MB" % (r["hwm"] / mb),
        "same process before the pull %.1f MB" % (r["hwm_before"] / mb),
        "+%.1f MB" % ((r["hwm"] - r["hwm_before"]) / mb), "<= 64 MB")
    out(5, "  CPU: client + syncd", "%.2f + %.2f s" % (r["cpu"], r["server_cpu"]))
    out(5, "  (syncd start with backfill of %d rows)" % n, "%.1f s" % startup)
    a.growth_apply.setdefault(n, (r["secs"], r["cpu"]))


# ---- 6: live latency ----

def fig6(tmp, a):
    d = tempfile.mkdtemp(dir=tmp)
    s = Syncd(d)
    try:
        b = client(os.path.join(d, "b.db"), s.url)
        one(b, "SELECT sync_start()")
        t_end = time.monotonic() + 20
        while not status(b)["sse_connected"]:
            if time.monotonic() > t_end:
                raise RuntimeError("SSE did not connect")
            time.sleep(0.01)
        one(b, "SELECT sync_wait(0)")
        conn = s.conn()
        rtt = []
        for _ in range(a.changes):
            t0 = time.perf_counter()
            get(conn, "/health")
            rtt.append(time.perf_counter() - t0)
        lat, after_ack = [], []
        for i in range(a.changes):
            body = json.dumps({"client_id": "writer", "mutations": [
                {"id": i + 1, "table": "todos", "op": "insert", "pk": {"id": rid(i)},
                 "data": {"id": rid(i), "title": "live %d" % i}}]})
            t0 = time.perf_counter()
            post(conn, "/push", body)
            t_ack = time.perf_counter()
            while one(b, "SELECT 1 FROM todos WHERE id = ?", (rid(i),)) is None:
                if one(b, "SELECT sync_wait(10000)") is None:
                    raise RuntimeError("change %d never arrived" % i)
            t1 = time.perf_counter()
            lat.append(t1 - t0)
            after_ack.append(t1 - t_ack)
        one(b, "SELECT sync_stop()")
        b.close()
        ms = 1000
        out(6, "push to readable in another client, p50 (target <= 5 ms)",
            "%.2f ms" % (ms * pct(lat, 50)), "loopback HTTP round trip p50 %.3f ms"
            % (ms * pct(rtt, 50)), "%.1fx" % (pct(lat, 50) / pct(rtt, 50)), "<= 5 ms")
        out(6, "  p99 over %d changes (target <= 25 ms)" % a.changes, "%.2f ms"
            % (ms * pct(lat, 99)), "round trip p99 %.3f ms" % (ms * pct(rtt, 99)),
            "%.1fx" % (pct(lat, 99) / pct(rtt, 99)), "<= 25 ms")
        out(6, "  from the push's answer on, p50 / p99", "%.2f / %.2f ms"
            % (ms * pct(after_ack, 50), ms * pct(after_ack, 99)))
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


# ---- 7: scale ----

def fanout(tmp, n_clients, changes, pg=None):
    """Seconds from the last push's answer until every one of n_clients
    (worker + SSE) has all the changes."""
    d = tempfile.mkdtemp(dir=tmp)
    s = Syncd(d, DDL, pg)
    cs = []
    try:
        for k in range(n_clients):
            c = client(os.path.join(d, "c%03d.db" % k), s.url)
            one(c, "SELECT sync_start()")
            cs.append(c)
        t_end = time.monotonic() + 120
        while not all(status(c)["sse_connected"] for c in cs):
            if time.monotonic() > t_end:
                raise RuntimeError("not every SSE stream connected")
            time.sleep(0.05)
        conn = s.conn()
        t0, cpu0, own0 = time.perf_counter(), s.cpu(), time.process_time()
        main0 = time.thread_time()
        for i in range(changes):
            post(conn, "/push", json.dumps({"client_id": "writer", "mutations": [
                {"id": i + 1, "table": "todos", "op": "insert", "pk": {"id": rid(i)},
                 "data": {"id": rid(i), "title": "fan %d" % i}}]}))
        t_ack = time.perf_counter()
        todo = list(cs)
        t_end = time.monotonic() + 300
        while todo:
            todo = [c for c in todo if one(c, "SELECT count(*) FROM todos") < changes]
            if time.monotonic() > t_end:
                raise RuntimeError("%d clients missed changes" % len(todo))
            if todo:  # polling 200 databases must not starve their workers
                time.sleep(min(0.05, 0.002 * len(todo)))
        t1 = time.perf_counter()
        # this process runs every client's worker thread; the main thread's
        # own time (pushes, polling) is not theirs
        workers = time.process_time() - own0 - (time.thread_time() - main0)
        return t1 - t_ack, t1 - t0, workers, s.cpu() - cpu0
    finally:
        for c in cs:
            one(c, "SELECT sync_stop()")
            c.close()
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


def server_rows(s):
    """Rows the server holds, counted through an initial sync."""
    conn, cursor, n = s.conn(), "", 0
    while True:
        q = urllib.parse.urlencode({"client_id": "check", "cursor": cursor, "limit": 10000})
        page = json.loads(get(conn, "/pull?" + q))
        n += len(page["changes"])
        cursor = page["cursor"]
        if not page["has_more"]:
            return n


def raw_fanout(tmp, n_streams, changes, pg=None):
    """Seconds from the last push's answer until each of n_streams plain
    SSE readers (sockets, no client database) has an event whose id is the
    last version: syncd's own fan-out."""
    d = tempfile.mkdtemp(dir=tmp)
    s = Syncd(d, DDL, pg)
    socks = []
    try:
        sel = selectors.DefaultSelector()
        for k in range(n_streams):
            so = socket.create_connection(("127.0.0.1", s.port), timeout=30)
            so.sendall(b"GET /events?client_id=sse%d HTTP/1.1\r\nHost: x\r\n\r\n" % k)
            so.setblocking(False)
            socks.append(so)
            sel.register(so, selectors.EVENT_READ, [b"", 0])
        # every stream answered (": ok" comment) before the first push
        ready, t_end = 0, time.monotonic() + 60
        while ready < n_streams and time.monotonic() < t_end:
            for key, _ in sel.select(1):
                st = key.data
                st[0] += key.fileobj.recv(65536)
                if b": ok" in st[0] and st[1] == 0:
                    st[1], ready = -1, ready + 1
        if ready < n_streams:
            raise RuntimeError("only %d of %d streams opened" % (ready, n_streams))
        conn = s.conn()
        t0 = time.perf_counter()
        for i in range(changes):
            last = post(conn, "/push", json.dumps({"client_id": "writer", "mutations": [
                {"id": i + 1, "table": "todos", "op": "insert", "pk": {"id": rid(i)},
                 "data": {"id": rid(i), "title": "fan %d" % i}}]}))
        t_ack = time.perf_counter()
        head = json.loads(last)["results"][0]["version"]
        want, done, t_end = ("-%d\n" % head).encode(), 0, time.monotonic() + 300
        while done < n_streams:
            if time.monotonic() > t_end:
                raise RuntimeError("%d of %d streams missed changes" % (n_streams - done,
                                                                        n_streams))
            for key, _ in sel.select(1):
                st = key.data
                data = key.fileobj.recv(1 << 20)
                if not data:
                    raise RuntimeError("a stream ended")
                st[0] = (st[0] + data)[-4096:]
                if st[1] != 1 and want in st[0]:
                    st[1], done = 1, done + 1
                    sel.unregister(key.fileobj)
        t1 = time.perf_counter()
        return t1 - t_ack, t1 - t0
    finally:
        for so in socks:
            so.close()
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


def pushers(tmp, n_clients, secs, pg=None, n_syncd=1):
    """n_clients threads, each inserting 10 rows then sync_push(), for secs.
    Returns (mutations/s, errors, rows on the server == acked). n_syncd > 1
    (PostgreSQL): that many syncd on the one database, client k pushing to
    syncd k % n_syncd, as a balancer keeping each client on one would."""
    d = tempfile.mkdtemp(dir=tmp)
    s = Syncd(d, DDL, pg)
    more = [Syncd(os.path.join(d, "s%d" % i), DDL, pg, fresh=False) for i in range(1, n_syncd)]
    urls = [x.url for x in [s] + more]
    cs = [client(os.path.join(d, "p%03d.db" % k), urls[k % len(urls)]) for k in range(n_clients)]
    done, errors, lock = [0] * n_clients, [], threading.Lock()
    stop = time.monotonic() + secs

    def run(k):
        c, i = cs[k], 0
        try:
            while time.monotonic() < stop:
                c.execute("BEGIN")
                for _ in range(10):
                    c.execute("INSERT INTO todos(id, title) VALUES(?, ?)",
                              ("p%03d-%07d" % (k, i), "push %d" % i))
                    i += 1
                c.execute("COMMIT")
                done[k] += one(c, "SELECT sync_push()")
        except Exception as e:  # counted: the figure is "no error"
            with lock:
                errors.append("%s: %s" % (type(e).__name__, e))

    try:
        ts = [threading.Thread(target=run, args=(k,)) for k in range(n_clients)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wall = time.perf_counter() - t0
        total, rows = sum(done), server_rows(s)
        if rows != total:
            errors.append("server has %d rows, %d acked" % (rows, total))
        return total / wall, errors, rows == total, total
    finally:
        for c in cs:
            c.close()
        for x in more:
            x.stop()
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


def fig7_store(tmp, a, pg, label):
    one_t, one_all = raw_fanout(tmp, 1, a.fan_changes, pg)
    many_t, many_all = raw_fanout(tmp, a.sse_clients, a.fan_changes, pg)
    out(7, "%s: %d plain SSE streams all got %d changes: fan-out after the last answer"
        % (label, a.sse_clients, a.fan_changes), "%.3f s (%.3f s from the first push)"
        % (many_t, many_all), "1 stream %.3f s (%.3f s)" % (one_t, one_all),
        "%.1fx (%.1fx)" % (many_t / max(one_t, 1e-6), many_all / one_all))
    one_t, one_all, _, _ = fanout(tmp, 1, a.fan_changes, pg)
    many_t, many_all, own, cpu = fanout(tmp, a.sse_clients, a.fan_changes, pg)
    out(7, "%s: %d extension clients (worker + SSE) all got %d changes: after the last answer"
        % (label, a.sse_clients, a.fan_changes), "%.3f s (%.3f s from the first push)"
        % (many_t, many_all), "1 client %.3f s (%.3f s)" % (one_t, one_all),
        "%.1fx (%.1fx)" % (many_t / max(one_t, 1e-6), many_all / one_all))
    out(7, "  CPU meanwhile: the %d clients' workers, syncd" % a.sse_clients,
        "%.1f s, %.1f s" % (own, cpu),
        "per change per client %.0f us" % (1e6 * own / (a.sse_clients * a.fan_changes)))
    rate1, err1, ok1, _ = pushers(tmp, 1, a.push_secs / 3, pg)
    rate, errs, ok, total = pushers(tmp, a.pushers, a.push_secs, pg)
    out(7, "%s: %d clients pushing %d s: %d errors, server rows == acked: %s"
        % (label, a.pushers, a.push_secs, len(errs), "yes" if ok else "NO"),
        "%.0f mutations/s (%d)" % (rate, total), "1 client %.0f/s" % rate1,
        "%.2fx" % (rate / rate1), "0 errors")
    for e in errs[:3]:
        print("    error: " + e, file=sys.stderr)
    if err1 or not ok1:
        out(7, "  (1-client baseline had errors: %s)" % err1[:1], "")


def fig7(tmp, a):
    fig7_store(tmp, a, None, "SQLite")
    if a.no_pg:
        return
    pgdir = tempfile.mkdtemp(prefix="netbench-pg-")
    try:
        os.chmod(pgdir, 0o777)
        p = subprocess.run(["bash", PG_ENV, "start", pgdir], capture_output=True, text=True)
        if p.returncode:
            out(7, "PostgreSQL: not run", p.stderr.strip()[-120:])
            return
        url = p.stdout.strip().splitlines()[-1]
        try:
            fig7_store(tmp, a, url, "PostgreSQL")
        finally:
            subprocess.run(["bash", PG_ENV, "stop", pgdir], capture_output=True)
    finally:
        shutil.rmtree(pgdir, ignore_errors=True)


# ---- 8: growth ----

PLANS = {
    "client outbox: next batch": ("c", "SELECT id, tbl, op, pk, data FROM sync_outbox"
                                       " WHERE id > 5 ORDER BY id LIMIT 1000"),
    "client outbox: ack the ids of an answer": ("c", "DELETE FROM main.sync_outbox WHERE id IN"
                                                     " (SELECT value FROM json_each('[5,6]'))"),
    "server log: pull after cursor": ("s", "SELECT tbl, pk, row, version FROM _syncd_changes"
                                           " WHERE version > 5 ORDER BY version LIMIT 1001"),
    "server log: change of one row": ("s", "SELECT version FROM _syncd_changes WHERE tbl = 'todos'"
                                           " AND pk = '{}'"),
    "server: client's last id": ("s", "SELECT last_id FROM _syncd_clients WHERE client_id = 'x'"),
    "server: outcome of one id": ("s", "SELECT status FROM _syncd_outcomes WHERE client_id = 'x'"
                                       " AND id = 5"),
}


def plans(tmp):
    d = tempfile.mkdtemp(dir=tmp)
    s = Syncd(d)
    try:
        c = client(os.path.join(d, "a.db"), s.url)
        srv = sqlite3.connect(s.db)
        for what, (side, sql) in PLANS.items():
            db = c if side == "c" else srv
            rows = [r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql)]
            plan = "; ".join(rows)
            # a SCAN in rowid order that LIMIT stops is no table scan, nor is
            # one of json_each (the ids of the answer being acknowledged)
            scan = any("SCAN" in r and "json_each" not in r for r in rows)
            sort = "TEMP B-TREE" in plan
            verdict = ("NOT INDEXED" if sort or scan and "LIMIT" not in sql
                       else "rowid order, LIMIT" if scan else "indexed")
            out(8, "  plan, %s" % what, plan, "", verdict)
        c.close()
        srv.close()
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


def fig8(tmp, a):
    for n in a.growth:
        if n not in a.growth_drain:
            wall, cpu, own = drain(tmp, n, 100)
            a.growth_drain[n] = (wall, cpu + own)
        if n not in a.growth_apply:
            r, _, _ = initial(tmp, n)
            a.growth_apply[n] = (r["secs"], r["cpu"])
    lo, hi = min(a.growth), max(a.growth)
    us = 1e6
    for k, what in ((0, "wall"), (1, "CPU, client + syncd")):
        curve = ", ".join("%dk %.1f" % (n // 1000, us * a.growth_drain[n][k] / n)
                          for n in a.growth)
        out(8, "drain us/mutation, %s" % what, curve, "at %dk" % (lo // 1000),
            "%.2fx at %dk" % ((a.growth_drain[hi][k] / hi) / (a.growth_drain[lo][k] / lo),
                              hi // 1000), "flat")
    for k, what in ((0, "wall"), (1, "client CPU")):
        curve = ", ".join("%dk %.1f" % (n // 1000, us * a.growth_apply[n][k] / n)
                          for n in a.growth)
        out(8, "apply (initial pull) us/row, %s" % what, curve, "at %dk" % (lo // 1000),
            "%.2fx at %dk" % ((a.growth_apply[hi][k] / hi) / (a.growth_apply[lo][k] / lo),
                              hi // 1000), "flat")
    plans(tmp)


def table():
    head = ("fig", "what", "figure", "baseline (same run)", "ratio", "target")
    rows = [head] + [tuple(str(x) for x in r) for r in rows_out]
    w = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for k, r in enumerate(rows):
        print(" | ".join(r[i].ljust(w[i]) for i in range(len(head))).rstrip())
        if k == 0:
            print("-+-".join("-" * x for x in w))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--pull-child":
        pull_child(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="4,5,6,7,8", help="figures to run, e.g. 4,6")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--no-pg", action="store_true", help="skip the PostgreSQL half of 7")
    a = ap.parse_args()
    a.drain, a.initial, a.changes = 100000, 1000000, 1000
    a.sse_clients, a.fan_changes, a.pushers, a.push_secs = 200, 100, 50, 30
    a.growth = [10000, 100000, 1000000]
    if a.quick:
        a.drain, a.initial, a.changes = 5000, 20000, 100
        a.sse_clients, a.fan_changes, a.pushers, a.push_secs = 20, 10, 5, 3
        a.growth = [1000, 5000, 20000]
    a.growth_drain, a.growth_apply = {}, {}
    figs = {int(x) for x in a.only.split(",")}
    tmp = tempfile.mkdtemp(prefix="netbench-")
    started = time.time()
    before = load()
    try:
        for k, f in ((4, fig4), (5, fig5), (6, fig6), (7, fig7), (8, fig8)):
            if k in figs:
                f(tmp, a)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("netbench: %s, %.0f s; load average before %s, after %s; %d cores"
          % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)), time.time() - started,
             before, load(), os.cpu_count()))
    table()


if __name__ == "__main__":
    main()
