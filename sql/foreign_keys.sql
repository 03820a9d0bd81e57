-- With foreign keys on, a page may hold a child before its parent (the
-- change log orders rows by their latest change): checked at commit, so the
-- page applies; a last page that leaves a dangling reference fails whole,
-- naming the child, its key and the missing parent (an earlier page of the
-- pull is staged instead: see apply_order.sql).
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE lists(id TEXT PRIMARY KEY, name TEXT);
CREATE TABLE items(id TEXT PRIMARY KEY, list TEXT NOT NULL REFERENCES lists(id) ON DELETE CASCADE, what TEXT);
SELECT sync_track('lists'), sync_track('items');
SELECT sync_apply('{"changes":[
  {"table":"items","op":"upsert","pk":{"id":"i1"},"row":{"id":"i1","list":"l1","what":"milk"},"version":5},
  {"table":"lists","op":"upsert","pk":{"id":"l1"},"row":{"id":"l1","name":"shop"},"version":6}],"cursor":"6"}');
SELECT * FROM items;
SELECT sync_apply('{"changes":[
  {"table":"items","op":"upsert","pk":{"id":"i2"},"row":{"id":"i2","list":"nope","what":"x"},"version":7}],"cursor":"7"}');
SELECT count(*) AS i2, sync_cursor() FROM items WHERE id = 'i2';
-- a local write that breaks a foreign key fails as usual, nothing queued
INSERT INTO items VALUES ('i3', 'nope', 'y');
SELECT sync_pending();
-- a WITHOUT ROWID child is named by its key too (foreign_key_check gives
-- no rowid for it)
CREATE TABLE parts(list TEXT NOT NULL REFERENCES lists(id) ON DELETE CASCADE, n INTEGER NOT NULL, PRIMARY KEY(list, n)) WITHOUT ROWID;
SELECT sync_track('parts');
SELECT sync_apply('{"changes":[
  {"table":"parts","op":"upsert","pk":{"list":"gone","n":2},"row":{"list":"gone","n":2},"version":8}],"cursor":"8"}');
SELECT count(*) AS parts, sync_cursor() FROM parts;
