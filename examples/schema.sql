-- An example schema for syncd (README, "Running with a server"):
--   server/syncd --listen 127.0.0.1:8080 --schema examples/schema.sql --db server.db
-- syncd serves the tables declared here; each client creates the same
-- table in its own database before sync_track('todos').
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0);
