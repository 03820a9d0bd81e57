-- sync_track's server_columns: the columns the server fills are never sent.
SELECT length(sync_init(NULL));
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT, updated_at TEXT, rev INTEGER);
SELECT sync_track('todos', '{"server_columns":["updated_at","REV","rev"]}');
SELECT name, server_columns FROM sync_tracked;
-- an insert leaves them out; an update sends only its other columns, and
-- an update of only them queues nothing
INSERT INTO todos VALUES ('a', 'milk', NULL, NULL);
UPDATE todos SET title = 'eggs', updated_at = 'local' WHERE id = 'a';
UPDATE todos SET updated_at = 'only this', rev = 5 WHERE id = 'a';
SELECT sync_mutate('todos', 'upsert', '{"id":"b","title":"tea","updated_at":"x"}');
SELECT id, table_name, op, pk, data FROM sync_pending;
-- a key change queues the new row without them
UPDATE todos SET id = 'c' WHERE id = 'a';
SELECT id, op, pk, data FROM sync_pending WHERE id > 3;
-- a table whose only column besides the key is the server's
CREATE TABLE stamps(id TEXT PRIMARY KEY, at TEXT);
SELECT sync_track('stamps', '{"server_columns":["at"]}');
INSERT INTO stamps VALUES ('s', 'x');
UPDATE stamps SET at = 'y';
SELECT op, pk, data FROM sync_pending WHERE table_name = 'stamps';
-- rows already there, queued as inserts when first tracked, leave them out too
CREATE TABLE old(id TEXT PRIMARY KEY, v TEXT, at TEXT);
INSERT INTO old VALUES ('o', 'v', 'at');
SELECT sync_track('old', '{"existing":"push","server_columns":["at"]}');
SELECT op, pk, data FROM sync_pending WHERE table_name = 'old';
-- errors, each changing nothing
SELECT sync_track('todos', '{"server_columns":"updated_at"}');
SELECT sync_track('todos', '{"server_columns":["nope"]}');
SELECT sync_track('todos', '{"server_columns":["id"]}');
SELECT sync_track('todos', '{"server_columns":[1]}');
SELECT sync_track('todos', '{"server_colums":[]}');
SELECT server_columns FROM sync_tracked WHERE name = 'todos';
-- tracking again without the option keeps them; [] clears them
SELECT sync_track('todos');
UPDATE todos SET updated_at = 'kept out' WHERE id = 'b';
SELECT count(*) FROM sync_pending WHERE table_name = 'todos';
SELECT sync_track('todos', '{"server_columns":[]}');
SELECT server_columns FROM sync_tracked WHERE name = 'todos';
UPDATE todos SET updated_at = 'sent now' WHERE id = 'b';
SELECT op, pk, data FROM sync_pending WHERE table_name = 'todos' ORDER BY id DESC LIMIT 1;
