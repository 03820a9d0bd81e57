-- An INSERT OR REPLACE of a row's own key, in a table with a rowid and
-- another key, is queued as an 'update' (sync_ai_T reads the replaced row
-- sync_rp_T leaves in the stash). That row used to stay in the stash with
-- its old rowid, which the new row does not have: the next UPDATE of the
-- table that set no UNIQUE column (no BEFORE trigger clears the stash
-- then) kicked sync_rp_T, which found that rowid gone and queued a
-- 'delete' of the key the table still holds. The server deleted the row,
-- and the next update of it was refused: "no such row"
-- (schemas_run.py --solo --worker seed 83).
SELECT length(sync_init(NULL));
CREATE TABLE docs(id TEXT PRIMARY KEY, slug TEXT UNIQUE, body TEXT, n INTEGER);
SELECT sync_track('docs');
INSERT INTO docs VALUES ('d1', 'a', 'one', 0), ('d3', 'x', 'three', 0);
DELETE FROM sync_outbox; DELETE FROM sync_shadow;
INSERT OR REPLACE INTO docs(id, slug, body) VALUES ('d3', 'z', 'world');
SELECT op, pk, data FROM sync_outbox ORDER BY id;
SELECT count(*) AS stashed FROM sync_stash;
UPDATE docs SET n = 1 WHERE id = 'd1';
BEGIN;
UPDATE docs SET body = 'again' WHERE id = 'd1';
COMMIT;
SELECT op, pk, data FROM sync_outbox ORDER BY id;
SELECT count(*) AS stashed FROM sync_stash;
-- a REPLACE through the UNIQUE column still queues the other row's delete
INSERT OR REPLACE INTO docs VALUES ('d4', 'z', 'four', 0);
SELECT op, pk FROM sync_outbox ORDER BY id;
SELECT id, slug FROM docs ORDER BY id;
