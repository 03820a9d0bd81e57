"""End-to-end: pulls converge on a schema with UNIQUE columns and foreign
keys (issue 13, defects 1, 17, 18), with foreign keys on in every client and
pages of one change, so that a page boundary falls between the halves of a
swap and between a child and its parent.

The server keeps the latest change per row, so a swap made through a
temporary value arrives as two rows that each collide with the other's old
value on the receiving client.

A second test needs no server: a model of one (rows permuted among their
UNIQUE values, inserts, deletes with their cascades logged) hands its latest
change per row, in any order and split into pages of random size, to
sync_apply, while the client holds pending inserts that take the values the
server is about to use. After each pull the server's rows are the client's,
value for value, and no pending mutation is lost.
"""
import json
import random
import sqlite3

from e2e_util import E2ETest, connect

SCHEMA = """
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0);
CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE);
CREATE TABLE p(id TEXT PRIMARY KEY, title TEXT);
CREATE TABLE c(id TEXT PRIMARY KEY, p TEXT NOT NULL REFERENCES p(id) ON DELETE CASCADE);
"""

CLIENT_TABLES = """
PRAGMA foreign_keys = ON;
CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE);
CREATE TABLE p(id TEXT PRIMARY KEY, title TEXT);
CREATE TABLE c(id TEXT PRIMARY KEY, p TEXT NOT NULL REFERENCES p(id) ON DELETE CASCADE);
"""


class ApplyOrder(E2ETest):
    def server(self):
        return self.syncd(schema_sql=SCHEMA)

    def peer(self, name, url, pull_limit=1):
        cl = self.client(name, url, {"pull_limit": pull_limit})
        cl.db.executescript(CLIENT_TABLES)
        for t in ("u", "p", "c"):
            cl.one("SELECT sync_track(?)", (t,))
        return cl

    def test_swaps_rotations_and_parents_across_pages(self):
        s = self.server()
        b = self.peer("b", s.url, pull_limit=1000)
        a = self.peer("a", s.url)
        b.db.executescript("INSERT INTO u VALUES (1, 'x'), (2, 'y'), (3, 'z');")
        b.one("SELECT sync_push()")
        a.one("SELECT sync_pull()")
        self.assertEqual(a.rows("SELECT * FROM u ORDER BY id"), [(1, "x"), (2, "y"), (3, "z")])

        # A swap through a temporary value, and a three-row rotation.
        b.db.executescript("""
            UPDATE u SET email = 'tmp' WHERE id = 1;
            UPDATE u SET email = 'x' WHERE id = 2;
            UPDATE u SET email = 'y' WHERE id = 1;""")
        b.one("SELECT sync_push()")
        a.one("SELECT sync_pull()")
        self.assertEqual(a.rows("SELECT * FROM u ORDER BY id"), [(1, "y"), (2, "x"), (3, "z")])
        b.db.executescript("""
            UPDATE u SET email = 't' WHERE id = 1;
            UPDATE u SET email = 'y' WHERE id = 3;
            UPDATE u SET email = 'z' WHERE id = 2;
            UPDATE u SET email = 'x' WHERE id = 1;""")
        b.one("SELECT sync_push()")
        a.one("SELECT sync_pull()")
        want = [(1, "x"), (2, "z"), (3, "y")]
        self.assertEqual(a.rows("SELECT * FROM u ORDER BY id"), want)

        # A value handed to a new row: row 3 changes again afterwards, so
        # the new row comes first in the log, on its own page.
        b.db.executescript("""
            UPDATE u SET email = 'c' WHERE id = 3;
            INSERT INTO u VALUES (5, 'y');
            UPDATE u SET email = 'd' WHERE id = 3;""")
        b.one("SELECT sync_push()")
        a.one("SELECT sync_pull()")
        want = [(1, "x"), (2, "z"), (3, "d"), (5, "y")]
        self.assertEqual(a.rows("SELECT * FROM u ORDER BY id"), want)

        # A child on an earlier page than its parent (the parent changed last).
        b.db.executescript("""
            INSERT INTO p VALUES ('P', 'home');
            INSERT INTO c VALUES ('c1', 'P');
            UPDATE p SET title = 'house' WHERE id = 'P';""")
        b.one("SELECT sync_push()")
        a.one("SELECT sync_pull()")
        self.assertEqual(a.rows("SELECT * FROM c"), [("c1", "P")])
        self.assertEqual(a.rows("SELECT * FROM p"), [("P", "house")])

        # A fresh client's initial sync, one change a page, gets it all.
        f = self.peer("fresh", s.url)
        f.one("SELECT sync_pull()")
        b.one("SELECT sync_pull()")
        for cl in (a, f):
            self.assertEqual(cl.rows("SELECT * FROM u ORDER BY id"), want)
            self.assertEqual(cl.rows("SELECT * FROM c"), [("c1", "P")])
            self.assertEqual(cl.rows("PRAGMA foreign_key_check"), [])
            self.assertEqual(cl.one("SELECT count(*) FROM sync_inbox"), 0)
            self.assertEqual(cl.one("SELECT sync_cursor()"), b.one("SELECT sync_cursor()"))


RAND_DDL = """
PRAGMA foreign_keys = ON;
CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE, n INTEGER UNIQUE, k TEXT, j INTEGER,
               UNIQUE (k, j));
CREATE TABLE ch(id INTEGER PRIMARY KEY, uid INTEGER REFERENCES u(id) ON DELETE CASCADE,
                tag TEXT UNIQUE);
"""


def unique_ok(rows):
    vals = list(rows.values())
    return all(len({key(v) for v in vals}) == len(vals)
               for key in (lambda v: v[0], lambda v: v[1], lambda v: (v[2], v[3])))


class ApplyOrderModel(E2ETest):
    def pull_round(self, db, rnd, cur, server, kids, local):
        """One server round: returns the new server state and the pages."""
        changed = {}
        ids = list(server)
        if ids and rnd.random() < 0.7:
            vals = [server[i] for i in ids]
            rnd.shuffle(vals)
            changed = dict(zip(ids, vals))
        for _ in range(rnd.randint(0, 4)):
            i = rnd.randint(1, 30)
            if i not in changed and i not in server:
                changed[i] = ("e%d" % rnd.randint(0, 10**9), rnd.randint(-10**6, 10**6),
                              "k%d" % rnd.randint(0, 3), rnd.randint(0, 10**9))
        gone = {i for i in server if i not in changed and rnd.random() < 0.1}
        new = {i: v for i, v in server.items() if i not in gone}
        new.update(changed)
        if not unique_ok(new):
            return server, []
        log = {}
        for i, v in changed.items():
            log[("u", i)] = {"table": "u", "op": "upsert", "pk": {"id": i},
                             "row": {"id": i, "email": v[0], "n": v[1], "k": v[2], "j": v[3]}}
        for i in gone:
            log[("u", i)] = {"table": "u", "op": "delete", "pk": {"id": i}}
        for c in [c for c, (uid, _) in kids.items() if uid in gone]:
            del kids[c]
            log[("ch", c)] = {"table": "ch", "op": "delete", "pk": {"id": c}}
        for _ in range(rnd.randint(0, 3)):
            c, uid, tag = rnd.randint(1, 40), rnd.choice(list(new)), "t%d" % rnd.randint(0, 5)
            if any(t == tag and cc != c for cc, (_, t) in kids.items()):
                continue
            kids[c] = (uid, tag)
            log[("ch", c)] = {"table": "ch", "op": "upsert", "pk": {"id": c},
                              "row": {"id": c, "uid": uid, "tag": tag}}
        # A pending local insert holding a value the server is about to use.
        if changed and rnd.random() < 0.5:
            v = rnd.choice(list(changed.values()))
            try:
                db.execute("INSERT INTO u VALUES (?, ?, ?, 'local', ?)",
                           (1000 + cur, v[0], 10**8 + cur, cur))
                local.add(1000 + cur)
            except sqlite3.IntegrityError:
                pass
        changes = list(log.values())
        rnd.shuffle(changes)
        size = rnd.randint(1, 4)
        return new, [changes[k:k + size] for k in range(0, len(changes), size)] or [[]]

    def test_random_pulls_converge(self):
        for seed in range(12):
            with self.subTest(seed=seed):
                rnd = random.Random(seed)
                db = connect(":memory:")
                db.execute("SELECT sync_init(NULL)")
                db.executescript(RAND_DDL)
                db.execute("SELECT sync_track('u')")
                db.execute("SELECT sync_track('ch')")
                server, kids, local, cur = {}, {}, set(), 0
                for _ in range(8):
                    server, pages = self.pull_round(db, rnd, cur, server, kids, local)
                    pending = db.execute("SELECT sync_pending()").fetchone()[0]
                    for k, changes in enumerate(pages):
                        cur += 1
                        page = {"changes": changes, "cursor": str(cur)}
                        if k < len(pages) - 1:
                            page["has_more"] = True
                        db.execute("SELECT sync_apply(?)", (json.dumps(page),))
                    got = {r[0]: tuple(r[1:])
                           for r in db.execute("SELECT * FROM u WHERE id < 1000")}
                    self.assertEqual(got, server)
                    got = {r[0]: tuple(r[1:]) for r in db.execute("SELECT * FROM ch")}
                    self.assertEqual(got, kids)
                    self.assertEqual(db.execute("SELECT sync_pending()").fetchone()[0], pending)
                    self.assertEqual(db.execute("SELECT count(*) FROM sync_inbox").fetchone()[0], 0)
                    self.assertEqual(db.execute("PRAGMA foreign_key_check").fetchall(), [])
                db.close()
