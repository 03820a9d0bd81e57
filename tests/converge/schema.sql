-- The convergence test's schema (tests/converge/run.py), created on the
-- server and on every client. UNIQUE columns (users.email, tags.color),
-- foreign keys with ON DELETE CASCADE (users -> projects -> tasks), a
-- WITHOUT ROWID table with a composite key (tasks), a BLOB (users.avatar),
-- REAL columns (users.score, tasks.weight) and a column without affinity
-- (projects.extra). counters is written only by the server's trigger
-- (server_only.sql), and synced like the rest.
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT, score REAL,
                   avatar BLOB);
CREATE TABLE projects(id INTEGER PRIMARY KEY,
                      owner INTEGER REFERENCES users(id) ON DELETE CASCADE,
                      title TEXT NOT NULL DEFAULT '', extra);
CREATE TABLE tasks(project INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                   n INTEGER NOT NULL, body TEXT, weight REAL,
                   PRIMARY KEY(project, n)) WITHOUT ROWID;
CREATE TABLE tags(name TEXT PRIMARY KEY, color TEXT UNIQUE);
CREATE TABLE counters(name TEXT PRIMARY KEY, hits INTEGER NOT NULL);
