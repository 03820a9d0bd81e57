"""schemas_run.py --schema 2: a CRM / to-do app's schema and its writes.

Unlike schema 1 (schemas_run.py): INTEGER PRIMARY KEY AUTOINCREMENT
parents that clients number on their own (so their inserts collide on the
server), a composite primary key (projects) that tasks follow through a
composite foreign key ON UPDATE CASCADE ON DELETE CASCADE, ON DELETE SET
DEFAULT to a row the server seeds (people 0, "nobody", which every client
pulls before it writes), ON DELETE RESTRICT (a project's lead), a UNIQUE on
two columns one of which may be NULL (NULLs do not collide), a UNIQUE on
an integer column (contacts.phone) that REPLACE and UPSERT write through,
a WITHOUT ROWID junction table whose two foreign keys cascade, and
deterministic DEFAULTs (constants and expressions) the app's inserts leave
to SQLite. Values: REAL, BLOB with zero bytes, integers past 2^53 in data
and in keys (and 2^63-1 next to a UNIQUE shifted by one), text with
quotes, newlines and non-ASCII characters. The writes are schema 1's kinds
through these tables, and statements that write several rows.
"""
import sqlite3

SCHEMA = """
CREATE TABLE people(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
  email TEXT UNIQUE, avatar BLOB, rating REAL NOT NULL DEFAULT 2.5);
CREATE TABLE accounts(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, region TEXT,
  owner INTEGER NOT NULL DEFAULT 0 REFERENCES people(id) ON DELETE SET DEFAULT,
  balance REAL NOT NULL DEFAULT 0.0, UNIQUE(name, region));
CREATE TABLE contacts(id INTEGER PRIMARY KEY AUTOINCREMENT,
  account INTEGER REFERENCES accounts(id) ON DELETE CASCADE ON UPDATE CASCADE,
  phone INTEGER UNIQUE, name TEXT, note TEXT NOT NULL DEFAULT 'n/a');
CREATE TABLE projects(org INTEGER NOT NULL, code TEXT NOT NULL, title TEXT, budget REAL,
  lead INTEGER REFERENCES people(id) ON DELETE RESTRICT, PRIMARY KEY(org, code));
CREATE TABLE tasks(id INTEGER PRIMARY KEY AUTOINCREMENT, org INTEGER NOT NULL, code TEXT NOT NULL,
  title TEXT NOT NULL DEFAULT 'untitled', done INTEGER NOT NULL DEFAULT 0,
  assignee INTEGER DEFAULT 0 REFERENCES people(id) ON DELETE SET DEFAULT,
  due TEXT DEFAULT (date('2026-01-01', '+7 days')),
  FOREIGN KEY(org, code) REFERENCES projects(org, code) ON UPDATE CASCADE ON DELETE CASCADE);
CREATE TABLE tags(id INTEGER PRIMARY KEY, label TEXT NOT NULL COLLATE NOCASE UNIQUE);
CREATE TABLE task_tags(task INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE ON UPDATE CASCADE,
  tag INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE ON UPDATE CASCADE,
  weight INTEGER NOT NULL DEFAULT 1, PRIMARY KEY(task, tag)) WITHOUT ROWID;
"""
# only on the server: clients get it with their first pull
SERVER_SEED = "INSERT INTO people(id, name, rating) VALUES(0, 'nobody', 0.0);\n"
KEYS = {"people": "json_object('id', id)", "accounts": "json_object('id', id)",
        "contacts": "json_object('id', id)",
        "projects": "json_object('org', org, 'code', code)", "tasks": "json_object('id', id)",
        "tags": "json_object('id', id)", "task_tags": "json_object('task', task, 'tag', tag)"}
PULL_FIRST = True  # the seed row, before any write refers to it

BIG = 2 ** 53 + 1  # an AUTOINCREMENT table numbers on from an explicit key this big
IDS = list(range(1, 9)) + [BIG, BIG + 1, BIG + 2]
NAMES = ["Acme", "acme", "O'Brien", 'say "hi"', "Zoë", "日本語", "a\nb", "", "back\\slash"]
EMAILS = [None, None, None, "a@x", "b@x", "A@x", "c@y"]
REGIONS = [None, None, "eu", "us", "EU"]
PHONES = [None, 1, 2, BIG, BIG + 1, 2 ** 62 + 3, -(2 ** 63), 2 ** 63 - 1]
ORGS = [1, 2, BIG]
CODES = ["a", "c'd", "é"]
REALS = [0.0, 0.1, -2.5, 1e300, 123456789.125, 2.0 ** 60]
BLOBS = [None, b"", b"\x00", b"\x00\xff\x00", bytes(range(16))]
TAGS = ["red", "Red", "blue", "ünï", "x", "y", "Ünï"]


def write(c, rng):
    """One random write of the app; SQLite may refuse it (sqlite3.Error)."""
    k = rng.randrange(33)
    pid, aid, tid = rng.choice(IDS), rng.choice(IDS), rng.choice(IDS)
    org, code = rng.choice(ORGS), rng.choice(CODES)
    if k == 0:
        c.execute("INSERT INTO people(name, email, avatar) VALUES(?,?,?)",
                  (rng.choice(NAMES), rng.choice(EMAILS), rng.choice(BLOBS)))
    elif k == 1:
        c.execute("INSERT OR REPLACE INTO people(id, name, email, rating) VALUES(?,?,?,?)",
                  (pid, rng.choice(NAMES), rng.choice(EMAILS), rng.choice(REALS)))
    elif k == 2:
        c.execute("UPDATE OR REPLACE people SET email = ?, rating = rating + 0.25 WHERE id = ?",
                  (rng.choice(EMAILS), pid))
    elif k == 3:
        if rng.random() < 0.5:
            c.execute("DELETE FROM people WHERE id = ?", (pid,))  # SET DEFAULT, RESTRICT
        else:
            c.execute("UPDATE people SET name = ?, avatar = ? WHERE id = ?",
                      (rng.choice(NAMES), rng.choice(BLOBS), pid))
    elif k == 4:
        c.execute("UPDATE people SET id = ? WHERE id = ?", (rng.choice(IDS), pid))
    elif k in (5, 6):
        c.execute("INSERT INTO accounts(name, region, owner, balance) VALUES(?,?,?,?)",
                  (rng.choice(NAMES[:4]), rng.choice(REGIONS), rng.choice([0, 0, pid]),
                   rng.choice(REALS)))
    elif k == 7:
        c.execute("INSERT OR REPLACE INTO accounts(id, name, region) VALUES(?,?,?)",
                  (aid, rng.choice(NAMES[:4]), rng.choice(REGIONS)))
    elif k == 8:
        c.execute("UPDATE OR REPLACE accounts SET region = ?, balance = balance + 1 WHERE id = ?",
                  (rng.choice(REGIONS), aid))
    elif k == 9:
        c.execute("UPDATE accounts SET id = ? WHERE id = ?", (rng.choice(IDS), aid))
    elif k == 10:
        c.execute("DELETE FROM accounts WHERE id = ?", (aid,))
    elif k == 11:
        c.execute("INSERT OR REPLACE INTO contacts(account, phone, name) VALUES(?,?,?)",
                  (rng.choice([None, aid]), rng.choice(PHONES), rng.choice(NAMES)))
    elif k == 12:
        c.execute("INSERT INTO contacts(id, account, phone, name) VALUES(?,?,?,?)"
                  " ON CONFLICT(phone) DO UPDATE SET name = excluded.name, account = excluded.account",
                  (rng.choice(IDS), rng.choice([None, aid]), rng.choice(PHONES), rng.choice(NAMES)))
    elif k == 13:
        c.execute("UPDATE OR REPLACE contacts SET phone = ? WHERE id = ?", (rng.choice(PHONES), rng.choice(IDS)))
    elif k in (14, 15, 16):
        c.execute("INSERT INTO projects(org, code, title, budget, lead) VALUES(?,?,?,?,?)"
                  " ON CONFLICT(org, code) DO UPDATE SET budget = coalesce(budget, 0) + 1",
                  (org, code, rng.choice(NAMES), rng.choice(REALS), rng.choice([None, 0, pid])))
    elif k == 17:
        how = rng.randrange(4)
        if how == 0:  # a key change the tasks follow (ON UPDATE CASCADE)
            c.execute("UPDATE projects SET code = ? WHERE org = ? AND code = ?",
                      (rng.choice(CODES), org, code))
        elif how == 1:
            c.execute("UPDATE projects SET org = ?, lead = ? WHERE org = ? AND code = ?",
                      (rng.choice(ORGS), rng.choice([None, pid]), org, code))
        elif how == 2:
            c.execute("DELETE FROM projects WHERE org = ? AND code = ?", (org, code))
        else:
            c.execute("UPDATE projects SET title = ?, budget = ? WHERE org = ? AND code = ?",
                      (rng.choice(NAMES), rng.choice(REALS), org, code))
    elif k in (18, 19, 26, 27):
        if rng.random() < 0.7:
            c.execute("INSERT INTO tasks(org, code, assignee) VALUES(?,?,?)",
                      (org, code, rng.choice([0, 0, pid])))
        else:
            c.execute("INSERT INTO tasks(id, org, code, title) VALUES(?,?,?,?)",
                      (tid, org, code, rng.choice(NAMES)))
    elif k == 20:
        if rng.random() < 0.5:
            c.execute("UPDATE tasks SET done = 1 - done, title = ? WHERE id = ?",
                      (rng.choice(NAMES), tid))
        else:
            c.execute("UPDATE tasks SET org = ?, code = ? WHERE id = ?", (org, code, tid))
    elif k == 21:
        if rng.random() < 0.6:
            c.execute("DELETE FROM tasks WHERE id = ?", (tid,))
        else:
            c.execute("UPDATE tasks SET id = ? WHERE id = ?", (rng.choice(IDS), tid))
    elif k == 22:
        c.execute("INSERT OR REPLACE INTO tags(id, label) VALUES(?,?)",
                  (rng.randrange(1, 5), rng.choice(TAGS)))
    elif k in (23, 28):
        if rng.random() < 0.7:
            # a task that exists, most of the time
            c.execute("INSERT INTO task_tags(task, tag)"
                      " VALUES((SELECT id FROM tasks ORDER BY id LIMIT 1 OFFSET ?), ?)"
                      " ON CONFLICT(task, tag) DO UPDATE SET weight = weight + 1",
                      (rng.randrange(4), rng.randrange(1, 5)))
        else:
            c.execute("DELETE FROM task_tags WHERE task = ? AND tag = ?", (tid, rng.randrange(1, 5)))
    elif k == 24:
        if rng.random() < 0.3:
            c.execute("DELETE FROM tags WHERE id = ?", (rng.randrange(1, 5),))
        else:
            c.execute("INSERT INTO tags(id, label) VALUES(?,?)", (rng.randrange(1, 5), rng.choice(TAGS)))
    elif k == 29:
        c.execute("UPDATE task_tags SET tag = ? WHERE task = ? AND tag = ?",
                  (rng.randrange(1, 5), tid, rng.randrange(1, 5)))
    # statements over several rows
    elif k == 30:
        c.execute("UPDATE tasks SET done = 1, assignee = ? WHERE org = ? AND code = ?",
                  (rng.choice([None, 0, pid]), org, code))
    elif k == 31:  # a UNIQUE shifted row by row: SQLite's order decides what collides
        c.execute("UPDATE contacts SET phone = phone + ? WHERE account IS ?",
                  (rng.choice([1, -1]), rng.choice([None, aid])))
    elif k == 32:
        if rng.random() < 0.5:
            c.execute("INSERT OR IGNORE INTO task_tags(task, tag) SELECT id, ? FROM tasks WHERE org = ?",
                      (rng.randrange(1, 5), org))
        else:
            c.execute("DELETE FROM task_tags WHERE tag = ?", (rng.randrange(1, 5),))
    else:
        c.execute("BEGIN")
        try:
            c.execute("INSERT OR REPLACE INTO projects(org, code, title, lead) VALUES(?,?,?,?)",
                      (org, code, rng.choice(NAMES), rng.choice([None, pid])))
            c.execute("INSERT INTO tasks(id, org, code) VALUES(?,?,?)", (tid, org, code))
            c.execute("INSERT OR IGNORE INTO task_tags(task, tag) VALUES(?,?)", (tid, rng.randrange(1, 5)))
            if rng.random() < 0.3:
                c.execute("DELETE FROM people WHERE id = ?", (pid,))
            c.execute("COMMIT" if rng.random() < 0.8 else "ROLLBACK")
        except sqlite3.Error:
            c.execute("ROLLBACK")
            raise
