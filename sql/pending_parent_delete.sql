-- A pull brings a child of a row this client deleted (the delete still
-- pending): the page applies, foreign keys on (issue 13, converge seed 20).
-- The pending delete no longer fits next to the server's rows, so its
-- local effect is hidden like any such edit: the parent shows its server
-- image, the delete stays queued for the server to judge.
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE projects(id INTEGER PRIMARY KEY,
  owner INTEGER REFERENCES users(id) ON DELETE CASCADE);
SELECT sync_track('users'), sync_track('projects');
SELECT sync_apply('{"changes":[{"table":"users","op":"upsert","pk":{"id":5},"row":{"id":5,"name":"a"},"version":1}],"cursor":"1"}') AS applied;
DELETE FROM users WHERE id = 5;
SELECT sync_apply('{"changes":[{"table":"projects","op":"upsert","pk":{"id":1},"row":{"id":1,"owner":5},"version":2}],"cursor":"2"}') AS applied;
SELECT * FROM users;
SELECT * FROM projects;
SELECT id, op, pk FROM sync_outbox;
PRAGMA foreign_key_check;
-- the server applies the delete and cascades: the answer removes both
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"applied","row":null,"version":3}]}') AS resolved;
SELECT count(*) AS users, (SELECT count(*) FROM projects) AS projects FROM users;
PRAGMA foreign_key_check;
