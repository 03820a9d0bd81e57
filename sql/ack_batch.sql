-- sync_ack resolves a whole answer at once: one outbox delete for every
-- resolved id, then each key's row rebased once, from the image its last
-- result left. A row the server confirmed as it stands is not rewritten.
SELECT length(sync_init(NULL));
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0);
SELECT sync_track('todos');
-- the app's own triggers see every write the ack makes to its rows
CREATE TABLE writes(op TEXT, id TEXT, title TEXT);
CREATE TRIGGER todos_ins AFTER INSERT ON todos BEGIN INSERT INTO writes VALUES('insert', NEW.id, NEW.title); END;
CREATE TRIGGER todos_upd AFTER UPDATE ON todos BEGIN INSERT INTO writes VALUES('update', NEW.id, NEW.title); END;
CREATE TRIGGER todos_del AFTER DELETE ON todos BEGIN INSERT INTO writes VALUES('delete', OLD.id, OLD.title); END;
INSERT INTO todos(id, title) VALUES ('a', 'a0'), ('b', 'b0'), ('c', 'c0'), ('d', 'd0'), ('e', 'e0'), ('f', 'f0');
UPDATE todos SET title = 'a1' WHERE id = 'a';
UPDATE todos SET title = 'b1' WHERE id = 'b';
UPDATE todos SET title = 'a2' WHERE id = 'a';
DELETE FROM todos WHERE id = 'c';
INSERT INTO todos(id, title) VALUES ('g', 'g0');
SELECT id, op, pk FROM sync_outbox ORDER BY id;
SELECT json_array_length(sync_push_batch(), '$.mutations') AS sent;
DELETE FROM writes;
-- 1 and 7 (a's insert and first update) applied with the server's rows, a's
-- second update (9) still pending; b's insert (2) refused, its update (8)
-- still pending; c inserted and deleted; d confirmed exactly as it stands;
-- e refused; f applied with a server-made title; 1 again and 999 ignored
SELECT sync_ack('{"results":[
  {"id":1,"status":"applied","row":{"id":"a","title":"a0","done":0},"version":1},
  {"id":2,"status":"rejected","reason":"no b"},
  {"id":3,"status":"applied","row":{"id":"c","title":"c0","done":0},"version":2},
  {"id":4,"status":"applied","row":{"id":"d","title":"d0","done":0},"version":3},
  {"id":5,"status":"rejected"},
  {"id":6,"status":"applied","row":{"id":"f","title":"F","done":0},"version":4},
  {"id":7,"status":"applied","row":{"id":"a","title":"a1","done":0},"version":5},
  {"id":1,"status":"applied","row":{"id":"a","title":"stale","done":0},"version":1},
  {"id":10,"status":"applied","row":null,"version":6},
  {"id":999,"status":"applied","row":null}]}') AS resolved;
SELECT * FROM todos ORDER BY id;
SELECT id, op FROM sync_outbox ORDER BY id;
SELECT tbl, pk, row, version FROM sync_shadow ORDER BY pk;
SELECT id, op, pk, reason FROM sync_rejected ORDER BY id;
-- each key rebased once (its image with what is still pending folded in): no
-- write per result; d and c (confirmed as they stand, or gone) not at all
SELECT * FROM writes ORDER BY rowid;
-- an image newer than a result's row is kept (the change stream was first)
DELETE FROM writes;
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"a"},"row":{"id":"a","title":"a-server","done":1},"version":20}],"cursor":"c1","has_more":false}') AS applied;
SELECT * FROM todos WHERE id = 'a';
SELECT sync_ack('{"results":[{"id":9,"status":"applied","row":{"id":"a","title":"a2","done":0},"version":7}]}') AS resolved;
SELECT * FROM todos WHERE id = 'a';
SELECT count(*) AS images_left FROM sync_shadow WHERE pk = '{"id":"a"}';
-- b: its pending update refused too; the key has nothing pending, so its
-- row (never on the server) goes and so does its image
SELECT sync_ack('{"results":[{"id":8,"status":"rejected","reason":"no b"},{"id":11,"status":"applied","row":{"id":"g","title":"g0","done":0},"version":8}]}') AS resolved;
SELECT * FROM todos ORDER BY id;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images FROM sync_outbox;
SELECT id, reason FROM sync_rejected ORDER BY id;
SELECT last_id FROM sync_control;
SELECT * FROM writes ORDER BY rowid;
-- an answer of nothing pending changes nothing
SELECT sync_ack('{"results":[]}') AS resolved, sync_ack('{"results":[{"id":3,"status":"applied","row":null}]}') AS again;
-- sync_push: the next batch is built (sync_push_batch(limit, after)) and
-- sent before the answer to the one before is acknowledged, with the last
-- id of the batch it answers (sync_ack(answer, top)): that answer may not
-- resolve the later batch's ids, though sent_id has passed them
INSERT INTO todos(id, title) VALUES ('h', 'h0'), ('i', 'i0'), ('j', 'j0');
SELECT group_concat(value ->> '$.id') AS first FROM json_each(sync_push_batch(2), '$.mutations');
SELECT group_concat(value ->> '$.id') AS next FROM json_each(sync_push_batch(2, 13), '$.mutations');
SELECT sync_push_batch(2, 14) IS NULL AS none_after, sent_id FROM sync_control;
SELECT sync_push_batch(2, -1);
SELECT sync_ack('{"results":[{"id":12,"status":"applied","row":{"id":"h","title":"h0","done":0}},{"id":14,"status":"applied","row":null}]}', 13);
SELECT sync_ack('{"results":[]}', 'x');
SELECT sync_ack('{"results":[{"id":12,"status":"applied","row":{"id":"h","title":"h0","done":0}},{"id":13,"status":"applied","row":{"id":"i","title":"i0","done":0}}]}', 13) AS resolved;
SELECT id, op FROM sync_outbox ORDER BY id;
