-- A refused insert of a row the server deleted (the delete pulled while the
-- insert was pending) goes, but not through its children: the server may
-- have made the row again since (another client), and rows pulled in
-- between refer to the new one, whose own row comes on a later page. Only
-- a delete the caller has just recorded, a pulled one or one the answer
-- applied, deletes as the server did (rebase_key's fresh). Before, the
-- refusal's delete cascaded to the server's label, which no pull sent
-- again (schemas_run.py --worker seed 5606).
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE docs(id TEXT PRIMARY KEY, slug TEXT);
CREATE TABLE labels(doc TEXT NOT NULL REFERENCES docs(id) ON DELETE CASCADE ON UPDATE CASCADE,
  label TEXT NOT NULL, n INTEGER, PRIMARY KEY(doc, label)) WITHOUT ROWID;
SELECT sync_track('docs'), sync_track('labels');
SELECT sync_apply('{"changes":[{"table":"docs","op":"upsert","pk":{"id":"d2"},"row":{"id":"d2","slug":"a"},"version":1}],"cursor":"1"}');
-- the server deletes d2; this client, not knowing, makes d2 again
SELECT sync_apply('{"changes":[{"table":"docs","op":"delete","pk":{"id":"d2"},"version":2}],"cursor":"2"}');
INSERT INTO docs VALUES('d2', 'mine');
SELECT sync_apply('{"changes":[{"table":"docs","op":"delete","pk":{"id":"d2"},"version":3}],"cursor":"3"}');
SELECT tbl, pk, row, version FROM sync_shadow;
-- another client made d2 on the server; its label comes first, d2 later
SELECT sync_apply('{"changes":[{"table":"labels","op":"upsert","pk":{"doc":"d2","label":"c"},"row":{"doc":"d2","label":"c","n":4},"version":4}],"cursor":"4","has_more":true}');
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"rejected","reason":"UNIQUE constraint failed: docs.id"}]}');
-- the refused row stays, guarded, while the server's label refers to it
SELECT * FROM docs;
SELECT * FROM labels;
SELECT value FROM sync_meta WHERE key = 'guards';
SELECT sync_apply('{"changes":[{"table":"docs","op":"upsert","pk":{"id":"d2"},"row":{"id":"d2","slug":"z"},"version":5}],"cursor":"5"}');
SELECT * FROM docs;
SELECT * FROM labels;
SELECT count(*) AS images, (SELECT count(*) FROM sync_outbox) AS pending FROM sync_shadow;
PRAGMA foreign_key_check;
