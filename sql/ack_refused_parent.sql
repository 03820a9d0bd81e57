-- The server refuses a parent's insert but applies its child (issue 13,
-- 24): the ack commits with foreign keys enforced; the refusal is in
-- sync_rejected.
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE projects(id INTEGER PRIMARY KEY, title TEXT);
CREATE TABLE tasks(id INTEGER PRIMARY KEY, project INTEGER NOT NULL
                   REFERENCES projects(id) ON DELETE CASCADE, title TEXT);
SELECT sync_track('projects'), sync_track('tasks');

-- The server refuses a project insert (another client owns the key) but
--applies its task: the ack commits, the task is confirmed, the refusal
--is in sync_rejected, foreign keys hold. The refused project stays (its
--delete would cascade to the confirmed task; its image "absent" is kept
--as a guard) until the next pull brings the server's project.
INSERT INTO projects(id, title) VALUES (2, 'mine');
INSERT INTO tasks(id, project, title) VALUES (20, 2, 'child');
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"rejected","reason":"UNIQUE constraint failed: projects.id"},{"id":2,"status":"applied","row":{"id":20,"project":2,"title":"child"},"version":11}]}') AS resolved;
SELECT id, reason FROM sync_rejected WHERE id = 1;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images FROM sync_outbox;
SELECT * FROM projects;
PRAGMA foreign_key_check;
SELECT sync_apply('{"changes":[
  {"table":"projects","op":"upsert","pk":{"id":2},"row":{"id":2,"title":"theirs"},"version":10},
  {"table":"tasks","op":"upsert","pk":{"id":20},"row":{"id":20,"project":2,"title":"child"},"version":11}],"cursor":"11"}') AS applied;
SELECT * FROM projects;
SELECT * FROM tasks;

-- The same without a cascade: the refused project stays until the pull
--brings the server's, as its task (confirmed) needs it.
CREATE TABLE folders(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE files(id INTEGER PRIMARY KEY, folder INTEGER REFERENCES folders(id), name TEXT);
SELECT sync_track('folders'), sync_track('files');
INSERT INTO folders VALUES (1, 'mine');
INSERT INTO files VALUES (1, 1, 'f');
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":3,"status":"rejected","reason":"taken"},{"id":4,"status":"applied","row":{"id":1,"folder":1,"name":"f"},"version":13}]}') AS resolved;
SELECT * FROM folders;
SELECT * FROM files;
PRAGMA foreign_key_check;

-- A pull delivers a child of this client's pending insert before its
--refusal (the server holds that key: another client inserted it, with
--the child). The refused row cannot go: its delete would cascade to the
--server's task, which no pull sends again. It stays, its image "absent"
--kept as a guard, until the server's row for the key arrives (issue 13,
--converge seeds 123 and 224).
INSERT INTO projects(id, title) VALUES (7, 'mine');
SELECT sync_apply('{"changes":[
  {"table":"tasks","op":"upsert","pk":{"id":70},"row":{"id":70,"project":7,"title":"theirs"},"version":21}],
  "cursor":"21","has_more":true}') AS applied;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":5,"status":"rejected","reason":"UNIQUE constraint failed: projects.id"}]}') AS resolved;
SELECT * FROM projects WHERE id = 7;
SELECT * FROM tasks WHERE id = 70;
SELECT pk, row FROM sync_shadow WHERE tbl = 'projects';
SELECT sync_apply('{"changes":[
  {"table":"projects","op":"upsert","pk":{"id":7},"row":{"id":7,"title":"theirs"},"version":22}],
  "cursor":"22"}') AS applied;
SELECT * FROM projects WHERE id = 7;
SELECT * FROM tasks WHERE id = 70;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow WHERE tbl = 'projects') AS images,
  (SELECT value FROM sync_meta WHERE key = 'guards') AS guards FROM sync_outbox;
PRAGMA foreign_key_check;

-- Refused with the only rows referring to it, in one answer: the refused
--task goes, then the guard deletes the project and drops its image; a
--row referring to itself does not keep it.
CREATE TABLE nodes(id INTEGER PRIMARY KEY, parent INTEGER REFERENCES nodes(id) ON DELETE CASCADE);
SELECT sync_track('nodes');
INSERT INTO projects(id, title) VALUES (3, 'mine');
INSERT INTO tasks(id, project, title) VALUES (30, 3, 'child');
INSERT INTO nodes VALUES (1, 1);
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":6,"status":"rejected","reason":"CHECK constraint failed: title"},
  {"id":7,"status":"rejected","reason":"FOREIGN KEY constraint failed"},
  {"id":8,"status":"rejected","reason":"CHECK constraint failed: parent"}]}') AS resolved;
SELECT count(*) AS projects FROM projects WHERE id = 3;
SELECT count(*) AS tasks FROM tasks WHERE id = 30;
SELECT count(*) AS nodes FROM nodes;
SELECT count(*) AS images FROM sync_shadow WHERE tbl IN ('projects', 'tasks', 'nodes');

-- With foreign keys not enforced a delete takes nothing with it: the
--refused row goes at the ack, though the pulled task still refers to it,
--and no guard is kept (the task waits for the server's project).
PRAGMA foreign_keys = OFF;
INSERT INTO projects(id, title) VALUES (4, 'mine');
SELECT sync_apply('{"changes":[
  {"table":"tasks","op":"upsert","pk":{"id":40},"row":{"id":40,"project":4,"title":"theirs"},"version":31}],
  "cursor":"31","has_more":true}') AS applied;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":9,"status":"rejected","reason":"UNIQUE constraint failed: projects.id"}]}') AS resolved;
SELECT count(*) AS projects FROM projects WHERE id = 4;
SELECT * FROM tasks WHERE id = 40;
SELECT count(*) AS images, (SELECT value FROM sync_meta WHERE key = 'guards') AS guards
  FROM sync_shadow WHERE tbl = 'projects';
