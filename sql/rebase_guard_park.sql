-- Two guards holding each other's UNIQUE values (rebase_guard_swap) are
-- unlocked by parking one: the columns of its UNIQUE indexes get values no
-- row holds for a moment. Before, only indexes on whole columns counted:
-- through an index on a generated column the park tried to SET that column
-- ("cannot UPDATE generated column": the ack failed, and failed again on
-- every retry), through an index on an expression or a partial one it
-- moved nothing (both rows stayed swapped against the server for good,
-- nothing pending), and a CHECK the parked value broke, or a REAL parked
-- in a STRICT INTEGER column holding NULL, failed the ack for good
-- ("constraint failed"). Now every UNIQUE index is read as the capture
-- reads it (the columns an expression or a generated column is made of are
-- parked) and a CHECK is ignored for the park alone, as a pull's does.

-- an index on a generated column
.open a.db
.load ./sync
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT, name TEXT,
  mail TEXT AS (lower(email)) VIRTUAL);
CREATE UNIQUE INDEX users_mail ON users(mail);
-- rows may refer to users, so a refused insert's row is not deleted
CREATE TABLE projects(id INTEGER PRIMARY KEY,
  owner INTEGER REFERENCES users(id) ON DELETE CASCADE);
SELECT sync_track('users'), sync_track('projects');
INSERT INTO users(id, email, name) VALUES(6, 'b@x', 'mine6');
UPDATE users SET email = 'c@x' WHERE id = 6;
INSERT INTO users(id, email, name) VALUES(4, 'b@x', 'mine4');
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":4},"row":{"id":4,"email":"c@x","name":"srv4"},"version":1}],
  "cursor":"1"}') AS applied;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"applied",
  "row":{"id":6,"email":"b@x","name":"mine6"},"version":2}]}') AS resolved;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":2,"status":"rejected",
  "reason":"UNIQUE constraint failed: users.mail"}]}') AS resolved;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":3,"status":"rejected",
  "reason":"UNIQUE constraint failed: users.id"}]}') AS resolved;
-- both are the server's rows, nothing pending, no guard listed
SELECT * FROM users ORDER BY id;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_meta WHERE key = 'guards') AS guards
  FROM sync_outbox;

-- a partial index on an expression
.open b.db
.load ./sync
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT, name TEXT);
CREATE UNIQUE INDEX users_email ON users(upper(email)) WHERE email LIKE '%@%';
-- rows may refer to users, so a refused insert's row is not deleted
CREATE TABLE projects(id INTEGER PRIMARY KEY,
  owner INTEGER REFERENCES users(id) ON DELETE CASCADE);
SELECT sync_track('users'), sync_track('projects');
INSERT INTO users VALUES(6, 'b@x', 'mine6');
UPDATE users SET email = 'c@x' WHERE id = 6;
INSERT INTO users VALUES(4, 'b@x', 'mine4');
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":4},"row":{"id":4,"email":"c@x","name":"srv4"},"version":1}],
  "cursor":"1"}') AS applied;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"applied",
  "row":{"id":6,"email":"b@x","name":"mine6"},"version":2}]}') AS resolved;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":2,"status":"rejected",
  "reason":"UNIQUE constraint failed: index users_email"}]}') AS resolved;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":3,"status":"rejected",
  "reason":"UNIQUE constraint failed: users.id"}]}') AS resolved;
-- both are the server's rows, nothing pending, no guard listed
SELECT * FROM users ORDER BY id;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_meta WHERE key = 'guards') AS guards
  FROM sync_outbox;

-- a CHECK the parked value breaks
.open c.db
.load ./sync
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE CHECK (length(email) < 5),
  name TEXT);
-- rows may refer to users, so a refused insert's row is not deleted
CREATE TABLE projects(id INTEGER PRIMARY KEY,
  owner INTEGER REFERENCES users(id) ON DELETE CASCADE);
SELECT sync_track('users'), sync_track('projects');
INSERT INTO users VALUES(6, 'b@x', 'mine6');
UPDATE users SET email = 'c@x' WHERE id = 6;
INSERT INTO users VALUES(4, 'b@x', 'mine4');
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":4},"row":{"id":4,"email":"c@x","name":"srv4"},"version":1}],
  "cursor":"1"}') AS applied;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"applied",
  "row":{"id":6,"email":"b@x","name":"mine6"},"version":2}]}') AS resolved;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":2,"status":"rejected",
  "reason":"UNIQUE constraint failed: users.email"}]}') AS resolved;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":3,"status":"rejected",
  "reason":"UNIQUE constraint failed: users.id"}]}') AS resolved;
-- both are the server's rows, nothing pending, no guard listed
SELECT * FROM users ORDER BY id;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_meta WHERE key = 'guards') AS guards
  FROM sync_outbox;

-- an index the lookups cannot read (a generated column made of another
-- one): the ack resolves (before, it failed with "out of memory": no
-- index left to look up was taken for a failed allocation), but nothing
-- parks it, and the swap stays listed as guards
.open d.db
.load ./sync
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT, name TEXT,
  low TEXT AS (lower(email)), mail TEXT AS (low) VIRTUAL);
CREATE UNIQUE INDEX users_mail ON users(mail);
-- rows may refer to users, so a refused insert's row is not deleted
CREATE TABLE projects(id INTEGER PRIMARY KEY,
  owner INTEGER REFERENCES users(id) ON DELETE CASCADE);
SELECT sync_track('users'), sync_track('projects');
INSERT INTO users(id, email, name) VALUES(6, 'b@x', 'mine6');
UPDATE users SET email = 'c@x' WHERE id = 6;
INSERT INTO users(id, email, name) VALUES(4, 'b@x', 'mine4');
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":4},"row":{"id":4,"email":"c@x","name":"srv4"},"version":1}],
  "cursor":"1"}') AS applied;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"applied",
  "row":{"id":6,"email":"b@x","name":"mine6"},"version":2}]}') AS resolved;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":2,"status":"rejected",
  "reason":"UNIQUE constraint failed: users.mail"}]}') AS resolved;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":3,"status":"rejected",
  "reason":"UNIQUE constraint failed: users.id"}]}') AS resolved;
SELECT * FROM users ORDER BY id;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_meta WHERE key = 'guards') AS guards
  FROM sync_outbox;

-- a STRICT INTEGER column of another UNIQUE index holding NULL: the park
-- gives it an integer (it gave a REAL, which the column refuses: the ack
-- failed for good with "constraint failed")
.open e.db
.load ./sync
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT,
  code INTEGER UNIQUE) STRICT;
CREATE TABLE projects(id INTEGER PRIMARY KEY,
  owner INTEGER REFERENCES users(id) ON DELETE CASCADE);
SELECT sync_track('users'), sync_track('projects');
INSERT INTO users(id, email, name) VALUES(6, 'b@x', 'mine6');
UPDATE users SET email = 'c@x' WHERE id = 6;
INSERT INTO users(id, email, name) VALUES(4, 'b@x', 'mine4');
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":8},"row":{"id":8,"email":"z@x","name":"srv8","code":5},"version":1},
  {"table":"users","op":"upsert","pk":{"id":4},"row":{"id":4,"email":"c@x","name":"srv4","code":null},"version":2}],
  "cursor":"2"}') AS applied;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"applied",
  "row":{"id":6,"email":"b@x","name":"mine6","code":null},"version":3}]}') AS resolved;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":2,"status":"rejected",
  "reason":"UNIQUE constraint failed: users.email"}]}') AS resolved;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":3,"status":"rejected",
  "reason":"UNIQUE constraint failed: users.id"}]}') AS resolved;
SELECT * FROM users ORDER BY id;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_meta WHERE key = 'guards') AS guards
  FROM sync_outbox;
