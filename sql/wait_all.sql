-- sync_wait(timeout_ms, 'all') (issue 18): the tracked tables changed since
-- the previous 'all' call on this connection, local writes included; the
-- one-argument form (and 'server') keeps reporting the server's changes only.
-- Other connections and processes are covered by tests/e2e/test_notify.py.
.open test.db
.load ./sync
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT);
CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
CREATE TABLE scratch(id INTEGER PRIMARY KEY, v TEXT);
SELECT length(sync_init(NULL)) AS init;
SELECT sync_track('todos'), sync_track('notes');
-- a connection's first call starts the watch: nothing yet
SELECT sync_wait(0, 'all') AS changed;
INSERT INTO todos VALUES ('a', 'milk');
SELECT sync_wait(0, 'all') AS changed;
SELECT sync_wait(0, 'all') AS changed;
-- local writes are not the server's
SELECT sync_wait(0) AS changed, sync_wait(0, 'server') AS server;
-- one transaction over two tables; an untracked table is never named
BEGIN;
INSERT INTO notes(body) VALUES ('n1');
UPDATE todos SET title = 'oat milk' WHERE id = 'a';
INSERT INTO scratch(v) VALUES ('x');
COMMIT;
SELECT sync_wait(0, 'all') AS changed;
INSERT INTO scratch(v) VALUES ('y');
SELECT sync_wait(0, 'all') AS changed;
-- a write that changes nothing queues nothing, so reports nothing
UPDATE todos SET title = 'oat milk' WHERE id = 'a';
SELECT sync_wait(0, 'all') AS changed;
-- a rolled-back write is not a change
BEGIN;
DELETE FROM todos;
ROLLBACK;
SELECT sync_wait(0, 'all') AS changed;
-- sync_mutate is a local write too
SELECT sync_mutate('notes', 'update', '{"id":1,"body":"n2"}') IS NOT NULL AS queued;
SELECT sync_wait(0, 'all') AS changed;
-- mutations sent and confirmed before any scan saw them: their tables cannot
-- be told any more, so every tracked table is named
INSERT INTO notes(body) VALUES ('n3');
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack((SELECT json_object('results', json_group_array(json_object('id', id, 'status', 'applied'))) FROM sync_outbox)) AS acked;
SELECT sync_pending() AS pending;
SELECT sync_wait(0, 'all') AS changed;
-- a waiting call returns NULL at its timeout
SELECT sync_wait(30, 'all') AS changed;
-- errors
SELECT sync_wait(0, 'everything');
SELECT sync_wait(0, NULL);
SELECT sync_wait(0, 1);
SELECT sync_wait(-1, 'all');
-- sync_status: no pull has completed, no 401 met
SELECT first_sync_done, needs_token FROM sync_status;
-- in memory: no file to watch
.open :memory:
.load ./sync
SELECT sync_wait(0, 'all');
