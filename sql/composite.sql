-- Composite keys, including BLOB and REAL parts, through capture, push,
-- apply and rebase; capture from a connection without the extension.
SELECT length(sync_init(NULL));
CREATE TABLE cells(sheet BLOB, r INTEGER, c REAL, v TEXT, PRIMARY KEY (sheet, r, c)) WITHOUT ROWID;
SELECT sync_track('cells');
INSERT INTO cells VALUES (x'01ff', 1, 0.5, 'a'), (x'01ff', 2, 0.1 + 0.2, 'b');
UPDATE cells SET v = 'A' WHERE r = 1;
SELECT id, op, pk, data FROM sync_pending;
-- the server's row for a key with a pending edit: the edit stays on top
SELECT sync_apply('{"changes":[{"table":"cells","op":"upsert","pk":{"sheet":{"$base64":"Af8="},"r":1,"c":0.5},"row":{"sheet":{"$base64":"Af8="},"r":1,"c":0.5,"v":"server"}}]}');
SELECT hex(sheet), r, c, v FROM cells ORDER BY r;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":3,"status":"rejected","reason":"no"}]}');
SELECT hex(sheet), r, c, v FROM cells ORDER BY r;
-- a server delete by composite key with an exact REAL part
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":2,"status":"applied","row":{"sheet":{"$base64":"Af8="},"r":2,"c":0.30000000000000004,"v":"b"}}]}');
SELECT sync_apply('{"changes":[{"table":"cells","op":"delete","pk":{"sheet":{"$base64":"Af8="},"r":2,"c":0.30000000000000004}}]}');
SELECT hex(sheet), r, c, v FROM cells ORDER BY r;
SELECT id, op FROM sync_pending;
-- writes from a connection that never loaded the extension are queued too
.open test.db
INSERT INTO cells VALUES (x'02', 9, 1.0, 'plain');
UPDATE cells SET v = 'plain 2' WHERE r = 9;
DELETE FROM cells WHERE r = 1;
SELECT count(*) AS queued FROM sync_outbox;
.open test.db
.load ./sync
SELECT id, op, pk, data FROM sync_pending;
