-- sync_push_batch and sync_ack: the request body out, the response back.
SELECT length(sync_init(NULL));
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, updated_at TEXT, v INTEGER);
SELECT sync_track('todos');
SELECT sync_push_batch() IS NULL AS nothing_waits;
INSERT INTO todos(id, title) VALUES ('a', 'milk'), ('b', 'eggs'), ('c', 'tea');
UPDATE todos SET done = 1 WHERE id = 'b';
DELETE FROM todos WHERE id = 'c';
-- the body: client id, then mutations in id order; only insert/update/delete
SELECT json_extract(sync_push_batch(), '$.client_id') = (SELECT value FROM sync_meta WHERE key = 'client_id') AS has_client_id;
SELECT value FROM json_each(sync_push_batch(), '$.mutations');
SELECT json_array_length(sync_push_batch(2), '$.mutations') AS limited;
SELECT sync_push_batch(0);
SELECT sync_push_batch('x');
-- the configured batch size is the default limit
SELECT length(sync_init(NULL, '{"batch_size":3}'));
SELECT json_array_length(sync_push_batch(), '$.mutations') AS configured;
-- applied: the mutation leaves the outbox and the server's row (its own
-- updated_at and version) replaces the optimistic one
SELECT sync_ack('{"results":[{"id":1,"status":"applied","row":{"id":"a","title":"milk","done":0,"updated_at":"2026-01-01T00:00:00Z","v":1},"version":10}]}') AS resolved;
SELECT * FROM todos ORDER BY id;
SELECT id, op FROM sync_pending;
-- rejected: into sync_rejected, and the optimistic effect is rolled back
-- (b's insert was never on the server: b disappears, with its pending update)
SELECT sync_ack('{"results":[{"id":2,"status":"rejected","reason":"CHECK constraint failed: title"}]}') AS resolved;
SELECT * FROM todos ORDER BY id;
SELECT id, table_name, op, pk, data, reason FROM sync_rejected;
-- the later update of b is refused by the server too; its row stays gone
SELECT sync_ack('{"results":[{"id":4,"status":"rejected","reason":"no such row"},{"id":999,"status":"applied","row":null}]}') AS resolved;
-- a delete applied: row null
SELECT sync_ack('{"results":[{"id":3,"status":"applied","row":{"id":"c","title":"tea","done":0,"updated_at":"x","v":1},"version":11},{"id":5,"status":"applied","row":null,"version":12}]}') AS resolved;
SELECT * FROM todos ORDER BY id;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images FROM sync_outbox;
-- acknowledging rejections
DELETE FROM sync_rejected WHERE id = 2;
SELECT id FROM sync_rejected;
-- errors change nothing
INSERT INTO todos(id, title) VALUES ('d', 'd');
SELECT json_array_length(sync_push_batch(), '$.mutations') AS sent;
SELECT sync_ack('nope');
SELECT sync_ack('{"results":{}}');
SELECT sync_ack('{"results":[{"status":"applied"}]}');
SELECT sync_ack('{"results":[{"id":"6","status":"applied"}]}');
SELECT sync_ack('{"results":[{"id":6,"status":"maybe"}]}');
SELECT sync_ack('{"results":[{"id":6,"status":"applied","row":[1]}]}');
-- the whole response or nothing: the bad second result undoes the first
SELECT sync_ack('{"results":[{"id":6,"status":"applied","row":{"id":"d","title":"D"}},{"id":7,"status":"odd"}]}');
SELECT id, op FROM sync_pending;
SELECT * FROM todos WHERE id = 'd';
-- a pull page's last_mutation_id, or a push answer, confirms only what
-- sync_push_batch has handed out (sync_control.sent_id, 6 now): 7 was issued
-- but never sent, so a page or an answer confirming it is refused and
-- changes nothing
INSERT INTO todos(id, title) VALUES ('e', 'e');
SELECT sent_id FROM sync_control;
SELECT sync_apply('{"changes":[],"cursor":"c-7","last_mutation_id":7,"has_more":false}');
SELECT sync_ack('{"results":[{"id":6,"status":"applied","row":null},{"id":7,"status":"applied","row":null}]}');
-- a number that is not an integer, or one beyond 64 bits, is named by its
-- value when above (as SQLite prints a REAL), and refused as no integer when not
SELECT sync_apply('{"changes":[],"last_mutation_id":99999999999999999999}');
SELECT sync_apply('{"changes":[],"last_mutation_id":1e20}');
SELECT sync_apply('{"changes":[],"last_mutation_id":6.5}');
SELECT sync_apply('{"changes":[],"last_mutation_id":5.0}');
SELECT sync_apply('{"changes":[],"last_mutation_id":-99999999999999999999}') AS applied;
SELECT id, op FROM sync_pending;
SELECT sync_cursor() IS NULL AS cursor_kept;
-- once sent, they may be confirmed
SELECT json_array_length(sync_push_batch(), '$.mutations') AS sent;
SELECT sent_id FROM sync_control;
SELECT sync_apply('{"changes":[],"cursor":"c-7","last_mutation_id":7,"has_more":false}') AS applied;
SELECT id, op FROM sync_pending;
SELECT sync_cursor();
-- a result is read as json_extract reads it: the row as -> renders it
-- (the whitespace gone, escapes as written), a reason unescaped and true
-- as 1; an id beyond 64 bits names no mutation
INSERT INTO todos(id, title) VALUES ('w', 'w'), ('x', 'x'), ('y', 'y');
UPDATE todos SET done = 1 WHERE id = 'w';
SELECT json_array_length(sync_push_batch(), '$.mutations') AS sent;
SELECT sync_ack('{"results":[{"id":99999999999999999999,"status":"applied"}]}') AS resolved;
SELECT sync_ack('{ "results" : [ { "id" : 8 , "status" : "applied" , "row" : { "id" : "w" , "title" : "caf\u00e9" , "done" : 0 , "updated_at" : null , "v" : [ 1 , 2 ] } , "version" : 20 } , {"id":9,"status":"rejected","reason":"line\nbreak \"quoted\""} , {"id":10,"status":"rejected","reason":true} ] }') AS resolved;
SELECT * FROM todos ORDER BY id;
SELECT tbl, pk, row FROM sync_shadow;
SELECT id, reason FROM sync_rejected ORDER BY id;
