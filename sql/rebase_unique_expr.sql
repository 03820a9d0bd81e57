-- The server's row wins over local state through every UNIQUE index, one
-- on an expression and a partial one included: a pull's row whose value
-- another local row holds there moves that row aside (pending edits stay
-- queued and hidden; a confirmed row is stale and goes). Before, such an
-- index was left to the write, which failed: the pull stopped on that
-- page for good ("UNIQUE constraint failed: index 'docs_body'").
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE docs(id TEXT PRIMARY KEY, body TEXT, live INTEGER);
CREATE UNIQUE INDEX docs_body ON docs(lower(body)) WHERE length(body) > 3;
CREATE TABLE p(id INTEGER PRIMARY KEY, k TEXT, live INTEGER);
CREATE UNIQUE INDEX p_k ON p(k) WHERE live;
SELECT sync_track('docs'), sync_track('p');
-- pending local rows holding the values
INSERT INTO docs VALUES ('d3', 'Abcd', 1);
INSERT INTO p VALUES (1, 'k', 1);
-- a confirmed row too
SELECT sync_apply('{"changes":[
  {"table":"docs","op":"upsert","pk":{"id":"d5"},"row":{"id":"d5","body":"World","live":1},"version":1}],"cursor":"1"}') AS applied;
SELECT sync_apply('{"changes":[
  {"table":"docs","op":"upsert","pk":{"id":"d7"},"row":{"id":"d7","body":"abcd","live":1},"version":2},
  {"table":"docs","op":"upsert","pk":{"id":"d8"},"row":{"id":"d8","body":"WORLD","live":1},"version":3},
  {"table":"p","op":"upsert","pk":{"id":2},"row":{"id":2,"k":"k","live":1},"version":4}],"cursor":"4"}') AS applied;
SELECT * FROM docs ORDER BY id;
SELECT * FROM p ORDER BY id;
SELECT id, table_name, op, pk FROM sync_pending;
-- outside the partial index nothing collides: both rows stay
INSERT INTO p VALUES (3, 'q', 0);
SELECT sync_apply('{"changes":[
  {"table":"p","op":"upsert","pk":{"id":4},"row":{"id":4,"k":"q","live":1},"version":5}],"cursor":"5"}') AS applied;
SELECT * FROM p ORDER BY id;
