-- A pending row in the way of a server row's UNIQUE value, with no server
-- image to show, is removed to hide its edit, unless other rows refer to
-- it: they may be the server's (this client's pending insert of user 6,
-- a key the server also holds, whose project 5 a pull delivered), and the
-- delete would cascade to them, which no pull sends again (issue 13). Its
-- value is parked instead, until its server row or the answer to its
-- insert arrives.
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT);
CREATE TABLE projects(id INTEGER PRIMARY KEY,
  owner INTEGER REFERENCES users(id) ON DELETE CASCADE, title TEXT);
SELECT sync_track('users'), sync_track('projects');
INSERT INTO users VALUES(6, 'b@x', 'mine');
SELECT sync_apply('{"changes":[{"table":"projects","op":"upsert","pk":{"id":5},"row":{"id":5,"owner":6,"title":"theirs"},"version":2}],"cursor":"2"}') AS applied;
SELECT sync_apply('{"changes":[{"table":"users","op":"upsert","pk":{"id":7},"row":{"id":7,"email":"b@x","name":"srv7"},"version":3}],"cursor":"3"}') AS applied;
SELECT id, email LIKE 'b@x~%' AS parked, name FROM users ORDER BY id;
SELECT * FROM projects;
SELECT id, op, pk FROM sync_outbox;
-- the server's row for user 6 arrives: it shows (the insert stays queued)
SELECT sync_apply('{"changes":[{"table":"users","op":"upsert","pk":{"id":6},"row":{"id":6,"email":"c@x","name":"srv6"},"version":4}],"cursor":"4"}') AS applied;
SELECT * FROM users ORDER BY id;
SELECT * FROM projects;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"rejected","reason":"UNIQUE constraint failed: users.id"}]}') AS resolved;
SELECT * FROM users ORDER BY id;
SELECT * FROM projects;
PRAGMA foreign_key_check;

-- the same with the refusal first: the parked row stays (its delete would
-- still cascade) until the server's row arrives
INSERT INTO users VALUES(8, 'd@x', 'mine');
SELECT sync_apply('{"changes":[{"table":"projects","op":"upsert","pk":{"id":9},"row":{"id":9,"owner":8,"title":"theirs"},"version":5}],"cursor":"5"}') AS applied;
SELECT sync_apply('{"changes":[{"table":"users","op":"upsert","pk":{"id":10},"row":{"id":10,"email":"d@x","name":"srv10"},"version":6}],"cursor":"6"}') AS applied;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":2,"status":"rejected","reason":"UNIQUE constraint failed: users.id"}]}') AS resolved;
SELECT id, email LIKE 'd@x~%' AS parked, name FROM users WHERE id IN (8, 10) ORDER BY id;
SELECT * FROM projects WHERE id = 9;
SELECT sync_apply('{"changes":[{"table":"users","op":"upsert","pk":{"id":8},"row":{"id":8,"email":"e@x","name":"srv8"},"version":7}],"cursor":"7"}') AS applied;
SELECT * FROM users WHERE id IN (8, 10) ORDER BY id;
SELECT * FROM projects WHERE id = 9;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images FROM sync_outbox;
PRAGMA foreign_key_check;

-- Rows only this client has do not hold a row back (converge seed 334):
-- user 26's server row (g@x) must show to hide its pending insert (h@x,
-- which the server gives user 22), and pending user 24 holds g@x. User 24
-- goes, with its pending project 23 (nothing the server holds refers to
-- them; their inserts stay queued). Kept, they left user 26 absent, and
-- the server's project 22 failed every pull on its foreign key.
INSERT INTO users VALUES(24, 'g@x', 'mine24');
INSERT INTO users VALUES(26, 'h@x', 'mine26');
INSERT INTO projects VALUES(23, 24, 'mine23');
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":22},"row":{"id":22,"email":"h@x","name":"srv22"},"version":11},
  {"table":"users","op":"upsert","pk":{"id":26},"row":{"id":26,"email":"g@x","name":"srv26"},"version":12}],
  "cursor":"12","has_more":true}') AS applied;
SELECT sync_apply('{"changes":[
  {"table":"projects","op":"upsert","pk":{"id":22},"row":{"id":22,"owner":26,"title":"srv"},"version":13}],
  "cursor":"13"}') AS applied;
SELECT * FROM users WHERE id > 20 ORDER BY id;
SELECT * FROM projects WHERE id > 20 ORDER BY id;
SELECT op, pk FROM sync_outbox ORDER BY id;
PRAGMA foreign_key_check;
