-- A REPLACE that deletes another row (through a UNIQUE index, or a key
-- changed onto an existing key) queues that row's 'delete' before its own
-- write; without it the server refused the write and kept the other row,
-- which the client had lost. Either setting of recursive_triggers queues the
-- same. Nothing is queued by INSERT OR IGNORE, UPSERT's DO NOTHING or a
-- statement that fails; UPSERT's DO UPDATE stays one update.
SELECT length(sync_init(NULL));
CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE, n INTEGER);
CREATE TABLE w(k TEXT PRIMARY KEY, email TEXT COLLATE NOCASE UNIQUE, n INTEGER) WITHOUT ROWID;
CREATE TABLE c(a TEXT, b INTEGER, tag TEXT, PRIMARY KEY (a, b), UNIQUE (tag)) WITHOUT ROWID;
CREATE TABLE t(a TEXT NOT NULL, b INTEGER NOT NULL, tag TEXT, PRIMARY KEY (a, b));
CREATE UNIQUE INDEX t_tag ON t(tag COLLATE NOCASE);
SELECT sync_track('u'), sync_track('w'), sync_track('c'), sync_track('t');
INSERT INTO u VALUES (1, 'x', 0), (2, 'y', 0), (3, 'z', 0);
INSERT INTO w VALUES ('a', 'x', 0), ('b', 'y', 0);
INSERT INTO c VALUES ('p', 1, 'x'), ('p', 2, 'y');
INSERT INTO t VALUES ('p', 1, 'x'), ('p', 2, 'y');
DELETE FROM sync_outbox; DELETE FROM sync_shadow;
-- INSERT OR REPLACE through a UNIQUE column: delete 1, then insert 4
INSERT OR REPLACE INTO u VALUES (4, 'x', 1);
-- through the key and a UNIQUE column at once: delete 3, then update 2
REPLACE INTO u VALUES (2, 'z', 2);
-- UPDATE OR REPLACE of a UNIQUE column onto another row's value
UPDATE OR REPLACE u SET email = 'z' WHERE id = 4;
-- UPDATE OR REPLACE of the key onto an existing key
INSERT INTO u VALUES (5, 'v', 0);
UPDATE OR REPLACE u SET id = 5 WHERE id = 4;
SELECT id, op, pk, data FROM sync_outbox ORDER BY id;
SELECT * FROM u ORDER BY id;
-- each deleted row's image is the row before (it had nothing pending)
SELECT pk, row FROM sync_shadow WHERE tbl = 'u' ORDER BY pk;
-- (the engine drops a key's image once nothing is pending for it)
-- WITHOUT ROWID, with the UNIQUE index's collation ('X' collides with 'x')
DELETE FROM sync_outbox; DELETE FROM sync_shadow;
INSERT OR REPLACE INTO w VALUES ('c', 'X', 1);
UPDATE OR REPLACE w SET k = 'b' WHERE k = 'c';
SELECT op, pk, data FROM sync_outbox ORDER BY id;
SELECT * FROM w;
-- composite keys, WITHOUT ROWID and rowid (an index with its own collation)
DELETE FROM sync_outbox; DELETE FROM sync_shadow;
UPDATE OR REPLACE c SET b = 2 WHERE a = 'p' AND b = 1;
INSERT OR REPLACE INTO c VALUES ('q', 1, 'y');
REPLACE INTO t VALUES ('q', 1, 'X');
UPDATE OR REPLACE t SET b = 2, a = 'p' WHERE a = 'q';
SELECT tbl, op, pk, data FROM sync_outbox ORDER BY id;
SELECT * FROM c;
SELECT * FROM t;
-- recursive_triggers on: the delete trigger queues the deleted row itself,
-- and it is not queued twice
PRAGMA recursive_triggers = ON;
DELETE FROM sync_outbox; DELETE FROM sync_shadow;
INSERT INTO u VALUES (6, 'q', 0), (7, 'r', 0);
INSERT OR REPLACE INTO u VALUES (8, 'q', 1);
UPDATE OR REPLACE u SET email = 'r' WHERE id = 8;
UPDATE OR REPLACE u SET id = 2 WHERE id = 8;
INSERT OR REPLACE INTO w VALUES ('d', 'x', 2);
SELECT tbl, op, pk, data FROM sync_outbox ORDER BY id;
PRAGMA recursive_triggers = OFF;
-- nothing for writes that did not happen: OR IGNORE, DO NOTHING, a failed
-- statement, UPDATE OR IGNORE
DELETE FROM sync_outbox; DELETE FROM sync_shadow;
INSERT OR IGNORE INTO u VALUES (9, 'r', 0);
INSERT INTO u VALUES (9, 'r', 0) ON CONFLICT DO NOTHING;
INSERT INTO u VALUES (9, 'r', 0);
UPDATE OR IGNORE u SET email = 'r' WHERE id = 5;
UPDATE u SET id = 5 WHERE id = 2;
SELECT count(*) AS queued FROM sync_outbox;
-- a row stashed by a write that did not happen is not taken for replaced
-- later, even when the engine has deleted it meanwhile
SELECT sync_apply('{"changes":[{"table":"u","op":"delete","pk":{"id":2}}]}');
UPDATE u SET n = 42 WHERE id = 5;
SELECT op, pk, data FROM sync_outbox ORDER BY id;
-- UPSERT: DO UPDATE on the key or on the UNIQUE column is one update
DELETE FROM sync_outbox; DELETE FROM sync_shadow;
INSERT INTO u VALUES (5, 'new', 7) ON CONFLICT(id) DO UPDATE SET n = excluded.n;
INSERT INTO u VALUES (10, 'z', 8) ON CONFLICT(email) DO UPDATE SET n = excluded.n;
SELECT op, pk, data FROM sync_outbox ORDER BY id;
-- a partial UNIQUE index: a row it does not cover is not replaced
CREATE TABLE pi(id INTEGER PRIMARY KEY, code TEXT, live INTEGER);
CREATE UNIQUE INDEX pi_code ON pi(code) WHERE live;
SELECT sync_track('pi');
INSERT INTO pi VALUES (1, 'a', 0);
DELETE FROM sync_outbox; DELETE FROM sync_shadow;
INSERT OR REPLACE INTO pi VALUES (2, 'a', 1);
SELECT op, pk FROM sync_outbox ORDER BY id;
-- a connection without the extension queues the same
.open test.db
DELETE FROM sync_outbox; DELETE FROM sync_shadow;
INSERT OR REPLACE INTO u VALUES (11, 'z', 0);
SELECT op, pk, data FROM sync_outbox ORDER BY id;
.load ./sync
-- foreign-key children of the row a REPLACE deletes through a UNIQUE column
-- are cascaded first, then the parent's delete, then the insert
PRAGMA foreign_keys = ON;
CREATE TABLE acct(id INTEGER PRIMARY KEY, email TEXT UNIQUE);
CREATE TABLE note(id INTEGER PRIMARY KEY, acct INTEGER REFERENCES acct(id) ON DELETE CASCADE);
SELECT sync_track('acct'), sync_track('note');
INSERT INTO acct VALUES (1, 'x');
INSERT INTO note VALUES (100, 1);
DELETE FROM sync_outbox; DELETE FROM sync_shadow;
INSERT OR REPLACE INTO acct VALUES (2, 'x');
SELECT tbl, op, pk, data FROM sync_outbox ORDER BY id;
SELECT count(*) AS notes FROM note;
-- a column named rowid hides the rowid under that name: _rowid_ is used
CREATE TABLE hid(rowid TEXT, id TEXT PRIMARY KEY, email TEXT UNIQUE);
SELECT sync_track('hid');
INSERT INTO hid VALUES ('r1', 'a', 'x'), ('r1', 'b', 'y');
DELETE FROM sync_outbox; DELETE FROM sync_shadow;
INSERT OR REPLACE INTO hid VALUES ('r1', 'c', 'x');
UPDATE OR REPLACE hid SET email = 'x' WHERE id = 'b';
SELECT tbl, op, pk, data FROM sync_outbox ORDER BY id;
SELECT * FROM hid;
