-- An error message names the cause, never SQLite's "not an error" (what
-- sqlite3_errmsg says once the failing statement is gone).
SELECT length(sync_init(NULL));
CREATE TABLE t(id INTEGER PRIMARY KEY, v);
SELECT sync_track('t');
-- sync_control's one row gone: what the engine reads there fails
DELETE FROM sync_control;
SELECT sync_apply('{"changes":[],"cursor":"c1","last_mutation_id":0}');
SELECT sync_ack('{"results":[]}');
SELECT sync_cursor();
