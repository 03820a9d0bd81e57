"""One client's drain on PostgreSQL storage, builds interleaved (issue 17, part 1).

    /usr/bin/python3 bench/net/pgdrain.py [--n N] [--rounds R] [--perf DIR] BUILD [BUILD ...]

BUILD is a directory holding a sync.so and a syncd (copies of ext/sync.so
and server/syncd from one tree). Each round runs every build in turn: a
fresh database on one throwaway cluster (tests/pg_env.sh), a client with N
pending inserts, and sync_push() at batch_size 1000 in a child process (so
that each build's extension is the only one loaded there). Prints the rate
and the CPU seconds of the client, of syncd and of PostgreSQL (all of the
cluster's processes) during the push. With --perf DIR, the first round
also runs `perf record -g` on each of the three sides during the push and
writes DIR/BUILDNAME-{client,syncd,pg}.data. It measures, it never fails
on speed.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import netbench as nb
from pgcpu import pg_cpu, start_cluster


def pg_pids(datadir):
    """The postmaster and its children."""
    pid = int(open(os.path.join(datadir, "postmaster.pid")).readline())
    out = [pid]
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                st = open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(st[1]) == pid:
                out.append(int(p))
    return out


def child(a):
    """In the child: fill, say ready, wait for go on stdin, push, report."""
    nb.EXT = os.path.join(a.build, "sync")
    c = nb.client(a.db, a.url, 1000)
    nb.fill(c, a.n)
    print("ready %d" % os.getpid(), flush=True)
    sys.stdin.readline()
    t0, c0 = time.perf_counter(), os.times()
    pushed = nb.one(c, "SELECT sync_push()")
    wall, c1 = time.perf_counter() - t0, os.times()
    pending = nb.one(c, "SELECT sync_pending()")
    c.close()
    print(json.dumps({"pushed": pushed, "pending": pending, "wall": wall,
                      "cpu": c1.user + c1.system - c0.user - c0.system}), flush=True)


def perf_start(out, pids):
    return subprocess.Popen(["perf", "record", "--call-graph", "dwarf,16384", "-F", "2000", "-q", "-o", out, "-p",
                             ",".join(str(p) for p in pids)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(tmp, base, data, build, db, n, perf):
    nb.SYNCD = os.path.join(build, "syncd")
    subprocess.run([nb.psql(), "-X", "-q", base + "/syncd", "-c", "CREATE DATABASE " + db],
                   check=True)
    d = tempfile.mkdtemp(dir=tmp)
    s = nb.Syncd(d, nb.DDL, base + "/" + db)
    try:
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", build,
                              os.path.join(d, "a.db"), s.url, str(n)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        cpid = int(p.stdout.readline().split()[1])
        recs = []
        if perf:
            name = os.path.basename(os.path.normpath(build))
            for side, pids in (("client", [cpid]), ("syncd", [s.proc.pid]),
                               ("pg", pg_pids(data))):
                recs.append(perf_start(os.path.join(perf, "%s-%s.data" % (name, side)), pids))
            time.sleep(1)
        s0, g0 = s.cpu(), pg_cpu(data)
        p.stdin.write("go\n")
        p.stdin.flush()
        r = json.loads(p.stdout.readline())
        s1, g1 = s.cpu(), pg_cpu(data)
        for x in recs:
            x.send_signal(signal.SIGINT)
            x.wait()
        p.wait()
        if r["pushed"] != n or r["pending"] != 0 or nb.server_rows(s) != n:
            raise RuntimeError("drain: pushed %s of %d" % (r["pushed"], n))
        return r["wall"], r["cpu"], s1 - s0, g1 - g0
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        a = argparse.Namespace(build=sys.argv[2], db=sys.argv[3], url=sys.argv[4],
                               n=int(sys.argv[5]))
        return child(a)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--perf", help="perf record each side in the first round, into this directory")
    ap.add_argument("build", nargs="+")
    a = ap.parse_args()
    builds = [os.path.abspath(b) for b in a.build]
    if a.perf:
        os.makedirs(a.perf, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="pgdrain-")
    pgdir, base, data = start_cluster("pgdrain-pg-")
    try:
        for rnd in range(a.rounds):
            for i, b in enumerate(builds):
                load = nb.load()
                wall, cl, sy, pg = run(tmp, base, data, b, "d%d_%d" % (rnd, i), a.n,
                                       a.perf if rnd == 0 else None)
                print("round %d %s: %.0f/s (%.2f s); CPU client %.2f s, syncd %.2f s,"
                      " PostgreSQL %.2f s; load %s" % (rnd + 1, b, a.n / wall, wall, cl, sy, pg,
                                                       load), flush=True)
    finally:
        subprocess.run(["bash", nb.PG_ENV, "stop", pgdir], capture_output=True)
        shutil.rmtree(pgdir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
