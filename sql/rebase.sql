-- Rebase and rollback: a tracked table shows the server's last known row
-- with this client's pending mutations replayed on top, in order.
SELECT length(sync_init(NULL));
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT, done INTEGER DEFAULT 0, rev INTEGER);
SELECT sync_track('todos');
CREATE TEMP VIEW state AS SELECT id, title, done, rev FROM todos ORDER BY id;
-- rows the server already has
SELECT sync_apply('{"changes":[
  {"table":"todos","op":"upsert","pk":{"id":"r1"},"row":{"id":"r1","title":"one","done":0,"rev":1},"version":1},
  {"table":"todos","op":"upsert","pk":{"id":"r2"},"row":{"id":"r2","title":"two","done":0,"rev":1},"version":2},
  {"table":"todos","op":"upsert","pk":{"id":"r3"},"row":{"id":"r3","title":"three","done":0,"rev":1},"version":3},
  {"table":"todos","op":"upsert","pk":{"id":"r4"},"row":{"id":"r4","title":"four","done":0,"rev":1},"version":4},
  {"table":"todos","op":"upsert","pk":{"id":"r5"},"row":{"id":"r5","title":"five","done":0,"rev":1},"version":5},
  {"table":"todos","op":"upsert","pk":{"id":"r6"},"row":{"id":"r6","title":"six","done":0,"rev":1},"version":6}],"cursor":"6"}');

-- 1. A server change to another column of a row with a pending local edit:
--    both show.
UPDATE todos SET done = 1 WHERE id = 'r1';
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"r1"},"row":{"id":"r1","title":"one (server)","done":0,"rev":2},"version":7}],"cursor":"7"}');
SELECT * FROM state WHERE id = 'r1';

-- 2. A server change to the same column: the local edit stays visible
--    until it is confirmed or refused.
UPDATE todos SET title = 'two (local)' WHERE id = 'r2';
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"r2"},"row":{"id":"r2","title":"two (server)","done":0,"rev":2},"version":8}],"cursor":"8"}');
SELECT * FROM state WHERE id = 'r2';

-- 3. The server's echo of our own change, before the push response: no
--    change, still pending.
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"r1"},"row":{"id":"r1","title":"one (server)","done":1,"rev":3},"version":9}],"cursor":"9"}');
SELECT * FROM state WHERE id = 'r1';
SELECT id, table_name, op, data FROM sync_pending;

-- 4. Applied with the canonical row: server-made values (rev) show, the image
--    is dropped once nothing is pending.
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"applied","row":{"id":"r1","title":"one (server)","done":1,"rev":3},"version":9}]}');
SELECT * FROM state WHERE id = 'r1';
SELECT count(*) AS r1_images FROM sync_shadow WHERE pk = '{"id":"r1"}';

-- 5. A refused update: the row goes back to the server's (latest) row.
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":2,"status":"rejected","reason":"stale"}]}');
SELECT * FROM state WHERE id = 'r2';

-- 6. Two pending edits of one row, the first refused: the second stays.
UPDATE todos SET title = 'three a' WHERE id = 'r3';
UPDATE todos SET done = 1 WHERE id = 'r3';
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":3,"status":"rejected","reason":"no"}]}');
SELECT * FROM state WHERE id = 'r3';
SELECT id, op, data FROM sync_pending;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":4,"status":"applied","row":{"id":"r3","title":"three","done":1,"rev":2},"version":10}]}');
SELECT * FROM state WHERE id = 'r3';

-- 7. A refused insert of a row the server never had: gone locally.
INSERT INTO todos(id, title) VALUES ('n1', 'new');
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":5,"status":"rejected","reason":"UNIQUE"}]}');
SELECT count(*) AS n1_rows FROM todos WHERE id = 'n1';

-- 8. A refused delete: the server's row comes back.
DELETE FROM todos WHERE id = 'r4';
SELECT count(*) AS r4_rows FROM todos WHERE id = 'r4';
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":6,"status":"rejected","reason":"FOREIGN KEY"}]}');
SELECT * FROM state WHERE id = 'r4';

-- 9. The server deletes a row that has a pending local update: the row is
--    gone (an update of nothing), and stays gone when the server refuses it.
UPDATE todos SET title = 'five local' WHERE id = 'r5';
SELECT sync_apply('{"changes":[{"table":"todos","op":"delete","pk":{"id":"r5"},"version":11}],"cursor":"11"}');
SELECT count(*) AS r5_rows FROM todos WHERE id = 'r5';
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":7,"status":"rejected","reason":"no such row"}]}');
SELECT count(*) AS r5_rows, (SELECT count(*) FROM sync_shadow) AS images FROM todos WHERE id = 'r5';

-- 10. A key change refused: the old row is back and the new key gone.
UPDATE todos SET id = 'r6-new' WHERE id = 'r6';
SELECT id, op, pk FROM sync_pending;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":8,"status":"rejected","reason":"no"},{"id":9,"status":"rejected","reason":"no"}]}');
SELECT * FROM state WHERE id LIKE 'r6%';

-- 11. INSERT OR REPLACE refused: the replaced row comes back.
INSERT OR REPLACE INTO todos(id, title) VALUES ('r1', 'replaced');
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":10,"status":"rejected","reason":"no"}]}');
SELECT * FROM state WHERE id = 'r1';

-- 12. A lost push response: the next pull says the server has applied up to
--     id 11 (last_mutation_id); the mutation leaves the outbox and the row is
--     the server's.
UPDATE todos SET title = 'three b' WHERE id = 'r3';
SELECT id, op FROM sync_pending;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"r3"},"row":{"id":"r3","title":"three b","done":1,"rev":3},"version":12}],"cursor":"12","last_mutation_id":11,"has_more":false}');
SELECT * FROM state WHERE id = 'r3';
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images FROM sync_outbox;

-- 13. last_mutation_id is honoured on the last page only: on a page with
--     more to come, the image may still lack the mutation's change.
UPDATE todos SET title = 'two c' WHERE id = 'r2';
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_apply('{"changes":[],"cursor":"12","last_mutation_id":12,"has_more":true}');
SELECT id, op FROM sync_pending;
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"r2"},"row":{"id":"r2","title":"two c","done":0,"rev":3},"version":13}],"cursor":"13","last_mutation_id":12,"has_more":false}');
SELECT count(*) AS pending FROM sync_outbox;
SELECT * FROM state WHERE id = 'r2';

-- 14. A push response older than what the change stream already delivered:
--     the newer server row wins.
UPDATE todos SET done = 1 WHERE id = 'r2';
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"r2"},"row":{"id":"r2","title":"two d (other client)","done":1,"rev":5},"version":15}],"cursor":"15"}');
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":13,"status":"applied","row":{"id":"r2","title":"two c","done":1,"rev":4},"version":14}]}');
SELECT * FROM state WHERE id = 'r2';

-- 15. A pending insert of a key that the server then creates itself: the
--     local values stay on top of the server's row until resolved.
INSERT INTO todos(id, title) VALUES ('k', 'mine');
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"k"},"row":{"id":"k","title":"theirs","done":1,"rev":1},"version":16}],"cursor":"16"}');
SELECT * FROM state WHERE id = 'k';
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":14,"status":"rejected","reason":"UNIQUE constraint failed: todos.id"}]}');
SELECT * FROM state WHERE id = 'k';

-- 16. Many edits of one row, refused in the middle, confirmed around it.
UPDATE todos SET title = 'm1' WHERE id = 'r4';
UPDATE todos SET done = 1 WHERE id = 'r4';
UPDATE todos SET title = 'm3' WHERE id = 'r4';
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":15,"status":"applied","row":{"id":"r4","title":"m1","done":0,"rev":2},"version":17},{"id":16,"status":"rejected","reason":"no"}]}');
SELECT * FROM state WHERE id = 'r4';
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":17,"status":"applied","row":{"id":"r4","title":"m3","done":0,"rev":3},"version":18}]}');
SELECT * FROM state WHERE id = 'r4';

-- nothing above was queued by the engine's own writes
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images FROM sync_outbox;
SELECT * FROM state;

-- 17. A lost push answer that held a rejection: the page confirming the batch
--     lists it under "rejected"; it lands in sync_rejected, rolled back, and
--     the applied one leaves the outbox.
UPDATE todos SET title = 'k local' WHERE id = 'k';
UPDATE todos SET done = 1 WHERE id = 'r6';
SELECT id, op, pk FROM sync_pending;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"r6"},"row":{"id":"r6","title":"six","done":1,"rev":2},"version":19}],"cursor":"19","last_mutation_id":19,"has_more":false,"rejected":[{"id":18,"reason":"CHECK constraint failed: title"}]}');
SELECT * FROM state WHERE id IN ('k', 'r6');
SELECT id, reason FROM sync_rejected WHERE id = 18;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images FROM sync_outbox;
SELECT sync_apply('{"changes":[],"rejected":{}}');
