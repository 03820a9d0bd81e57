#!/usr/bin/env python3
"""Runs README.md's commands and snippets as printed (tests/readme_test.sh).

Every fenced block is taken in README order, in one scratch folder that
stands for the top folder of a fresh clone after `make` (a symlink to each
top-level entry of the repository, and nothing else: databases, keys and
snippet files land in the scratch folder):

  ```sh            each line runs with bash (`set -e -o pipefail`), a bare
                   assignment (NAME=value) together with the line after it
  ```sql DB        fed to `sqlite3 DB` (-bail -batch -init /dev/null); any
                   error fails it
  ```python FILE   written to FILE (likewise js, tcl); a later sh line runs it
  ```text output   what the block before it (an sh block's last line) must
                   print on stdout, exactly
  ```text, ```     not run (diagrams, sample output of long runs)

A python, js, tcl or sql block without a name, or an indented code block,
fails the test: the test could not run it.

Rewrites, the only changes made to what the README prints:
  - `server/syncd --listen 127.0.0.1:N ...` runs in the background on a port
    the OS picks (127.0.0.1:0); from then on 127.0.0.1:N in every block (and
    in expected output) becomes the address it printed. It is stopped at the
    end, as a reader stops it with Ctrl-C.
  - A `make ...` line is not run (each target is a build or a suite of its
    own, minutes long): the target must exist in the makefiles and every
    VAR=value must be a variable they use. So is every inline `make ...`
    span of the prose.
  - A `tests/.../*.py ...` line is not run either (long randomized runs):
    each --option on it must be one its --help lists.
  - python3 is the first python3 whose sqlite3 can load extensions (Debian's
    /usr/bin/python3; a pyenv build may lack it), put first on PATH.

A line that needs node (with better-sqlite3 built) or tclsh (with
tclsqlite) where they are missing is skipped and counted as skipped.
The last line is "readme: N passed, N failed[, N skipped]".
"""
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 120


class Run:
    def __init__(self, work):
        self.work = work
        self.ports = {}  # README's 127.0.0.1:N -> the address syncd printed
        self.syncds = []
        self.passed = self.failed = self.skipped = 0
        self.env = dict(os.environ)
        for k in ("SQLITE_SYNC_EXTENSION", "PYTHONPATH", "NODE_PATH", "TCLLIBPATH", "SYNC_TRACE"):
            self.env.pop(k, None)
        self.tools = find_tools(work, self.env)
        self.make_targets = None

    def ok(self, what):
        self.passed += 1
        print(f"ok: {what}")

    def fail(self, what, detail=""):
        self.failed += 1
        print(f"FAIL: {what}")
        if detail:
            print(detail.rstrip())

    def skip(self, what, why):
        self.skipped += 1
        print(f"skipped: {what}: {why}")

    def rewrite(self, text):
        for readme, real in self.ports.items():
            text = text.replace(readme, real)
        return text

    # ---- make ----
    def check_make(self, where, line):
        if self.make_targets is None:
            db = subprocess.run(["make", "-pRrq", "-f", "Makefile", ":"], cwd=ROOT,
                                capture_output=True, text=True, timeout=TIMEOUT).stdout
            self.make_targets = set(re.findall(r"^([A-Za-z0-9_.\-/]+):(?!=)", db, re.M))
            self.make_text = ""
            for f in ["Makefile"] + sorted(os.listdir(os.path.join(ROOT, "mk"))):
                path = os.path.join(ROOT, f if f == "Makefile" else "mk/" + f)
                with open(path) as fh:
                    self.make_text += fh.read()
        words = shlex.split(line, comments=True)[1:]
        bad = []
        for w in words:
            if "=" in w:
                var = w.split("=", 1)[0]
                if not re.search(r"\$[({]" + re.escape(var) + r"[)}]", self.make_text):
                    bad.append(f"variable {var} is not used by the makefiles")
            elif w not in self.make_targets:
                bad.append(f"no make target {w!r}")
        if bad:
            self.fail(f"{where}: {line}", "; ".join(bad))
        else:
            self.ok(f"{where}: {line} (target checked, not run)")

    # ---- tests/.../*.py: options only ----
    def check_options(self, where, line):
        words = shlex.split(line, comments=True)
        r = subprocess.run([self.tools["python3"] or sys.executable, words[0], "--help"], cwd=ROOT,
                           capture_output=True, text=True, timeout=TIMEOUT)
        known = set(re.findall(r"--[a-z][a-z0-9-]*", r.stdout))
        bad = [w for w in words[1:] if w.startswith("--") and w.split("=")[0] not in known]
        if r.returncode != 0 or bad:
            self.fail(f"{where}: {line}", f"unknown options {bad}" if bad else r.stderr)
        else:
            self.ok(f"{where}: {line} (options checked, not run)")

    # ---- syncd in the background ----
    def start_syncd(self, where, line):
        m = re.search(r"--listen\s+(127\.0\.0\.1:\d+)", line)
        readme = m.group(1)
        cmd = line.replace(readme, "127.0.0.1:0", 1)
        log = open(os.path.join(self.work, f"syncd-{len(self.syncds)}.log"), "w")
        p = subprocess.Popen(["bash", "-c", "exec " + cmd], cwd=self.work, env=self.env,
                             stdout=subprocess.PIPE, stderr=log, text=True)
        self.syncds.append(p)
        url = p.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            p.wait(timeout=10)
            with open(log.name) as fh:
                self.fail(f"{where}: {line}", f"syncd did not start: {fh.read()}")
            return
        self.ports[readme] = url[len("http://"):]
        self.ok(f"{where}: {line} (in the background, on {url})")

    # ---- commands ----
    def needs(self, text):
        """The toolchain a command needs that is missing, or None."""
        for tool in ("node", "tclsh"):
            if re.search(r"(^|[\s;&|(])" + tool + r"\s", text) and not self.tools[tool]:
                return tool
        if re.search(r"(^|[\s;&|(])python3\s", text) and not self.tools["python3"]:
            return "python3"
        return None

    def sh(self, where, script, expected):
        missing = self.needs(script)
        first = script.strip().splitlines()[0]
        if missing:
            self.skip(f"{where}: {first}", f"no usable {missing} ({self.tools['why'][missing]})")
            return
        r = self.call(["bash", "-c", "set -e -o pipefail\n" + script])
        self.judge(where, first, r, expected, stderr_ok=True)

    def sql(self, where, db, body, expected):
        r = self.call(["sqlite3", "-bail", "-batch", "-init", "/dev/null", db], body)
        self.judge(where, f"sqlite3 {db}", r, expected, stderr_ok=False)

    def call(self, argv, stdin=None):
        """Runs argv in the scratch folder; a run over TIMEOUT fails."""
        try:
            return subprocess.run(argv, input=stdin, cwd=self.work, env=self.env,
                                  capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            return subprocess.CompletedProcess(argv, -1, out, f"timed out after {TIMEOUT} s")

    def judge(self, where, what, r, expected, stderr_ok):
        out = r.stdout
        if r.returncode != 0 or (r.stderr.strip() and not stderr_ok):
            self.fail(f"{where}: {what}: exit status {r.returncode}",
                      f"--- stdout:\n{out}--- stderr:\n{r.stderr}")
        elif expected is not None and out != expected:
            diff = "".join(difflib.unified_diff(expected.splitlines(True), out.splitlines(True),
                                                "README", "actual"))
            self.fail(f"{where}: {what}: output differs", diff)
        else:
            self.ok(f"{where}: {what}" + (" (output as printed)" if expected is not None else ""))

    def stop(self):
        for p in self.syncds:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def find_tools(work, env):
    tools = {"why": {}}
    shim = os.path.join(work, ".bin")
    os.makedirs(shim)
    tools["python3"] = None
    for p in [env.get("BINDINGS_PYTHON"), "/usr/bin/python3", shutil.which("python3")]:
        if p and os.path.exists(p) and subprocess.run(
                [p, "-c", "import sqlite3; sqlite3.connect(':memory:').enable_load_extension(True)"],
                capture_output=True).returncode == 0:
            tools["python3"] = p
            os.symlink(p, os.path.join(shim, "python3"))
            break
    tools["why"]["python3"] = "no python3 whose sqlite3 can load extensions (Debian: /usr/bin/python3)"
    env["PATH"] = shim + os.pathsep + env.get("PATH", "")
    node_dir = os.path.join(ROOT, "bindings", "node")
    tools["node"] = shutil.which("node") and subprocess.run(
        ["node", "-e", "new (require('better-sqlite3'))(':memory:').close()"], cwd=node_dir,
        capture_output=True).returncode == 0
    tools["why"]["node"] = "node with better-sqlite3 built in bindings/node (make bindings-deps)"
    tools["tclsh"] = shutil.which("tclsh") and subprocess.run(
        ["tclsh"], input=b"package require sqlite3", capture_output=True).returncode == 0
    tools["why"]["tclsh"] = "tclsh with tclsqlite (Debian: libsqlite3-tcl)"
    return tools


def blocks(text):
    """(line number, info string, body) of each fenced block; errors for
    indented code blocks."""
    out, errors = [], []
    lines = text.split("\n")
    i, prev_blank, in_list = 0, True, False
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^```(.*)$", line)
        if m:
            start, info, body = i + 1, m.group(1).strip(), []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            out.append((start, info, "\n".join(body) + "\n"))
            prev_blank = False
        else:
            if re.match(r"^\s*([-*]|\d+\.) ", line):
                in_list = True
            elif not line.strip():
                pass
            elif not line.startswith(" "):
                in_list = False
            if line.startswith("    ") and line.strip() and prev_blank and not in_list:
                errors.append(f"README line {i + 1}: indented code block: fence it with a language")
            prev_blank = not line.strip()
        i += 1
    return out, errors


def main():
    with open(os.path.join(ROOT, "README.md")) as fh:
        readme = fh.read()
    work = tempfile.mkdtemp(prefix="sqlite-sync-readme-")
    run = Run(work)
    try:
        tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                                 cwd=ROOT, capture_output=True, text=True).stdout.split()
        top = {t.split("/")[0] for t in tracked} or set(os.listdir(ROOT))
        for name in sorted(top):
            os.symlink(os.path.join(ROOT, name), os.path.join(work, name))
        found, errors = blocks(readme)
        for e in errors:
            run.fail(e)
        for k, (line, info, body) in enumerate(found):
            words = info.split()
            lang = words[0] if words else ""
            name = words[1] if len(words) > 1 else None
            where = f"README line {line}"
            nxt = found[k + 1] if k + 1 < len(found) else None
            expected = None
            if nxt and nxt[1].split() == ["text", "output"]:
                expected = run.rewrite(nxt[2])
            if lang in ("python", "js", "tcl"):
                if not name:
                    run.fail(f"{where}: a {lang} block without a file name cannot be run")
                    continue
                with open(os.path.join(work, name), "w") as fh:
                    fh.write(run.rewrite(body))
            elif lang == "sql":
                if not name:
                    run.fail(f"{where}: a sql block without a database name cannot be run")
                    continue
                run.sql(where, name, run.rewrite(body), expected)
            elif lang == "sh":
                # each line is a check of its own, but a bare assignment
                # (NAME=value) runs with the line after it
                group, first = [], None
                cmds = [(j, raw) for j, raw in enumerate(body.splitlines())
                        if raw.strip() and not raw.strip().startswith("#")]
                for n, (j, raw) in enumerate(cmds):
                    cmd = raw.strip()
                    at = f"README line {line + j + 1}"
                    last = n == len(cmds) - 1
                    if cmd.startswith("make ") or cmd == "make":
                        run.check_make(at, cmd)
                    elif re.match(r"tests/\S+\.py\b", cmd):
                        run.check_options(at, cmd)
                    elif re.match(r"server/syncd\s.*--listen\s+127\.0\.0\.1:\d+", cmd):
                        run.start_syncd(at, cmd)
                    else:
                        group.append(run.rewrite(raw))
                        first = first or at
                        if re.match(r"^[A-Za-z_]\w*=(\$\(.*\)|\S+)$", cmd) and not last:
                            continue
                        # the expected output belongs to the block's last command
                        run.sh(first, "\n".join(group) + "\n", expected if last else None)
                        group, first = [], None
            elif lang not in ("", "text"):
                run.fail(f"{where}: a ```{lang} block: the test does not know how to run it")
        # inline `make ...` spans of the prose
        prose = re.sub(r"^```.*?^```", "", readme, flags=re.M | re.S)
        for m in sorted(set(re.findall(r"`(make(?: [^`]*)?)`", prose))):
            run.check_make("README prose", m)
    finally:
        run.stop()
        if os.environ.get("README_KEEP"):
            print(f"readme: scratch folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    tail = f", {run.skipped} skipped" if run.skipped else ""
    print(f"readme: {run.passed} passed, {run.failed} failed{tail}")
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
