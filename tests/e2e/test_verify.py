"""End-to-end: sync_verify finds the keys where a client and syncd
diverged -- a server database edited behind syncd's back, a client edited
behind the engine's -- repairs exactly those from the server, and leaves
pending local edits alone."""
import ctypes
import json
import os
import sqlite3
import time
import urllib.request

from e2e_util import SCHEMA_PG, E2ETest, PgCluster, RelayProxy, Syncd, wait_for


# The SQLite library this process and the extension share: its heap
# counters (sqlite3_memory_used/highwater) see every allocation the
# extension makes, with sqlite3_malloc, and the page caches.
LIBSQLITE = ctypes.CDLL("libsqlite3.so.0")
LIBSQLITE.sqlite3_memory_used.restype = ctypes.c_int64
LIBSQLITE.sqlite3_memory_highwater.restype = ctypes.c_int64
LIBSQLITE.sqlite3_memory_highwater.argtypes = [ctypes.c_int]


def heap_peak_growth(run):
    """run(), and how many bytes SQLite's heap peaked above where it stood."""
    base = LIBSQLITE.sqlite3_memory_used()
    LIBSQLITE.sqlite3_memory_highwater(1)
    out = run()
    return out, LIBSQLITE.sqlite3_memory_highwater(1) - base


def key_bucket(key_id):
    """The top byte of the key hash of {"id": key_id} (POST /verify's
    definition, common/fphash.c): keys with the same one share a bucket."""
    m64 = (1 << 64) - 1

    def mix(x):
        x ^= x >> 30
        x = (x * 0xBF58476D1CE4E5B9) & m64
        x ^= x >> 27
        x = (x * 0x94D049BB133111EB) & m64
        return x ^ (x >> 31)

    h = 0xCBF29CE484222325
    for b in b"id\0s" + key_id.encode():
        h = ((h ^ b) * 0x100000001B3) & m64
    return mix(mix(h) ^ 0x6B6579) >> 56


class Verify(E2ETest):
    def synced(self, n=300):
        """A server and a client holding the same n todos, nothing pending."""
        s = self.syncd()
        a = self.client("a", s.url)
        a.db.execute("BEGIN")
        for i in range(n):
            a.db.execute("INSERT INTO todos VALUES(?, ?, ?)", (f"k{i}", f"title {i}", i % 2))
        a.db.execute("COMMIT")
        self.assertEqual(a.one("SELECT sync_push()"), n)
        a.one("SELECT sync_pull()")
        self.assertEqual(a.one("SELECT count(*) FROM sync_pending"), 0)
        return s, a

    def verify(self, c, *args):
        sql = "SELECT sync_verify(%s)" % ",".join("?" * len(args))
        return json.loads(c.one(sql, args))

    def server_todos(self, s):
        return s.query("SELECT id, title, done FROM todos ORDER BY id")

    def behind_engine(self, c, sql):
        """Writes to a tracked table that capture does not see."""
        c.db.execute("BEGIN")
        c.db.execute("UPDATE sync_control SET applying = 1")
        c.db.execute(sql)
        c.db.execute("UPDATE sync_control SET applying = 0")
        c.db.execute("COMMIT")

    def test_in_sync_reports_nothing(self):
        s, a = self.synced()
        r = self.verify(a, "todos")
        self.assertEqual(len(r["tables"]), 1)
        t = r["tables"][0]
        self.assertEqual((t["table"], t["checked"], t["diverged"], t["repaired"]),
                         ("todos", 300, 0, 0))
        self.assertEqual(t["requests"], 1)  # one round: every bucket equal

    def test_server_edited_behind_syncd(self):
        s, a = self.synced()
        s.execute("UPDATE todos SET title = 'edited by hand' WHERE id = 'k7'",
                  "INSERT INTO todos VALUES('ghost', 'restored from elsewhere', 1)",
                  "DELETE FROM todos WHERE id = 'k9'")
        cursor = a.one("SELECT sync_cursor()")
        a.one("SELECT sync_pull()")  # the change log knows nothing of it
        self.assertNotEqual(a.todos(), self.server_todos(s))
        r = self.verify(a)
        by = {t["table"]: t for t in r["tables"]}
        self.assertEqual((by["todos"]["checked"], by["todos"]["diverged"],
                          by["todos"]["repaired"]), (300, 3, 3))
        self.assertEqual(by["notes"]["diverged"], 0)
        self.assertEqual((r["diverged"], r["repaired"]), (3, 3))
        self.assertEqual(a.todos(), self.server_todos(s))
        self.assertEqual(a.rows("SELECT id, title FROM todos WHERE id IN ('k7', 'ghost')"),
                         [("ghost", "restored from elsewhere"), ("k7", "edited by hand")])
        self.assertEqual(a.one("SELECT count(*) FROM sync_pending"), 0)  # nothing queued
        self.assertEqual(a.one("SELECT sync_cursor()"), cursor)
        again = self.verify(a, "todos")["tables"][0]
        self.assertEqual((again["diverged"], again["repaired"]), (0, 0))

    def test_client_edited_behind_engine_keeps_pending_edit(self):
        s, a = self.synced()
        # two keys of one bucket (compared row by row together): one edited
        # behind the engine, the other with a pending edit
        seen = {}
        for i in range(300):
            b = key_bucket(f"k{i}")
            if b in seen:
                junk, mine = seen[b], f"k{i}"
                break
            seen[b] = f"k{i}"
        self.behind_engine(a, f"UPDATE todos SET title = 'junk' WHERE id = '{junk}'")
        self.behind_engine(a, "INSERT INTO todos VALUES('phantom', 'never synced', 0)")
        others = [k for k in ("k1", "k2", "k3") if k not in (junk, mine)]
        self.behind_engine(a, f"DELETE FROM todos WHERE id = '{others[0]}'")
        a.db.execute("UPDATE todos SET title = 'mine, pending' WHERE id = ?", (mine,))
        self.assertEqual(a.one("SELECT count(*) FROM sync_pending"), 1)
        r = self.verify(a, "todos")["tables"][0]
        self.assertEqual((r["diverged"], r["repaired"]), (3, 3))
        self.assertEqual(a.one("SELECT title FROM todos WHERE id = ?", (mine,)), "mine, pending")
        self.assertEqual(a.one("SELECT count(*) FROM sync_pending"), 1)
        self.assertEqual(a.one("SELECT title FROM todos WHERE id = ?", (junk,)),
                         "title " + junk[1:])
        self.assertEqual(a.one("SELECT title FROM todos WHERE id = ?", (others[0],)),
                         "title " + others[0][1:])
        self.assertIsNone(a.one("SELECT id FROM todos WHERE id = 'phantom'"))
        self.assertEqual(a.one("SELECT sync_push()"), 1)
        self.assertEqual(s.query("SELECT title FROM todos WHERE id = ?", (mine,)),
                         [("mine, pending",)])
        self.assertEqual(a.todos(), self.server_todos(s))
        self.assertEqual(self.verify(a, "todos")["tables"][0]["diverged"], 0)

    def test_pending_image_is_compared_not_the_edit(self):
        """A key with a pending edit is compared by its server image: a
        server row changed behind syncd under it is repaired into the image
        and the edit replayed on top."""
        s, a = self.synced(50)
        a.db.execute("UPDATE todos SET done = 5 WHERE id = 'k4'")
        s.execute("UPDATE todos SET title = 'server side' WHERE id = 'k4'")
        r = self.verify(a, "todos")["tables"][0]
        self.assertEqual(r["diverged"], 1)
        self.assertEqual(a.rows("SELECT title, done FROM todos WHERE id = 'k4'"),
                         [("server side", 5)])
        self.assertEqual(a.one("SELECT count(*) FROM sync_pending"), 1)

    def test_many_rows_narrowed_down(self):
        """Over a table large enough to need a second split (more than 64
        rows in a bucket of 256), only the rows of small buckets cross the
        wire."""
        s, a = self.synced(20000)
        s.execute("UPDATE todos SET done = 7 WHERE id IN ('k10', 'k2000', 'k19999')")
        r = self.verify(a, "todos")["tables"][0]
        self.assertEqual((r["checked"], r["diverged"], r["repaired"]), (20000, 3, 3))
        self.assertEqual(a.todos(), self.server_todos(s))
        self.assertEqual(r["requests"], 3)  # 256 buckets, 3 x 16 buckets, 3 x 1 bucket's rows
        # a whole-table pull is over 1 MB; splitting the three buckets of
        # about 78 rows in 256 each (not 16) made it about 25000
        self.assertLess(r["bytes"], 15000)

    def test_a_table_the_server_lacks_is_skipped(self):
        """A tracked table syncd does not have is skipped, the others
        verified: told by the answer's "unknown_table" whatever its error
        says, or by the error's text from a syncd without that field; a
        field naming another table is no such answer."""
        s, _ = self.synced(20)
        old = lambda d: {"error": d["error"]}
        reworded = lambda d: dict(d, error="not here")
        other = lambda d: {"error": "no such table: drafts", "unknown_table": "other"}
        for name, rewrite in (("plain", None), ("old", old), ("reworded", reworded),
                              ("other", other)):
            with self.subTest(syncd=name):
                url = s.url
                if rewrite:
                    p = VerifyRefusalProxy(s.url, rewrite)
                    self.addCleanup(p.stop)
                    url = p.url
                c = self.client(name, url)
                c.db.execute("CREATE TABLE drafts(id TEXT PRIMARY KEY, body TEXT)")
                c.one("SELECT sync_track('drafts')")
                c.one("SELECT sync_pull()")
                self.behind_engine(c, "DELETE FROM todos WHERE id = 'k3'")
                if name == "other":
                    with self.assertRaisesRegex(sqlite3.OperationalError,
                                                r"^sync_verify: HTTP 400: no such table: drafts"):
                        self.verify(c)
                    continue
                r = self.verify(c)
                by = {t["table"]: t for t in r["tables"]}
                self.assertEqual(by["drafts"]["skipped"], "the server does not sync it")
                self.assertEqual((by["todos"]["diverged"], by["todos"]["repaired"]), (1, 1))
                self.assertNotIn("skipped", by["todos"])
                self.assertEqual(c.todos(), self.server_todos(s))

    def big_divergence(self, n=50000):
        """A client in sync with 50 todos, and n rows of 500 bytes syncd has
        and the client lacks (written behind syncd's back: no pull brings
        them), with a pending edit on k4 whose server row changed too."""
        s, a = self.synced(50)
        a.db.execute("UPDATE todos SET done = 5 WHERE id = 'k4'")
        pad = "repeat('x', 500)" if s.pg() else "printf('%.500c', 'x')"
        s.execute("UPDATE todos SET title = 'server side' WHERE id = 'k4'",
                  "WITH RECURSIVE i(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM i"
                  " WHERE k < %d) INSERT INTO todos SELECT 'big' || k, %s, k %% 2 FROM i"
                  % (n, pad))
        return s, a

    def test_fifty_thousand_rows_repaired_in_bounded_memory(self):
        """50000 rows of 500 bytes (25 MB of changes) repaired in one call:
        every row arrives, the pending edit is rebased, the cursor stays,
        and the heap peaks far below the size of the repair: the changes
        wait in a temporary table and are applied from it page by page
        (verify.c), not held as one JSON text and then one page (about
        68 MB above the start, measured before; about 6.5 MB now)."""
        s, a = self.big_divergence()
        cursor = a.one("SELECT sync_cursor()")
        r, grew = heap_peak_growth(lambda: self.verify(a, "todos"))
        t = r["tables"][0]
        self.assertEqual((t["checked"], t["diverged"], t["repaired"]), (50050, 50001, 50001))
        self.assertEqual(a.one("SELECT count(*) FROM todos WHERE id LIKE 'big%'"
                               " AND title = printf('%.500c', 'x')"), 50000)
        self.assertEqual(a.rows("SELECT title, done FROM todos WHERE id = 'k4'"),
                         [("server side", 5)])
        self.assertEqual(a.one("SELECT count(*) FROM sync_pending"), 1)
        self.assertEqual(a.one("SELECT sync_cursor()"), cursor)
        self.assertEqual(a.one("SELECT value FROM sync_meta WHERE key = 'diverged_total'"),
                         50001)
        self.assertLess(grew, 16 << 20, "the heap peaked %d bytes above the start" % grew)
        again = self.verify(a, "todos")["tables"][0]
        self.assertEqual((again["checked"], again["diverged"]), (50050, 0))

    def test_stale_spool_rows_are_never_applied(self):
        """Rows left in the spool by an earlier walk (here written by hand
        under the id the next walk would take after them) are deleted by
        the next sync_verify, not applied."""
        s, a = self.synced(20)
        a.one("SELECT sync_verify('todos')")  # makes the spool
        a.db.execute("INSERT INTO temp.sync_verify_spool(walk, change) VALUES"
                     " (1, '{\"table\":\"todos\",\"op\":\"delete\",\"pk\":{\"id\":\"k1\"}}'),"
                     " (2, '{\"table\":\"todos\",\"op\":\"delete\",\"pk\":{\"id\":\"k2\"}}')")
        t = self.verify(a, "todos")["tables"][0]
        self.assertEqual((t["checked"], t["diverged"]), (20, 0))
        self.assertEqual(a.one("SELECT count(*) FROM todos WHERE id IN ('k1', 'k2')"), 2)
        self.assertEqual(a.one("SELECT count(*) FROM temp.sync_verify_spool"), 0)

    def client_state(self, c):
        """What a failed repair must leave as it was."""
        return {t: c.rows("SELECT * FROM %s ORDER BY 1, 2" % t)
                for t in ("todos", "sync_meta", "sync_outbox", "sync_shadow", "sync_inbox")}

    def test_a_failure_late_in_the_repair_leaves_everything_as_it_was(self):
        """A repair of 5000 rows whose 3500th insert fails (a trigger), on
        its fourth page of 1000: the pages applied before it are undone with
        it, the cursor, sync_meta and the pending edit stay, the spool is
        empty, and the next sync_verify repairs everything."""
        s, a = self.big_divergence(5000)
        a.db.execute("CREATE TRIGGER boom BEFORE INSERT ON todos WHEN NEW.id >= 'big'"
                     " AND (SELECT count(*) FROM todos WHERE id >= 'big' AND id < 'bih') >= 3500"
                     " BEGIN SELECT RAISE(ABORT, 'boom'); END")
        before = self.client_state(a)
        with self.assertRaisesRegex(sqlite3.OperationalError, r"^sync_verify: .*boom"):
            self.verify(a, "todos")
        self.assertEqual(self.client_state(a), before)
        self.assertEqual(a.one("SELECT count(*) FROM temp.sync_verify_spool"), 0)
        a.db.execute("DROP TRIGGER boom")
        t = self.verify(a, "todos")["tables"][0]
        self.assertEqual((t["checked"], t["diverged"], t["repaired"]), (5050, 5001, 5001))
        self.assertEqual(a.one("SELECT value FROM sync_meta WHERE key = 'diverged_total'"), 5001)
        self.assertEqual(a.one("SELECT count(*) FROM temp.sync_verify_spool"), 0)
        self.assertEqual(a.rows("SELECT title, done FROM todos WHERE id = 'k4'"),
                         [("server side", 5)])
        self.assertEqual(a.one("SELECT count(*) FROM sync_pending"), 1)

    def test_errors(self):
        s, a = self.synced(3)
        with self.assertRaisesRegex(sqlite3.OperationalError,
                                    r'^sync_verify: table "nope" is not tracked$'):
            a.one("SELECT sync_verify('nope')")
        a.db.execute("BEGIN")
        with self.assertRaisesRegex(sqlite3.OperationalError,
                                    r"^sync_verify: cannot run inside a transaction"):
            a.one("SELECT sync_verify()")
        a.db.execute("ROLLBACK")


# Parents, children referring to them, and UNIQUE values (as in
# test_apply_order): for a repair whose pages split a child from its parent
# and a row from the one holding its value.
REL_SCHEMA = """
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0);
CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE);
CREATE TABLE p(id TEXT PRIMARY KEY, title TEXT);
CREATE TABLE c(id TEXT PRIMARY KEY, p TEXT NOT NULL REFERENCES p(id) ON DELETE CASCADE);
"""


class VerifyPages(E2ETest):
    def test_children_before_parents_and_a_rotation_across_pages(self):
        """1500 children, their 1500 parents and a rotation of 1500 UNIQUE
        values, all behind syncd's back, with foreign keys on: the repair's
        4500 changes come in five pages, children first (tables in name
        order), so the first pages cannot apply alone. They wait for the
        last as a pull's pages do, and the whole repair lands in its one
        transaction."""
        path = os.path.join(self.dir, "rel.sql")
        with open(path, "w") as f:
            f.write(REL_SCHEMA)
        s = Syncd(self.dir, schema=path)
        self.servers.append(s)
        a = self.client("a", s.url)
        a.db.executescript("""
            PRAGMA foreign_keys = ON;
            CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE);
            CREATE TABLE p(id TEXT PRIMARY KEY, title TEXT);
            CREATE TABLE c(id TEXT PRIMARY KEY, p TEXT NOT NULL REFERENCES p(id)
                           ON DELETE CASCADE);""")
        for t in ("u", "p", "c"):
            a.one("SELECT sync_track(?)", (t,))
        a.db.execute("BEGIN")
        for i in range(1500):
            a.db.execute("INSERT INTO u VALUES(?, ?)", (i, "e%d" % i))
        a.db.execute("COMMIT")
        a.one("SELECT sync_push()")
        a.one("SELECT sync_pull()")
        s.execute("UPDATE u SET email = 'r' || id",
                  "UPDATE u SET email = 'e' || ((id + 1) % 1500)",
                  "WITH RECURSIVE i(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM i WHERE k < 1500)"
                  " INSERT INTO p SELECT 'p' || k, 't' || k FROM i",
                  "INSERT INTO c SELECT 'c' || substr(id, 2), id FROM p")
        r = self.verify(a)
        by = {t["table"]: t["diverged"] for t in r["tables"]}
        self.assertEqual((by["c"], by["p"], by["u"], r["repaired"]), (1500, 1500, 1500, 4500))
        for t in ("u", "p", "c"):
            self.assertEqual(a.rows("SELECT * FROM %s ORDER BY 1" % t),
                             s.query("SELECT * FROM %s ORDER BY 1" % t))
        self.assertEqual(a.one("SELECT count(*) FROM sync_pending"), 0)
        self.assertEqual(a.one("SELECT count(*) FROM sync_inbox"), 0)
        self.assertEqual(a.rows("PRAGMA foreign_key_check"), [])
        self.assertEqual(a.one("SELECT count(*) FROM temp.sync_verify_spool"), 0)
        self.assertEqual(self.verify(a)["diverged"], 0)

    def verify(self, c):
        return json.loads(c.one("SELECT sync_verify()"))


class VerifyRefusalProxy(RelayProxy):
    """Relays everything, a /verify 400's body rewritten by rewrite (a dict
    to a dict): a syncd that words or shapes its refusal otherwise."""

    def __init__(self, upstream, rewrite):
        self.rewrite = rewrite
        super().__init__(upstream)

    def relay(self, h, body):
        if not h.path.startswith("/verify"):
            return super().relay(h, body)
        status, data = h.forward(body)
        if status == 400:
            data = json.dumps(self.rewrite(json.loads(data))).encode()
        h.answer(status, data)


class NoVerifyProxy(RelayProxy):
    """Answers /verify with status while it is set (a syncd without it, or
    one refusing the token), counting; relays the rest."""

    def __init__(self, upstream, status):
        self.status, self.asked = status, 0
        super().__init__(upstream)

    def relay(self, h, body):
        if not h.path.startswith("/verify"):
            return super().relay(h, body)
        self.asked += 1
        if self.status:
            return h.answer(self.status, b'{"error":"no verify here"}')
        super().relay(h, body)


class WorkerVerify(E2ETest):
    """The worker verifies by itself after a first sync or a resync, and
    every verify_interval_s; sync_status shows it."""

    def tamper(self, s, sql):
        s.execute(sql)

    def seeded(self):
        s = self.syncd()
        a = self.client("a", s.url)
        for i in range(20):
            a.db.execute("INSERT INTO todos VALUES(?, ?, 0)", (f"k{i}", f"t{i}"))
        self.assertEqual(a.one("SELECT sync_push()"), 20)
        return s

    def test_after_first_sync_and_on_interval(self):
        s = self.seeded()
        b = self.client("b", s.url)
        st = b.status()
        self.assertEqual((st["last_verified_at"], st["diverged_total"], st["last_verify"]),
                         (None, 0, None))
        # the log still says k3 is "t3": the first sync brings that, verify the truth
        self.tamper(s, "UPDATE todos SET title = 'by hand' WHERE id = 'k3'")
        b.one("SELECT sync_config('verify_interval_s', 3600)")  # the one after a first sync
        self.assertEqual(b.one("SELECT sync_start()"), 1)
        wait_for(lambda: b.status()["last_verified_at"], what="first verification")
        wait_for(lambda: b.one("SELECT title FROM todos WHERE id = 'k3'") == "by hand",
                 what="k3 repaired")
        st = b.status()
        self.assertEqual(st["diverged_total"], 1)
        self.assertEqual(json.loads(st["last_verify"])["diverged"], 1)
        # on its interval: a second edit behind syncd is found without a call,
        # and sync_wait hears of the table it repaired
        b.one("SELECT sync_wait(0)")  # what the first sync changed is seen
        self.tamper(s, "DELETE FROM todos WHERE id = 'k4'")
        b.one("SELECT sync_config('verify_interval_s', 1)")
        self.assertEqual(b.one("SELECT sync_wait(10000)"), '["todos"]')
        wait_for(lambda: b.status()["diverged_total"] == 2, what="interval verification")
        self.assertIsNone(b.one("SELECT id FROM todos WHERE id = 'k4'"))
        self.assertEqual(b.todos(), s.query("SELECT id, title, done FROM todos ORDER BY id"))
        b.one("SELECT sync_stop()")

    def test_zero_turns_it_off(self):
        s = self.seeded()
        b = self.client("b", s.url)
        self.tamper(s, "UPDATE todos SET title = 'by hand' WHERE id = 'k3'")
        b.one("SELECT sync_config('verify_interval_s', 0)")
        self.assertEqual(b.one("SELECT sync_start()"), 1)
        wait_for(lambda: b.status()["first_sync_done"] == 1, what="first sync")
        time.sleep(1.5)
        self.assertEqual((b.status()["last_verified_at"], b.one(
            "SELECT title FROM todos WHERE id = 'k3'")), (None, "t3"))
        b.one("SELECT sync_stop()")

    def test_a_server_without_verify_is_not_asked_again(self):
        # A server without /verify (an older syncd) answers 404 or 501.
        # The worker stops asking until restarted, shows no error, and syncs
        # on; sync_verify says why.
        s = self.seeded()
        for status in (404, 501):
            p = NoVerifyProxy(s.url, status)
            self.addCleanup(p.stop)
            b = self.client("b%d" % status, p.url)
            b.one("SELECT sync_config('verify_interval_s', 1)")
            self.assertEqual(b.one("SELECT sync_start()"), 1)
            wait_for(lambda: p.asked >= 1, what="the verification after the first sync")
            time.sleep(2.5)  # two intervals
            self.assertEqual(p.asked, 1)
            st = b.status()
            self.assertEqual((st["state"], st["last_error"], st["last_verified_at"]),
                             ("idle", None, None))
            b.db.execute("INSERT INTO todos VALUES(?, 'after', 0)", ("n%d" % status,))
            wait_for(lambda: s.query("SELECT count(*) FROM todos WHERE id = ?",
                                     ("n%d" % status,)) == [(1,)], what="still syncing")
            b.one("SELECT sync_stop()")
            with self.assertRaisesRegex(sqlite3.OperationalError, r"^sync_verify: HTTP %d" % status):
                b.one("SELECT sync_verify()")

    def test_a_refused_token_waits_for_a_new_one(self):
        # 401 to the worker's verification: needs_token as for a push or a
        # pull, and the verification goes as soon as a new token is in
        s = self.seeded()
        p = NoVerifyProxy(s.url, 401)
        self.addCleanup(p.stop)
        b = self.client("b", p.url)
        b.one("SELECT sync_config('token', 'old')")
        b.one("SELECT sync_config('verify_interval_s', 3600)")
        self.assertEqual(b.one("SELECT sync_start()"), 1)
        wait_for(lambda: b.status()["needs_token"] == 1, what="needs_token")
        st = b.status()
        self.assertEqual(st["state"], "error")
        self.assertRegex(st["last_error"], r"^verify: HTTP 401")
        self.assertIsNone(st["last_verified_at"])
        p.status = None
        b.one("SELECT sync_config('token', 'new')")
        wait_for(lambda: b.status()["last_verified_at"], what="verified with the new token")
        self.assertEqual(b.status()["needs_token"], 0)
        b.one("SELECT sync_stop()")

    def test_sync_verify_records_status(self):
        s = self.seeded()
        b = self.client("b", s.url)
        self.tamper(s, "INSERT INTO todos VALUES('ghost', 'g', 1)")
        b.one("SELECT sync_pull()")
        r = json.loads(b.one("SELECT sync_verify()"))
        st = b.status()
        self.assertEqual(st["diverged_total"], 1)
        self.assertEqual(json.loads(st["last_verify"]), r)
        self.assertRegex(st["last_verified_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        json.loads(b.one("SELECT sync_verify()"))
        self.assertEqual(b.status()["diverged_total"], 1)

    def test_interval_setting(self):
        s = self.seeded()
        a = self.clients[0]
        self.assertEqual(a.one("SELECT sync_config('verify_interval_s')"), 300)
        self.assertEqual(a.one("SELECT sync_config('verify_interval_s', 0)"), 0)
        self.assertEqual(a.one("SELECT sync_config('verify_interval_s')"), 0)
        with self.assertRaisesRegex(sqlite3.OperationalError,
                                    r'^sync_config: "verify_interval_s" must be an integer of '
                                    r"at least 0$"):
            a.one("SELECT sync_config('verify_interval_s', -1)")


class BringYourOwnTransport(E2ETest):
    """sync_verify_request / sync_verify_answer: the app carries the bodies
    to POST /verify itself."""

    def post(self, s, body):
        req = urllib.request.Request(s.url + "/verify", body.encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()

    def test_walk_and_repair(self):
        s = self.syncd()
        a = self.client("a", s.url)
        for i in range(200):
            a.db.execute("INSERT INTO todos VALUES(?, ?, 0)", (f"k{i}", f"t{i}"))
        a.one("SELECT sync_push()")
        a.one("SELECT sync_pull()")
        s.execute("UPDATE todos SET done = 9 WHERE id = 'k5'",
                  "INSERT INTO todos VALUES('ghost', 'g', 0)")
        body = a.one("SELECT sync_verify_request('todos')")
        rounds = 0
        while True:
            self.assertIn('"client_id"', body)
            out = json.loads(a.one("SELECT sync_verify_answer(?)", (self.post(s, body),)))
            rounds += 1
            if "tables" in out:
                break
            body = json.dumps(out)
        self.assertEqual(out["tables"][0]["table"], "todos")
        self.assertEqual((out["tables"][0]["checked"], out["diverged"], out["repaired"]),
                         (201, 2, 2))
        self.assertEqual(rounds, 2)  # buckets, then the rows of the two that differ
        self.assertEqual(a.todos(), s.query("SELECT id, title, done FROM todos ORDER BY id"))
        self.assertEqual(a.status()["diverged_total"], 2)
        with self.assertRaisesRegex(sqlite3.OperationalError,
                                    r"^sync_verify_answer: no verification under way"):
            a.one("SELECT sync_verify_answer('{}')")

    def walk(self, s, c, table):
        """A whole walk through sync_verify_request/answer: its report."""
        body = c.one("SELECT sync_verify_request(?)", (table,))
        while True:
            out = json.loads(c.one("SELECT sync_verify_answer(?)", (self.post(s, body),)))
            if "tables" in out:
                return out
            body = json.dumps(out)

    def test_many_rows_in_bounded_memory_and_one_savepoint(self):
        """5000 rows syncd has and the client lacks, walked inside the
        app's own transaction with a trigger refusing the 3500th insert (on
        the fourth page of the repair): the answer fails, and everything
        the repair applied before it is undone, not only its last page; the
        spool is empty. A walk given up for a new one leaves nothing
        spooled; one whose spooled changes an app's rollback took refuses
        to repair the rest. Outside a transaction the walk repairs all 5000
        with the heap peaking far below their size."""
        s = self.syncd()
        a = self.client("a", s.url)
        a.db.execute("INSERT INTO todos VALUES('k', 't', 0)")
        a.one("SELECT sync_push()")
        a.one("SELECT sync_pull()")
        pad = "repeat('x', 500)" if s.pg() else "printf('%.500c', 'x')"
        s.execute("WITH RECURSIVE i(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM i"
                  " WHERE k < 5000) INSERT INTO todos SELECT 'big' || k, %s, 0 FROM i" % pad)
        a.db.execute("CREATE TRIGGER boom BEFORE INSERT ON todos WHEN NEW.id >= 'big'"
                     " AND (SELECT count(*) FROM todos WHERE id >= 'big' AND id < 'bih') >= 3500"
                     " BEGIN SELECT RAISE(ABORT, 'boom'); END")
        before = a.todos()
        a.db.execute("BEGIN")
        with self.assertRaisesRegex(sqlite3.OperationalError, r"^sync_verify_answer: .*boom"):
            self.walk(s, a, "todos")
        self.assertEqual(a.todos(), before)
        a.db.execute("COMMIT")
        self.assertEqual(a.todos(), before)
        self.assertEqual(a.one("SELECT count(*) FROM temp.sync_verify_spool"), 0)
        self.assertIsNone(a.one("SELECT value FROM sync_meta WHERE key = 'diverged_total'"))
        a.db.execute("DROP TRIGGER boom")
        # given up after some answers of rows: the next walk drops their changes
        body = a.one("SELECT sync_verify_request('todos')")
        for _ in range(2):  # the buckets, then the first of two answers of rows
            body = a.one("SELECT sync_verify_answer(?)", (self.post(s, body),))
        self.assertIn('"rows":true', body)
        self.assertGreater(a.one("SELECT count(*) FROM temp.sync_verify_spool"), 0)
        a.one("SELECT sync_verify_request('todos')")
        self.assertEqual(a.one("SELECT count(*) FROM temp.sync_verify_spool"), 0)
        # the app's transaction holding the first answer's changes rolls
        # back during the walk: the repair refuses to apply the rest alone
        body = a.one("SELECT sync_verify_request('todos')")
        body = a.one("SELECT sync_verify_answer(?)", (self.post(s, body),))
        a.db.execute("BEGIN")
        body = a.one("SELECT sync_verify_answer(?)", (self.post(s, body),))
        a.db.execute("ROLLBACK")
        with self.assertRaisesRegex(sqlite3.OperationalError,
                                    r"^sync_verify_answer: the repair's spool holds \d+ changes"
                                    r" where the walk found 5000 \(a transaction that held them"
                                    r" rolled back\): verify again$"):
            a.one("SELECT sync_verify_answer(?)", (self.post(s, body),))
        self.assertEqual(a.todos(), before)
        self.assertEqual(a.one("SELECT count(*) FROM temp.sync_verify_spool"), 0)
        out, grew = heap_peak_growth(lambda: self.walk(s, a, "todos"))
        self.assertEqual((out["tables"][0]["checked"], out["diverged"]), (5001, 5000))
        self.assertEqual(a.todos(), s.query("SELECT id, title, done FROM todos ORDER BY id"))
        self.assertEqual(a.one("SELECT count(*) FROM temp.sync_verify_spool"), 0)
        self.assertLess(grew, 8 << 20, "the heap peaked %d bytes above the start" % grew)

    def test_answer_at_another_cursor(self):
        s = self.syncd()
        a = self.client("a", s.url)
        a.db.execute("INSERT INTO todos VALUES('x', 'y', 0)")
        a.one("SELECT sync_push()")
        a.one("SELECT sync_pull()")
        body = a.one("SELECT sync_verify_request('todos')")
        s.push("other", [{"id": 1, "table": "todos", "op": "insert", "pk": {"id": "z"},
                          "data": {"id": "z", "title": "moved on", "done": 0}}])
        with self.assertRaisesRegex(sqlite3.OperationalError,
                                    r"^sync_verify_answer: the server answered at cursor .*, "
                                    r"the client is at "):
            a.one("SELECT sync_verify_answer(?)", (self.post(s, body),))
        with self.assertRaisesRegex(sqlite3.OperationalError,
                                    r'^sync_verify_request: table "nope" is not tracked$'):
            a.one("SELECT sync_verify_request('nope')")


class ServerReset(E2ETest):
    """A server restored from an older copy, or replaced, is noticed (its
    410 says "reset"): the client resyncs and nothing it had confirmed is
    dropped silently."""

    def restore(self, s, files):
        s.stop()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(s.db + suffix):
                os.remove(s.db + suffix)
        for suffix, data in files.items():
            with open(s.db + suffix, "wb") as f:
                f.write(data)
        s.start()

    def backup(self, s):
        s.stop()
        files = {}
        for suffix in ("", "-wal"):
            if os.path.exists(s.db + suffix):
                with open(s.db + suffix, "rb") as f:
                    files[suffix] = f.read()
        s.start()
        return files

    def scenario(self, options=None):
        s = self.syncd()
        a = self.client("a", s.url, options)
        for i in range(3):
            a.db.execute("INSERT INTO todos VALUES(?, ?, 0)", (f"old{i}", f"old {i}"))
        self.assertEqual(a.one("SELECT sync_push()"), 3)
        old = self.backup(s)
        a.db.execute("INSERT INTO todos VALUES('new1', 'after the copy', 0)")
        a.db.execute("UPDATE todos SET title = 'edited after the copy' WHERE id = 'old0'")
        self.assertEqual(a.one("SELECT sync_push()"), 2)
        a.one("SELECT sync_pull()")
        self.restore(s, old)
        return s, a

    def test_restored_server_rows_become_orphans(self):
        s, a = self.scenario()
        a.db.execute("INSERT INTO todos VALUES('pending', 'not sent yet', 0)")
        a.one("SELECT sync_pull()")  # 410 reset: a full resync
        # what the server lacks (new1) and what it has older (old0) are
        # listed with the rows this client held; old1 and old2 are the same
        self.assertEqual(
            [(r[0], json.loads(r[1]), json.loads(r[2]), r[3]) for r in
             a.rows("SELECT table_name, pk, row, state FROM sync_orphans ORDER BY pk")],
            [("todos", {"id": "new1"}, {"id": "new1", "title": "after the copy", "done": 0},
              "server_reset"),
             ("todos", {"id": "old0"}, {"id": "old0", "title": "edited after the copy",
                                        "done": 0}, "server_reset")])
        # sync_status says so, in words
        st = a.status()
        self.assertIn("the server went back in time", st["server_reset"])
        self.assertIn("2 rows it lost or holds older are listed in sync_orphans",
                      st["server_reset"])
        self.assertIsNotNone(st["server_reset_at"])
        # the pending insert is kept and still goes; the server's older row
        # takes the table
        self.assertEqual(a.one("SELECT title FROM todos WHERE id = 'old0'"), "old 0")
        self.assertIsNone(a.one("SELECT id FROM todos WHERE id = 'new1'"))
        self.assertEqual(a.one("SELECT sync_push()"), 1)
        self.assertEqual(a.todos(), s.query("SELECT id, title, done FROM todos ORDER BY id"))
        a.db.execute("DELETE FROM sync_orphans WHERE state = 'server_reset'")  # acknowledged
        self.assertEqual(a.one("SELECT count(*) FROM sync_orphans"), 0)

    def test_a_lost_row_with_a_pending_edit_is_listed(self):
        """new1, which the restored server lost, has an edit pending: the
        edit is refused (no such row) and takes the row, which is listed
        with the edit."""
        s, a = self.scenario()
        a.db.execute("UPDATE todos SET title = 'edited, pending' WHERE id = 'new1'")
        a.one("SELECT sync_pull()")
        listed = {r[0]: json.loads(r[1]) for r in
                  a.rows("SELECT pk, row FROM sync_orphans WHERE state = 'server_reset'")}
        self.assertEqual(listed['{"id":"new1"}']["title"], "edited, pending")
        a.one("SELECT sync_push()")
        self.assertIsNone(a.one("SELECT id FROM todos WHERE id = 'new1'"))
        self.assertEqual(a.todos(), s.query("SELECT id, title, done FROM todos ORDER BY id"))

    def test_an_integer_key_held_older(self):
        """Rows found by an INTEGER PRIMARY KEY: the one edited after the
        copy is listed with its edit, the other is left alone."""
        s = self.syncd()
        a = self.client("a", s.url)
        a.db.execute("INSERT INTO notes VALUES(1, 'one'), (2, 'two')")
        self.assertEqual(a.one("SELECT sync_push()"), 2)
        old = self.backup(s)
        a.db.execute("UPDATE notes SET body = 'one, edited' WHERE id = 1")
        self.assertEqual(a.one("SELECT sync_push()"), 1)
        a.one("SELECT sync_pull()")
        self.restore(s, old)
        a.one("SELECT sync_pull()")
        self.assertEqual([(r[0], json.loads(r[1]), json.loads(r[2])) for r in
                          a.rows("SELECT table_name, pk, row FROM sync_orphans")],
                         [("notes", {"id": 1}, {"id": 1, "body": "one, edited"})])
        self.assertEqual(a.rows("SELECT id, body FROM notes ORDER BY id"), [(1, "one"), (2, "two")])

    def test_republish_pushes_them_again(self):
        s, a = self.scenario({"on_server_reset": "republish"})
        self.assertEqual(a.one("SELECT sync_config('on_server_reset')"), "republish")
        a.one("SELECT sync_pull()")
        self.assertEqual(a.one("SELECT count(*) FROM sync_orphans"), 0)
        self.assertIn("queued to be pushed again", a.status()["server_reset"])
        # what the server lacks goes again as an insert, what it has older
        # as an update of the values this client held (and still shows)
        self.assertEqual(a.rows("SELECT op, pk, data FROM sync_pending ORDER BY id"),
                         [("update", '{"id":"old0"}', '{"title":"edited after the copy","done":0}'),
                          ("insert", '{"id":"new1"}',
                           '{"id":"new1","title":"after the copy","done":0}')])
        self.assertEqual(a.one("SELECT title FROM todos WHERE id = 'old0'"),
                         "edited after the copy")
        self.assertEqual(a.one("SELECT sync_push()"), 2)
        self.assertEqual(s.query("SELECT id, title FROM todos WHERE id IN ('new1', 'old0')"
                                 " ORDER BY id"),
                         [("new1", "after the copy"), ("old0", "edited after the copy")])
        # a second client sees the restored write
        b = self.client("b", s.url)
        b.one("SELECT sync_pull()")
        self.assertEqual(b.todos(), a.todos())

    def test_replaced_server(self):
        """A new server database (another epoch): every confirmed row is
        listed, none silently dropped."""
        s, a = self.scenario()
        self.restore(s, {})
        a.one("SELECT sync_pull()")
        self.assertEqual(sorted(json.loads(r[0])["id"] for r in
                                a.rows("SELECT pk FROM sync_orphans WHERE state='server_reset'")),
                         ["new1", "old0", "old1", "old2"])
        self.assertEqual(a.todos(), [])

    def test_expired_cursor_is_no_reset(self):
        """A cursor below the compaction horizon still means deleted."""
        s = self.syncd("--max-tombstones", "1")
        a = self.client("a", s.url)
        b = self.client("b", s.url)
        for i in range(3):
            a.db.execute("INSERT INTO todos VALUES(?, 'x', 0)", (f"k{i}",))
        a.one("SELECT sync_push()")
        b.one("SELECT sync_pull()")
        a.db.execute("DELETE FROM todos")
        a.one("SELECT sync_push()")
        b.one("SELECT sync_pull()")  # 410 (horizon): a resync deletes them
        self.assertEqual(b.todos(), [])
        self.assertEqual(b.one("SELECT count(*) FROM sync_orphans"), 0)

    def test_setting(self):
        s = self.syncd()
        a = self.client("a", s.url)
        self.assertEqual(a.one("SELECT sync_config('on_server_reset')"), "orphans")
        with self.assertRaisesRegex(sqlite3.OperationalError,
                                    r'^sync_config: "on_server_reset" must be orphans or '
                                    r"republish$"):
            a.one("SELECT sync_config('on_server_reset', 'drop')")


# The tests of a server edited behind syncd, of a client edited behind the
# engine and of a server restored or replaced, on PostgreSQL storage too
# (issue 14: both stores). One throwaway cluster for the module.
CLUSTER = PgCluster()


def tearDownModule():
    CLUSTER.stop()


class PgStorage:
    """Mixin: self.syncd() serves a fresh database of the module's cluster
    (tests/e2e/schema_pg.sql); backup and restore copy databases."""

    @classmethod
    def setUpClass(cls):
        if not CLUSTER.url:
            CLUSTER.start()

    def syncd(self, *extra):
        self.pgname = "e2e_%d_%d" % (os.getpid(), len(self.servers))
        CLUSTER.drop(self.pgname)
        s = Syncd(self.dir, extra, schema=SCHEMA_PG,
                  store=["--pg", CLUSTER.create(self.pgname)])
        self.servers.append(s)
        return s

    def backup(self, s):
        s.stop()
        name = self.pgname + "_copy"
        CLUSTER.drop(name)
        CLUSTER.create(name, template=self.pgname)
        s.start()
        return name

    def restore(self, s, copy):
        """Back to copy, or (copy empty) a new database: another epoch."""
        s.stop()
        CLUSTER.drop(self.pgname)
        CLUSTER.create(self.pgname, template=copy or None)
        s.start()


class PgVerify(PgStorage, Verify):
    pass


class PgServerReset(PgStorage, ServerReset):
    pass


class PgWorkerVerify(PgStorage, WorkerVerify):
    pass


class PgBringYourOwnTransport(PgStorage, BringYourOwnTransport):
    pass
