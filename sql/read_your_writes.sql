-- Read-your-writes (issue 13, 23): a change older than a push the server
-- confirmed (a page fetched, or an event held, before the push's answer)
-- never takes a row back to an older value. The confirmed row keeps its
-- image, with its version, until a change at least as new arrives.
SELECT length(sync_init(NULL));
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT);
SELECT sync_track('todos');
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"x"},"row":{"id":"x","title":"b0"},"version":1}],"cursor":"1"}') AS applied;
-- (a mutation of another key stays pending: sync_apply looks keys up only
-- in tables with pending mutations until it also counts the guards)
INSERT INTO todos VALUES ('y', 'pending');
UPDATE todos SET title = 'b1' WHERE id = 'x';
UPDATE todos SET title = 'b2' WHERE id = 'x';
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":2,"status":"applied","row":{"id":"x","title":"b1"},"version":2},{"id":3,"status":"applied","row":{"id":"x","title":"b2"},"version":3}]}') AS resolved;
SELECT * FROM todos WHERE id = 'x';
SELECT count(*) AS pending FROM sync_outbox WHERE pk = '{"id":"x"}';
-- the event of the first write, held while the push was out
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"x"},"row":{"id":"x","title":"b1"},"version":2}],"cursor":"2"}') AS applied;
SELECT * FROM todos WHERE id = 'x';
-- an older delete does not remove it either
SELECT sync_apply('{"changes":[{"table":"todos","op":"delete","pk":{"id":"x"},"version":2}],"cursor":"2"}') AS applied;
SELECT * FROM todos WHERE id = 'x';
-- the echo of the last write: the guard goes, the row is the server's
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"x"},"row":{"id":"x","title":"b2"},"version":3}],"cursor":"3"}') AS applied;
SELECT count(*) AS images FROM sync_shadow WHERE pk = '{"id":"x"}';
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"x"},"row":{"id":"x","title":"b3 (other client)"},"version":4}],"cursor":"4"}') AS applied;
SELECT * FROM todos WHERE id = 'x';
