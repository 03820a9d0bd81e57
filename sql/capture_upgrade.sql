-- A database tracked by an older build keeps that build's capture triggers
-- until they are rebuilt: sync_init rebuilds those of every tracked table
-- when sync_meta 'capture_version' is not this build's (track_refresh), so
-- an upgrade picks up what the new triggers queue (here REPLACE's deletion
-- of another row through a UNIQUE column, issue 13 #3).
SELECT length(sync_init(NULL));
CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE);
SELECT sync_track('u');
SELECT value AS capture_version FROM sync_meta WHERE key = 'capture_version';
-- as an older build left it: no REPLACE triggers, another version
DROP TRIGGER sync_rp_u;
DROP TRIGGER sync_bu_u;
UPDATE sync_meta SET value = '2' WHERE key = 'capture_version';
SELECT count(*) AS triggers FROM sqlite_schema WHERE type = 'trigger' AND name GLOB 'sync_*_u';
SELECT length(sync_init(NULL));
SELECT count(*) AS triggers FROM sqlite_schema WHERE type = 'trigger' AND name GLOB 'sync_*_u';
SELECT value AS capture_version FROM sync_meta WHERE key = 'capture_version';
INSERT INTO u VALUES (1, 'x');
INSERT OR REPLACE INTO u VALUES (2, 'x');
SELECT op, pk FROM sync_outbox ORDER BY id;
