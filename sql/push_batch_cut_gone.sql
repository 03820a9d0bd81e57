-- A push batch is not cut between a child's update and its new parent's
-- insert when the child's row has changed since (converge-schemas --schema
-- 2 --solo --batch 2 --ops 1000 seed 22): a project's key change (code
-- 'é' to 'a') queues the task's update with only the column that changed,
-- then the old key's delete and the new key's insert; the task is then
-- deleted. The column the update left out (org) was read from the row as
-- it is now, which is gone, so the reference matched no insert, the batch
-- ended between the update and the insert, and the server refused the
-- update (the one writer lost it). The value is the one the row had when
-- the update was queued: the key's last earlier mutation that wrote the
-- column, else the server image.
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE projects(org INTEGER NOT NULL, code TEXT NOT NULL, title TEXT,
  PRIMARY KEY(org, code));
CREATE TABLE tasks(id INTEGER PRIMARY KEY, org INTEGER NOT NULL, code TEXT NOT NULL, title TEXT,
  FOREIGN KEY(org, code) REFERENCES projects(org, code) ON UPDATE CASCADE ON DELETE CASCADE);
SELECT sync_track('projects'), sync_track('tasks');
SELECT sync_apply('{"changes":[
  {"table":"projects","op":"upsert","pk":{"org":1,"code":"é"},"row":{"org":1,"code":"é","title":"p"},"version":1},
  {"table":"projects","op":"upsert","pk":{"org":2,"code":"é"},"row":{"org":2,"code":"é","title":"q"},"version":2},
  {"table":"tasks","op":"upsert","pk":{"id":3},"row":{"id":3,"org":1,"code":"é","title":"t"},"version":3},
  {"table":"tasks","op":"upsert","pk":{"id":4},"row":{"id":4,"org":2,"code":"é","title":"u"},"version":4}],
  "cursor":"4"}') AS applied;
UPDATE tasks SET org = 1 WHERE id = 4;
INSERT INTO projects VALUES (2, 'a', 'r');
UPDATE projects SET code = 'a' WHERE org = 1 AND code = 'é';
DELETE FROM tasks WHERE id = 3;
UPDATE tasks SET org = 2 WHERE id = 4;
SELECT id, tbl, op, pk, data FROM sync_outbox ORDER BY id;
-- a batch of 2 after id 2 (3, 4): task 3 is gone, its org is the
-- image's (1), so it refers to the insert of (1, 'a') and ends there (6)
SELECT json_array_length(sync_push_batch(2, 2), '$.mutations') AS sent,
  sync_push_batch(2, 2) ->> '$.mutations[#-1].id' AS last;
-- after id 3 (4, 5): task 4's org then was its own update's (1), not the
-- image's (2) nor the row's now (2): it ends at the same insert
SELECT json_array_length(sync_push_batch(2, 3), '$.mutations') AS sent,
  sync_push_batch(2, 3) ->> '$.mutations[#-1].id' AS last;
