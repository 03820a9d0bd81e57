-- tests/e2e/schema.sql for PostgreSQL storage (the same tables, the same
-- server-only CHECK; notes.id BIGINT, as INTEGER PRIMARY KEY on SQLite).
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL CHECK (title <> 'refused'),
                   done BIGINT NOT NULL DEFAULT 0);
CREATE TABLE notes(id BIGINT PRIMARY KEY, body TEXT);
