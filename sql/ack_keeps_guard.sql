-- A confirmed version's guard (read-your-writes) outlives the answers that
-- follow it: a delete the server applied leaves the image "absent" with its
-- version, so that a page fetched before the push cannot bring the row
-- back. A later answer that tells nothing newer, a refusal or a delete of
-- a row that is already gone (applied, no version), kept nothing of it
-- before: the row came back from the stale page, until the next pull (the
-- chaos run on PostgreSQL storage caught a client at that moment). An image
-- of a version a page has brought already still goes: no echo would end
-- its guard (k3).
SELECT length(sync_init(NULL));
CREATE TABLE items(id TEXT PRIMARY KEY, val INTEGER NOT NULL);
SELECT sync_track('items');
SELECT sync_apply('{"changes":[{"table":"items","op":"upsert","pk":{"id":"k1"},"row":{"id":"k1","val":1},"version":1},
  {"table":"items","op":"upsert","pk":{"id":"k2"},"row":{"id":"k2","val":2},"version":2},
  {"table":"items","op":"upsert","pk":{"id":"k3"},"row":{"id":"k3","val":3},"version":2}],"cursor":"2"}') AS applied;
SELECT value AS pulled_version FROM sync_meta WHERE key = 'pulled_version';

-- k3: an edit refused; its image (version 2, pulled) goes with it
UPDATE items SET val = 30 WHERE id = 'k3';
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"rejected","reason":"CHECK constraint failed"}]}') AS resolved;
SELECT * FROM items WHERE id = 'k3';
SELECT count(*) AS images FROM sync_shadow WHERE pk = '{"id":"k3"}';

-- k1: deleted here and on the server (version 5); then an insert refused
DELETE FROM items WHERE id = 'k1';
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":2,"status":"applied","row":null,"version":5}]}') AS resolved;
INSERT INTO items VALUES('k1', -3);
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":3,"status":"rejected","reason":"CHECK constraint failed"}]}') AS resolved;
SELECT tbl, pk, row, version FROM sync_shadow WHERE pk = '{"id":"k1"}';

-- k2: deleted here and on the server (version 6); inserted again and deleted
-- again, the second delete finding no row there (applied, version null)
DELETE FROM items WHERE id = 'k2';
SELECT sync_push_batch() IS NOT NULL AS pushed;
INSERT INTO items VALUES('k2', 9);
SELECT sync_ack('{"results":[{"id":4,"status":"applied","row":null,"version":6}]}') AS resolved;
SELECT sync_push_batch() IS NOT NULL AS pushed;
DELETE FROM items WHERE id = 'k2';
SELECT sync_ack('{"results":[{"id":5,"status":"rejected","reason":"CHECK constraint failed"}]}') AS resolved;
SELECT id, op FROM sync_outbox;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":6,"status":"applied","row":null,"version":null}]}') AS resolved;
SELECT tbl, pk, row, version FROM sync_shadow WHERE pk = '{"id":"k2"}';

-- the page fetched before the pushes: both rows as they were
SELECT sync_apply('{"changes":[{"table":"items","op":"upsert","pk":{"id":"k1"},"row":{"id":"k1","val":1},"version":1},
  {"table":"items","op":"upsert","pk":{"id":"k2"},"row":{"id":"k2","val":2},"version":2}],"cursor":"2"}') AS applied;
SELECT * FROM items ORDER BY id;
-- the next page carries the deletes: the guards go
SELECT sync_apply('{"changes":[{"table":"items","op":"delete","pk":{"id":"k1"},"version":5},
  {"table":"items","op":"delete","pk":{"id":"k2"},"version":6}],"cursor":"6"}') AS applied;
SELECT * FROM items ORDER BY id;
SELECT count(*) AS images FROM sync_shadow;
SELECT value AS pulled_version FROM sync_meta WHERE key = 'pulled_version';
