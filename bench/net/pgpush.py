"""The push path on both storages (issue 17, part 1), in one run.

    /usr/bin/python3 bench/net/pgpush.py [--drain N] [--pushers K] [--secs S] [--no-sqlite]
                                         [--syncds M] [--cload | --only-cload]

Figure 7's push half and figure 4's drain, on SQLite storage and on
PostgreSQL storage (a throwaway cluster from tests/pg_env.sh), each time
against the same syncd binary, so the ratio PostgreSQL / SQLite is of one
run on one machine. `make bench-pg` runs it; it measures, it never fails on
speed.

  drain    one client's sync_push() of N pending inserts, batch_size 1000
  raw      the same N as raw POSTs of 1000 mutations (the server alone)
  pushers  K clients, each inserting 10 rows then sync_push(), for S s;
           errors counted, rows on the server == acknowledged checked;
           with --syncds M, again over M syncd on the one PostgreSQL
           database (client k to syncd k % M), the ratio to one syncd
  cload    with --cload: the same K clients as threads of pushload.c, each
           POSTing 10 inserts per request for S s (no extension, no SQLite:
           the server's side alone), on one syncd and, with --syncds M,
           over M
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import netbench as nb
from pgcpu import pg_cpu

PG_DATA = None  # the throwaway cluster's data directory, once started


def own_cpu():
    """CPU seconds of this process so far: the client's, whose extension
    runs in it (its transfer thread included)."""
    t = os.times()
    return t.user + t.system


def cpus(s):
    """CPU seconds so far of syncd, of this process and of PostgreSQL (0
    on SQLite storage)."""
    return s.cpu(), own_cpu(), pg_cpu(PG_DATA) if PG_DATA else 0


def drain(tmp, n, pg):
    """Seconds for sync_push() of n pending inserts at batch 1000, and the
    CPU seconds of syncd, of the client and of PostgreSQL meanwhile."""
    d = tempfile.mkdtemp(dir=tmp)
    s = nb.Syncd(d, nb.DDL, pg)
    try:
        c = nb.client(os.path.join(d, "a.db"), s.url, 1000)
        nb.fill(c, n)
        c0, t0 = cpus(s), time.perf_counter()
        pushed = nb.one(c, "SELECT sync_push()")
        wall, c1 = time.perf_counter() - t0, cpus(s)
        c.close()
        if pushed != n or nb.server_rows(s) != n:
            raise RuntimeError("drain: pushed %s of %d" % (pushed, n))
        return (wall,) + tuple(b - a for a, b in zip(c0, c1))
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


def raw(tmp, n, pg):
    """Seconds to POST the same n mutations in bodies of 1000."""
    d = tempfile.mkdtemp(dir=tmp)
    s = nb.Syncd(d, nb.DDL, pg)
    try:
        conn = s.conn()
        pre = list(nb.bodies(n, 1000))
        cpu0, t0 = s.cpu(), time.perf_counter()
        for b in pre:
            nb.post(conn, "/push", b)
        return time.perf_counter() - t0, s.cpu() - cpu0
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


def cload(tmp, k, secs, pg, n_syncd):
    """pushload.c's k clients against n_syncd syncd on one database:
    (mutations/s, failed requests, rows on the server == applied, applied,
    CPU seconds of the syncd and of PostgreSQL)."""
    d = tempfile.mkdtemp(dir=tmp)
    exe = os.path.join(d, "pushload")
    subprocess.run(["cc", "-O2", "-pthread", "-o", exe,
                    os.path.join(os.path.dirname(os.path.abspath(__file__)), "pushload.c")],
                   check=True)
    s = nb.Syncd(d, nb.DDL, pg)
    more = [nb.Syncd(os.path.join(d, "s%d" % i), nb.DDL, pg, fresh=False)
            for i in range(1, n_syncd)]
    try:
        every = [s] + more
        c0 = sum(x.cpu() for x in every), pg_cpu(PG_DATA) if PG_DATA else 0
        out = subprocess.run([exe, ",".join(str(x.port) for x in every), str(k), "10", str(secs)],
                             check=True, capture_output=True, text=True).stdout.split()
        c1 = sum(x.cpu() for x in every), pg_cpu(PG_DATA) if PG_DATA else 0
        applied, failed, wall = int(out[0]), int(out[1]), float(out[2])
        rows = nb.server_rows(s)
        return applied / wall, failed, rows == applied, applied, c1[0] - c0[0], c1[1] - c0[1]
    finally:
        for x in more:
            x.stop()
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


def cload_figures(tmp, a, pg, label):
    rate, failed, ok, total, cpu, pgc = cload(tmp, a.pushers, a.secs, pg, 1)
    nb.out("pg", "%s: %d pushload.c clients, 10 per request, %d s: %d failed, rows == applied: %s"
           % (label, a.pushers, a.secs, failed, "yes" if ok else "NO"),
           "%.0f mutations/s (%d)" % (rate, total),
           "CPU: syncd %.1f s%s" % (cpu, ", PostgreSQL %.1f s" % pgc if pg else ""))
    if pg and a.syncds > 1:
        r2, f2, ok2, t2, cpu2, pgc2 = cload(tmp, a.pushers, a.secs, pg, a.syncds)
        nb.out("pg", "%s: the same over %d syncd on one database: %d failed, rows == applied: %s"
               % (label, a.syncds, f2, "yes" if ok2 else "NO"),
               "%.0f mutations/s (%d)" % (r2, t2),
               "one syncd %.0f/s; CPU: syncd %.1f s, PostgreSQL %.1f s" % (rate, cpu2, pgc2),
               "%.2fx" % (r2 / rate))


def store_figures(tmp, a, pg, label):
    w, cpu, mine, pgc = drain(tmp, a.drain, pg)
    nb.out("pg", "%s: drain %d by sync_push(), batch 1000" % (label, a.drain),
           "%.0f/s (%.2f s)" % (a.drain / w, w),
           "CPU: syncd %.2f s, client %.2f s%s" % (cpu, mine, ", PostgreSQL %.2f s" % pgc
                                                     if pg else ""))
    w, cpu = raw(tmp, a.drain, pg)
    nb.out("pg", "%s: %d as raw POSTs of 1000" % (label, a.drain),
           "%.0f/s (%.2f s)" % (a.drain / w, w), "syncd CPU %.2f s" % cpu)
    rate, errs, ok, total = nb.pushers(tmp, a.pushers, a.secs, pg)
    nb.out("pg", "%s: %d clients pushing %d s: %d errors, server rows == acked: %s"
           % (label, a.pushers, a.secs, len(errs), "yes" if ok else "NO"),
           "%.0f mutations/s (%d)" % (rate, total))
    for e in errs[:3]:
        print("    error: " + e, file=sys.stderr)
    if pg and a.syncds > 1:
        r2, errs2, ok2, total2 = nb.pushers(tmp, a.pushers, a.secs, pg, a.syncds)
        nb.out("pg", "%s: the same %d clients over %d syncd on one database: %d errors,"
               " server rows == acked: %s" % (label, a.pushers, a.syncds, len(errs2),
                                             "yes" if ok2 else "NO"),
               "%.0f mutations/s (%d)" % (r2, total2), "one syncd %.0f/s" % rate,
               "%.2fx" % (r2 / rate))
        for e in errs2[:3]:
            print("    error: " + e, file=sys.stderr)


def main():
    global PG_DATA
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--drain", type=int, default=100000)
    ap.add_argument("--pushers", type=int, default=50)
    ap.add_argument("--secs", type=int, default=30)
    ap.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    ap.add_argument("--syncds", type=int, default=1,
                    help="PostgreSQL: the pushers again over this many syncd on one database")
    ap.add_argument("--syncd", help="another syncd binary (a build before a change)")
    ap.add_argument("--cload", action="store_true",
                    help="the pushers again as threads of pushload.c (the server's side alone)")
    ap.add_argument("--only-cload", action="store_true", help="the pushload.c figures alone")
    a = ap.parse_args()
    if a.syncd:
        nb.SYNCD = os.path.abspath(a.syncd)
    tmp = tempfile.mkdtemp(prefix="pgpush-")
    started, before = time.time(), nb.load()
    pgdir = tempfile.mkdtemp(prefix="pgpush-pg-")
    try:
        if not a.no_sqlite:
            if not a.only_cload:
                store_figures(tmp, a, None, "SQLite")
            if a.cload or a.only_cload:
                cload_figures(tmp, a, None, "SQLite")
        os.chmod(pgdir, 0o777)
        p = subprocess.run(["bash", nb.PG_ENV, "start", pgdir], capture_output=True, text=True)
        if p.returncode:
            raise SystemExit("PostgreSQL did not start: " + p.stderr.strip()[-200:])
        PG_DATA = os.path.join(pgdir, "data")
        try:
            url = p.stdout.strip().splitlines()[-1]
            if not a.only_cload:
                store_figures(tmp, a, url, "PostgreSQL")
            if a.cload or a.only_cload:
                cload_figures(tmp, a, url, "PostgreSQL")
        finally:
            subprocess.run(["bash", nb.PG_ENV, "stop", pgdir], capture_output=True)
    finally:
        shutil.rmtree(pgdir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print("pgpush: %s, %.0f s; load average before %s, after %s; %d cores"
          % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)), time.time() - started,
             before, nb.load(), os.cpu_count()))
    nb.table()


if __name__ == "__main__":
    main()
