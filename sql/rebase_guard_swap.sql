-- Two guards holding each other's UNIQUE values (issue 13, converge case
-- guard-swap-refusals, seed 357): user 6 (b@x, applied) is edited to c@x,
-- and user 4 is inserted with b@x, while the server's user 4 holds c@x.
-- The edit and the insert are refused. Each row's server image then needs
-- the value the other shows: neither could be written while the other
-- stood, and both stayed guards for good, the e-mails swapped against the
-- server. rebase_guards now parks one (its UNIQUE values moved aside in a
-- savepoint), writes the other, then writes it: both end as the server's.
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT);
-- rows may refer to users, so a refused insert's row is not deleted to make
-- room (its delete could cascade to rows a pull delivered)
CREATE TABLE projects(id INTEGER PRIMARY KEY,
  owner INTEGER REFERENCES users(id) ON DELETE CASCADE);
SELECT sync_track('users'), sync_track('projects');
INSERT INTO users VALUES(6, 'b@x', 'mine6');
UPDATE users SET email = 'c@x' WHERE id = 6;
INSERT INTO users VALUES(4, 'b@x', 'mine4');
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":4},"row":{"id":4,"email":"c@x","name":"srv4"},"version":1}],
  "cursor":"1"}') AS applied;
SELECT * FROM users ORDER BY id;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"applied",
  "row":{"id":6,"email":"b@x","name":"mine6"},"version":2}]}') AS resolved;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":2,"status":"rejected",
  "reason":"UNIQUE constraint failed: users.email"}]}') AS resolved;
-- user 6's server row (b@x) waits for user 4's pending insert
SELECT * FROM users ORDER BY id;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":3,"status":"rejected",
  "reason":"UNIQUE constraint failed: users.id"}]}') AS resolved;
-- both are the server's rows, nothing pending, no guard listed
SELECT * FROM users ORDER BY id;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_meta WHERE key = 'guards') AS guards
  FROM sync_outbox;
SELECT pk, row FROM sync_shadow ORDER BY pk;

-- the same swap when a third guard cannot be written (an absent guard
-- kept by a project that refers to it): the swap is settled, that guard
-- is left listed and its row as it was
INSERT INTO users VALUES(9, 'z@x', 'mine9');
SELECT sync_apply('{"changes":[
  {"table":"projects","op":"upsert","pk":{"id":1},"row":{"id":1,"owner":9},"version":3}],
  "cursor":"3"}') AS applied;
UPDATE users SET email = 'd@x' WHERE id = 6;
INSERT INTO users VALUES(7, 'b@x', 'mine7');
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":7},"row":{"id":7,"email":"d@x","name":"srv7"},"version":4}],
  "cursor":"4"}') AS applied;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":4,"status":"rejected","reason":"no"},
  {"id":5,"status":"rejected","reason":"UNIQUE constraint failed: users.email"},
  {"id":6,"status":"rejected","reason":"UNIQUE constraint failed: users.id"}]}') AS resolved;
SELECT * FROM users ORDER BY id;
SELECT value AS guards FROM sync_meta WHERE key = 'guards';
