-- Capture: every write to a tracked table queues exactly one mutation per
-- row change, inside the writing transaction.
SELECT length(sync_init(NULL));
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0);
SELECT sync_track('todos');
INSERT INTO todos(id, title) VALUES ('a', 'milk'), ('b', 'eggs');
-- only changed columns; nothing when nothing changed
UPDATE todos SET done = 1 WHERE id = 'a';
UPDATE todos SET done = 1 WHERE id = 'a';
UPDATE todos SET title = 'EGGS', done = 0 WHERE id = 'b';
DELETE FROM todos WHERE id = 'a';
SELECT id, table_name, op, pk, data, attempts, last_error FROM sync_pending;
-- a key change is a delete of the old key and an insert of the new one
UPDATE todos SET id = 'c' WHERE id = 'b';
SELECT id, op, pk, data FROM sync_pending WHERE id > 5;
-- INSERT OR REPLACE of an existing row is an update of every column,
-- INSERT OR IGNORE of an existing row queues nothing, UPSERT queues the update
INSERT INTO todos VALUES ('r', 'orig', 0);
INSERT OR REPLACE INTO todos VALUES ('r', 'replaced', 1);
INSERT OR IGNORE INTO todos VALUES ('r', 'ignored', 0);
INSERT INTO todos VALUES ('r', 'upserted', 1) ON CONFLICT(id) DO UPDATE SET title = excluded.title;
INSERT OR IGNORE INTO todos VALUES ('s', 'new', 0);
SELECT id, op, pk, data FROM sync_pending WHERE id > 7;
-- a rolled back transaction leaves no trace
SELECT count(*) AS before FROM sync_outbox;
BEGIN;
INSERT INTO todos VALUES ('x', 'x', 0);
UPDATE todos SET title = 'zzz';
DELETE FROM todos;
SELECT count(*) AS inside FROM sync_outbox;
ROLLBACK;
SELECT count(*) AS after FROM sync_outbox;
SELECT * FROM todos ORDER BY id;
-- a savepoint rolled back too
SAVEPOINT s1;
INSERT INTO todos VALUES ('y', 'y', 0);
ROLLBACK TO s1;
RELEASE s1;
SELECT count(*) AS after_savepoint FROM sync_outbox;
-- a failing statement leaves no mutation behind
INSERT INTO todos VALUES ('z', NULL, 0);
INSERT INTO todos VALUES ('c', 'dup', 0);
SELECT count(*) AS after_errors FROM sync_outbox;
-- the first pending mutation of a key records the server's row as it was
SELECT tbl, pk, row FROM sync_shadow ORDER BY pk;
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"srv"},"row":{"id":"srv","title":"from server","done":0}}]}');
UPDATE todos SET title = 'local 1' WHERE id = 'srv';
UPDATE todos SET title = 'local 2' WHERE id = 'srv';
SELECT tbl, pk, row FROM sync_shadow ORDER BY pk;
-- ids keep growing after the outbox empties (they are idempotency keys)
DELETE FROM sync_outbox;
INSERT INTO todos VALUES ('n', 'next', 0);
SELECT id, op FROM sync_pending;
-- also when only the newest row leaves, and from a connection without the
-- extension (the high-water mark is kept by a trigger on the outbox)
INSERT INTO todos VALUES ('m', 'more', 0);
DELETE FROM sync_outbox WHERE id = (SELECT max(id) FROM sync_outbox);
INSERT INTO todos VALUES ('o', 'other', 0);
SELECT id, op, pk FROM sync_pending;
.open test.db
DELETE FROM sync_outbox WHERE id > 14;
INSERT INTO todos VALUES ('p', 'plain', 0);
DELETE FROM sync_outbox;
INSERT INTO todos VALUES ('q', 'plain', 0);
SELECT id, op, pk FROM sync_outbox;
SELECT last_id FROM sync_control;
-- the key trigger is only compiled into UPDATEs that set the key or the
-- rowid (under any of its names): a rowid alias key changes through those too
.load ./sync
CREATE TABLE n(id INTEGER PRIMARY KEY, v TEXT);
SELECT sync_track('n');
INSERT INTO n VALUES (1, 'a');
UPDATE n SET rowid = 2 WHERE id = 1;
UPDATE n SET _rowid_ = 3, v = 'b';
UPDATE n SET OID = 4;
UPDATE n SET v = 'c';
UPDATE n SET id = 5, v = 'd';
SELECT op, pk, data FROM sync_outbox WHERE tbl = 'n' ORDER BY id;
