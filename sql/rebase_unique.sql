-- The server's row wins over local state (issue 13, principle): when the
-- row a rebase writes for the server holds a UNIQUE value that another
-- local row holds, that row moves aside: a row with pending edits shows
-- its server image (the edits stay queued, hidden), a confirmed row is
-- stale (the server changed it: the pull brings it back) and goes.
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE tags(name TEXT PRIMARY KEY, color TEXT UNIQUE COLLATE NOCASE, note TEXT);
SELECT sync_track('tags');
SELECT sync_apply('{"changes":[
  {"table":"tags","op":"upsert","pk":{"name":"rose"},"row":{"name":"rose","color":"red","note":null},"version":1},
  {"table":"tags","op":"upsert","pk":{"name":"teal"},"row":{"name":"teal","color":"blue","note":null},"version":2},
  {"table":"tags","op":"upsert","pk":{"name":"sand"},"row":{"name":"sand","color":"beige","note":null},"version":3}],"cursor":"3"}') AS applied;

-- rose gives up red and teal takes it, both pending; the server refuses
-- rose's edit: rose is red again, teal's edit stays queued and hidden
UPDATE tags SET color = 'pink' WHERE name = 'rose';
UPDATE tags SET color = 'RED' WHERE name = 'teal';
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"rejected","reason":"no"}]}') AS resolved;
SELECT * FROM tags ORDER BY name;
SELECT id, pk, data FROM sync_pending;
-- and refused in turn: teal is the server's again
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":2,"status":"rejected","reason":"UNIQUE constraint failed: tags.color"}]}') AS resolved;
SELECT * FROM tags ORDER BY name;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images FROM sync_outbox;

-- a confirmed row holding the value is stale: the server gave beige to
-- teal (sand's own change comes later); teal's pending note stays queued
UPDATE tags SET note = 'mine' WHERE name = 'teal';
SELECT sync_apply('{"changes":[{"table":"tags","op":"upsert","pk":{"name":"teal"},"row":{"name":"teal","color":"beige","note":null},"version":5}],"cursor":"5","has_more":true}') AS applied;
SELECT * FROM tags ORDER BY name;
SELECT sync_apply('{"changes":[{"table":"tags","op":"upsert","pk":{"name":"sand"},"row":{"name":"sand","color":"brown","note":null},"version":6}],"cursor":"6"}') AS applied;
SELECT * FROM tags ORDER BY name;
SELECT id, pk, data FROM sync_pending;
