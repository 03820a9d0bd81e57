-- A key's pending edits are replayed as one net row (issue 13, 16): an
-- insert, a new color, then a rename, pushed one at a time. Replayed one by
-- one, the insert's answer would pass through green=blue while teal already
-- holds blue, and every later ack (and pull) would fail on the UNIQUE index.
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE tags(name TEXT PRIMARY KEY, color TEXT UNIQUE);
SELECT sync_track('tags');

-- An insert, a new color, then a rename, pushed one at a time: the
--insert's answer rebases 'green' with its later edits folded in (net:
--gone), never through green=blue while teal holds blue.
INSERT INTO tags(name, color) VALUES ('green', NULL);
UPDATE tags SET color = 'blue' WHERE name = 'green';
UPDATE tags SET name = 'teal' WHERE name = 'green';
SELECT id, table_name, op, pk, data FROM sync_pending;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"applied","row":{"name":"green","color":null},"version":1}]}') AS resolved;
SELECT * FROM tags ORDER BY name;
SELECT sync_push_batch(1) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":2,"status":"applied","row":{"name":"green","color":"blue"},"version":2}]}') AS resolved;
SELECT * FROM tags ORDER BY name;
SELECT sync_push_batch(5) IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":3,"status":"applied","row":null,"version":3},{"id":4,"status":"applied","row":{"name":"teal","color":"blue"},"version":4}]}') AS resolved;
SELECT * FROM tags ORDER BY name;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images FROM sync_outbox;

