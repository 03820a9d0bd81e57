-- Synced tables of the end-to-end tests (the server's side; clients create
-- the same tables themselves, see e2e_util.CLIENT_DDL).
-- The CHECK is the server's own rule, which clients do not have: a title
-- 'refused' is rejected by the server only.
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL CHECK (title <> 'refused'),
                   done INTEGER NOT NULL DEFAULT 0);
CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
