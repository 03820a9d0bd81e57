"""End-to-end: the background worker with a real syncd."""
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time

from e2e_util import HERE, SYNCD, E2ETest, HungServer, Syncd, connect, wait_for


def server_todos(s):
    return s.query("SELECT id, title, done FROM todos ORDER BY id")


class Basics(E2ETest):
    def test_push_pull_without_worker(self):
        s = self.syncd()
        a = self.client("a", s.url)
        b = self.client("b", s.url)
        a.db.execute("INSERT INTO todos VALUES('x', 'milk', 0)")
        a.db.execute("INSERT INTO notes VALUES(1, 'hello')")
        self.assertEqual(a.one("SELECT sync_push()"), 2)
        self.assertEqual(a.one("SELECT sync_pending()"), 0)
        self.assertEqual(b.one("SELECT sync_pull()"), 2)
        self.assertEqual(b.todos(), [("x", "milk", 0)])
        self.assertEqual(b.one("SELECT sync_pull()"), 0)
        self.assertEqual(b.one("SELECT sync_wait(0)"), '["notes","todos"]')
        self.assertIsNone(b.one("SELECT sync_wait(0)"))

    def test_pull_follows_has_more_across_pages(self):
        # sync_pull pages on while a page says has_more (read by sync_apply)
        # and reports the tables the pages wrote to sync_wait
        s = self.syncd()
        a = self.client("a", s.url)
        b = self.client("b", s.url)
        a.db.execute("INSERT INTO todos VALUES('p1', 'one', 0), ('p2', 'two', 0),"
                     " ('p3', 'three', 0), ('p4', 'four', 0), ('p5', 'five', 0)")
        self.assertEqual(a.one("SELECT sync_push()"), 5)
        b.one("SELECT sync_config('pull_limit', 2)")
        self.assertEqual(b.one("SELECT sync_pull()"), 5)
        self.assertEqual([r[0] for r in b.todos()], ["p1", "p2", "p3", "p4", "p5"])
        self.assertEqual(b.one("SELECT sync_wait(0)"), '["todos"]')

    def test_errors(self):
        mem = self.client("m", "http://127.0.0.1:9")
        m = sqlite3.connect(":memory:", isolation_level=None)
        m.enable_load_extension(True)
        m.load_extension(os.path.join(HERE, "..", "..", "ext", "sync"))
        m.execute("SELECT sync_init('http://127.0.0.1:9')")
        with self.assertRaisesRegex(sqlite3.OperationalError,
                                    r"^sync_start: needs a database file"):
            m.execute("SELECT sync_start()")
        m.close()
        mem.one("SELECT sync_config('timeout_ms', 2000)")
        mem.db.execute("INSERT INTO todos VALUES('x', 'milk', 0)")
        with self.assertRaisesRegex(sqlite3.OperationalError, r"^sync_push: cannot reach "):
            mem.one("SELECT sync_push()")
        with self.assertRaisesRegex(sqlite3.OperationalError, r"^sync_pull: cannot reach "):
            mem.one("SELECT sync_pull()")
        # the failed push is recorded on the mutation
        attempts, err = mem.rows("SELECT attempts, last_error FROM sync_pending")[0]
        self.assertEqual(attempts, 1)
        self.assertTrue(err)
        with self.assertRaisesRegex(sqlite3.OperationalError,
                                    r'^sync_config: unknown key "nope"$'):
            mem.one("SELECT sync_config('nope')")
        with self.assertRaisesRegex(sqlite3.OperationalError,
                                    r'^sync_config: "batch_size" must be a positive integer$'):
            mem.one("SELECT sync_config('batch_size', 0)")
        with self.assertRaisesRegex(sqlite3.OperationalError,
                                    r"^sync_wait: timeout_ms must be a non-negative integer$"):
            mem.one("SELECT sync_wait(-1)")
        self.assertEqual(mem.one("SELECT sync_config('batch_size')"), 1000)
        self.assertEqual(mem.one("SELECT sync_config('batch_size', '7')"), 7)
        self.assertEqual(mem.one("SELECT sync_config('sse', 'off')"), "off")
        self.assertEqual(mem.one("SELECT sync_config('sse', NULL)"), "on")
        self.assertIsNone(mem.one("SELECT sync_config('token')"))
        no_url = self.client("n", None)
        with self.assertRaisesRegex(sqlite3.OperationalError, r"^sync_start: no server url"):
            no_url.one("SELECT sync_start()")

    def test_status_columns(self):
        s = self.syncd()
        a = self.client("a", s.url)
        cur = a.db.execute("SELECT * FROM sync_status")
        cur.fetchall()  # an unfinished statement would keep its read snapshot
        self.assertEqual([d[0] for d in cur.description],
                         ["state", "online", "pending", "rejected", "cursor", "sse_connected",
                          "last_push_at", "last_pull_at", "last_error", "next_retry_at",
                          "pushed_total", "pulled_total", "client_id", "url", "skipped_changes",
                          "first_sync_done", "needs_token", "last_verified_at", "diverged_total",
                          "last_verify", "role", "schema_change", "schema_changed_at",
                          "server_reset", "server_reset_at"])
        st = a.status()
        self.assertEqual(st["state"], "stopped")
        self.assertEqual(a.one("SELECT sync_start()"), 1)
        self.assertEqual(a.one("SELECT sync_start()"), 1)  # idempotent
        wait_for(lambda: a.status()["sse_connected"] == 1, what="sse connected")
        st = a.status()
        self.assertEqual(st["state"], "idle")
        self.assertEqual(st["url"], s.url)
        self.assertTrue(st["cursor"])
        self.assertEqual(a.one("SELECT sync_stop()"), 1)
        self.assertEqual(a.status()["state"], "stopped")
        self.assertEqual(a.one("SELECT sync_stop()"), 1)

    def test_status_counts_only_when_asked(self):
        # pending and rejected count their tables only when selected; any
        # selection before sync_init fails alike
        a = self.client("a", None)
        a.db.execute("INSERT INTO todos VALUES('x', 'milk', 0)")
        self.assertEqual(a.rows("SELECT pending, rejected FROM sync_status"), [(1, 0)])
        self.assertEqual(a.rows("SELECT rejected, state FROM sync_status"), [(0, "stopped")])
        self.assertEqual(a.rows("SELECT state, needs_token FROM sync_status"), [("stopped", 0)])
        fresh = connect(os.path.join(self.dir, "fresh.db"))
        self.addCleanup(fresh.close)
        for cols in ("*", "state", "pending"):
            with self.assertRaisesRegex(sqlite3.OperationalError,
                                        r"^sync_status: sync_init\(\) has not been called"):
                fresh.execute(f"SELECT {cols} FROM sync_status").fetchall()


class Convergence(E2ETest):
    def test_concurrent_offline_edits_converge(self):
        s = self.syncd()
        a = self.client("a", s.url)
        b = self.client("b", s.url)
        for i in range(5):
            a.db.execute("INSERT INTO todos VALUES(?, ?, 0)", ("k%d" % i, "orig %d" % i))
        a.one("SELECT sync_push()")
        b.one("SELECT sync_pull()")
        for c in (a, b):
            c.one("SELECT sync_start()")
            c.one("SELECT sync_online(0)")
        # both edit the same rows while offline
        a.db.execute("UPDATE todos SET title = 'from a' WHERE id IN ('k0', 'k1')")
        b.db.execute("UPDATE todos SET title = 'from b', done = 1 WHERE id IN ('k1', 'k2')")
        a.db.execute("DELETE FROM todos WHERE id = 'k3'")
        b.db.execute("UPDATE todos SET title = 'b edits a deleted row' WHERE id = 'k3'")
        a.db.execute("INSERT INTO todos VALUES('na', 'new a', 0)")
        b.db.execute("INSERT INTO todos VALUES('nb', 'new b', 0)")
        b.db.execute("INSERT INTO todos VALUES('na', 'b also made na', 1)")
        time.sleep(0.3)
        self.assertEqual(len(server_todos(s)), 5)  # nothing left the machines
        a.one("SELECT sync_online(1)")
        wait_for(lambda: a.one("SELECT sync_pending()") == 0, what="a drained")
        b.one("SELECT sync_online(1)")
        wait_for(lambda: b.one("SELECT sync_pending()") == 0, what="b drained")
        wait_for(lambda: a.todos() == b.todos() == server_todos(s), what="convergence")
        final = dict((r[0], r[1:]) for r in server_todos(s))
        self.assertEqual(final["k0"], ("from a", 0))
        self.assertEqual(final["k1"], ("from b", 1))  # b's update came last
        self.assertNotIn("k3", final)  # b's update of a deleted row was refused
        self.assertEqual(final["na"], ("new a", 0))  # b's insert of na was refused
        self.assertEqual(b.rows("SELECT table_name, op, pk FROM sync_rejected ORDER BY id"),
                         [("todos", "update", '{"id":"k3"}'), ("todos", "insert", '{"id":"na"}')])


class RandomConvergence(E2ETest):
    def test_three_clients_random_edits_converge(self):
        """Random inserts, updates and deletes of a few shared keys on three
        clients that go offline and online at random: once all are online
        and drained, every client equals the server."""
        import random
        rnd = random.Random(int(os.environ.get("E2E_SEED", "0")) or None)
        s = self.syncd()
        cs = [self.client("c%d" % i, s.url, {"backoff_min_ms": 20, "backoff_max_ms": 200})
              for i in range(3)]
        for c in cs:
            c.one("SELECT sync_start()")
        keys = ["k%d" % i for i in range(6)]
        for n in range(240):
            c = rnd.choice(cs)
            k = rnd.choice(keys)
            op = rnd.random()
            try:
                if op < 0.08:
                    c.one("SELECT sync_online(?)", (rnd.randint(0, 1),))
                elif op < 0.4:
                    c.db.execute("INSERT INTO todos VALUES(?, ?, 0)", (k, "n%d" % n))
                elif op < 0.8:
                    c.db.execute("UPDATE todos SET title = ?, done = done + 1 WHERE id = ?",
                                 ("u%d" % n, k))
                else:
                    c.db.execute("DELETE FROM todos WHERE id = ?", (k,))
            except sqlite3.IntegrityError:
                pass
            if n % 10 == 0:
                time.sleep(rnd.uniform(0, 0.03))
        for c in cs:
            c.one("SELECT sync_online(1)")

        def converged():
            if any(c.one("SELECT sync_pending()") for c in cs):
                return False
            srv = server_todos(s)
            return all(c.todos() == srv for c in cs)
        wait_for(converged, timeout=20, step=0.05, what="convergence")


class Resilience(E2ETest):
    def test_syncd_restart_mid_drain(self):
        s = self.syncd()
        a = self.client("a", s.url, {"batch_size": 5, "backoff_min_ms": 50,
                                     "backoff_max_ms": 500})
        a.db.execute("BEGIN")
        for i in range(400):
            a.db.execute("INSERT INTO todos VALUES(?, ?, 0)", ("r%04d" % i, "row %d" % i))
        a.db.execute("COMMIT")
        a.one("SELECT sync_start()")
        wait_for(lambda: s.query("SELECT count(*) FROM todos")[0][0] > 20, what="drain started")
        s.restart(signal.SIGKILL)  # gone mid-batch, no goodbye
        wait_for(lambda: a.one("SELECT sync_pending()") == 0, timeout=30, what="drained")
        self.assertEqual(s.query("SELECT count(*) FROM todos")[0][0], 400)
        self.assertEqual(a.one("SELECT count(*) FROM sync_rejected"), 0)
        wait_for(lambda: a.status()["sse_connected"] == 1, what="sse reconnected")
        b = self.client("b", s.url)
        b.one("SELECT sync_start()")
        wait_for(lambda: b.one("SELECT count(*) FROM todos") == 400, what="b has all")
        a.db.execute("UPDATE todos SET done = 1 WHERE id = 'r0000'")
        wait_for(lambda: b.one("SELECT done FROM todos WHERE id = 'r0000'") == 1,
                 what="live change after restart")

    def test_kill9_client_mid_drain(self):
        """kill -9 at several random points of a drain, then a restart:
        every mutation reaches the server exactly once."""
        import random
        s = self.syncd()
        db = os.path.join(self.dir, "k.db")
        proc = [sys.executable, os.path.join(HERE, "client_proc.py"), db, s.url,
                "--batch", "1", "--start"]
        counts = []
        for round_ in range(3):
            p = subprocess.Popen(proc + (["--insert", "1500"] if round_ == 0 else []),
                                 stdout=subprocess.PIPE)
            try:
                self.assertEqual(p.stdout.readline().strip(), b"ready")
                before = s.query("SELECT count(*) FROM todos")[0][0]
                wait_for(lambda: s.query("SELECT count(*) FROM todos")[0][0] > before,
                         step=0.002, what="drain going")
                time.sleep(random.uniform(0.0, 0.15))
                os.kill(p.pid, signal.SIGKILL)
            finally:
                if p.poll() is None:
                    p.kill()
                p.wait()
                p.stdout.close()
            counts.append(s.query("SELECT count(*) FROM todos")[0][0])
        self.assertLess(counts[-1], 1500, "the drain finished before the kills; make it longer")
        c = self.client("k", s.url)
        self.assertGreater(c.one("SELECT sync_pending()"), 0)
        c.one("SELECT sync_start()")
        wait_for(lambda: c.one("SELECT sync_pending()") == 0, timeout=30, what="drained")
        # every row exactly once; a replayed insert would have been rejected
        self.assertEqual(s.query("SELECT count(*) FROM todos")[0][0], 1500)
        self.assertEqual(c.one("SELECT count(*) FROM sync_rejected"), 0)
        self.assertEqual(s.query("SELECT count(*) FROM _syncd_changes")[0][0], 1500)
        self.assertEqual(s.query("SELECT last_id FROM _syncd_clients")[0][0], 1500)
        self.assertEqual(c.one("SELECT count(*) FROM todos"), 1500)

    def test_401_then_token(self):
        s = self.syncd("--token", "s3cret-token")
        a = self.client("a", s.url)
        a.db.execute("INSERT INTO todos VALUES('x', 'milk', 0)")
        a.one("SELECT sync_start()")
        wait_for(lambda: "401" in (a.status()["last_error"] or ""), what="401 shown")
        st = a.status()
        self.assertEqual(st["state"], "error")
        self.assertIsNone(st["next_retry_at"])  # no retry until the token changes
        self.assertEqual(st["pending"], 1)
        with self.assertRaisesRegex(sqlite3.OperationalError, r"^sync_push: HTTP 401"):
            a.one("SELECT sync_push()")
        self.assertEqual(a.one("SELECT sync_config('token', 's3cret-token')"), "********")
        wait_for(lambda: a.one("SELECT sync_pending()") == 0, what="drained with token")
        wait_for(lambda: a.status()["state"] == "idle", what="idle")
        self.assertIsNone(a.status()["last_error"])
        self.assertEqual(server_todos(s), [("x", "milk", 0)])
        self.assertNotIn("s3cret", repr(a.status()))
        a.one("SELECT sync_stop()")
        a.close()
        for f in os.listdir(self.dir):
            if f.startswith("a.db"):
                with open(os.path.join(self.dir, f), "rb") as fh:
                    self.assertNotIn(b"s3cret", fh.read(), f)

    def test_client_tokens(self):
        # per-client tokens (syncd --client-secret): a client holding another
        # client's token is refused (403) and waits; with its own it syncs,
        # its stream included
        s = self.syncd("--client-secret", "k3y")

        def token(cid):
            out = subprocess.run([SYNCD, "--client-secret", "k3y", "--issue-token", cid],
                                 capture_output=True, text=True, check=True)
            return out.stdout.strip()

        a = self.client("a", s.url)
        b = self.client("b", s.url)
        ida, idb = a.status()["client_id"], b.status()["client_id"]
        a.db.execute("INSERT INTO todos VALUES('x', 'milk', 0)")
        a.one("SELECT sync_config('token', ?)", (token(idb),))
        a.one("SELECT sync_start()")
        wait_for(lambda: "403" in (a.status()["last_error"] or ""), what="403 shown")
        self.assertEqual(a.status()["pending"], 1)
        self.assertEqual(server_todos(s), [])
        b.one("SELECT sync_config('token', ?)", (token(idb),))
        b.one("SELECT sync_start()")
        wait_for(lambda: b.status()["sse_connected"], what="b's stream")
        a.one("SELECT sync_config('token', ?)", (token(ida),))
        wait_for(lambda: a.one("SELECT sync_pending()") == 0, what="drained with its token")
        wait_for(lambda: b.todos() == [("x", "milk", 0)], what="b got it over its stream")
        a.one("SELECT sync_stop()")
        b.one("SELECT sync_stop()")

    def test_410_full_resync(self):
        s = self.syncd("--max-tombstones", "1")
        a = self.client("a", s.url)
        b = self.client("b", s.url)
        a.db.execute("INSERT INTO todos VALUES('keep', 'kept', 0)")
        a.db.execute("INSERT INTO todos VALUES('gone', 'deleted while b is away', 0)")
        a.db.execute("INSERT INTO notes VALUES(5, 'deleted too')")
        a.one("SELECT sync_push()")
        self.assertEqual(b.one("SELECT sync_pull()"), 3)
        old = b.one("SELECT sync_cursor()")
        a.db.execute("DELETE FROM todos WHERE id = 'gone'")
        a.db.execute("DELETE FROM notes WHERE id = 5")
        # tombstones beyond the limit move the horizon past b's cursor
        for i in range(4):
            a.db.execute("INSERT INTO todos VALUES(?, 't', 0)", ("tmp%d" % i,))
        a.db.execute("UPDATE todos SET title = 'changed' WHERE id = 'keep'")
        a.one("SELECT sync_push()")
        a.db.execute("DELETE FROM todos WHERE id LIKE 'tmp%'")
        a.one("SELECT sync_push()")
        with self.assertRaises(Exception):
            s.get("/pull?client_id=x&cursor=" + old)
        # b has a pending edit that must survive the resync
        b.db.execute("INSERT INTO notes VALUES(7, 'local')")
        b.one("SELECT sync_config('backoff_min_ms', 50)")
        b.one("SELECT sync_start()")
        wait_for(lambda: b.one("SELECT title FROM todos WHERE id='keep'") == "changed",
                 what="resynced")
        wait_for(lambda: b.one("SELECT sync_pending()") == 0, what="drained")
        self.assertEqual(s.query("SELECT body FROM notes WHERE id = 7"), [("local",)])
        # rows the server deleted while b's cursor was too old are gone too
        self.assertEqual(b.todos(), [("keep", "changed", 0)])
        self.assertEqual(b.rows("SELECT id, body FROM notes"), [(7, "local")])
        self.assertEqual(b.one("SELECT sync_pending()"), 0)
        wait_for(lambda: b.status()["sse_connected"] == 1, what="sse after resync")
        self.assertNotEqual(b.one("SELECT sync_cursor()"), old)
        # synchronous pull also resyncs on 410
        b.one("SELECT sync_stop()")
        a.one("SELECT sync_pull()")
        a.db.execute("DELETE FROM todos WHERE id = 'keep'")
        a.one("SELECT sync_push()")
        b.db.execute("UPDATE sync_meta SET value = ? WHERE key = 'cursor'", (old,))
        b.db.execute("INSERT INTO todos VALUES('mine', 'pending across a resync', 0)")
        b.one("SELECT sync_online(0)")
        b.one("SELECT sync_online(1)")
        b.one("SELECT sync_pull()")
        self.assertNotEqual(b.one("SELECT sync_cursor()"), old)
        self.assertEqual(b.todos(), [("mine", "pending across a resync", 0)])
        self.assertEqual(b.one("SELECT sync_pending()"), 1)
        # a cursor the server cannot read is treated the same way
        b.db.execute("UPDATE sync_meta SET value = 'not a cursor!' WHERE key = 'cursor'")
        b.one("SELECT sync_pull()")
        self.assertNotEqual(b.one("SELECT sync_cursor()"), "not a cursor!")
        b.db.execute("UPDATE sync_meta SET value = 'not a cursor!' WHERE key = 'cursor'")
        b.one("SELECT sync_start()")
        wait_for(lambda: b.status()["sse_connected"] == 1, what="sse after a bad cursor")
        wait_for(lambda: b.one("SELECT sync_pending()") == 0, what="mine pushed")
        self.assertEqual(b.todos(), [("mine", "pending across a resync", 0)])
        self.assertEqual(b.todos(), server_todos(s))

    def test_failed_drain_retries_by_itself(self):
        hung = FlakyServer(503)
        try:
            a = self.client("a", hung.url, {"backoff_min_ms": 30, "backoff_max_ms": 200,
                                            "sse": "off"})
            a.db.execute("INSERT INTO todos VALUES('x', 'milk', 0)")
            a.one("SELECT sync_start()")
            wait_for(lambda: hung.pushes >= 4, what="retries without a new write")
            st = a.status()
            self.assertIn("503", st["last_error"])
            self.assertEqual(st["online"], 1)
            attempts, err = a.rows("SELECT attempts, last_error FROM sync_pending")[0]
            self.assertGreaterEqual(attempts, 3)
            self.assertIn("HTTP 503", err)
        finally:
            a.one("SELECT sync_stop()")
            hung.close()

    def test_413_halves_the_batch(self):
        s = self.syncd("--max-body", "1500")
        a = self.client("a", s.url, {"batch_size": 64})
        a.db.execute("BEGIN")
        for i in range(40):
            a.db.execute("INSERT INTO todos VALUES(?, ?, 0)", ("r%04d" % i, "x" * 20))
        a.db.execute("COMMIT")
        self.assertEqual(a.one("SELECT sync_push()"), 40)
        a.db.execute("INSERT INTO todos VALUES('w', 'worker', 0)")
        a.one("SELECT sync_start()")
        wait_for(lambda: a.one("SELECT sync_pending()") == 0, what="drained")
        self.assertEqual(s.query("SELECT count(*) FROM todos")[0][0], 41)

    def test_push_answer_over_max_body_halves_the_batch(self):
        # the answer to 40 inserts (each result carries its row) is over
        # max_body: the batch is halved until answers fit, as after a 413
        s = self.syncd()
        a = self.client("a", s.url, {"batch_size": 64})
        a.one("SELECT sync_config('max_body', 4096)")  # the smallest it takes
        a.db.execute("BEGIN")
        for i in range(40):
            a.db.execute("INSERT INTO todos VALUES(?, ?, 0)", ("r%04d" % i, "x" * 200))
        a.db.execute("COMMIT")
        self.assertEqual(a.one("SELECT sync_push()"), 40)
        for i in range(40, 80):
            a.db.execute("INSERT INTO todos VALUES(?, ?, 0)", ("r%04d" % i, "x" * 200))
        a.one("SELECT sync_start()")
        wait_for(lambda: a.one("SELECT sync_pending()") == 0, what="drained")
        self.assertEqual(s.query("SELECT count(*) FROM todos")[0][0], 80)
        self.assertEqual(a.todos(), server_todos(s))


class LostPushAnswer(E2ETest):
    def test_rejection_reaches_the_app_when_the_push_answer_is_lost(self):
        s = self.syncd()
        a = self.client("a", s.url)
        a.db.execute("INSERT INTO todos VALUES('ok', 'fine', 0)")
        a.db.execute("INSERT INTO todos VALUES('no', 'refused', 0)")  # the server's CHECK
        a.db.execute("UPDATE todos SET done = 1 WHERE id = 'ok'")
        a.db.execute("INSERT INTO todos VALUES('ok2', 'fine too', 0)")
        # the push reaches the server, but its answer never reaches the client
        body = json.loads(a.one("SELECT sync_push_batch()"))
        results = s.push(body["client_id"], body["mutations"])["results"]
        self.assertEqual([r["status"] for r in results],
                         ["applied", "rejected", "applied", "applied"])
        reason = results[1]["reason"]
        self.assertIn("CHECK constraint failed", reason)
        self.assertEqual(a.one("SELECT sync_pending()"), 4)
        # the pull's last_mutation_id covers the batch, and its "rejected"
        # (asked for with pending_from) names the one the server refused
        a.one("SELECT sync_pull()")
        self.assertEqual(a.one("SELECT sync_pending()"), 0)
        self.assertEqual(a.rows("SELECT table_name, op, pk, reason FROM sync_rejected"),
                         [("todos", "insert", '{"id":"no"}', reason)])
        self.assertEqual(a.todos(), [("ok", "fine", 1), ("ok2", "fine too", 0)])
        self.assertEqual(a.todos(), server_todos(s))
        # nothing left to report twice
        self.assertEqual(a.one("SELECT sync_pull()"), 0)
        self.assertEqual(a.one("SELECT count(*) FROM sync_rejected"), 1)


class Timing(E2ETest):
    def test_sse_latency_under_100ms(self):
        s = self.syncd()
        b = self.client("b", s.url)
        b.one("SELECT sync_start()")
        wait_for(lambda: b.status()["sse_connected"] == 1, what="sse connected")
        reader = sqlite3.connect(b.path, isolation_level=None)
        times = []
        for i in range(7):
            t0 = time.monotonic()
            s.push("other", [{"id": i + 1, "table": "todos", "op": "insert",
                              "pk": {"id": "l%d" % i}, "data": {"id": "l%d" % i, "title": "t"}}])
            wait_for(lambda: reader.execute("SELECT 1 FROM todos WHERE id = ?",
                                            ("l%d" % i,)).fetchone(), step=0.001,
                     what="row over sse")
            times.append(time.monotonic() - t0)
        reader.close()
        self.assertLess(statistics.median(times), 0.1, times)
        # the push itself took part of that: the event was applied at once.
        # The row is visible once committed, a moment before sync_wait hears
        # of it: let that moment pass, then nothing more comes.
        time.sleep(0.2)
        self.assertEqual(b.one("SELECT sync_wait(0)"), '["todos"]')
        self.assertIsNone(b.one("SELECT sync_wait(50)"))

    def test_stop_and_close_with_hung_server(self):
        hung = HungServer()
        try:
            a = self.client("a", hung.url)
            a.db.execute("INSERT INTO todos VALUES('x', 'milk', 0)")
            a.one("SELECT sync_start()")
            wait_for(lambda: len(hung.conns) >= 1, what="a request hanging")
            t0 = time.monotonic()
            self.assertEqual(a.one("SELECT sync_stop()"), 1)
            self.assertLess(time.monotonic() - t0, 1.0)
            a.one("SELECT sync_start()")
            time.sleep(0.3)
            t0 = time.monotonic()
            a.close()
            self.assertLess(time.monotonic() - t0, 1.0)
            c = self.client("c", hung.url)
            c.one("SELECT sync_config('timeout_ms', 500)")
            c.db.execute("INSERT INTO todos VALUES('y', 'eggs', 0)")
            t0 = time.monotonic()
            with self.assertRaisesRegex(sqlite3.OperationalError,
                                        r"^sync_push: cannot reach .*[Tt]ime"):
                c.one("SELECT sync_push()")
            self.assertLess(time.monotonic() - t0, 2.0)
        finally:
            hung.close()

    def test_online_toggle(self):
        s = self.syncd()
        a = self.client("a", s.url)
        a.one("SELECT sync_start()")
        wait_for(lambda: a.status()["sse_connected"] == 1, what="sse connected")
        self.assertEqual(a.one("SELECT sync_online(0)"), 0)
        a.db.execute("INSERT INTO todos VALUES('x', 'milk', 0)")
        time.sleep(0.4)
        st = a.status()
        self.assertEqual((st["state"], st["online"], st["pending"]), ("offline", 0, 1))
        self.assertEqual(server_todos(s), [])
        with self.assertRaisesRegex(sqlite3.OperationalError, r"^sync_push: offline"):
            a.one("SELECT sync_push()")
        t0 = time.monotonic()
        self.assertEqual(a.one("SELECT sync_online(1)"), 1)
        wait_for(lambda: a.one("SELECT sync_pending()") == 0, step=0.002, what="drained")
        self.assertLess(time.monotonic() - t0, 0.5)
        self.assertEqual(server_todos(s), [("x", "milk", 0)])

    def test_sync_wait_reports_tables(self):
        s = self.syncd()
        a = self.client("a", s.url)
        b = self.client("b", s.url)
        b.one("SELECT sync_start()")
        wait_for(lambda: b.status()["sse_connected"] == 1, what="sse connected")
        self.assertIsNone(b.one("SELECT sync_wait(100)"))
        a.db.execute("INSERT INTO notes VALUES(1, 'n')")
        a.one("SELECT sync_push()")
        self.assertEqual(b.one("SELECT sync_wait(5000)"), '["notes"]')
        self.assertIsNone(b.one("SELECT sync_wait(0)"))

    def test_standby_takes_over(self):
        s = self.syncd()
        db = os.path.join(self.dir, "shared.db")
        c = self.client("shared", s.url)
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "client_proc.py"), db, s.url,
                              "--start", "--wait-sse"], stdout=subprocess.PIPE)
        try:
            self.assertEqual(p.stdout.readline().strip(), b"ready")
            c.one("SELECT sync_start()")
            wait_for(lambda: "standby" in (c.status()["last_error"] or ""), what="standby")
            self.assertEqual(c.status()["role"], "standby")
            c.db.execute("INSERT INTO todos VALUES('s', 'via the other process', 0)")
            # the other process's worker sees the write (data_version) and drains it
            wait_for(lambda: server_todos(s) == [("s", "via the other process", 0)],
                     what="drained by the other process")
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            c.db.execute("INSERT INTO todos VALUES('t', 'after takeover', 0)")
            wait_for(lambda: len(server_todos(s)) == 2, timeout=5, what="takeover")
            self.assertNotIn("standby", c.status()["last_error"] or "")
            self.assertEqual(c.status()["role"], "worker")
            c.one("SELECT sync_stop()")
            self.assertIsNone(c.status()["role"])
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()


class Connectivity(E2ETest):
    def test_offline_learned_without_busy_loop_then_back(self):
        import resource
        import socket
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()  # nothing listens there now
        a = self.client("a", "http://127.0.0.1:%d" % port,
                        {"backoff_min_ms": 50, "backoff_max_ms": 400})
        a.db.execute("INSERT INTO todos VALUES('x', 'milk', 0)")
        a.one("SELECT sync_start()")
        wait_for(lambda: a.status()["state"] == "offline", what="offline learned")
        self.assertEqual(a.one("SELECT sync_online()"), 0)
        t0 = resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(1.5)
        t1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (t1.ru_utime - t0.ru_utime) + (t1.ru_stime - t0.ru_stime)
        self.assertLess(cpu, 0.3, "the worker spins while offline")
        st = a.status()
        self.assertEqual((st["state"], st["online"]), ("offline", 0))
        self.assertIsNotNone(st["next_retry_at"])
        # the server appears on that port: the /health probe finds it, drain follows
        s = Syncd(self.dir, port=port)
        self.servers.append(s)
        wait_for(lambda: a.one("SELECT sync_pending()") == 0, what="drained once online")
        wait_for(lambda: a.status()["online"] == 1, what="online")
        self.assertEqual(server_todos(s), [("x", "milk", 0)])

    def test_writes_from_other_connections_wake_the_worker(self):
        s = self.syncd()
        a = self.client("a", s.url)
        a.one("SELECT sync_start()")
        wait_for(lambda: a.status()["sse_connected"] == 1, what="sse connected")
        # a connection without the extension, in this process
        plain = sqlite3.connect(a.path, isolation_level=None)
        t0 = time.monotonic()
        plain.execute("INSERT INTO todos VALUES('p', 'plain', 0)")
        wait_for(lambda: server_todos(s) == [("p", "plain", 0)], step=0.005, what="plain")
        self.assertLess(time.monotonic() - t0, 1.0)
        plain.close()
        # another process
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c",
                        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);"
                        "c.execute(\"INSERT INTO todos VALUES('q','other process',0)\");"
                        "c.commit()", a.path], check=True)
        wait_for(lambda: len(server_todos(s)) == 2, step=0.005, what="other process")
        self.assertLess(time.monotonic() - t0, 1.5)

    def test_fork_child_does_not_inherit_the_worker(self):
        s = self.syncd()
        a = self.client("a", s.url)
        a.one("SELECT sync_start()")
        wait_for(lambda: a.status()["sse_connected"] == 1, what="sse connected")
        pid = os.fork()
        if pid == 0:  # the child: no worker thread here; stop and close must not hang
            code = 5
            try:
                code = 0 if a.status()["state"] == "stopped" else 3
                a.one("SELECT sync_stop()")
                a.close()
            finally:
                os._exit(code)
        deadline = time.monotonic() + 5
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                self.fail("the child hung in sync_stop or close")
            time.sleep(0.01)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        a.db.execute("INSERT INTO todos VALUES('f', 'after fork', 0)")
        wait_for(lambda: server_todos(s) == [("f", "after fork", 0)], what="parent still syncs")

    def test_silent_event_stream_is_dropped_and_reconnected(self):
        srv = FlakyServer(200)
        a = self.client("a", srv.url, {"backoff_min_ms": 50})
        try:
            a.one("SELECT sync_config('sse_stall_ms', 1000)")
            a.one("SELECT sync_start()")
            wait_for(lambda: srv.streams >= 1, what="stream open")
            wait_for(lambda: a.status()["sse_connected"] == 1, what="sse connected")
            t0 = time.monotonic()
            wait_for(lambda: srv.streams >= 2, timeout=6, what="reconnect after the stall")
            self.assertLess(time.monotonic() - t0, 4.0)
        finally:
            a.one("SELECT sync_stop()")
            srv.close()

    def test_token_and_header_are_sent(self):
        srv = FlakyServer(200)
        try:
            a = self.client("a", srv.url, {"sse": "off"})
            a.one("SELECT sync_config('token', 'tok123')")
            a.one("SELECT sync_config('header', 'X-App: demo')")
            self.assertEqual(a.one("SELECT sync_pull()"), 0)
            self.assertEqual(srv.headers.get("Authorization"), "Bearer tok123")
            self.assertEqual(srv.headers.get("X-App"), "demo")
            with self.assertRaisesRegex(sqlite3.OperationalError,
                                        r'^sync_config: "header" must be one "Name: value" line$'):
                a.one("SELECT sync_config('header', 'no colon')")
        finally:
            srv.close()


class FlakyServer:
    """Answers every /push with a fixed status; /health 200, /pull an empty page."""

    def __init__(self, status):
        import http.server
        import threading
        outer = self
        self.pushes = 0
        self.streams = 0
        self.headers = {}

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, code, body, extra=()):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                outer.headers = dict(self.headers)
                if self.path.startswith("/pull"):
                    self.reply(200, b'{"changes":[],"cursor":"x-1","has_more":false,'
                                    b'"last_mutation_id":0}')
                elif self.path.startswith("/health"):
                    self.reply(200, b'{"ok":true}')
                elif self.path.startswith("/events"):
                    # a stream that goes silent after its first comment
                    outer.streams += 1
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    self.wfile.write(b": ok\n\n")
                    self.wfile.flush()
                    time.sleep(10)
                else:
                    self.reply(404, b'{"error":"not found"}')

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                # the worker's POST /verify (after its first sync) is no push
                outer.pushes += self.path.startswith("/push")
                self.reply(status, b'{"error":"try later"}', [("Retry-After", "0")])

        http.server.ThreadingHTTPServer.daemon_threads = True
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.t.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
