#!/usr/bin/python3
"""staging.py: what capture would cost if the triggers staged raw values and
the engine built the queue's JSON later (issue 17, part 3; bench/RESULTS.md,
"Capture nearer its floor").

    /usr/bin/python3 bench/staging.py ext/sync.so [-n ROWS] [-r REPS]
    /usr/bin/python3 bench/staging.py ext/sync.so --setup DIR

(a python whose sqlite3 module can load extensions, linked to the SQLite
the extension is built for.) bench.c's table, keys and values; for each op,
ROWS writes in one transaction, CPU seconds (user + system of this process,
median of REPS), each database at the default page cache:

  twin     the untracked twin u
  today    t with sync_track's triggers
  raw      t with raw staging: NEW / OLD as they are into sync_raw, a plain
           rowid table (a BEFORE INSERT copies a row about to be replaced)
  fold     one transaction turning sync_raw into the rows today's triggers
           write: sync_outbox (ids in staging order, exact JSON by the
           triggers' own expressions, an update's changed columns) and
           sync_shadow (the OLD values of a key's first staged mutation,
           unless the key had pending mutations already)

--setup DIR writes, for bench.c's wall-time figures, each trial's triggers
as DIR/NAME.sql (for BENCH_SETUP) and what empties its queue as
DIR/NAME.synced (for BENCH_SYNCED), then exits:

  raw              the raw staging above
  noshadow         today's triggers without their sync_shadow INSERT
  noshadow_noidx   the same, and no (tbl, pk) index on sync_outbox
  oldrow_noidx     today's, the image's JSON appended to a plain table on
                   every UPDATE and DELETE (no first-mutation lookup), no index
  jsonplain        one outbox row of json_object over the raw values (no exact
                   REAL, no BLOB form, no stash, no image), index kept
  jsonplain_noidx  the same without the index

"same" checks that the fold wrote the outbox rows (op, pk, data) and server
images today's triggers wrote. The raw triggers and the fold cover what this
table needs (no key change, no REPLACE in the workload): a measure of the
design, not an implementation of it.
"""
import os
import re
import sqlite3
import statistics
import sys
import tempfile

SCHEMA = "(id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, price REAL)"
GUARD = "coalesce((SELECT applying FROM sync_control),0)=0"
RAW = f"""
CREATE TABLE sync_raw(op, id, title, done, price, o_title, o_done, o_price);
CREATE TRIGGER raw_bi BEFORE INSERT ON t WHEN {GUARD} BEGIN
  INSERT INTO sync_raw SELECT 'r', id, title, done, price, NULL, NULL, NULL FROM t WHERE id = NEW.id; END;
CREATE TRIGGER raw_ai AFTER INSERT ON t WHEN {GUARD} BEGIN
  INSERT INTO sync_raw VALUES('i', NEW.id, NEW.title, NEW.done, NEW.price, NULL, NULL, NULL); END;
CREATE TRIGGER raw_au AFTER UPDATE ON t WHEN {GUARD} BEGIN
  INSERT INTO sync_raw VALUES('u', NEW.id, NEW.title, NEW.done, NEW.price, OLD.title, OLD.done, OLD.price); END;
CREATE TRIGGER raw_ad AFTER DELETE ON t WHEN {GUARD} BEGIN
  INSERT INTO sync_raw VALUES('d', OLD.id, OLD.title, OLD.done, OLD.price, NULL, NULL, NULL); END;
"""


def connect(path, ext):
    db = sqlite3.connect(path, isolation_level=None)
    db.enable_load_extension(True)
    db.load_extension(ext)
    db.execute("SELECT sync_init(NULL)")
    for name in "tu":
        db.execute(f"CREATE TABLE {name}{SCHEMA}")
    db.execute("SELECT sync_track('t')")
    return db


def grab(pattern, text):
    m = re.search(pattern, text, re.S)
    if not m:
        sys.exit("staging.py: the capture triggers changed shape; update the patterns")
    return m.group(1)


def fold_sql(db):
    """The fold, written with the expressions sync_track's triggers use."""
    trig = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type='trigger' AND tbl_name='t'"))
    ai, au, ad = trig["sync_ai_t"], trig["sync_au_t"], trig["sync_ad_t"]
    key = grab(r"THEN 'update' ELSE 'insert' END,(json_object\('id',.*?END\)),", ai)
    data = grab(r"THEN 'update' ELSE 'insert' END,json_object\('id',.*?END\),(json_object\(.*\))\); END$", ai)
    changed = grab(r"'update',json_object\('id',.*?END\),(json_remove\(.*\))\); END$", au)
    image = grab(r"SELECT 't',json_object\('id',.*?END\),(json_object\(.*?END\)) WHERE NOT EXISTS", ad)
    key, data = key.replace('NEW."', 'r."'), data.replace('NEW."', 'r."')
    changed = changed.replace('NEW."', 'r."').replace('OLD."', 'r."o_')
    image_u = image.replace('OLD."id"', 'r."id"').replace('OLD."', 'r."o_')
    image_d = image.replace('OLD."', 'r."')
    next_id = "(SELECT max(coalesce((SELECT max(id) FROM sync_outbox),0),last_id) FROM sync_control)"
    return f"""BEGIN;
INSERT INTO sync_shadow(tbl,pk,row)
 SELECT 't', k, CASE op WHEN 'u' THEN image_u ELSE image_d END FROM (
  SELECT r.op, {key} AS k, {image_u} AS image_u, {image_d} AS image_d,
         row_number() OVER (PARTITION BY r.id ORDER BY r.rowid) AS n FROM sync_raw AS r) AS f
 WHERE n = 1 AND op IN ('u','d','r') AND NOT EXISTS (SELECT 1 FROM sync_outbox WHERE tbl='t' AND pk=f.k)
 ON CONFLICT(tbl,pk) DO NOTHING;
INSERT INTO sync_outbox(id,tbl,op,pk,data)
 SELECT {next_id} + r.rowid, 't', CASE r.op WHEN 'i' THEN 'insert' WHEN 'u' THEN 'update' ELSE 'delete' END,
        {key}, CASE r.op WHEN 'i' THEN {data} WHEN 'u' THEN {changed} END
 FROM sync_raw AS r WHERE r.op <> 'r' ORDER BY r.rowid;
DELETE FROM sync_raw;
COMMIT;"""


def variants(db):
    """name -> (setup SQL, synced SQL) of the trials for bench.c, from db's triggers."""
    trig = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type='trigger' AND tbl_name='t'"))
    drop = "".join(f'DROP TRIGGER "{name}";' for name in trig)
    today = "".join(sql + ";" for sql in trig.values())
    shadow = r"INSERT INTO sync_shadow\(tbl,pk,row\) SELECT (.*?) WHERE NOT EXISTS \(SELECT 1 FROM sync_outbox WHERE tbl='t' AND pk=json_object\('id',[^;]*?END\)\) ON CONFLICT\(tbl,pk\) DO NOTHING;"
    if len(re.findall(shadow, today, re.S)) != 3:
        sys.exit("staging.py: the capture triggers changed shape; update the patterns")
    noidx = "DROP INDEX sync_outbox_key;"
    nid = "(SELECT max(coalesce((SELECT max(id) FROM sync_outbox),0),last_id)+1 FROM sync_control)"
    plain = "".join(
        f"CREATE TRIGGER j_{op} AFTER {ev} ON t WHEN {GUARD} BEGIN INSERT INTO sync_outbox(id,tbl,op,pk,data)"
        f" VALUES({nid},'t','{name}',json_object('id',{row}.id),{data}); END;"
        for op, ev, name, row, data in [
            ("ai", "INSERT", "insert", "NEW", "json_object('id',NEW.id,'title',NEW.title,'done',NEW.done,'price',NEW.price)"),
            ("au", "UPDATE", "update", "NEW", "json_object('done',NEW.done)"),
            ("ad", "DELETE", "delete", "OLD", "NULL")])
    synced = "PRAGMA wal_checkpoint(TRUNCATE);"
    return {
        "raw": (drop + RAW, "DELETE FROM sync_raw;" + synced),
        "noshadow": (drop + re.sub(shadow, "", today, flags=re.S), synced),
        "noshadow_noidx": (drop + re.sub(shadow, "", today, flags=re.S) + noidx, synced),
        "oldrow_noidx": (drop + "CREATE TABLE sync_old(tbl, pk, row);"
                         + re.sub(shadow, r"INSERT INTO sync_old(tbl,pk,row) SELECT \1;", today, flags=re.S) + noidx,
                         "DELETE FROM sync_old;" + synced),
        "jsonplain": (drop + plain, synced),
        "jsonplain_noidx": (drop + plain + noidx, synced),
    }


def cpu():
    t = os.times()
    return t.user + t.system


def timed(fn):
    t0 = cpu()
    fn()
    return cpu() - t0


def writes(db, sql, rows):
    db.execute("BEGIN")
    for r in rows:
        db.execute(sql, r)
    db.execute("COMMIT")


def snapshot(db):
    q = ("SELECT (SELECT group_concat(op || pk || coalesce(data, ''), '|') FROM (SELECT * FROM sync_outbox ORDER BY id)),"
         " (SELECT group_concat(pk || coalesce(row, ''), '|') FROM (SELECT * FROM sync_shadow ORDER BY pk))")
    return db.execute(q).fetchone()


def synced(db):
    db.executescript("DELETE FROM sync_outbox; DELETE FROM sync_shadow; PRAGMA wal_checkpoint(TRUNCATE);")


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    ext, n, reps = os.path.abspath(args[0]), 100000, 3
    if "--setup" in args:
        out = args[args.index("--setup") + 1]
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryDirectory() as d:
            for name, (setup, empty) in variants(connect(os.path.join(d, "v.db"), ext)).items():
                for suffix, text in ((".sql", setup), (".synced", empty)):
                    with open(os.path.join(out, name + suffix), "w") as f:
                        f.write(text)
        return 0
    if "-n" in args:
        n = int(args[args.index("-n") + 1])
    if "-r" in args:
        reps = int(args[args.index("-r") + 1])
    key = ["%08x" % ((i * 2654435761) % 4294967296) for i in range(n)]
    ops = [("insert", "INSERT INTO {}(id,title,done,price) VALUES(?,?,?,?)",
            [(key[i], "todo number %d" % i, i & 1, i / 7.0) for i in range(n)]),
           ("update", "UPDATE {} SET done = ?2 WHERE id = ?1", [(key[i], 1 - (i & 1)) for i in range(n)]),
           ("delete", "DELETE FROM {} WHERE id = ?1", [(key[i],) for i in range(n)])]
    cols = ("twin", "today", "raw", "fold")
    got = {op: {c: [] for c in cols} for op, _, _ in ops}
    same = True
    with tempfile.TemporaryDirectory() as d:
        for rep in range(reps):
            a = connect(os.path.join(d, f"a{rep}.db"), ext)
            b = connect(os.path.join(d, f"b{rep}.db"), ext)
            fold = fold_sql(b)
            for (name,) in b.execute("SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='t'").fetchall():
                b.execute(f'DROP TRIGGER "{name}"')
            b.executescript(RAW)
            for op, sql, rows in ops:
                g = got[op]
                g["twin"].append(timed(lambda: writes(a, sql.format("u"), rows)))
                g["today"].append(timed(lambda: writes(a, sql.format("t"), rows)))
                g["raw"].append(timed(lambda: writes(b, sql.format("t"), rows)))
                g["fold"].append(timed(lambda: b.executescript(fold)))
                same = same and snapshot(a) == snapshot(b)
                synced(a)
                synced(b)
            a.close()
            b.close()
    print(f"sqlite {sqlite3.sqlite_version}, {n} rows, CPU seconds, median of {reps}; same: {same}\n")
    print("| op | twin | today | raw | fold | raw + fold |")
    print("|---|---:|---:|---:|---:|---:|")
    for op, _, _ in ops:
        m = {c: statistics.median(got[op][c]) for c in cols}
        x = lambda v: f"{v:.2f} ({v / m['twin']:.2f}x)"
        print(f"| {op} | {m['twin']:.2f} | {x(m['today'])} | {x(m['raw'])} | {m['fold']:.2f} | {x(m['raw'] + m['fold'])} |")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
