-- sync_migrate: schema changes of a tracked table with writes pending; the
-- capture triggers follow, nothing queued is lost or rewritten.
SELECT length(sync_init(NULL));
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT, note TEXT);
SELECT sync_track('todos');
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"s"},"row":{"id":"s","title":"server row","note":"n"},"version":1}],"cursor":"1"}');
INSERT INTO todos VALUES ('a', 'before', 'x');

-- 1. A column added: inserts and updates carry it. Rows the migration
--    itself writes are not queued.
SELECT sync_migrate('ALTER TABLE todos ADD COLUMN due TEXT DEFAULT ''never''; UPDATE todos SET due = ''backfilled''');
INSERT INTO todos VALUES ('b', 'after', 'y', 'monday');
UPDATE todos SET due = 'friday' WHERE id = 'a';
SELECT id, op, pk, data FROM sync_pending;

-- 2. A column renamed: what was queued stays as recorded, new writes use
--    the new name.
SELECT sync_migrate('ALTER TABLE todos RENAME COLUMN note TO notes');
UPDATE todos SET notes = 'renamed' WHERE id = 'b';
SELECT id, op, pk, data FROM sync_pending WHERE id > 3;

-- 3. A column dropped: SQLite refuses it while the triggers name it;
--    sync_migrate does it.
ALTER TABLE todos DROP COLUMN notes;
SELECT sync_migrate('ALTER TABLE todos DROP COLUMN notes');
UPDATE todos SET title = 'after drop' WHERE id = 's';
SELECT id, op, pk, data FROM sync_pending WHERE id > 4;
SELECT * FROM todos ORDER BY id;

-- 4. A UNIQUE index added: REPLACE through it is captured (the other row's
--    delete comes first).
SELECT sync_migrate('CREATE UNIQUE INDEX todos_title ON todos(title)');
INSERT OR REPLACE INTO todos(id, title) VALUES ('c', 'after drop');
SELECT id, op, pk, data FROM sync_pending WHERE id > 5;

-- 5. A pending edit under an old column name refused by the server: the
--    rollback writes what still fits, nothing fails.
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"applied","row":{"id":"a","title":"before","due":"backfilled"},"version":2},{"id":2,"status":"applied","row":{"id":"b","title":"after","due":"monday"},"version":3},{"id":3,"status":"applied","row":{"id":"a","title":"before","due":"friday"},"version":4},{"id":4,"status":"rejected","reason":"no such column: notes"}]}');
SELECT id, title, due FROM todos ORDER BY id;
SELECT id, reason FROM sync_rejected ORDER BY id;

-- 6. Errors leave everything as it was.
SELECT sync_migrate('DROP TABLE todos');
SELECT sync_migrate('CREATE TABLE t2(k PRIMARY KEY); ALTER TABLE todos ADD COLUMN z; SELECT no_such_function()');
SELECT sync_migrate(NULL);
SELECT sync_migrate(42);
SELECT name FROM sqlite_schema WHERE name IN ('t2', 'tasks');
CREATE TABLE other(id INTEGER PRIMARY KEY);
SELECT sync_track('other');
SELECT sync_migrate('ALTER TABLE todos RENAME TO todos_old; ALTER TABLE other RENAME TO todos');
SELECT sync_untrack('other');
DROP TABLE other;
SELECT group_concat(name, ',') FROM pragma_table_info('todos');
CREATE TABLE pk2(a INTEGER, b TEXT, v, PRIMARY KEY (a, b)) WITHOUT ROWID;
SELECT sync_track('pk2');
SELECT sync_migrate('CREATE TABLE pk2n(a INTEGER, b TEXT, v, PRIMARY KEY (b, a)) WITHOUT ROWID; INSERT INTO pk2n SELECT * FROM pk2; DROP TABLE pk2; ALTER TABLE pk2n RENAME TO pk2');
-- made again with the same key (SQLite's way to change a column's type): the same table
INSERT INTO pk2 VALUES (1, 'x', 'before');
SELECT sync_migrate('CREATE TABLE pk2n(a INTEGER, b TEXT, v TEXT NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID; INSERT INTO pk2n SELECT * FROM pk2; DROP TABLE pk2; ALTER TABLE pk2n RENAME TO pk2');
UPDATE pk2 SET v = 'after' WHERE a = 1;
SELECT table_name, op, pk, data FROM sync_pending WHERE table_name = 'pk2';
-- inside the host's transaction, rolled back with it (the triggers too)
BEGIN;
SELECT sync_migrate('ALTER TABLE todos ADD COLUMN gone TEXT');
ROLLBACK;
SELECT group_concat(name, ',') FROM pragma_table_info('todos');
INSERT INTO todos(id, title) VALUES ('d', 'still captured');
SELECT id, op, data FROM sync_pending WHERE id > 7;

-- 7. A change made without sync_migrate, by a connection without the
--    extension: writes before the engine notices are captured with the
--    old columns (an update of only the new column queues nothing); the
--    next engine write rebuilds the triggers and says so.
.open test.db
ALTER TABLE todos ADD COLUMN prio INTEGER;
UPDATE todos SET prio = 1 WHERE id = 'd';
INSERT INTO todos(id, title, prio) VALUES ('e', 'unnoticed', 2);
.load ./sync
SELECT (SELECT value FROM sync_meta WHERE key = 'schema_change') AS schema_change, (SELECT value FROM sync_meta WHERE key = 'schema_changed_at') AS schema_changed_at;
SELECT sync_ack('{"results":[]}');
SELECT (SELECT value FROM sync_meta WHERE key = 'schema_change') AS schema_change, (SELECT value FROM sync_meta WHERE key = 'schema_changed_at') IS NOT NULL AS noticed;
UPDATE todos SET prio = 3 WHERE id = 'd';
SELECT id, op, pk, data FROM sync_pending WHERE id > 8;

-- 8. A tracked table renamed: to the server it is another table. The
--    tracking moves to the new name, its rows are kept local-only until
--    the app sends them; what was queued under the old name stays as it
--    was; new writes go under the new name.
SELECT count(*) AS queued_before FROM sync_pending WHERE table_name = 'todos';
SELECT sync_migrate('ALTER TABLE todos RENAME TO tasks');
SELECT name FROM sync_tracked ORDER BY name;
SELECT count(*) AS queued_still FROM sync_pending WHERE table_name = 'todos';
SELECT table_name, pk, state FROM sync_orphans ORDER BY pk;
INSERT INTO tasks(id, title) VALUES ('f', 'new name');
UPDATE tasks SET title = 'held' WHERE id = 'a';
SELECT id, table_name, op, data FROM sync_pending WHERE id > 10;
SELECT sync_track('tasks', '{"existing":"push"}');
SELECT table_name, op, pk FROM sync_pending WHERE id > 11 ORDER BY pk;
SELECT count(*) AS orphans FROM sync_orphans;
SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE '%todos%';

-- 9. Renamed without sync_migrate: the next engine write follows it.
.open test.db
ALTER TABLE tasks RENAME TO jobs;
INSERT INTO jobs(id, title) VALUES ('g', 'queued under the old name');
.load ./sync
SELECT sync_ack('{"results":[]}');
SELECT value AS schema_change FROM sync_meta WHERE key = 'schema_change';
SELECT name FROM sync_tracked ORDER BY name;
INSERT INTO jobs(id, title) VALUES ('h', 'queued under the new name');
SELECT table_name, op, pk FROM sync_pending WHERE pk IN ('{"id":"g"}', '{"id":"h"}') ORDER BY id;
SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE '%tasks%';
