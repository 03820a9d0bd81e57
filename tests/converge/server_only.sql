-- The server's own trigger (run.py appends it to schema.sql for syncd, and
-- leaves it out with --no-trigger): each task the server inserts counts in
-- another synced row, which no client mutation names, so clients learn of
-- it only if the server logs rows its triggers write.
CREATE TRIGGER tasks_count AFTER INSERT ON tasks BEGIN
  INSERT INTO counters VALUES('tasks', 1) ON CONFLICT(name) DO UPDATE SET hits = hits + 1;
END;
