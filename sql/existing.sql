-- Rows already in a table when sync_track first sees it: pushed (the
-- default), kept local-only, or replaced by the server's rows; sync_orphans.
SELECT length(sync_init(NULL));
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, r REAL, b BLOB);
INSERT INTO t VALUES (1, 'one', 0.5, x'00ff'), (2, 'two', -2.25, NULL), (9223372036854775807, 'max', NULL, NULL);
-- ids go on from the highest ever issued, whatever the outbox holds now
CREATE TABLE h(id TEXT PRIMARY KEY);
SELECT sync_track('h');
INSERT INTO h VALUES ('x'), ('y');
SELECT sync_untrack('h');
-- push (the default): every row queued as an insert, in the same transaction
SELECT sync_track('t');
SELECT id, table_name, op, pk, data FROM sync_pending;
SELECT name, existing FROM sync_tracked;
SELECT count(*) AS images FROM sync_shadow;
INSERT INTO t(id, name) VALUES (3, 'three');
SELECT id, op, pk FROM sync_pending WHERE id > 5;
-- tracking again without options changes nothing; with push, nothing is left to push
SELECT sync_track('t'), sync_track('t', '{"existing":"push"}'), sync_pending();

-- the options are checked; an error leaves the database as it was
CREATE TABLE k(id TEXT PRIMARY KEY, v INTEGER);
INSERT INTO k VALUES ('a', 1), ('b', 2);
SELECT sync_track('k', '{"existing":"pull"}');
SELECT sync_track('k', '{"existing":1}');
SELECT sync_track('k', '{"existing":"keep","x":1}');
SELECT sync_track('k', '[]');
SELECT sync_track('k', 'not json');
SELECT sync_track('k', 42);
SELECT sync_track(NULL, '{}');
SELECT sync_untrack(NULL);
SELECT count(*) AS tracked_k FROM sync_tracked WHERE name = 'k';
-- a key with a NULL part cannot sync: push refuses the table, nothing changes
CREATE TABLE n(a INTEGER, b TEXT, PRIMARY KEY(a, b));
INSERT INTO n VALUES (1, 'x'), (2, NULL);
SELECT sync_track('n');
SELECT count(*) AS tracked_n FROM sync_tracked WHERE name = 'n';
SELECT count(*) AS n_triggers FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'n';
SELECT sync_pending();
-- keep leaves it alone (a NULL key part included)
SELECT sync_track('n', '{"existing":"keep"}');
SELECT table_name, pk, row, state FROM sync_orphans WHERE table_name = 'n';

-- keep: local-only, listed with the row as it stands now
SELECT sync_track('k', '{"existing":"keep"}');
SELECT sync_pending();
-- an edit stays local: nothing is queued (sent as an update it would be
-- refused, the server having no such row, and its rollback would undo it);
-- the listing shows the row as edited
UPDATE k SET v = 10 WHERE id = 'a';
SELECT table_name, pk, row, state FROM sync_orphans WHERE table_name = 'k';
SELECT count(*) AS k_pending FROM sync_pending WHERE table_name = 'k';
-- a delete ends the listing and queues nothing; a new row of that key is
-- an ordinary insert
DELETE FROM k WHERE id = 'b';
SELECT pk FROM sync_orphans WHERE table_name = 'k';
SELECT count(*) AS k_pending FROM sync_pending WHERE table_name = 'k';
INSERT INTO k VALUES ('b', 2);
SELECT op, pk, data FROM sync_pending WHERE table_name = 'k';
-- a kept row is not deleted from the listing: it is pushed or replaced
DELETE FROM sync_orphans WHERE table_name = 'k';
-- server: listed as replace, and the next pull is a full resync
SELECT sync_track('k', '{"existing":"server"}');
SELECT table_name, pk, state FROM sync_orphans WHERE table_name = 'k';
SELECT key, value FROM sync_meta WHERE key IN ('resync', 'resync_tables') ORDER BY key;
-- push them after all: queued as they stand (a with its edit), no longer
-- listed
SELECT sync_track('k', '{"existing":"push"}');
SELECT id, table_name, op, pk, data FROM sync_pending WHERE table_name = 'k';
SELECT count(*) AS k_images FROM sync_shadow WHERE tbl = 'k';
SELECT count(*) AS k_orphans FROM sync_orphans WHERE table_name = 'k';
SELECT name, existing FROM sync_tracked ORDER BY name;
-- untracking forgets a table's orphans
SELECT sync_untrack('n');
SELECT count(*) AS orphans FROM sync_orphans;
-- a view or a trigger cannot call sync_track
CREATE VIEW tv AS SELECT sync_track('k', '{}');
SELECT * FROM tv;
-- sync_orphans before sync_init
.open :memory:
.load ./sync
SELECT * FROM sync_orphans;
-- sync_hold (existing.c) exists only while a row is listed as kept or
-- replace, so that writes pay nothing otherwise: a delete of the last kept
-- row cannot drop it (it runs in a trigger), the next sync_init does
SELECT length(sync_init(NULL));
CREATE TABLE m(id INTEGER PRIMARY KEY, v TEXT);
INSERT INTO m VALUES (1, 'one');
SELECT sync_track('m', '{"existing":"keep"}');
SELECT count(*) AS hold FROM sqlite_master WHERE name = 'sync_hold';
DELETE FROM m WHERE id = 1;
SELECT count(*) AS m_orphans, (SELECT count(*) FROM sqlite_master WHERE name = 'sync_hold') AS hold FROM sync_orphans;
SELECT length(sync_init(NULL));
SELECT count(*) AS hold FROM sqlite_master WHERE name = 'sync_hold';
-- a database an older build made (no sync_local) lists nothing
DROP TABLE sync_local;
SELECT count(*) AS orphans FROM sync_orphans;
