-- The server's side of the chaos test (tests/chaos/run.py). Clients create
-- items without the CHECK: a negative val is refused by the server only, so
-- sync_rejected must hold exactly those (plus the conflicts of shared keys).
-- chaos_audit has no primary key, so syncd does not sync it: its triggers
-- record every insert and update the server ran, each carrying the unique
-- tag of the client mutation that caused it, so a mutation applied twice
-- shows up as a tag logged twice.
CREATE TABLE items(id TEXT PRIMARY KEY, val INTEGER NOT NULL CHECK (val >= 0),
                   tag TEXT NOT NULL);
CREATE TABLE chaos_audit(tag TEXT NOT NULL, op TEXT NOT NULL);
CREATE TRIGGER items_audit_insert AFTER INSERT ON items
  BEGIN INSERT INTO chaos_audit VALUES(NEW.tag, 'insert'); END;
CREATE TRIGGER items_audit_update AFTER UPDATE ON items
  BEGIN INSERT INTO chaos_audit VALUES(NEW.tag, 'update'); END;
