-- A tracked table dropped or renamed while it has pending mutations (issue
-- 13, 14): the server's answer still resolves them (applied ones leave the
-- outbox, refused ones reach sync_rejected), and the other tables' acks go
-- on; nothing stays stuck.
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT);
CREATE TABLE scratch(id INTEGER PRIMARY KEY, v TEXT);
CREATE TABLE old_name(id INTEGER PRIMARY KEY, v TEXT);
SELECT sync_track('todos'), sync_track('scratch'), sync_track('old_name');
INSERT INTO scratch VALUES (1, 'a'), (2, 'b');
INSERT INTO old_name VALUES (1, 'x');
INSERT INTO todos VALUES ('t1', 'one');
SELECT sync_push_batch() IS NOT NULL AS pushed;
ALTER TABLE old_name RENAME TO new_name;
DROP TABLE scratch;
SELECT sync_ack('{"results":[
  {"id":1,"status":"applied","row":{"id":1,"v":"a"},"version":1},
  {"id":2,"status":"rejected","reason":"no"},
  {"id":3,"status":"applied","row":{"id":1,"v":"x"},"version":2},
  {"id":4,"status":"applied","row":{"id":"t1","title":"one"},"version":3}]}') AS resolved;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images FROM sync_outbox;
SELECT id, table_name, reason FROM sync_rejected;
SELECT * FROM todos;
-- scratch's one-row sync_req_scratch, whose triggers name scratch, went with
-- the engine's first write after the DROP: a RENAME works again (and that
-- write followed old_name's rename: new_name is tracked, migrate.c)
SELECT name FROM sqlite_schema WHERE name GLOB 'sync_req_*' ORDER BY 1;
CREATE TABLE r1(id INTEGER PRIMARY KEY);
ALTER TABLE r1 RENAME TO r2;
-- a lost answer confirmed by a page's last_mutation_id resolves them too
INSERT INTO todos VALUES ('t2', 'two');
CREATE TABLE gone(id INTEGER PRIMARY KEY) WITHOUT ROWID;
SELECT sync_track('gone');
INSERT INTO gone VALUES (7);
SELECT sync_push_batch() IS NOT NULL AS pushed;
DROP TABLE gone;
SELECT sync_apply('{"changes":[],"cursor":"9","last_mutation_id":6,"rejected":[{"id":6,"reason":"no"}],"has_more":false}') AS applied;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images FROM sync_outbox;
SELECT id, table_name, reason FROM sync_rejected ORDER BY id;
