-- A push batch is not cut between a mutation and the insert of the row it
-- refers to (batchcut.c). A key changed under ON UPDATE CASCADE queues the
-- children's new key before the parent's new row; the server checks a
-- batch's foreign keys at its end, so a batch cut in between would have
-- the children refused and the parent's delete cascade them away there.
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE docs(id TEXT PRIMARY KEY, t TEXT);
CREATE TABLE labels(doc TEXT NOT NULL REFERENCES docs(id) ON UPDATE CASCADE ON DELETE CASCADE,
  label TEXT NOT NULL, PRIMARY KEY(doc, label)) WITHOUT ROWID;
CREATE TABLE notes(id INTEGER PRIMARY KEY, doc TEXT REFERENCES docs(id) ON UPDATE CASCADE);
CREATE TABLE pair(a INTEGER, b INTEGER, PRIMARY KEY(b, a));
CREATE TABLE refs(id INTEGER PRIMARY KEY, x INTEGER, y INTEGER,
  FOREIGN KEY(y, x) REFERENCES pair(b, a) ON UPDATE CASCADE);
SELECT sync_track('docs'), sync_track('labels'), sync_track('notes'),
  sync_track('pair'), sync_track('refs');
INSERT INTO docs VALUES ('d1', 'one');
INSERT INTO labels VALUES ('d1', 'a'), ('d1', 'b');
INSERT INTO notes VALUES (1, 'd1');
INSERT INTO pair VALUES (1, 2);
INSERT INTO refs VALUES (1, 1, 2);
DELETE FROM sync_outbox; DELETE FROM sync_shadow;
UPDATE docs SET id = 'd9' WHERE id = 'd1';
UPDATE pair SET a = 5 WHERE a = 1;
SELECT id, tbl, op, pk FROM sync_outbox ORDER BY id;
-- every cut through the docs key change ends after docs' insert (13); a
-- cut at refs' update (14) ends after pair's insert (16), found through
-- the multi-column reference (y, x onto b, a; y unchanged: from the row)
SELECT n, json_array_length(sync_push_batch(n), '$.mutations') AS sent,
  sync_push_batch(n) ->> '$.mutations[#-1].id' AS last FROM (SELECT value AS n
  FROM generate_series(2, 9)) ORDER BY n;
-- after id 8 (the batch after one already sent), the same
SELECT json_array_length(sync_push_batch(2, 8), '$.mutations') AS sent,
  sync_push_batch(2, 8) ->> '$.mutations[#-1].id' AS last;
-- a batch of one is never moved (a server's size limit, one at a time)
SELECT json_array_length(sync_push_batch(1, 1), '$.mutations') AS sent;
-- nothing refers on: the batch ends where asked
SELECT json_array_length(sync_push_batch(1, 14), '$.mutations') AS sent;
DELETE FROM sync_outbox WHERE id BETWEEN 13 AND 16;
SELECT json_array_length(sync_push_batch(2), '$.mutations') AS sent;
