-- The server's side of the chaos test on PostgreSQL (run.py --pg): the same
-- data model as schema.sql. chaos_audit has no primary key, so syncd does
-- not sync it; its trigger records every insert and update the server ran
-- with the unique tag of the client mutation that caused it (a refused
-- mutation's savepoint rollback takes its audit row with it).
CREATE TABLE items(id TEXT PRIMARY KEY, val BIGINT NOT NULL CHECK (val >= 0),
                   tag TEXT NOT NULL);
CREATE TABLE chaos_audit(tag TEXT NOT NULL, op TEXT NOT NULL);
CREATE FUNCTION items_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO chaos_audit VALUES(NEW.tag, lower(TG_OP));
  RETURN NULL;
END $$;
CREATE TRIGGER items_audit AFTER INSERT OR UPDATE ON items FOR EACH ROW
  EXECUTE FUNCTION items_audit();
