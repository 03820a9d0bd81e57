-- Rolling back a refused mutation never leaves a foreign key broken (issue
-- 13, 19): the server's image goes back only when it fits, else the
-- server's state wins.
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE projects(id INTEGER PRIMARY KEY, title TEXT);
CREATE TABLE tasks(id INTEGER PRIMARY KEY, project INTEGER NOT NULL
                   REFERENCES projects(id) ON DELETE CASCADE, title TEXT);
SELECT sync_track('projects'), sync_track('tasks');

-- A task's pending update refused after the server deleted its project
--(the cascade took the task locally too): the task is not put back
--onto the deleted project.
SELECT sync_apply('{"changes":[
  {"table":"projects","op":"upsert","pk":{"id":1},"row":{"id":1,"title":"P1"},"version":7},
  {"table":"tasks","op":"upsert","pk":{"id":10},"row":{"id":10,"project":1,"title":"t"},"version":8}],"cursor":"8"}') AS applied;
UPDATE tasks SET title = 't local' WHERE id = 10;
SELECT sync_apply('{"changes":[{"table":"projects","op":"delete","pk":{"id":1},"version":9}],"cursor":"9"}') AS applied;
SELECT count(*) AS tasks FROM tasks;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[{"id":1,"status":"rejected","reason":"no such row"}]}') AS resolved;
SELECT count(*) AS projects, (SELECT count(*) FROM tasks) AS tasks FROM projects;
SELECT count(*) AS pending, (SELECT count(*) FROM sync_shadow) AS images FROM sync_outbox;
PRAGMA foreign_key_check;

