"""Where a push's time goes on PostgreSQL storage, per mutation.

    /usr/bin/python3 bench/net/pgcpu.py [--n N] [--rounds R] SYNCD [SYNCD ...]

POSTs N inserts in bodies of 1000 (the first body warms the connection's
prepared statements and is not counted) to each syncd binary in turn, R
rounds interleaved, each on a fresh database of one throwaway cluster
(tests/pg_env.sh); prints the rate, and the wall time, syncd's CPU and
PostgreSQL's CPU (all of the cluster's processes) per mutation. It
measures, it never fails on speed.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import netbench as nb


def pg_cpu(datadir):
    """CPU seconds of the postmaster and its children so far."""
    pid = int(open(os.path.join(datadir, "postmaster.pid")).readline())
    total = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            st = open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(p) == pid or int(st[1]) == pid:
            total += int(st[11]) + int(st[12])
    return total / os.sysconf("SC_CLK_TCK")


def start_cluster(prefix):
    """A throwaway cluster (tests/pg_env.sh): its directory, the URL of the
    server without a database name, and its data directory."""
    pgdir = tempfile.mkdtemp(prefix=prefix)
    os.chmod(pgdir, 0o777)
    p = subprocess.run(["bash", nb.PG_ENV, "start", pgdir], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit("PostgreSQL did not start: " + p.stderr.strip()[-200:])
    return pgdir, p.stdout.strip().splitlines()[-1].rsplit("/", 1)[0], os.path.join(pgdir, "data")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=51000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("syncd", nargs="+")
    a = ap.parse_args()
    pgdir, base, data = start_cluster("pgcpu-pg-")
    try:
        for rnd in range(a.rounds):
            for i, binary in enumerate(a.syncd):
                nb.SYNCD = os.path.abspath(binary)
                db = "c%d_%d" % (rnd, i)
                subprocess.run(["psql", "-X", "-q", base + "/syncd", "-c", "CREATE DATABASE " + db],
                               check=True)
                d = tempfile.mkdtemp(prefix="pgcpu-")
                s = nb.Syncd(d, nb.DDL, base + "/" + db)
                try:
                    conn = s.conn()
                    bodies = list(nb.bodies(a.n, 1000))
                    nb.post(conn, "/push", bodies[0])
                    c0, p0, t0 = s.cpu(), pg_cpu(data), time.perf_counter()
                    for b in bodies[1:]:
                        nb.post(conn, "/push", b)
                    wall = time.perf_counter() - t0
                    cpu, pgc = s.cpu() - c0, pg_cpu(data) - p0
                finally:
                    s.stop()
                    shutil.rmtree(d, ignore_errors=True)
                m = a.n - 1000
                print("%s: %.0f/s; per mutation wall %.1f us, syncd CPU %.1f us, PostgreSQL CPU"
                      " %.1f us; load %s" % (binary, m / wall, 1e6 * wall / m, 1e6 * cpu / m,
                                            1e6 * pgc / m, nb.load()), flush=True)
    finally:
        subprocess.run(["bash", nb.PG_ENV, "stop", pgdir], capture_output=True)
        shutil.rmtree(pgdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
