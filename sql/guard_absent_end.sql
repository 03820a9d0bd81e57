-- An absent guard ends (issue 13: nothing is retried for good). A refused
-- insert whose row other rows refer to is not deleted (the delete would
-- take or orphan rows that may be the server's): it stays, its image
-- "absent" listed as a guard, until the server's row for its key arrives.
-- When two pulls' last pages pass without it, the server has no such row
-- for this client: the guard ends, the row stays as this client's own,
-- listed in sync_orphans as kept (its edits stay local), instead of being
-- tried again at every ack and pull.
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT);
-- no ON DELETE action: the delete is refused while a row refers to it
CREATE TABLE projects(id INTEGER PRIMARY KEY, owner INTEGER REFERENCES users(id));
-- not synced: this client's own rows
CREATE TABLE notes(id INTEGER PRIMARY KEY, user INTEGER REFERENCES users(id));
SELECT sync_track('users'), sync_track('projects');

-- a local row of a table that is not synced refers to the refused row
INSERT INTO users VALUES(9, 'n@x', 'mine9');
INSERT INTO notes VALUES(1, 9);
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"rejected","reason":"write denied"}]}') AS resolved;
SELECT * FROM users ORDER BY id;
SELECT value AS guards FROM sync_meta WHERE key = 'guards';
-- an answer is no pull: still listed, nothing counted, after another ack
INSERT INTO users VALUES(2, 'b@x', 'mine2');
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":2,"status":"applied",
  "row":{"id":2,"email":"b@x","name":"mine2"},"version":1}]}') AS resolved;
SELECT value AS guards, (SELECT value FROM sync_meta WHERE key = 'guards_absent') AS counted
  FROM sync_meta WHERE key = 'guards';
-- a first pull without user 9 (it may have been fetched before the refusal)
SELECT sync_apply('{"changes":[],"cursor":"1"}') AS applied;
SELECT value AS guards, (SELECT value FROM sync_meta WHERE key = 'guards_absent') AS counted
  FROM sync_meta WHERE key = 'guards';
SELECT sync_apply('{"changes":[],"cursor":"2"}') AS applied;
-- ended: the row stays, listed as kept; no guard, no image, nothing counted
SELECT * FROM users ORDER BY id;
SELECT count(*) AS guards FROM sync_meta WHERE key IN ('guards', 'guards_absent');
-- (user 2's image is the read-your-writes guard of its confirmed insert)
SELECT pk FROM sync_shadow ORDER BY pk;
SELECT table_name, pk, state FROM sync_orphans;
-- its edits stay local, as a kept row's do
UPDATE users SET name = 'renamed' WHERE id = 9;
SELECT count(*) AS pending FROM sync_outbox;
SELECT id, op, pk, reason FROM sync_rejected ORDER BY id;

-- a server row refers to it (a pull delivered the server's project 1 of
-- owner 8 while this client's insert of user 8 was pending): a pull that
-- brings the server's user 8 replaces the guard as before
INSERT INTO users VALUES(8, 'e@x', 'mine8');
SELECT sync_apply('{"changes":[
  {"table":"projects","op":"upsert","pk":{"id":1},"row":{"id":1,"owner":8},"version":3}],
  "cursor":"3"}') AS applied;
SELECT id, op, pk FROM sync_outbox;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":4,"status":"rejected",
  "reason":"UNIQUE constraint failed: users.id"}]}') AS resolved;
SELECT value AS guards FROM sync_meta WHERE key = 'guards';
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":8},"row":{"id":8,"email":"s@x","name":"srv8"},"version":2}],
  "cursor":"4"}') AS applied;
SELECT * FROM users ORDER BY id;
SELECT count(*) AS guards FROM sync_meta WHERE key IN ('guards', 'guards_absent');
SELECT table_name, pk, state FROM sync_orphans;
