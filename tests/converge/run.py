"""The randomized, model-based convergence test (README, "Convergence test").

    run.py [--seed N | --seeds "1 2 3" | --seeds 1-200 | --replay LOG...]
           [--clients 3] [--ops 150] [--no-KIND ...] [--worker] [--worker-live]
           [--shrink] [--target KIND] [--save LOG] [--show] [--pace MS] [--timeout S] [--keep] [-v]

A seed gives an op log (gen.py: random writes of every kind on a rich
schema, pushes and pulls at random points, clients going offline and
online, one client on the background worker); harness.py runs it against a
fresh syncd and fresh clients, brings everything to quiescence and checks:
every client equals the server value for value (storage class, bytes, the
8 bytes of each REAL), every outbox is empty, every refusal names a
constraint, no sync_status is in 'error', no client holds an orphan, and a
fresh client's initial sync equals the server. With --clients 1 it checks
instead that no push or pull changes what the client sees, that nothing is
refused, and that the client's tables are, after every op and at the end,
what the same statements give without sync (an in-memory twin).

A failing run writes its op log to build/converge/seed-N.json (replay it
with --replay) and, with --shrink, a short log that still fails the same
way (delta debugging over the ops, then over each transaction's
statements and the clients' settings) to build/converge/seed-N.min.json.
tests/converge/cases/ keeps the shrunk logs of the failures found, replayed
by make test-converge. --no-KIND turns a kind of operation off (kinds: gen.FLAG_KINDS), to run
the test while some defects are still open. Exit status 0 when every run
passes; the last line is "converge: N passed, N failed".
"""
import argparse
import copy
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from gen import FLAG_KINDS, generate  # noqa: E402
from harness import run_log  # noqa: E402

OUT = os.path.join(ROOT, "build", "converge")


def parse_seeds(text):
    seeds = []
    for part in text.replace(",", " ").split():
        if "-" in part[1:]:
            a, b = part.split("-", 1)
            seeds.extend(range(int(a), int(b) + 1))
        else:
            seeds.append(int(part))
    return seeds


def kinds(failures):
    return {k for k, _ in failures}


class Shrinker:
    """Delta debugging: keeps dropping parts of a log while it still fails
    with the target kind."""

    def __init__(self, opts, target, budget):
        self.o = copy.copy(opts)
        self.o.verbose = False
        self.o.keep = self.o.keep_failed = False
        self.target = target
        self.deadline = time.monotonic() + budget
        self.runs = 0

    def fails(self, log):
        if time.monotonic() > self.deadline:
            return False
        self.runs += 1
        return self.target in kinds(run_log(log, self.o))

    def with_ops(self, log, ops):
        out = dict(log)
        out["ops"] = ops
        return out

    def ddmin(self, log):
        ops = log["ops"]
        n = 2
        while len(ops) >= 2 and time.monotonic() < self.deadline:
            size = -(-len(ops) // n)
            for i in range(0, len(ops), size):
                cand = ops[:i] + ops[i + size:]
                if self.fails(self.with_ops(log, cand)):
                    ops = cand
                    n = max(n - 1, 2)
                    break
            else:
                if n >= len(ops):
                    break
                n = min(len(ops), n * 2)
            print("  shrink: %d ops (%d runs)" % (len(ops), self.runs), flush=True)
        return self.with_ops(log, ops)

    def statements(self, log):
        for op in log["ops"]:
            i = 0
            while len(op.get("stmts", ())) > 1 and i < len(op["stmts"]):
                kept = op["stmts"]
                op["stmts"] = kept[:i] + kept[i + 1:]
                if not self.fails(log):
                    op["stmts"] = kept
                    i += 1
        return log

    def settings(self, log):
        """Drops clients no op names, then tries plainer settings."""
        used = sorted({op["c"] for op in log["ops"]})
        if len(used) < len(log["clients"]) and used:
            cand = copy.deepcopy(log)
            cand["clients"] = [log["clients"][i] for i in used]
            for op in cand["ops"]:
                op["c"] = used.index(op["c"])
            if self.fails(cand):
                log = cand
        if log.get("trigger", True):
            cand = dict(log, trigger=False)
            if self.fails(cand):
                log = cand
        plain = {"worker": False, "batch_size": 1000, "pull_limit": 1000,
                 "foreign_keys": True, "recursive_triggers": False}
        for i in range(len(log["clients"])):
            for k, v in plain.items():
                if log["clients"][i].get(k) == v or (k == "worker" and len(log["clients"]) == 1):
                    continue
                cand = copy.deepcopy(log)
                cand["clients"][i][k] = v
                if self.fails(cand):
                    log = cand
        return log

    def shrink(self, log):
        log = self.ddmin(log)
        log = self.statements(copy.deepcopy(log))
        log = self.settings(log)
        return self.ddmin(log)


def describe(log):
    head = log.get("mode", "") + " clients: " + json.dumps(log["clients"])
    if not log.get("trigger", True):
        head += "  (no server trigger)"
    lines = ([log["note"]] if log.get("note") else []) + [head]
    for op in log["ops"]:
        if op["op"] == "tx" or op["op"] == "txsync":
            body = "; ".join("%s %s" % (s, json.dumps(p)) for s, p in op["stmts"])
            tail = (" [%s]" % op["end"] if op["op"] == "tx"
                    else " then %s() and ROLLBACK" % op["call"])
            lines.append("c%d: %s%s" % (op["c"], body, tail))
        else:
            lines.append("c%d: %s" % (op["c"], op["op"]))
    return "\n".join(lines)


def save(log, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(log, f, indent=1)


def main():
    # a SIGTERM (make's timeout, a CI cancel) unwinds like ^C: syncd is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int)
    ap.add_argument("--seeds", help='"1 2 3" or "1-200"')
    ap.add_argument("--replay", nargs="+", metavar="LOG",
                    help="run these op logs instead of a seed's")
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--ops", type=int, default=150)
    ap.add_argument("--worker", action="store_true",
                    help="with --clients 1: the client runs the background worker")
    ap.add_argument("--worker-live", action="store_true",
                    help="the worker client stays online all along (not repeatable)")
    ap.add_argument("--pace", type=float, default=0,
                    help="ms to wait before each op (gives the worker time to interleave)")
    ap.add_argument("--shrink", action="store_true", help="shrink a failing log")
    ap.add_argument("--target", help="the failure kind to shrink on (default: the first)")
    ap.add_argument("--shrink-time", type=float, default=600)
    ap.add_argument("--save", help="write the op log here")
    ap.add_argument("--timeout", type=float, default=120, help="per run")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--show", action="store_true", help="print the op log as SQL first")
    ap.add_argument("-v", "--verbose", action="store_true", help="print failures as they happen")
    for k in FLAG_KINDS:
        ap.add_argument("--no-" + k, dest="off", action="append_const", const=k)
    o = ap.parse_args()
    o.keep_failed = o.keep
    off = set(o.off or ())
    if o.replay:
        runs = []
        for path in o.replay:
            with open(path) as f:
                runs.append(("replay " + path, json.load(f)))
    else:
        seeds = parse_seeds(o.seeds) if o.seeds else [o.seed or int(os.environ.get(
            "CONVERGE_SEED") or 1)]
        runs = [("seed %d" % s, generate(s, o.clients, o.ops, off, o.worker)) for s in seeds]
    passed = failed = 0
    for name, log in runs:
        t0 = time.monotonic()
        print("converge: %s: %d clients, %d ops%s" % (
            name, len(log["clients"]), len(log["ops"]),
            (", off: " + " ".join(sorted(off))) if off and not o.replay else ""), flush=True)
        if o.save:
            save(log, o.save)
        if o.show:
            print(describe(log))
        f = run_log(log, o)
        dt = time.monotonic() - t0
        if not f:
            passed += 1
            print("converge: %s passed (%.1fs)" % (name, dt), flush=True)
            continue
        failed += 1
        for k, msg in f[:12]:
            print("  [%s] %s" % (k, msg[:1500]))
        if len(f) > 12:
            print("  ... %d more" % (len(f) - 12))
        tag = name.replace(" ", "-").replace("/", "_") if not o.replay else \
            "replay-" + os.path.basename(name)[:-5]
        path = os.path.join(OUT, tag + ".json")
        if not o.replay:
            save(log, path)
        print("converge: %s FAILED (%.1fs): %s; replay: tests/converge/run.py --replay %s" % (
            name, dt, ", ".join(sorted(kinds(f))), name[7:] if o.replay else path), flush=True)
        if o.shrink:
            target = o.target or f[0][0]
            print("converge: shrinking on [%s]" % target, flush=True)
            sh = Shrinker(o, target, o.shrink_time)
            small = sh.shrink(copy.deepcopy(log))
            mpath = os.path.join(OUT, tag + ".min.json")
            save(small, mpath)
            print("converge: shrunk to %d ops in %d runs: %s" % (len(small["ops"]), sh.runs,
                                                                 mpath))
            print(describe(small))
            o2 = copy.copy(o)
            o2.verbose = False
            for k, msg in run_log(small, o2):
                print("  [%s] %s" % (k, msg[:1500]))
    print("converge: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
