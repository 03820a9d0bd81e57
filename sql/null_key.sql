-- A table with a rowid lets a key part other than an INTEGER PRIMARY KEY be
-- NULL. The server refuses such a row, and the rejection could not undo it
-- (a key compares with =, and NULL = NULL is not true): the row stayed with
-- nothing pending. A tracked table refuses it at once, with the cause, and
-- nothing changes; NOT NULL key parts and WITHOUT ROWID tables are SQLite's.
SELECT length(sync_init(NULL));
CREATE TABLE c(a TEXT, b INTEGER, v TEXT, PRIMARY KEY (a, b));
CREATE TABLE s(id TEXT PRIMARY KEY, v TEXT);
CREATE TABLE nn(a TEXT NOT NULL, b INTEGER, PRIMARY KEY (a, b));
CREATE TABLE w(a TEXT, b INTEGER, PRIMARY KEY (a, b)) WITHOUT ROWID;
SELECT sync_track('c'), sync_track('s'), sync_track('nn'), sync_track('w');
INSERT INTO c VALUES ('x', NULL, 'v');
INSERT INTO c VALUES (NULL, 1, 'v');
INSERT OR IGNORE INTO c VALUES ('x', NULL, 'v');
INSERT INTO s VALUES (NULL, 'v');
INSERT INTO nn VALUES ('x', NULL);
INSERT INTO nn VALUES (NULL, 1);
INSERT INTO w VALUES ('x', NULL);
SELECT (SELECT count(*) FROM c) + (SELECT count(*) FROM s) + (SELECT count(*) FROM nn) AS rows,
       (SELECT count(*) FROM sync_outbox) AS queued;
-- a key changed to NULL, a multi-row insert with one bad row: nothing at all
INSERT INTO c VALUES ('x', 1, 'v');
UPDATE c SET b = NULL WHERE a = 'x';
INSERT INTO c VALUES ('y', 1, 'v'), ('y', NULL, 'v');
SELECT a, b, v FROM c;
SELECT op, pk FROM sync_outbox;
-- sync_mutate refuses it too
SELECT sync_mutate('c', 'insert', '{"a":"z","b":null,"v":"v"}');
-- a connection that never loaded the extension gets the same refusal
.open test.db
INSERT INTO c VALUES ('x', NULL, 'v');
SELECT count(*) AS queued FROM sync_outbox;
