-- -0.0 goes through to the last bit. SQLite's printf, json_quote and CAST
-- all print it 0.0, so it was captured as 0.0 and, once the server answered
-- with its row, the client's own row read +0.0. Only a column without
-- affinity (no type, BLOB, STRICT ANY) keeps -0.0: REAL, NUMERIC and INTEGER
-- columns store it as the integer 0. A key's zero is 0.0 (the same key).
SELECT length(sync_init(NULL));
CREATE TABLE z(id INTEGER PRIMARY KEY, a, b BLOB, r REAL);
CREATE TABLE zs(id INTEGER PRIMARY KEY, a ANY) STRICT;
SELECT sync_track('z'), sync_track('zs');
INSERT INTO z VALUES (1, -0.0, -0.0, -0.0), (2, 0.0, 0.0, 0.0);
INSERT INTO zs VALUES (1, -0.0);
SELECT tbl, pk, data FROM sync_outbox ORDER BY id;
-- a change of the sign alone, or of the type alone, is a change
UPDATE z SET a = 0.0 WHERE id = 1;
UPDATE z SET a = -0.0 WHERE id = 2;
UPDATE z SET a = 1 WHERE id = 2;
UPDATE z SET a = 1.0 WHERE id = 2;
UPDATE z SET a = 1.0 WHERE id = 2;
SELECT pk, data FROM sync_outbox WHERE op = 'update' ORDER BY id;
-- what the server receives, and the client's row once the server's rows
-- (here: what it was sent) come back
SELECT json_extract(value, '$.data') AS sent FROM json_each(sync_push_batch(10), '$.mutations');
SELECT sync_ack('{"results":[
  {"id":1,"status":"applied","row":{"id":1,"a":-0.0,"b":-0.0,"r":0.0}},
  {"id":2,"status":"applied","row":{"id":2,"a":0.0,"b":0.0,"r":0.0}},
  {"id":3,"status":"applied","row":{"id":1,"a":-0.0}},
  {"id":4,"status":"applied","row":{"id":1,"a":0.0,"b":-0.0,"r":0.0}},
  {"id":5,"status":"applied","row":{"id":2,"a":-0.0,"b":0.0,"r":0.0}},
  {"id":6,"status":"applied","row":{"id":2,"a":1,"b":0.0,"r":0.0}},
  {"id":7,"status":"applied","row":{"id":2,"a":1.0,"b":0.0,"r":0.0}}]}');
SELECT count(*) AS pending FROM sync_outbox;
SELECT id, typeof(a), atan2(a, -1) < 0 AS a_neg, atan2(b, -1) < 0 AS b_neg, typeof(r),
       atan2(r, -1) < 0 AS r_neg FROM z ORDER BY id;
SELECT typeof(a), atan2(a, -1) < 0 AS a_neg FROM zs;
-- the server's -0.0 arrives as -0.0
SELECT sync_apply('{"changes":[{"table":"z","op":"upsert","pk":{"id":3},"row":{"id":3,"a":-0.0,"b":0.0,"r":-0.0}}]}');
SELECT typeof(a), atan2(a, -1) < 0 AS a_neg, atan2(b, -1) < 0 AS b_neg FROM z WHERE id = 3;
-- a connection without the extension captures the sign the same way
.open test.db
INSERT INTO z VALUES (4, -0.0, NULL, NULL);
SELECT data FROM sync_outbox;
-- a NULL left alone in an untyped column is no change (the sign check is
-- NULL for NULL): the update carries only the column that changed
UPDATE z SET r = 2.5 WHERE id = 4;
SELECT op, data FROM sync_outbox ORDER BY id;
