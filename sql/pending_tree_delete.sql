-- The server deletes a folder while this client's pending edits put other
-- folders of the same table under it (a tree: folders refer to folders).
-- Before the delete, rows whose pending edits refer to the deleted row
-- show their server image again (their edits stay queued), so its cascade
-- takes only what the server's took. Rows of the deleted row's own table
-- were left out: the local cascade went through this client's edits and
-- took the server's subfolder (folder 2) and, through SET NULL, cleared
-- the folder of the server's document d5, for good (nothing pending; the
-- converge-schemas --worker divergences of seeds 28 and 3503).
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE folders(id INTEGER PRIMARY KEY,
  parent INTEGER REFERENCES folders(id) ON DELETE CASCADE, name TEXT NOT NULL);
CREATE TABLE docs(id TEXT PRIMARY KEY,
  folder INTEGER REFERENCES folders(id) ON DELETE SET NULL);
SELECT sync_track('folders'), sync_track('docs');
SELECT sync_apply('{"changes":[
  {"table":"folders","op":"upsert","pk":{"id":7},"row":{"id":7,"parent":null,"name":"x"},"version":1},
  {"table":"folders","op":"upsert","pk":{"id":6},"row":{"id":6,"parent":null,"name":"y"},"version":2},
  {"table":"docs","op":"upsert","pk":{"id":"d5"},"row":{"id":"d5","folder":6},"version":3}],
  "cursor":"3"}') AS applied;
-- this client puts folders 10 (new) and 6 under folder 7
INSERT INTO folders VALUES(10, 7, 'b');
UPDATE folders SET parent = 7 WHERE id = 6;
-- the server has its own folder 10, deletes folder 7, and puts folder 2
-- under its folder 10
SELECT sync_apply('{"changes":[
  {"table":"folders","op":"upsert","pk":{"id":10},"row":{"id":10,"parent":null,"name":"c"},"version":4},
  {"table":"folders","op":"delete","pk":{"id":7},"version":5},
  {"table":"folders","op":"upsert","pk":{"id":2},"row":{"id":2,"parent":10,"name":"a"},"version":6}],
  "cursor":"6"}') AS applied;
SELECT * FROM folders ORDER BY id;
SELECT * FROM docs ORDER BY id;
SELECT id, table_name, op, pk FROM sync_pending;
-- the server refuses both edits: the client holds the server's rows
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[
  {"id":1,"status":"rejected","reason":"UNIQUE constraint failed: folders.id"},
  {"id":2,"status":"rejected","reason":"FOREIGN KEY constraint failed"}]}') AS resolved;
SELECT * FROM folders ORDER BY id;
SELECT * FROM docs ORDER BY id;
SELECT count(*) AS pending FROM sync_outbox;
-- a folder that refers to itself goes with its own delete
SELECT sync_apply('{"changes":[
  {"table":"folders","op":"upsert","pk":{"id":9},"row":{"id":9,"parent":9,"name":"loop"},"version":7}],
  "cursor":"7"}') AS applied;
UPDATE folders SET name = 'mine' WHERE id = 9;
SELECT sync_apply('{"changes":[
  {"table":"folders","op":"delete","pk":{"id":9},"version":8}],
  "cursor":"8"}') AS applied;
SELECT * FROM folders WHERE id = 9;
SELECT id, table_name, op, pk FROM sync_pending;
