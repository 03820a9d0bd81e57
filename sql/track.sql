-- sync_track / sync_untrack: key shapes, quoting, errors.
SELECT length(sync_init(NULL));
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT);
CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE pairs(a INTEGER, b TEXT, v, PRIMARY KEY (b, a)) WITHOUT ROWID;
CREATE TABLE "my table"("the id" TEXT PRIMARY KEY, "it's" TEXT);
CREATE TABLE nokey(a, b);
CREATE VIEW v AS SELECT * FROM todos;
CREATE VIRTUAL TABLE vt USING fts5(x);
CREATE TABLE quoted(id TEXT PRIMARY KEY, "a""b" TEXT);
CREATE TABLE gen(id INTEGER PRIMARY KEY, a INT, b INT GENERATED ALWAYS AS (a * 2) VIRTUAL);
SELECT sync_track('todos'), sync_track('items'), sync_track('pairs'), sync_track('my table'), sync_track('gen');
-- tracking twice is fine; names are case-insensitive like SQLite's
SELECT sync_track('todos'), sync_track('TODOS');
SELECT name FROM sync_tracked ORDER BY name;
SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'todos' ORDER BY name;
-- errors
SELECT sync_track('nope');
SELECT sync_track('nokey');
SELECT sync_track('v');
SELECT sync_track('vt');
SELECT sync_track('sync_outbox');
SELECT sync_track('quoted');
SELECT sync_track(NULL);
SELECT sync_untrack('nope');
SELECT sync_untrack('nokey');
-- every key shape captures
INSERT INTO items(id, name) VALUES (7, 'seven');
INSERT INTO pairs VALUES (1, 'x', 'v1');
INSERT INTO "my table" VALUES ('k 1', 'quote''s');
INSERT INTO gen(id, a) VALUES (1, 21);
UPDATE gen SET a = 22 WHERE id = 1;
SELECT id, table_name, op, pk, data FROM sync_pending;
-- untrack drops the triggers and the table's pending mutations
SELECT sync_untrack('items');
INSERT INTO items(id, name) VALUES (8, 'eight');
SELECT id, table_name, op FROM sync_pending;
SELECT name FROM sync_tracked ORDER BY name;
SELECT count(*) AS item_triggers FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'items';
-- ALTER TABLE ADD COLUMN, then tracking again, captures the new column
ALTER TABLE todos ADD COLUMN done INTEGER DEFAULT 0;
SELECT sync_track('todos');
INSERT INTO todos VALUES ('a', 'milk', 1);
SELECT op, data FROM sync_pending WHERE table_name = 'todos';
