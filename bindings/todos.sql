-- The to-do table the bindings' tests and example apps sync: give it to
-- syncd as --schema, and create the same table in each client database.
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, data BLOB);
