-- The server deletes a parent that this client's pending insert refers to,
-- on the page that brings the server's child of a row of the same key (the
-- server made that key first, under another parent; its own row comes
-- after the parent's delete). Hiding the pending insert (no server image
-- yet: removed) would cascade to the server's child, which no pull sends
-- again: the insert stays, the delete is put off, and once the key's server
-- row has come the insert is hidden behind it (schemas_run.py --schema 2
-- --worker seed 599).
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE projects(id TEXT PRIMARY KEY);
CREATE TABLE tasks(id INTEGER PRIMARY KEY,
  project TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE, title TEXT);
CREATE TABLE task_tags(task INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  tag TEXT NOT NULL, PRIMARY KEY(task, tag)) WITHOUT ROWID;
SELECT sync_track('projects'), sync_track('tasks'), sync_track('task_tags');
SELECT sync_apply('{"changes":[{"table":"projects","op":"upsert","pk":{"id":"a"},"row":{"id":"a"},"version":1},{"table":"projects","op":"upsert","pk":{"id":"b"},"row":{"id":"b"},"version":2},{"table":"projects","op":"upsert","pk":{"id":"c"},"row":{"id":"c"},"version":3}],"cursor":"3"}');
-- this client makes task 7 under a; another client made task 7 under b
INSERT INTO tasks VALUES(7, 'a', 'mine');
-- one page: the server's tag of task 7, a's delete, then task 7 itself
SELECT sync_apply('{"changes":[{"table":"task_tags","op":"upsert","pk":{"task":7,"tag":"x"},"row":{"task":7,"tag":"x"},"version":4},{"table":"projects","op":"delete","pk":{"id":"a"},"version":5},{"table":"tasks","op":"upsert","pk":{"id":7},"row":{"id":7,"project":"b","title":"theirs"},"version":6}],"cursor":"6"}');
SELECT * FROM projects;
SELECT * FROM tasks;
SELECT * FROM task_tags;
-- the same over two pages: task 7's server row on the second
INSERT INTO tasks VALUES(8, 'c', 'mine');
SELECT sync_apply('{"changes":[{"table":"task_tags","op":"upsert","pk":{"task":8,"tag":"y"},"row":{"task":8,"tag":"y"},"version":7},{"table":"projects","op":"delete","pk":{"id":"c"},"version":8}],"cursor":"8","has_more":true}');
SELECT * FROM task_tags;
SELECT sync_apply('{"changes":[{"table":"tasks","op":"upsert","pk":{"id":8},"row":{"id":8,"project":"b","title":"theirs"},"version":9}],"cursor":"9"}');
SELECT * FROM projects;
SELECT * FROM tasks;
SELECT * FROM task_tags;
-- the server refuses the inserts: the server's rows are left
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"rejected","reason":"UNIQUE constraint failed: tasks.id"},{"id":2,"status":"rejected","reason":"UNIQUE constraint failed: tasks.id"}]}');
SELECT * FROM tasks;
SELECT * FROM task_tags;
SELECT count(*) AS images, (SELECT count(*) FROM sync_outbox) AS pending FROM sync_shadow;
PRAGMA foreign_key_check;
