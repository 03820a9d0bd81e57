-- sync_mutate: the optimistic write by JSON, queued like the equivalent SQL.
SELECT length(sync_init(NULL));
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)), note TEXT DEFAULT 'none');
CREATE TABLE plain(id TEXT PRIMARY KEY);
SELECT sync_track('todos');
SELECT sync_mutate('todos', 'insert', '{"id":"a","title":"milk"}') AS id;
SELECT * FROM todos;
SELECT sync_mutate('todos', 'update', '{"id":"a","done":1}') AS id;
-- same values: nothing queued, NULL
SELECT sync_mutate('todos', 'update', '{"id":"a","done":1}') AS id;
SELECT sync_mutate('todos', 'upsert', '{"id":"a","title":"eggs"}') AS id;
SELECT sync_mutate('todos', 'upsert', '{"id":"b","title":"new"}') AS id;
SELECT * FROM todos ORDER BY id;
SELECT sync_mutate('todos', 'delete', '{"id":"b"}') AS id;
SELECT id, op, pk, data FROM sync_pending;
-- the same as plain SQL would have queued
SELECT sync_mutate('todos', 'insert', '{"id":"n","title":null}');
-- errors, each with no change at all
SELECT sync_mutate('nope', 'insert', '{"id":"x","title":"x"}');
SELECT sync_mutate('plain', 'insert', '{"id":"x"}');
SELECT sync_mutate('todos', 'create', '{"id":"x","title":"x"}');
SELECT sync_mutate(NULL, 'insert', '{"id":"x","title":"x"}');
SELECT sync_mutate('todos', NULL, '{"id":"x","title":"x"}');
SELECT sync_mutate(NULL, NULL, NULL);
SELECT sync_mutate('todos', 'insert', 'not json');
SELECT sync_mutate('todos', 'insert', '[1,2]');
SELECT sync_mutate('todos', 'insert', NULL);
SELECT sync_mutate('todos', 'insert', '{"title":"x"}');
SELECT sync_mutate('todos', 'insert', '{"id":null,"title":"x"}');
SELECT sync_mutate('todos', 'insert', '{"id":"x","titel":"x"}');
SELECT sync_mutate('todos', 'insert', '{"id":"a","title":"again"}');
SELECT sync_mutate('todos', 'update', '{"id":"zz","title":"x"}');
SELECT sync_mutate('todos', 'delete', '{"id":"zz"}');
SELECT sync_mutate('todos', 'update', '{"id":"a","done":7}');
SELECT sync_mutate('todos', 'update', '{"id":"a","title":"x","bogus":1}');
SELECT count(*) AS pending FROM sync_pending;
SELECT * FROM todos ORDER BY id;
-- inside a transaction, a failed call leaves the rest of the transaction alone
BEGIN;
SELECT sync_mutate('todos', 'insert', '{"id":"t1","title":"one"}') AS id;
SELECT sync_mutate('todos', 'insert', '{"id":"t1","title":"dup"}') AS id;
COMMIT;
SELECT id, title FROM todos WHERE id LIKE 't%';
SELECT count(*) AS pending FROM sync_pending;
-- the id it returns is new even after the outbox empties
CREATE TEMP TABLE newest AS SELECT max(id) AS id FROM sync_outbox;
DELETE FROM sync_outbox;
SELECT sync_mutate('todos', 'insert', '{"id":"fresh","title":"x"}') - (SELECT id FROM newest) AS after_newest;
