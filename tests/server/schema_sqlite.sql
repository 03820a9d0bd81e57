-- Synced tables of the protocol tests (SQLite dialect; schema_pg.sql is the
-- same data model for PostgreSQL).
CREATE TABLE todos(
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL CHECK (length(title) < 100),
  n INTEGER,
  r REAL,
  b BLOB,
  note TEXT,
  slug TEXT UNIQUE,
  rev INTEGER NOT NULL DEFAULT 0,
  updated_at TEXT NOT NULL DEFAULT 'server-default'
);
-- Server-side metadata: every update bumps rev, and clients see it.
CREATE TRIGGER todos_rev AFTER UPDATE ON todos WHEN new.rev = old.rev
BEGIN
  UPDATE todos SET rev = old.rev + 1 WHERE id = new.id;
END;
-- A server veto that ends the whole transaction: syncd must refuse only
-- that mutation and still commit the rest of the batch.
CREATE TRIGGER todos_veto BEFORE INSERT ON todos WHEN new.title = 'veto'
BEGIN
  SELECT RAISE(ROLLBACK, 'vetoed by the server');
END;
CREATE TABLE lists(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE items(
  list_id INTEGER NOT NULL REFERENCES lists(id),
  pos INTEGER NOT NULL,
  label TEXT,
  PRIMARY KEY (list_id, pos)
);
CREATE TABLE typed(id INTEGER PRIMARY KEY, n INTEGER) STRICT;
CREATE TABLE notes(id INTEGER PRIMARY KEY,
  list_id INTEGER REFERENCES lists(id) DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE nokey(x TEXT);
INSERT INTO lists VALUES (1, 'seeded');
