-- Synced tables of the protocol tests (PostgreSQL dialect of
-- schema_sqlite.sql).
CREATE TABLE todos(
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL CHECK (length(title) < 100),
  n BIGINT,
  r DOUBLE PRECISION,
  b BYTEA,
  note TEXT,
  slug TEXT UNIQUE,
  rev INTEGER NOT NULL DEFAULT 0,
  updated_at TEXT NOT NULL DEFAULT 'server-default'
);
CREATE FUNCTION todos_rev() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.rev := OLD.rev + 1;
  RETURN NEW;
END $$;
CREATE TRIGGER todos_rev BEFORE UPDATE ON todos FOR EACH ROW EXECUTE FUNCTION todos_rev();
CREATE FUNCTION todos_veto() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'vetoed by the server';
END $$;
CREATE TRIGGER todos_veto BEFORE INSERT ON todos FOR EACH ROW WHEN (NEW.title = 'veto')
  EXECUTE FUNCTION todos_veto();
CREATE TABLE lists(id BIGINT PRIMARY KEY, name TEXT);
CREATE TABLE items(
  list_id BIGINT NOT NULL REFERENCES lists(id),
  pos INTEGER NOT NULL,
  label TEXT,
  PRIMARY KEY (list_id, pos)
);
CREATE TABLE typed(id BIGINT PRIMARY KEY, n BIGINT, flag BOOLEAN);
CREATE TABLE notes(id BIGINT PRIMARY KEY,
  list_id BIGINT REFERENCES lists(id) DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE nokey(x TEXT);
INSERT INTO lists VALUES (1, 'seeded');
