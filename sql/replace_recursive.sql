-- INSERT OR REPLACE of an existing key queues one 'update' of the whole row
-- whatever PRAGMA recursive_triggers says. With it on, SQLite fires the
-- delete trigger for the replaced row; queueing that 'delete' and then an
-- 'update' made the server delete the row and refuse the update ("no such
-- row"): the row was gone everywhere. Rowid, TEXT-key, WITHOUT ROWID and
-- composite-key tables, from a connection with and without the extension.
SELECT length(sync_init(NULL));
CREATE TABLE r(id INTEGER PRIMARY KEY, v TEXT);
CREATE TABLE s(id TEXT PRIMARY KEY, v TEXT);
CREATE TABLE w(id TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
CREATE TABLE c(a TEXT, b INTEGER, v TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
SELECT sync_track('r'), sync_track('s'), sync_track('w'), sync_track('c');
INSERT INTO r VALUES (1, 'one');
INSERT INTO s VALUES ('k', 'one');
INSERT INTO w VALUES ('k', 'one');
INSERT INTO c VALUES ('k', 1, 'one');
DELETE FROM sync_outbox;
PRAGMA recursive_triggers = ON;
INSERT OR REPLACE INTO r VALUES (1, 'two');
REPLACE INTO s VALUES ('k', 'two');
INSERT OR REPLACE INTO w VALUES ('k', 'two');
REPLACE INTO c VALUES ('k', 1, 'two');
SELECT tbl, op, pk, data FROM sync_outbox ORDER BY id;
-- the server image is the row before the statement, recorded once
SELECT tbl, pk, row FROM sync_shadow ORDER BY tbl;
-- a second replace of the same key queues a second update, image unchanged
INSERT OR REPLACE INTO r VALUES (1, 'three');
SELECT op, pk, data FROM sync_outbox WHERE id = (SELECT max(id) FROM sync_outbox);
SELECT row FROM sync_shadow WHERE tbl = 'r';
-- the same with recursive_triggers off
PRAGMA recursive_triggers = OFF;
DELETE FROM sync_outbox;
DELETE FROM sync_shadow;
INSERT OR REPLACE INTO r VALUES (1, 'four');
REPLACE INTO s VALUES ('k', 'four');
INSERT OR REPLACE INTO w VALUES ('k', 'four');
REPLACE INTO c VALUES ('k', 1, 'four');
SELECT tbl, op, pk, data FROM sync_outbox ORDER BY id;
-- a connection that never loaded the extension, recursive_triggers on
.open test.db
PRAGMA recursive_triggers = ON;
DELETE FROM sync_outbox;
INSERT OR REPLACE INTO r VALUES (1, 'five');
REPLACE INTO c VALUES ('k', 1, 'five');
SELECT tbl, op, pk, data FROM sync_outbox ORDER BY id;
.load ./sync
-- a foreign-key child under REPLACE of its parent: SQLite's REPLACE deletes
-- the parent row (its ON DELETE CASCADE removes the child, whose delete is
-- queued first), then the parent is queued as one update, not as a delete
-- the server would cascade and an update it would refuse
PRAGMA foreign_keys = ON;
CREATE TABLE p(id INTEGER PRIMARY KEY, title TEXT);
CREATE TABLE ch(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES p(id) ON DELETE CASCADE);
SELECT sync_track('p'), sync_track('ch');
INSERT INTO p VALUES (1, 'a');
INSERT INTO ch VALUES (10, 1);
DELETE FROM sync_outbox;
PRAGMA recursive_triggers = ON;
INSERT OR REPLACE INTO p VALUES (1, 'b');
INSERT INTO ch VALUES (11, 1);
PRAGMA recursive_triggers = OFF;
INSERT OR REPLACE INTO p VALUES (1, 'c');
SELECT tbl, op, pk, data FROM sync_outbox ORDER BY id;
SELECT * FROM p;
SELECT count(*) AS children FROM ch;
