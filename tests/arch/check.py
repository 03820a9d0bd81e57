#!/usr/bin/env python3
"""The layout's rules, checked on the tree and the built objects
(docs/ARCHITECTURE.md, "Layout"):

  1. calls and includes run one way: ext/net -> ext/engine -> common and
     server/http -> server/store -> common; ext/sync.c (the entry point) and
     server/syncd.c (main) sit on top; server/ never reaches into ext/
  2. no circle of files: file A uses file B when A includes B's header or
     references a symbol B's object defines (nm); no two files use each other,
     directly or round a longer loop
  3. no C file over 900 lines; every .c and .h opens with a comment
  4. a header name is unique across the tree, so a flat #include names one
     file

    tests/arch/check.py [--top DIR] [--objects DIR...]

The tree defaults to this checkout, the objects (relative to it) to
build/ext and build/server (make all); tests/arch/test_check.py runs it on
small trees made to break each rule. The last line is "arch: N passed, N
failed".
"""
import argparse
import os
import re
import subprocess
import sys

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAX_LINES = 900

# Layers: a file may use files of its own layer or a lower one.
def layer(path):
    if path.startswith("common/"):
        return ("common", 0)
    if path.startswith("ext/engine/"):
        return ("ext", 1)
    if path.startswith("ext/net/"):
        return ("ext", 2)
    if path.startswith("ext/"):
        return ("ext", 3)
    if path.startswith("server/store/"):
        return ("server", 1)
    if path.startswith("server/http/"):
        return ("server", 2)
    if path.startswith("server/"):
        return ("server", 3)
    return (None, -1)


def allowed(src, dst):
    (sside, slev), (dside, dlev) = layer(src), layer(dst)
    if dside == "common":
        return True
    return sside == dside and dlev <= slev


def sources(top):
    out = []
    for root in ("common", "ext", "server"):
        for dirpath, _, files in os.walk(os.path.join(top, root)):
            for f in files:
                if f.endswith((".c", ".h")):
                    out.append(os.path.relpath(os.path.join(dirpath, f), top))
    return sorted(out)


def unit(path):
    """A file's unit: its .c (a header belongs to the .c of the same name)."""
    return path[:-2] + ".c" if path.endswith(".h") else path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", default=TOP)
    ap.add_argument("--objects", nargs="*", default=["build/ext", "build/server"])
    args = ap.parse_args()
    top = os.path.abspath(args.top)
    passed = failed = 0

    def check(ok, what):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print("arch: FAILED: " + what)
        return ok

    files = sources(top)
    existing = set(files)

    # 4: unique header names
    by_name = {}
    for f in files:
        if f.endswith(".h"):
            by_name.setdefault(os.path.basename(f), []).append(f)
    for name, where in sorted(by_name.items()):
        check(len(where) == 1, f"header {name} exists twice: {', '.join(where)}")

    # 3: sizes and opening comments
    for f in files:
        with open(os.path.join(top, f), encoding="utf-8") as fh:
            text = fh.read()
        if f.endswith(".c"):
            n = text.count("\n")
            check(n <= MAX_LINES, f"{f} has {n} lines (at most {MAX_LINES})")
        check(text.lstrip().startswith("/*"), f"{f} does not open with a comment")

    # uses: includes and symbol references
    uses = {}  # unit -> {unit: why}
    inc_re = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
    for f in files:
        with open(os.path.join(top, f), encoding="utf-8") as fh:
            text = fh.read()
        for inc in inc_re.findall(text):
            base = os.path.basename(inc)
            if ".." in inc or "/" in inc:
                target = os.path.normpath(os.path.join(os.path.dirname(f), inc))
            else:
                target = (by_name.get(base) or [None])[0]
            if target is None or target not in existing:
                continue
            check(allowed(f, target), f"{f} includes {target} (against the layers)")
            src, dst = unit(f), unit(target)
            if src != dst and dst in existing:
                uses.setdefault(src, {}).setdefault(dst, f"includes {target}")

    defined, undefined = {}, {}
    nobj = 0
    for d in args.objects:
        root = os.path.join(top, d)
        for dirpath, _, objs in os.walk(root):
            for o in objs:
                if not o.endswith(".o"):
                    continue
                src = os.path.relpath(os.path.join(dirpath, o), root)[:-2] + ".c"
                if src not in existing:
                    continue
                nobj += 1
                out = subprocess.run(["nm", os.path.join(dirpath, o)], capture_output=True,
                                     text=True, check=True).stdout
                for line in out.splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[0] == "U":
                        undefined.setdefault((d, src), set()).add(parts[1])
                    elif len(parts) == 3 and parts[1] in "TDBRGS":
                        defined.setdefault(d, {})[parts[2]] = src
    check(nobj > 0, "no objects found: build first (make all)")
    for (d, src), syms in undefined.items():
        # sqlite3_api is the host's routine table (SQLITE_EXTENSION_INIT1 in the
        # entry point, INIT3 elsewhere): SQLite's, not a call between files.
        for s in syms - {"sqlite3_api"}:
            dst = defined.get(d, {}).get(s)
            if dst and dst != src:
                check(allowed(src, dst), f"{src} calls {s} in {dst} (against the layers)")
                uses.setdefault(src, {}).setdefault(dst, f"uses {s}")

    # 2: circles (strongly connected components, Tarjan)
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in uses.get(v, {}):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(uses):
        if v not in index:
            strong(v)
    for comp in comps:
        if len(comp) > 1:
            edges = [f"{a} -> {b} ({uses[a][b]})" for a in sorted(comp) for b in sorted(uses.get(a, {}))
                     if b in comp]
            check(False, "files use each other: " + "; ".join(edges))
    check(True, "circle search ran")
    nedges = sum(len(v) for v in uses.values())
    print(f"arch: {len(files)} files, {nobj} objects, {nedges} uses between files")
    print(f"arch: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
