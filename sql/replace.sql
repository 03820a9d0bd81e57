-- INSERT OR REPLACE is captured as an update of the whole row, values exact,
-- whether the table has a rowid (the BEFORE INSERT trigger hands the rowid
-- of the row to replace to sync_bs_T through sync_req, which stashes it) or
-- not (the BEFORE INSERT trigger stashes it itself), and from a connection
-- without the extension. (REALs that need 17 digits through this path are
-- in values.sql: valgrind's 64-bit long double prints them otherwise, and
-- make test-sql-valgrind runs this file.)
SELECT length(sync_init(NULL));
CREATE TABLE r(id TEXT PRIMARY KEY, v REAL, b BLOB);
CREATE TABLE w(id TEXT PRIMARY KEY, v REAL, b BLOB) WITHOUT ROWID;
SELECT sync_track('r'), sync_track('w');
INSERT INTO r VALUES ('k', 0.5, x'00ff'), ('other', 2, NULL);
INSERT INTO w VALUES ('k', 0.5, x'00ff');
DELETE FROM sync_outbox;
INSERT OR REPLACE INTO r VALUES ('k', -2.25, x'01');
REPLACE INTO w VALUES ('k', -2.25, x'01');
SELECT tbl, op, pk, data FROM sync_outbox ORDER BY id;
SELECT tbl, pk, row FROM sync_shadow ORDER BY tbl;
-- a plain insert of a new key stashes nothing and queues an insert
INSERT INTO r VALUES ('new', 1.5, NULL);
SELECT count(*) AS stashed FROM sync_stash WHERE tbl = 'r';
SELECT op, pk FROM sync_outbox WHERE id = (SELECT max(id) FROM sync_outbox);
-- the engine's own replaces are not captured
SELECT sync_apply('{"changes":[{"table":"r","op":"upsert","pk":{"id":"other"},"row":{"id":"other","v":3,"b":null}}]}');
SELECT count(*) AS queued_for_other FROM sync_outbox WHERE pk = '{"id":"other"}';
.open test.db
REPLACE INTO r VALUES ('new', -0.0, x'');
SELECT op, pk, data FROM sync_outbox WHERE id = (SELECT max(id) FROM sync_outbox);
-- untracking drops the stash trigger with the others
.load ./sync
SELECT sync_untrack('r');
SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger' AND name GLOB 'sync_*' ORDER BY name;
-- STRICT INTEGER and TEXT columns get no REAL branch (the declared types
-- are read from pragma_table_list, strict and without-rowid flags)
CREATE TABLE s(id INTEGER PRIMARY KEY, n INTEGER, t TEXT, v REAL) STRICT;
SELECT sync_track('s');
SELECT instr(sql, 'printf(''%!.17g'',NEW."n")') > 0 AS n_real,
       instr(sql, 'printf(''%!.17g'',NEW."t")') > 0 AS t_real,
       instr(sql, 'printf(''%!.17g'',NEW."v")') > 0 AS v_real
  FROM sqlite_master WHERE name = 'sync_ai_s';
INSERT INTO s VALUES (1, 2, 'x', 0.5);
SELECT data FROM sync_outbox WHERE tbl = 's';
