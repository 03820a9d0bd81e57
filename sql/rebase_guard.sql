-- Refusals never leave a row different from the server for good (issue
-- 13, converge case rejected-insert-rebase-unique): a refused edit whose
-- server row cannot stand yet (its UNIQUE value is held by a pending row
-- that other rows may reference, so it is not moved) keeps the server's
-- row as a guard (sync_shadow with nothing pending); the rest of the same
-- answer, a later answer or a pull's last page writes it again. Once
-- written, its image stays as a confirmed version's guard (read-your-writes:
-- images 1), no longer listed in sync_meta 'guards'.
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT);
CREATE TABLE projects(id INTEGER PRIMARY KEY,
  owner INTEGER REFERENCES users(id) ON DELETE CASCADE);
SELECT sync_track('users'), sync_track('projects');
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":3},"row":{"id":3,"email":"b@x","name":"srv"},"version":1}],
  "cursor":"1"}') AS applied;

-- both refused in one answer: user 3 waits for user 6 to go, then is the
-- server's again
UPDATE users SET email = 'e@x' WHERE id = 3;
INSERT INTO users VALUES(6, 'b@x', 'mine');
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"rejected","reason":"no"},
  {"id":2,"status":"rejected","reason":"UNIQUE constraint failed: users.email"}]}') AS resolved;
SELECT * FROM users ORDER BY id;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images,
  (SELECT count(*) FROM sync_meta WHERE key = 'guards') AS guards FROM sync_outbox;

-- refused in two answers: user 3 keeps its guard until the second
UPDATE users SET email = 'e@x' WHERE id = 3;
INSERT INTO users VALUES(6, 'b@x', 'mine');
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":3,"status":"rejected","reason":"no"}]}') AS resolved;
SELECT * FROM users ORDER BY id;
SELECT tbl, pk, row FROM sync_shadow ORDER BY pk;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":4,"status":"rejected","reason":"no"}]}') AS resolved;
SELECT * FROM users ORDER BY id;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images,
  (SELECT count(*) FROM sync_meta WHERE key = 'guards') AS guards FROM sync_outbox;

-- a guard left by an answer is written again by a pull's last page
UPDATE users SET email = 'e@x' WHERE id = 3;
INSERT INTO users VALUES(6, 'b@x', 'mine');
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":5,"status":"rejected","reason":"no"}]}') AS resolved;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_apply('{"changes":[],"cursor":"2","last_mutation_id":6,
  "rejected":[{"id":6,"reason":"no"}]}') AS applied;
SELECT * FROM users ORDER BY id;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images,
  (SELECT count(*) FROM sync_meta WHERE key = 'guards') AS guards FROM sync_outbox;

-- a server change for a guarded key replaces its guard
UPDATE users SET email = 'e@x' WHERE id = 3;
INSERT INTO users VALUES(6, 'b@x', 'mine');
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":7,"status":"rejected","reason":"no"}]}') AS resolved;
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":3},"row":{"id":3,"email":"f@x","name":"srv2"},"version":3}],
  "cursor":"3"}') AS applied;
SELECT * FROM users ORDER BY id;
SELECT tbl, pk, row FROM sync_shadow ORDER BY pk;
SELECT count(*) AS guards FROM sync_meta WHERE key = 'guards';
