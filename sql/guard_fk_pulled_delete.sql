-- A refused insert kept for its referrers (an absent guard) that refers to
-- a row the pull deletes (converge-schemas --schema 2 --worker seed 148):
-- a project's key change (org 2 to 1, lead set) is queued as the task's
-- update, the old key's delete and the new key's insert; the server
-- applies the delete (its cascade takes the task) and refuses the rest
-- (the lead was deleted meanwhile). The new project stays, its image
-- "absent" a guard, as the task (kept too) still refers to it. The pull
-- then deletes the task and the lead: the project's guard can go now, and
-- must before the foreign keys are checked, or the pull failed on every
-- try ("projects {...} refers to a row of "people" that does not exist").
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE projects(org INTEGER NOT NULL, code TEXT NOT NULL,
  lead INTEGER REFERENCES people(id) ON DELETE RESTRICT, PRIMARY KEY(org, code));
CREATE TABLE tasks(id INTEGER PRIMARY KEY, org INTEGER NOT NULL, code TEXT NOT NULL,
  FOREIGN KEY(org, code) REFERENCES projects(org, code) ON UPDATE CASCADE ON DELETE CASCADE);
SELECT sync_track('people'), sync_track('projects'), sync_track('tasks');
SELECT sync_apply('{"changes":[
  {"table":"people","op":"upsert","pk":{"id":7},"row":{"id":7,"name":"p7"},"version":1},
  {"table":"projects","op":"upsert","pk":{"org":2,"code":"a"},"row":{"org":2,"code":"a","lead":null},"version":2},
  {"table":"tasks","op":"upsert","pk":{"id":1},"row":{"id":1,"org":2,"code":"a"},"version":3}],
  "cursor":"3"}') AS applied;
UPDATE projects SET org = 1, lead = 7 WHERE org = 2 AND code = 'a';
SELECT id, tbl, op, pk, data FROM sync_outbox;
SELECT sync_push_batch() IS NOT NULL AS pushed;
SELECT sync_ack('{"results":[
  {"id":1,"status":"rejected","reason":"FOREIGN KEY constraint failed"},
  {"id":2,"status":"applied","row":null,"version":5},
  {"id":3,"status":"rejected","reason":"FOREIGN KEY constraint failed"}]}') AS resolved;
SELECT * FROM projects;
SELECT * FROM tasks;
SELECT value AS guards FROM sync_meta WHERE key = 'guards';
SELECT sync_apply('{"changes":[
  {"table":"people","op":"delete","pk":{"id":7},"version":6},
  {"table":"tasks","op":"delete","pk":{"id":1},"version":7}],
  "cursor":"7"}') AS applied;
SELECT (SELECT count(*) FROM people) AS people, (SELECT count(*) FROM projects) AS projects,
  (SELECT count(*) FROM tasks) AS tasks,
  (SELECT count(*) FROM sync_meta WHERE key LIKE 'guards%') AS guards,
  (SELECT count(*) FROM sync_inbox) AS staged;
-- (the old key's delete, confirmed with its version, keeps its image)
SELECT tbl, pk, row FROM sync_shadow;
PRAGMA foreign_key_check;
