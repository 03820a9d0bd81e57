"""agent/sync-agent end to end: the agent keeps a database file in sync
while the only writer is the sqlite3 shell with no extension loaded, the
server's changes land in the file, SIGTERM in the middle of a drain and a
restart lose and repeat nothing, a second worker on the file makes it a
standby, and `sync-agent status` reads the file with or without an agent.
"""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time

from e2e_util import CLIENT_DDL, EXT, ROOT, E2ETest, connect, wait_for

AGENT = os.path.join(ROOT, "agent", "sync-agent")
# Under make asan and make tsan (tests/san/run.sh) the agent loads the
# sanitizer build of the extension, its runtime preloaded as for the tests'
# own python.
AGENT_ENV = dict(os.environ)
if os.environ.get("SYNC_TEST_PRELOAD"):
    AGENT_ENV.update(LD_PRELOAD=os.environ["SYNC_TEST_PRELOAD"], SYNC_EXTENSION=EXT)
TOKEN = "agent-test-token-5f3c9a"


class AgentTest(E2ETest):
    def setUp(self):
        super().setUp()
        self.agents = []
        self.app = os.path.join(self.dir, "app.db")
        # The app's tables, made by the shell: no extension anywhere.
        self.shell(CLIENT_DDL)

    def tearDown(self):
        for p, _ in self.agents:
            if p.poll() is None:
                p.kill()
                p.wait()
        super().tearDown()

    def shell(self, sql):
        """Runs sql with the plain sqlite3 shell (no .load)."""
        r = subprocess.run(["sqlite3", "-batch", "-init", "/dev/null", self.app],
                           input=".timeout 10000\n" + sql, text=True,
                           capture_output=True, timeout=60)
        self.assertEqual((r.returncode, r.stderr), (0, ""), sql[:200])
        return r.stdout

    def plain(self, sql):
        """A read with Python's sqlite3, no extension loaded."""
        c = sqlite3.connect(self.app, timeout=10)
        try:
            return c.execute(sql).fetchall()
        finally:
            c.close()

    def start_agent(self, url, *extra, log="agent.log"):
        path = os.path.join(self.dir, log)
        err = open(path, "ab")
        p = subprocess.Popen([AGENT, "--db", self.app, "--url", url, "--track", "todos,notes",
                              *extra], stderr=err, env=AGENT_ENV)
        err.close()
        self.agents.append((p, path))
        return p, path

    def log(self, path):
        with open(path) as f:
            return f.read()

    def wait_log(self, agent, log, pred, what):
        """wait_for(pred), but an agent that exits fails it at once, with its
        log: the one that died in sync_init ("database is locked") left only
        a timeout after 50 s under make asan."""
        def check():
            if agent.poll() is not None:
                self.fail("the agent exited (status %d) while waiting for %s; its log:\n%s"
                          % (agent.returncode, what, self.log(log)))
            return pred()
        return wait_for(check, what=what)

    def status(self):
        r = subprocess.run([AGENT, "status", "--db", self.app, "--log", "json"],
                           capture_output=True, text=True, timeout=30, env=AGENT_ENV)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_shell_writes_sync_server_rows_land_sigterm_mid_drain(self):
        tok = os.path.join(self.dir, "token")
        with open(tok, "w") as f:
            f.write(TOKEN + "\n")
        s = self.syncd("--token-file", tok)
        # Small batches so that a drain takes many requests.
        setup = self.client("setup", s.url, {"batch_size": 5})
        setup.close()
        os.replace(setup.path, self.app)
        self.shell(CLIENT_DDL)

        agent, log = self.start_agent(s.url, "--token-file", tok)
        self.wait_log(agent, log, lambda: "worker" in self.log(log), "the agent to hold the file")

        # Written by the shell, sent by the agent.
        self.shell("INSERT INTO todos(id, title) VALUES ('t1', 'from the shell'), ('t2', 'too');")
        wait_for(lambda: len(s.query("SELECT id FROM todos WHERE id IN ('t1','t2')")) == 2,
                 what="the shell's rows on the server")

        # Another client's rows land in the file with no app running.
        other = self.client("other", s.url)
        other.one("SELECT sync_config('token', ?)", (TOKEN,))
        other.db.execute("INSERT INTO todos(id, title) VALUES ('o1', 'from another client')")
        self.assertEqual(other.one("SELECT sync_push()"), 1)
        wait_for(lambda: self.plain("SELECT title FROM todos WHERE id = 'o1'")
                 == [("from another client",)], what="the other client's row in the file")

        # SIGTERM while a drain of N mutations is under way.
        n = 1500
        self.shell("WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < %d)"
                   " INSERT INTO notes(id, body) SELECT i, 'note ' || i FROM k;" % n)
        wait_for(lambda: s.query("SELECT count(*) FROM notes")[0][0] > 0, step=0.002,
                 what="the drain to start")
        agent.send_signal(signal.SIGTERM)
        self.assertEqual(agent.wait(timeout=20), 0)
        text = self.log(log)
        self.assertIn("stopped", text)
        st = self.status()
        self.assertEqual(st["agent"], "not running")
        self.assertGreater(st["pending"], 0, "SIGTERM came after the drain ended")
        self.assertLess(s.query("SELECT count(*) FROM notes")[0][0], n)
        self.assertIsNotNone(st["last_push_at"])
        self.assertIsNotNone(st["cursor"])

        agent, log = self.start_agent(s.url, "--token-file", tok, log="agent2.log")
        wait_for(lambda: self.status()["pending"] == 0, timeout=60, step=0.2,
                 what="the restarted agent to drain")
        self.assertEqual(s.query("SELECT count(*), count(DISTINCT id), min(id), max(id)"
                                 " FROM notes"), [(n, n, 1, n)])
        self.assertEqual(self.status()["rejected"], 0)
        # Every mutation applied once: the server's version counts them.
        self.assertEqual(s.query("SELECT version FROM _syncd_state"), [(n + 3,)])
        self.assertEqual(other.one("SELECT sync_pull() >= 0"), 1)
        self.assertEqual(other.one("SELECT count(*) FROM notes"), n)
        self.assertIn("running (pid %d, worker)" % agent.pid, self.status()["agent"])

        agent.send_signal(signal.SIGINT)
        self.assertEqual(agent.wait(timeout=20), 0)
        for path in (log, os.path.join(self.dir, "agent.log")):
            text = self.log(path)
            self.assertNotIn(TOKEN, text)
            self.assertRegex(text, r"app\.db: pushed \d+")
        self.assertRegex(self.log(os.path.join(self.dir, "agent.log")), r"app\.db: pulled \d+")

    def test_standby_while_an_app_syncs_then_takes_over_json_log(self):
        s = self.syncd()
        app = self.client("app", s.url)
        app.close()
        os.replace(app.path, self.app)
        owner = connect(self.app)
        self.assertEqual(owner.execute("SELECT sync_start()").fetchone()[0], 1)
        wait_for(lambda: owner.execute("SELECT last_pull_at FROM sync_status").fetchone()[0],
                 what="the app's worker to run")

        agent, log = self.start_agent(s.url, "--log", "json")

        def events():
            # the last line may still be being written: only whole lines
            lines = self.log(log).split("\n")[:-1]
            return [json.loads(line) for line in lines if line.startswith("{")]
        self.wait_log(agent, log, lambda: any(e["event"] == "standby" for e in events()),
                      "the agent to say it is standby")
        self.assertFalse(any(e["event"] == "worker" for e in events()))
        standby = [e for e in events() if e["event"] == "standby"][0]
        self.assertIn("another process is syncing", standby["detail"])
        self.assertEqual(standby["db"], self.app)
        self.assertIn("standby", self.status()["agent"])

        # Written by the shell while the app syncs: the app's worker sends it.
        self.shell("INSERT INTO todos(id, title) VALUES ('s1', 'while standby');")
        wait_for(lambda: s.query("SELECT count(*) FROM todos WHERE id = 's1'")[0][0] == 1,
                 what="the row on the server")

        owner.close()  # the app's worker stops; the agent takes over
        self.wait_log(agent, log, lambda: any(e["event"] == "worker" for e in events()),
                      "the agent to take over")
        self.shell("INSERT INTO todos(id, title) VALUES ('s2', 'after the app left');")
        wait_for(lambda: s.query("SELECT count(*) FROM todos WHERE id = 's2'")[0][0] == 1,
                 what="the agent to push")
        self.wait_log(agent, log,
                      lambda: any(e["event"] == "pushed" and e["count"] >= 1 for e in events()),
                      "a pushed line")
        agent.send_signal(signal.SIGTERM)
        self.assertEqual(agent.wait(timeout=20), 0)
        self.assertEqual(events()[-1]["event"], "stopped")

    def test_refused_token_then_renewed_file_and_several_databases(self):
        server_tok = os.path.join(self.dir, "server.token")
        with open(server_tok, "w") as f:
            f.write(TOKEN + "\n")
        s = self.syncd("--token-file", server_tok)
        tok = os.path.join(self.dir, "agent.token")
        with open(tok, "w") as f:
            f.write("expired-token-77\n")
        second = os.path.join(self.dir, "second.db")
        subprocess.run(["sqlite3", second, CLIENT_DDL], check=True, timeout=30)
        self.shell("INSERT INTO todos(id, title) VALUES ('k1', 'first file');")
        subprocess.run(["sqlite3", second,
                        "INSERT INTO todos(id, title) VALUES ('k2', 'second file')"],
                       check=True, timeout=30)
        agent, log = self.start_agent(s.url, "--token-file", tok, "--db", second)
        self.wait_log(agent, log, lambda: self.log(log).count("HTTP 401") >= 2, "both refused")
        self.assertEqual(s.query("SELECT count(*) FROM todos"), [(0,)])
        time.sleep(0.5)
        # An unchanged file is not sent again: no new 401 from retrying it.
        refused = self.log(log).count("HTTP 401")
        time.sleep(1)
        self.assertEqual(self.log(log).count("HTTP 401"), refused)

        with open(tok + ".new", "w") as f:
            f.write(TOKEN + "\n")
        os.replace(tok + ".new", tok)
        wait_for(lambda: s.query("SELECT id FROM todos ORDER BY id") == [("k1",), ("k2",)],
                 what="both files' rows on the server")
        self.assertEqual(self.log(log).count("token: read again from the token file"), 2)

        def pending(path):
            db = sqlite3.connect(path, timeout=10)
            try:
                return db.execute("SELECT count(*) FROM sync_outbox").fetchone()[0]
            finally:
                db.close()
        # the server commits a push before the agent takes its answer
        wait_for(lambda: pending(self.app) == 0 and pending(second) == 0,
                 what="both files' pushes acknowledged")
        agent.send_signal(signal.SIGTERM)
        self.assertEqual(agent.wait(timeout=20), 0)
        text = self.log(log)
        self.assertNotIn(TOKEN, text)
        self.assertNotIn("expired-token-77", text)
        self.assertEqual(text.count(": stopped: 0 pending"), 2)

    def test_lock_file_that_cannot_be_opened_is_an_error_not_a_role(self):
        s = self.syncd()
        os.mkdir(self.app + "-synclock")
        agent, log = self.start_agent(s.url)
        self.wait_log(agent, log, lambda: "cannot open the lock file" in self.log(log),
                      "the error")
        time.sleep(0.5)
        self.assertNotIn("worker", self.log(log))
        self.assertNotIn("standby", self.log(log))
        self.assertIn("starting", self.status()["agent"])
        agent.send_signal(signal.SIGTERM)
        self.assertEqual(agent.wait(timeout=20), 0)

    def test_waits_for_a_write_lock_held_past_its_busy_timeout(self):
        # An app's transaction holds the write lock longer than the agent's
        # busy timeout (2 s): the agent says it waits, and sets up once the
        # transaction commits, instead of exiting on "database is locked".
        app = sqlite3.connect(self.app, isolation_level=None)
        app.execute("BEGIN IMMEDIATE")
        app.execute("INSERT INTO todos(id, title) VALUES ('held', 'in the long transaction')")
        srv = self.syncd("--token", TOKEN)
        tok = os.path.join(self.dir, "tok")
        with open(tok, "w") as f:
            f.write(TOKEN)
        agent, log = self.start_agent(srv.url, "--token-file", tok)
        try:
            self.wait_log(agent, log, lambda: "waiting: another connection holds the write lock"
                          in self.log(log), "the agent to wait for the write lock")
            self.assertNotIn("started", self.log(log))
        finally:
            app.execute("COMMIT")
            app.close()
        self.wait_log(agent, log, lambda: "started" in self.log(log), "the agent to start")
        wait_for(lambda: srv.query("SELECT id FROM todos") == [("held",)],
                 what="the row written under the lock to reach the server")
        self.assertEqual(self.log(log).count("waiting"), 1, self.log(log))

    def test_status_without_agent_and_usage_errors(self):
        r = subprocess.run([AGENT, "status", "--db", self.app], capture_output=True, text=True,
                           env=AGENT_ENV)
        self.assertEqual(r.returncode, 1)
        self.assertIn("sync_init() has not been called", r.stderr)
        r = subprocess.run([AGENT, "--db", self.app], capture_output=True, text=True,
                           env=AGENT_ENV)
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage:", r.stderr)
        r = subprocess.run([AGENT, "--db", self.app, "--url", "http://127.0.0.1:9",
                            "--token-file", os.path.join(self.dir, "missing")],
                           capture_output=True, text=True, timeout=30, env=AGENT_ENV)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot read the token file", r.stderr)
        r = subprocess.run([AGENT, "--db", self.app, "--url", "http://127.0.0.1:9"],
                           capture_output=True, text=True, timeout=30,
                           env=dict(AGENT_ENV, SYNC_EXTENSION="/nonexistent/sync.so"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot load the extension /nonexistent/sync.so", r.stderr)

    def test_finds_the_extension_of_an_install(self):
        # bin/sync-agent finds ../lib/sqlite-sync/sync.so, with no SYNC_EXTENSION.
        s = self.syncd()
        self.client("app", s.url).close()
        prefix = os.path.join(self.dir, "prefix")
        os.makedirs(os.path.join(prefix, "bin"))
        os.makedirs(os.path.join(prefix, "lib", "sqlite-sync"))
        shutil.copy(AGENT, os.path.join(prefix, "bin"))
        shutil.copy(os.path.join(ROOT, "ext", "sync.so"),
                    os.path.join(prefix, "lib", "sqlite-sync", "sync.so"))
        env = {k: v for k, v in AGENT_ENV.items() if k != "SYNC_EXTENSION"}
        r = subprocess.run([os.path.join(prefix, "bin", "sync-agent"), "status", "--db",
                            os.path.join(self.dir, "app.db")],
                           capture_output=True, text=True, timeout=30, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^pending +0$")
        self.assertRegex(r.stdout, r"(?m)^agent +not running$")
