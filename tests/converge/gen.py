"""The convergence test's operation generator and its log format.

A log is JSON: {"seed", "mode", "clients": [per-client settings], "trigger",
"ops": [...]}; mode "single" is the single-client property (harness.py),
"trigger" whether syncd gets server_only.sql.
Every op is concrete (SQL text and parameters, never "some existing row"),
so a log replays the same writes whatever the engine did, and any subset of
its ops is still a valid log (what the shrinker needs). The generator draws
keys and values from small pools instead of reading a client's rows, which
keeps the log a function of the seed alone and makes statements collide
often: a statement that fails locally (a UNIQUE or FOREIGN KEY violation
the client's own table refuses) is simply skipped by the driver.

Ops (each has "c", the client index, and "kind", a label for reports):
  {"op": "tx", "stmts": [[sql, params], ...], "end": "commit"|"rollback"}
  {"op": "push"} / {"op": "pull"}      sync_push() / sync_pull() now
  {"op": "offline"} / {"op": "online"} sync_online(0) / sync_online(1)
  {"op": "wsync"}     the worker client goes online until it is quiescent
  {"op": "txsync", "stmts": [...], "call": "sync_push"|"sync_pull"}
                      BEGIN; stmts; SELECT call(); ROLLBACK
Parameters are JSON values; a BLOB is {"$blob": "hex"}.
"""
import random

INT_EXTREMES = [0, 1, -1, 42, 2**63 - 1, -2**63, 2**53 + 1, -(2**53 + 1), 2**31]
REAL_EXTREMES = [0.0, -0.0, 1.5, -2.25, 0.1, 1e308, -1e308, 5e-324, 1e-300,
                 float(2**53), 123456789.125]
TEXT_EXTREMES = ["", "it's", 'say "hi"', "line1\nline2\r\nline3", "tab\there",
                 "\u00fcn\u00efc\u00f6d\u00e9 \u2713 \U0001F600", "NULL", "%w %Q %s", "back\\slash",
                 "'); DROP TABLE users; --", "{\"$blob\": \"00\"}"]
BLOB_EXTREMES = [b"", b"\x00", b"\x00\x01\x00", bytes(range(32)), b"'\n\x00\"x\xff"]

USER_IDS = range(1, 7)
EMAILS = ["a@x", "b@x", "c@x", "d@x", "e@x"]
PROJECT_IDS = range(1, 6)
TASK_NS = range(1, 5)
TAG_NAMES = ["red", "green", "blue", "teal"]
COLORS = ["c1", "c2", "c3", "c4"]

# Kinds of writes, each with the flag that turns it off (run.py --no-KIND).
FLAG_KINDS = ("unique", "replace", "upsert", "swaps", "key-updates", "deletes", "multi", "rollback",
              "extremes", "offline", "txsync", "worker", "small-pages", "trigger",
              "recursive-triggers", "fk-off")


def enc(v):
    return {"$blob": v.hex()} if isinstance(v, (bytes, bytearray)) else v


def dec(v):
    return bytes.fromhex(v["$blob"]) if isinstance(v, dict) else v


class Gen:
    def __init__(self, rnd, off):
        self.r = rnd
        self.off = off  # set of FLAG_KINDS turned off

    def on(self, kind):
        return kind not in self.off

    # ---- values ----
    def text(self):
        if self.on("extremes") and self.r.random() < 0.3:
            return self.r.choice(TEXT_EXTREMES)
        return "t%d" % self.r.randrange(100)

    def real(self):
        x = self.r.random()
        if x < 0.1:
            return None
        if self.on("extremes") and x < 0.45:
            return self.r.choice(REAL_EXTREMES + INT_EXTREMES[:4])
        return self.r.randrange(1000) / 8

    def blob(self):
        if self.r.random() < 0.15:
            return None
        if self.on("extremes"):
            return self.r.choice(BLOB_EXTREMES)
        return bytes([self.r.randrange(1, 256) for _ in range(3)])

    def anyval(self):
        if not self.on("extremes"):
            return self.r.choice([None, self.r.randrange(100), self.text(), 2.5])
        pool = self.r.choice((INT_EXTREMES, REAL_EXTREMES, TEXT_EXTREMES, BLOB_EXTREMES, [None]))
        return self.r.choice(pool)

    def uid(self):
        return self.r.choice(USER_IDS)

    def email(self):
        # --no-unique: NULLs only, which no UNIQUE index compares
        if not self.on("unique") or self.r.random() < 0.1:
            return None
        return self.r.choice(EMAILS)

    def color(self, null_too=False):
        if not self.on("unique") or (null_too and self.r.random() < 0.2):
            return None
        return self.r.choice(COLORS)

    def pid(self):
        return self.r.choice(PROJECT_IDS)

    def owner(self):
        return None if self.r.random() < 0.1 else self.uid()

    def tn(self):
        return self.r.choice(TASK_NS)

    # ---- statements: (kind, sql, params) ----
    def stmt(self):
        menu = [(6, "insert", self.s_insert), (6, "update", self.s_update)]
        if self.on("deletes"):
            menu.append((2, "delete", self.s_delete))
        if self.on("replace"):
            menu.append((2, "replace", self.s_replace))
        if self.on("upsert"):
            menu.append((2, "upsert", self.s_upsert))
        if self.on("key-updates"):
            menu.append((1, "key-update", self.s_key_update))
        total = sum(w for w, _, _ in menu)
        x = self.r.uniform(0, total)
        for w, kind, f in menu:
            x -= w
            if x <= 0:
                break
        sql, params = f()
        return kind, sql, params

    def s_insert(self):
        t = self.r.randrange(5)
        if t == 0:
            return ("INSERT INTO users(id, email, name, score, avatar) VALUES(?, ?, ?, ?, ?)",
                    [self.uid(), self.email(), self.text(), self.real(), self.blob()])
        if t == 1:
            return "INSERT INTO users(email, name) VALUES(?, ?)", [self.email(), self.text()]
        if t == 2:
            return ("INSERT INTO projects(id, owner, title, extra) VALUES(?, ?, ?, ?)",
                    [self.pid(), self.owner(), self.text(), self.anyval()])
        if t == 3:
            return ("INSERT INTO tasks(project, n, body, weight) VALUES(?, ?, ?, ?)",
                    [self.pid(), self.tn(), self.text(), self.real()])
        return "INSERT INTO tags(name, color) VALUES(?, ?)", [self.r.choice(TAG_NAMES),
                                                           self.color(True)]

    def s_update(self):
        t = self.r.randrange(7)
        if t == 0:
            return "UPDATE users SET name = ?, score = ? WHERE id = ?", [self.text(), self.real(),
                                                                         self.uid()]
        if t == 1:
            return "UPDATE users SET email = ? WHERE id = ?", [self.email(), self.uid()]
        if t == 2:
            return "UPDATE users SET avatar = ? WHERE id = ?", [self.blob(), self.uid()]
        if t == 3:
            return ("UPDATE projects SET title = ?, extra = ? WHERE id = ?",
                    [self.text(), self.anyval(), self.pid()])
        if t == 4:
            return "UPDATE projects SET owner = ? WHERE id = ?", [self.owner(), self.pid()]
        if t == 5:
            return ("UPDATE tasks SET body = ?, weight = ? WHERE project = ? AND n = ?",
                    [self.text(), self.real(), self.pid(), self.tn()])
        return "UPDATE tags SET color = ? WHERE name = ?", [self.color(True),
                                                            self.r.choice(TAG_NAMES)]

    def s_delete(self):
        t = self.r.randrange(6)
        if t == 0:
            return "DELETE FROM users WHERE id = ?", [self.uid()]
        if t == 1:
            return "DELETE FROM users WHERE email = ?", [self.r.choice(EMAILS)]
        if t == 2:
            return "DELETE FROM projects WHERE id = ?", [self.pid()]
        if t == 3:
            return "DELETE FROM tasks WHERE project = ? AND n = ?", [self.pid(), self.tn()]
        if t == 4:
            return "DELETE FROM tasks WHERE project = ?", [self.pid()]
        return "DELETE FROM tags WHERE name = ?", [self.r.choice(TAG_NAMES)]

    def s_replace(self):
        t = self.r.randrange(6)
        if t == 0:
            return ("INSERT OR REPLACE INTO users(id, email, name, score, avatar)"
                    " VALUES(?, ?, ?, ?, ?)",
                    [self.uid(), self.email(), self.text(), self.real(), self.blob()])
        if t == 1:
            return ("INSERT OR REPLACE INTO projects(id, owner, title, extra) VALUES(?, ?, ?, ?)",
                    [self.pid(), self.owner(), self.text(), self.anyval()])
        if t == 2:
            return ("REPLACE INTO tasks(project, n, body, weight) VALUES(?, ?, ?, ?)",
                    [self.pid(), self.tn(), self.text(), self.real()])
        if t == 3:
            return "INSERT OR REPLACE INTO tags(name, color) VALUES(?, ?)", [
                self.r.choice(TAG_NAMES), self.color()]
        if t == 4:
            return "UPDATE OR REPLACE users SET email = ? WHERE id = ?", [self.email(), self.uid()]
        return "UPDATE OR REPLACE tags SET color = ? WHERE name = ?", [
            self.color(), self.r.choice(TAG_NAMES)]

    def s_upsert(self):
        t = self.r.randrange(4)
        if t == 0:
            return ("INSERT INTO users(id, email, name, score) VALUES(?, ?, ?, ?) ON CONFLICT(id)"
                    " DO UPDATE SET name = excluded.name, score = excluded.score",
                    [self.uid(), self.email(), self.text(), self.real()])
        if t == 1:
            return ("INSERT INTO users(id, email, name) VALUES(?, ?, ?) ON CONFLICT(email)"
                    " DO UPDATE SET name = excluded.name",
                    [self.uid(), self.email(), self.text()])
        if t == 2:
            return ("INSERT INTO tasks(project, n, body, weight) VALUES(?, ?, ?, ?)"
                    " ON CONFLICT(project, n) DO UPDATE SET body = excluded.body,"
                    " weight = excluded.weight",
                    [self.pid(), self.tn(), self.text(), self.real()])
        return ("INSERT INTO tags(name, color) VALUES(?, ?) ON CONFLICT(name)"
                " DO UPDATE SET color = excluded.color",
                [self.r.choice(TAG_NAMES), self.color()])

    def s_key_update(self):
        t = self.r.randrange(6)
        verb = "UPDATE OR REPLACE" if self.on("replace") and self.r.random() < 0.3 else "UPDATE"
        if t == 0:
            return verb + " users SET id = ? WHERE id = ?", [self.uid(), self.uid()]
        if t == 1:
            return verb + " projects SET id = ? WHERE id = ?", [self.pid(), self.pid()]
        if t == 2:
            return (verb + " tasks SET n = ? WHERE project = ? AND n = ?",
                    [self.tn(), self.pid(), self.tn()])
        if t == 3:
            return (verb + " tasks SET project = ? WHERE project = ? AND n = ?",
                    [self.pid(), self.pid(), self.tn()])
        if t == 4:
            return verb + " tags SET name = ? WHERE name = ?", [self.r.choice(TAG_NAMES),
                                                               self.r.choice(TAG_NAMES)]
        return "UPDATE projects SET owner = NULL WHERE owner = ?", [self.uid()]

    def swap(self):
        """A UNIQUE swap (2 values) or rotation (3) through a temporary value,
        on users.email or tags.color, keyed by value."""
        table, col, pool = self.r.choice((("users", "email", EMAILS), ("tags", "color", COLORS)))
        vals = self.r.sample(pool, self.r.choice((2, 3)))
        up = "UPDATE %s SET %s = ? WHERE %s = ?" % (table, col, col)
        tmp = "tmp-" + vals[0]
        stmts = [[up, [tmp, vals[0]]]]
        for a, b in zip(vals, vals[1:]):
            stmts.append([up, [a, b]])
        stmts.append([up, [vals[-1], tmp]])
        return ("swap" if len(vals) == 2 else "rotate"), stmts

    # ---- ops ----
    def write_op(self, c):
        if self.on("swaps") and self.on("unique") and self.r.random() < 0.08:
            kind, stmts = self.swap()
            return {"c": c, "op": "tx", "kind": kind, "stmts": stmts, "end": "commit"}
        n = self.r.choice((1, 1, 1, 2, 3, 4)) if self.on("multi") else 1
        stmts, kinds = [], []
        for _ in range(n):
            kind, sql, params = self.stmt()
            kinds.append(kind)
            stmts.append([sql, [enc(p) for p in params]])
        end = "rollback" if self.on("rollback") and self.r.random() < 0.08 else "commit"
        label = "+".join(kinds) + (" (rolled back)" if end == "rollback" else "")
        return {"c": c, "op": "tx", "kind": label, "stmts": stmts, "end": end}


def client_settings(rnd, off, i, clients):
    small = "small-pages" not in off
    return {
        "worker": i == 0 and clients > 1 and "worker" not in off,
        "batch_size": rnd.choice((1, 2, 1000) if small else (1000,)),
        "pull_limit": rnd.choice((1, 2, 1000) if small else (1000,)),
        "foreign_keys": "fk-off" in off or rnd.random() < 0.8,
        "recursive_triggers": "recursive-triggers" not in off and rnd.random() < 0.3,
    }


def generate(seed, clients, nops, off, single_worker=False):
    """The op log of a seed: a function of (seed, clients, nops, off) only."""
    rnd = random.Random(seed)
    g = Gen(rnd, off)
    settings = [client_settings(rnd, off, i, clients) for i in range(clients)]
    if clients == 1:
        # the server enforces foreign keys: an orphan the client made would be refused
        settings[0].update(worker=single_worker, foreign_keys=True)
    ops = []
    offline = [False] * clients
    for _ in range(nops):
        c = rnd.randrange(clients)
        x = rnd.random()
        worker = settings[c]["worker"]
        if x < 0.6:
            ops.append(g.write_op(c))
        elif x < 0.85:
            if worker:
                if clients > 1:
                    ops.append({"c": c, "op": "wsync", "kind": "wsync"})
            elif not offline[c]:
                op = rnd.choice(("push", "pull"))
                ops.append({"c": c, "op": op, "kind": op})
        elif x < 0.9 and g.on("offline") and not worker:
            offline[c] = not offline[c]
            op = "offline" if offline[c] else "online"
            ops.append({"c": c, "op": op, "kind": op})
        elif x < 0.93 and g.on("txsync") and not worker:
            w = g.write_op(c)
            call = rnd.choice(("sync_push", "sync_pull"))
            ops.append({"c": c, "op": "txsync", "kind": call + " in a transaction",
                        "stmts": w["stmts"][:1], "call": call})
        else:
            ops.append(g.write_op(c))
    return {"seed": seed, "mode": "single" if clients == 1 else "multi", "clients": settings,
            "trigger": "trigger" not in off, "ops": ops}
