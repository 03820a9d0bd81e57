-- A UNIQUE index on a generated column (VIRTUAL or STORED) is seen like one
-- on an expression: its generation expression, cut from the CREATE TABLE
-- text, is computed over the written row's columns. The capture queues the
-- delete of a row a REPLACE removes through it, and a pull's row whose value
-- a local row holds there moves that row aside. Before, such an index was
-- left out: the REPLACE deleted the other row locally without queueing its
-- delete (the server kept it), and a pull that collided through it stopped
-- on that page for good ("UNIQUE constraint failed: b.twice").
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
-- a CHECK with a CAST(... AS ...), a DEFAULT in parentheses and another
-- generated column come before the one indexed
CREATE TABLE g(id INTEGER PRIMARY KEY, n INTEGER CHECK (CAST(n AS TEXT) <> 'x'),
  d TEXT DEFAULT ('(,)'), other AS (n + 1),
  "the twice" INTEGER GENERATED ALWAYS AS (n * 2) VIRTUAL UNIQUE);
CREATE TABLE h(id TEXT PRIMARY KEY, a TEXT, grp INTEGER, low VARCHAR(20) AS (lower(a)) STORED);
CREATE UNIQUE INDEX h_low ON h(grp, low);
CREATE TABLE w(k TEXT PRIMARY KEY, v TEXT, up TEXT AS (upper(v)) UNIQUE) WITHOUT ROWID;
SELECT sync_track('g'), sync_track('h'), sync_track('w');
INSERT INTO g(id, n) VALUES (1, 3), (5, 7);
INSERT INTO h(id, a, grp) VALUES ('x', 'Hi', 1), ('z', 'Hi', 2), ('q', 'Yo', 1);
INSERT INTO w(k, v) VALUES ('a', 'q');
DELETE FROM sync_outbox; DELETE FROM sync_shadow;
-- INSERT OR REPLACE through a VIRTUAL column: g 1 goes
INSERT OR REPLACE INTO g(id, n) VALUES (2, 3);
-- through a STORED one (its type in parentheses), with a plain column in
-- the index: only h x collides
INSERT OR REPLACE INTO h(id, a, grp) VALUES ('y', 'HI', 1);
-- UPDATE OR REPLACE of the column the generated one is made of: g 2 goes
UPDATE OR REPLACE g SET n = 3 WHERE id = 5;
-- WITHOUT ROWID
INSERT OR REPLACE INTO w(k, v) VALUES ('b', 'Q');
SELECT tbl, op, pk, data FROM sync_outbox ORDER BY id;
SELECT * FROM g ORDER BY id;
SELECT * FROM h ORDER BY id;
SELECT * FROM w ORDER BY k;
-- a pull's row whose generated value local rows hold: the pending one is
-- hidden (its insert stays queued), the confirmed one is stale and goes
CREATE TABLE b(id INTEGER PRIMARY KEY, n INTEGER,
  twice INTEGER GENERATED ALWAYS AS (n * 2) VIRTUAL) STRICT;
CREATE UNIQUE INDEX b_twice ON b(twice);
SELECT sync_track('b');
INSERT INTO b(id, n) VALUES (1, 4);
SELECT sync_apply('{"changes":[
  {"table":"b","op":"upsert","pk":{"id":3},"row":{"id":3,"n":5},"version":1}],"cursor":"1"}') AS applied;
SELECT sync_apply('{"changes":[
  {"table":"b","op":"upsert","pk":{"id":2},"row":{"id":2,"n":4},"version":2},
  {"table":"b","op":"upsert","pk":{"id":4},"row":{"id":4,"n":5},"version":3}],"cursor":"3"}') AS applied;
SELECT * FROM b ORDER BY id;
SELECT table_name, op, pk FROM sync_pending WHERE table_name = 'b';
SELECT count(*) AS staged FROM sync_inbox;
