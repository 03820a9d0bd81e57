-- The server's schema for the multi-user example (run.py, docs/RULES.md):
--   server/syncd --schema examples/multi_user/schema.sql --db server.db \
--     --jwt-secret-file SECRET --rules examples/multi_user/rules.json
-- Each user's private todos, projects shared through members rows, and the
-- tasks of a project. A todo's owner is server-owned: syncd_sub() is the
-- pushing user (docs/RULES.md, "The user in defaults and triggers").
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL,
                   owner TEXT NOT NULL DEFAULT (coalesce(syncd_sub(), '?')));
CREATE TABLE members(project TEXT NOT NULL, user_id TEXT NOT NULL,
                     PRIMARY KEY (project, user_id));
-- the rules' membership subquery looks a user's projects up by user_id
CREATE INDEX members_user ON members(user_id, project);
CREATE TABLE tasks(id TEXT PRIMARY KEY, project TEXT NOT NULL, title TEXT NOT NULL);
-- alice starts project 'garden'; whoever is a member may add others
INSERT INTO members VALUES ('garden', 'alice');
