-- The multi-user convergence test's client schema (tests/converge/rules_run.py):
-- the server's tables (server.sql) without its defaults for server-owned
-- columns: todos.rev is NULL locally until the server's value comes back.
-- No foreign keys: a device holds only what its user may read, so a task
-- can be there without its project.
CREATE TABLE todos(id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
                   done INTEGER NOT NULL DEFAULT 0, rev INTEGER);
CREATE TABLE projects(id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT);
CREATE TABLE members(project TEXT NOT NULL, user_id TEXT NOT NULL,
                     PRIMARY KEY(project, user_id)) WITHOUT ROWID;
CREATE TABLE tasks(id TEXT PRIMARY KEY, project TEXT NOT NULL, title TEXT,
                   done INTEGER NOT NULL DEFAULT 0);
