-- A row moved aside to make room never loses the server's row (issue 13,
-- converge seed 168). One answer refuses a UNIQUE rotation done on top of
-- a pending insert: red must get c3 back from green, whose own image (c4)
-- is still held by the refused insert of blue, not rebased yet. green
-- cannot show its image, so it goes meanwhile, but its image (the server's
-- row, which no pull sends again) stays as a guard, written back once
-- blue's refusal frees c4: the answer ends at the server's state.
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE tags(name TEXT PRIMARY KEY, color TEXT UNIQUE);
SELECT sync_track('tags');
SELECT sync_apply('{"changes":[
  {"table":"tags","op":"upsert","pk":{"name":"red"},"row":{"name":"red","color":"c3"},"version":1},
  {"table":"tags","op":"upsert","pk":{"name":"green"},"row":{"name":"green","color":"c4"},"version":2}],
  "cursor":"2"}') AS applied;
INSERT INTO tags VALUES('blue', 'c1');
UPDATE tags SET color = 'tmp' WHERE color = 'c1';
UPDATE tags SET color = 'c1' WHERE color = 'c3';
UPDATE tags SET color = 'c3' WHERE color = 'c4';
UPDATE tags SET color = 'c4' WHERE color = 'tmp';
SELECT * FROM tags ORDER BY name;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[
  {"id":1,"status":"rejected","reason":"UNIQUE constraint failed: tags.color"},
  {"id":2,"status":"rejected","reason":"no such row"},
  {"id":3,"status":"rejected","reason":"UNIQUE constraint failed: tags.color"},
  {"id":4,"status":"rejected","reason":"UNIQUE constraint failed: tags.color"},
  {"id":5,"status":"rejected","reason":"no such row"}]}') AS resolved;
SELECT * FROM tags ORDER BY name;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images,
  (SELECT count(*) FROM sync_meta WHERE key = 'guards') AS guards FROM sync_outbox;
