-- sync_init: tables, client id, url, options, WAL; functions need it first.
SELECT sync_pending();
SELECT sync_track('t');
SELECT * FROM sync_pending;
SELECT length(sync_init('http://127.0.0.1:1')) AS id_length;
CREATE TEMP TABLE first_id AS SELECT value FROM sync_meta WHERE key = 'client_id';
-- a second call keeps the client id and updates the url
SELECT sync_init('https://example.com/sync') = (SELECT value FROM first_id) AS same_id;
SELECT value AS url FROM sync_meta WHERE key = 'url';
-- NULL keeps the stored url (a later sync_start still has it); '' removes it
SELECT sync_init(NULL) = (SELECT value FROM first_id) AS same_id;
SELECT value AS url FROM sync_meta WHERE key = 'url';
SELECT sync_init('') = (SELECT value FROM first_id) AS same_id;
SELECT count(*) AS urls FROM sync_meta WHERE key = 'url';
SELECT sync_init(NULL) = (SELECT value FROM first_id) AS same_id;
SELECT count(*) AS urls FROM sync_meta WHERE key = 'url';
PRAGMA journal_mode;
SELECT name FROM sqlite_master WHERE name LIKE 'sync%' ORDER BY name;
-- errors change nothing
SELECT sync_init('ftp://x');
SELECT sync_init(42);
SELECT sync_init('http://');
SELECT sync_init(NULL, '[1,2]');
SELECT sync_init(NULL, 'not json');
SELECT sync_init(NULL, '{"batch_size":0}');
SELECT sync_init(NULL, '{"sse":3}');
SELECT sync_init(NULL, '{"sse":"maybe"}');
SELECT sync_init(NULL, '{"colour":"red"}');
SELECT sync_init(NULL, '{"token":"secret"}');
SELECT sync_init('http://a.example', '{"batch_size":5,"unknown":1}');
SELECT count(*) AS urls FROM sync_meta WHERE key = 'url';
SELECT sync_init(NULL, '{"batch_size":2,"sse":"off"}') = (SELECT value FROM first_id) AS same_id;
SELECT key, value FROM sync_meta WHERE key LIKE 'config.%' ORDER BY key;
SELECT sync_cursor();
SELECT sync_pending();
-- the client id survives reopening the database
.open test.db
.load ./sync
SELECT sync_init(NULL) = (SELECT value FROM sync_meta WHERE key = 'client_id') AS kept;
.open other.db
.load ./sync
ATTACH 'test.db' AS a;
SELECT sync_init(NULL) <> (SELECT value FROM a.sync_meta WHERE key = 'client_id') AS differs;
-- the functions write, so they cannot run inside another writing statement
CREATE TABLE ids(id);
INSERT INTO ids VALUES(sync_init(NULL));
-- a database from before last_id: its AUTOINCREMENT outbox issued ids up to
-- 5, all gone; the next id is 6
.open old.db
CREATE TABLE sync_outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, op TEXT NOT NULL, pk TEXT NOT NULL, data TEXT, created_at REAL NOT NULL DEFAULT (julianday('now')), attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);
CREATE TABLE sync_control(id INTEGER PRIMARY KEY CHECK (id = 1), applying INTEGER NOT NULL DEFAULT 0);
INSERT INTO sync_control VALUES(1, 0);
INSERT INTO sync_outbox(tbl, op, pk) VALUES('t','insert','{}'),('t','insert','{}'),('t','insert','{}'),('t','insert','{}'),('t','insert','{}');
DELETE FROM sync_outbox;
.load ./sync
SELECT length(sync_init(NULL)) AS id_length;
SELECT last_id FROM sync_control;
CREATE TABLE t(id INTEGER PRIMARY KEY, v);
SELECT sync_track('t');
INSERT INTO t VALUES(1, 'x');
SELECT id, op FROM sync_pending;
-- a database from before sent_id: ids up to last_id (and below the lowest
-- pending one) were answered, so sent; the pending ones count as unsent until
-- the next push hands them out
.open old2.db
CREATE TABLE sync_outbox(id INTEGER PRIMARY KEY, tbl TEXT NOT NULL, op TEXT NOT NULL, pk TEXT NOT NULL, data TEXT, created_at REAL NOT NULL DEFAULT (julianday('now')), attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);
CREATE TABLE sync_control(id INTEGER PRIMARY KEY CHECK (id = 1), applying INTEGER NOT NULL DEFAULT 0, last_id INTEGER NOT NULL DEFAULT 0);
INSERT INTO sync_control VALUES(1, 0, 2);
INSERT INTO sync_outbox(id, tbl, op, pk) VALUES(5, 't', 'insert', '{}'), (6, 't', 'insert', '{}');
.load ./sync
SELECT length(sync_init(NULL)) AS id_length;
SELECT last_id, sent_id FROM sync_control;
