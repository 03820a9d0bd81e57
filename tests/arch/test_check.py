#!/usr/bin/env python3
"""Tests of tests/arch/check.py: it passes a small tree that keeps the
layout's rules and names each rule a small tree breaks (a call against the
layers, files that use each other, an include into ext/ from server/, a C
file over 900 lines, a file without an opening comment, a header name used
twice). The objects are compiled with cc, as make all does.

    python3 tests/arch/test_check.py      # last line "N passed, N failed"
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "check.py")


def make_tree(files):
    """A tree of files {path: text} with each .c compiled to build/obj/."""
    top = tempfile.mkdtemp(prefix="arch-")
    for path, text in files.items():
        full = os.path.join(top, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as fh:
            fh.write(text)
    incs = sorted({"-I" + os.path.join(top, os.path.dirname(p)) for p in files if p.endswith(".h")})
    for path in files:
        if path.endswith(".c"):
            obj = os.path.join(top, "build", "obj", path[:-2] + ".o")
            os.makedirs(os.path.dirname(obj), exist_ok=True)
            subprocess.run(["cc", "-c", "-o", obj, os.path.join(top, path)] + incs, check=True)
    return top


def run_check(top):
    r = subprocess.run([sys.executable, CHECK, "--top", top, "--objects", "build/obj"],
                       capture_output=True, text=True)
    return r.returncode, r.stdout


def c_file(comment, body):
    return f"/*\n** {comment}\n*/\n{body}\n"


# A tree that keeps every rule: net calls engine, engine calls common.
GOOD = {
    "common/util.h": c_file("util.h: shared", "int util(int);"),
    "common/util.c": c_file("util.c: shared", '#include "util.h"\nint util(int x) { return x; }'),
    "ext/engine/eng.h": c_file("eng.h: engine", "int eng(int);"),
    "ext/engine/eng.c": c_file("eng.c: engine",
                               '#include "eng.h"\n#include "util.h"\nint eng(int x) { return util(x); }'),
    "ext/net/net.c": c_file("net.c: network", '#include "eng.h"\nint net(int x) { return eng(x); }'),
    "server/store/st.h": c_file("st.h: store", "int st(int);"),
    "server/store/st.c": c_file("st.c: store", '#include "st.h"\n#include "util.h"\nint st(int x) { return util(x); }'),
    "server/http/rt.c": c_file("rt.c: http", '#include "st.h"\nint rt(int x) { return st(x); }'),
}


class CheckTests(unittest.TestCase):
    def failures(self, changes):
        files = dict(GOOD)
        files.update(changes)
        top = make_tree(files)
        try:
            rc, out = run_check(top)
        finally:
            shutil.rmtree(top)
        return rc, [line for line in out.splitlines() if "FAILED" in line], out

    def test_a_tree_that_keeps_the_rules_passes(self):
        rc, failed, out = self.failures({})
        self.assertEqual(rc, 0, out)
        self.assertEqual(failed, [])
        self.assertIn(" 0 failed", out.splitlines()[-1])

    def test_the_engine_calling_the_network_is_against_the_layers(self):
        rc, failed, out = self.failures({
            "ext/engine/eng.c": c_file("eng.c: engine", "int net(int);\nint eng(int x) { return net(x); }"),
            "ext/net/net.c": c_file("net.c: network", "int net(int x) { return x; }"),
        })
        self.assertEqual(rc, 1, out)
        self.assertTrue(any("ext/engine/eng.c calls net in ext/net/net.c" in f for f in failed), out)

    def test_two_files_that_use_each_other_are_a_circle(self):
        rc, failed, out = self.failures({
            "ext/engine/a.c": c_file("a.c: engine", "int b(int);\nint a(int x) { return x ? b(x - 1) : 0; }"),
            "ext/engine/b.c": c_file("b.c: engine", "int a(int);\nint b(int x) { return a(x); }"),
        })
        self.assertEqual(rc, 1, out)
        self.assertTrue(any("files use each other" in f and "ext/engine/a.c -> ext/engine/b.c" in f
                            and "ext/engine/b.c -> ext/engine/a.c" in f for f in failed), out)

    def test_server_including_ext_is_against_the_layers(self):
        rc, failed, out = self.failures({
            "server/http/rt.c": c_file("rt.c: http", '#include "eng.h"\nint rt(int x) { return x; }'),
        })
        self.assertEqual(rc, 1, out)
        self.assertTrue(any("server/http/rt.c includes ext/engine/eng.h" in f for f in failed), out)

    def test_a_long_file_and_a_file_without_a_comment_fail(self):
        rc, failed, out = self.failures({
            "ext/engine/long.c": c_file("long.c: engine", "int l;\n" * 901),
            "ext/engine/bare.c": "int bare(void) { return 0; }\n",
        })
        self.assertEqual(rc, 1, out)
        self.assertTrue(any("ext/engine/long.c has" in f for f in failed), out)
        self.assertTrue(any("ext/engine/bare.c does not open with a comment" in f for f in failed), out)

    def test_a_header_name_used_twice_fails(self):
        rc, failed, out = self.failures({"server/store/eng.h": c_file("eng.h: again", "int st2(int);")})
        self.assertEqual(rc, 1, out)
        self.assertTrue(any("header eng.h exists twice" in f for f in failed), out)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=1).result
    ran = result.testsRun
    bad = len(result.failures) + len(result.errors)
    print(f"{ran - bad} passed, {bad} failed")
    sys.exit(1 if bad or ran == 0 else 0)
