-- A server delete whose local cascade would reach rows the server keeps
-- (foreign keys on). The change log keeps the latest change per row, so a
-- row detached from its parent before the parent's delete arrives after
-- that delete when it changed again since: the local row still refers to
-- the parent when the delete comes. Deleting at once would cascade through
-- that stale row into rows the server keeps and no pull sends again (the
-- task below, delivered before). The delete waits until the rest of the
-- pull is applied; then it takes only what the server took.
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE);
CREATE TABLE projects(id INTEGER PRIMARY KEY, owner INTEGER REFERENCES users(id) ON DELETE CASCADE, title TEXT);
CREATE TABLE tasks(project INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE, n INTEGER NOT NULL, body TEXT, PRIMARY KEY(project, n)) WITHOUT ROWID;
SELECT sync_track('users'), sync_track('projects'), sync_track('tasks');
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":1},"row":{"id":1,"email":"a@x"},"version":1},
  {"table":"projects","op":"upsert","pk":{"id":1},"row":{"id":1,"owner":1,"title":"p"},"version":2}],"cursor":"2"}');
-- On the server: task (1,4) added, project 1 detached from user 1, user 1
-- deleted, then project 1 renamed (its latest change, after the delete).
-- One page:
SELECT sync_apply('{"changes":[
  {"table":"tasks","op":"upsert","pk":{"project":1,"n":4},"row":{"project":1,"n":4,"body":"t"},"version":3},
  {"table":"users","op":"delete","pk":{"id":1},"version":5},
  {"table":"projects","op":"upsert","pk":{"id":1},"row":{"id":1,"owner":null,"title":"q"},"version":6}],"cursor":"6"}');
SELECT * FROM users;
SELECT * FROM projects;
SELECT * FROM tasks;
SELECT sync_cursor(), (SELECT count(*) FROM sync_inbox) AS staged;
-- The same over three pages (pull_limit 1): the page with the delete cannot
-- apply yet and is staged; the last page applies it after the rest.
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":2},"row":{"id":2,"email":"b@x"},"version":7},
  {"table":"projects","op":"upsert","pk":{"id":2},"row":{"id":2,"owner":2,"title":"r"},"version":8}],"cursor":"8"}');
SELECT sync_apply('{"changes":[
  {"table":"tasks","op":"upsert","pk":{"project":2,"n":1},"row":{"project":2,"n":1,"body":"u"},"version":9}],"cursor":"9","has_more":true}');
SELECT sync_apply('{"changes":[
  {"table":"users","op":"delete","pk":{"id":2},"version":11}],"cursor":"11","has_more":true}');
SELECT * FROM users;
SELECT sync_cursor(), (SELECT count(*) FROM sync_inbox) AS staged;
SELECT sync_apply('{"changes":[
  {"table":"projects","op":"upsert","pk":{"id":2},"row":{"id":2,"owner":null,"title":"s"},"version":12}],"cursor":"12"}');
SELECT * FROM users;
SELECT * FROM projects ORDER BY id;
SELECT * FROM tasks ORDER BY project, n;
SELECT sync_cursor(), (SELECT count(*) FROM sync_inbox) AS staged;
-- A delete the server cascaded: it logs the parent's delete first, then
-- the rows its cascade removed. The same page: the parent's delete waits
-- for its children's and then takes nothing more.
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":3},"row":{"id":3,"email":"c@x"},"version":13},
  {"table":"projects","op":"upsert","pk":{"id":3},"row":{"id":3,"owner":3,"title":"t"},"version":14},
  {"table":"tasks","op":"upsert","pk":{"project":3,"n":1},"row":{"project":3,"n":1,"body":"v"},"version":15}],"cursor":"15"}');
SELECT sync_apply('{"changes":[
  {"table":"users","op":"delete","pk":{"id":3},"version":16},
  {"table":"projects","op":"delete","pk":{"id":3},"version":17},
  {"table":"tasks","op":"delete","pk":{"project":3,"n":1},"version":18},
  {"table":"users","op":"upsert","pk":{"id":4},"row":{"id":4,"email":"c@x"},"version":19}],"cursor":"19"}');
SELECT * FROM users ORDER BY id;
SELECT * FROM projects ORDER BY id;
SELECT * FROM tasks ORDER BY project, n;
-- Split over pages: the page with the parent's delete is staged (its
-- children are still here), the last page applies it.
SELECT sync_apply('{"changes":[
  {"table":"projects","op":"upsert","pk":{"id":5},"row":{"id":5,"owner":4,"title":"w"},"version":20},
  {"table":"tasks","op":"upsert","pk":{"project":5,"n":1},"row":{"project":5,"n":1,"body":"x"},"version":21}],"cursor":"21"}');
SELECT sync_apply('{"changes":[
  {"table":"users","op":"delete","pk":{"id":4},"version":22}],"cursor":"22","has_more":true}');
SELECT sync_cursor(), (SELECT count(*) FROM sync_inbox) AS staged;
SELECT sync_apply('{"changes":[
  {"table":"projects","op":"delete","pk":{"id":5},"version":23},
  {"table":"tasks","op":"delete","pk":{"project":5,"n":1},"version":24}],"cursor":"24"}');
SELECT * FROM users ORDER BY id;
SELECT * FROM projects ORDER BY id;
SELECT * FROM tasks ORDER BY project, n;
SELECT sync_cursor(), (SELECT count(*) FROM sync_inbox) AS staged;
-- A pull's last page whose delete still reaches rows the pull left alone
-- (a server that does not log its cascades): the server's delete wins,
-- its cascade included.
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":6},"row":{"id":6,"email":"f@x"},"version":25},
  {"table":"projects","op":"upsert","pk":{"id":6},"row":{"id":6,"owner":6,"title":"y"},"version":26},
  {"table":"tasks","op":"upsert","pk":{"project":6,"n":1},"row":{"project":6,"n":1,"body":"z"},"version":27}],"cursor":"27"}');
SELECT sync_apply('{"changes":[
  {"table":"users","op":"delete","pk":{"id":6},"version":28}],"cursor":"28"}');
SELECT * FROM users ORDER BY id;
SELECT * FROM projects ORDER BY id;
SELECT * FROM tasks ORDER BY project, n;
-- The deleted row has a pending edit of this client: the delete waits the
-- same way, then the row goes as the server says (its edit stays queued
-- for the server to judge), and the detached project keeps its task.
SELECT sync_apply('{"changes":[
  {"table":"users","op":"upsert","pk":{"id":7},"row":{"id":7,"email":"g@x"},"version":29},
  {"table":"projects","op":"upsert","pk":{"id":7},"row":{"id":7,"owner":7,"title":"a"},"version":30}],"cursor":"30"}');
UPDATE users SET email = 'h@x' WHERE id = 7;
SELECT sync_apply('{"changes":[
  {"table":"tasks","op":"upsert","pk":{"project":7,"n":1},"row":{"project":7,"n":1,"body":"b"},"version":31},
  {"table":"users","op":"delete","pk":{"id":7},"version":33},
  {"table":"projects","op":"upsert","pk":{"id":7},"row":{"id":7,"owner":null,"title":"c"},"version":34}],"cursor":"34"}');
SELECT * FROM users ORDER BY id;
SELECT * FROM projects ORDER BY id;
SELECT * FROM tasks ORDER BY project, n;
SELECT table_name, op, pk, data FROM sync_pending;
PRAGMA foreign_key_check;
-- A table referring to itself, and a composite key referred to next to a
-- UNIQUE column: node 2 moved to the root before node 1's delete and
-- renamed since keeps its child node 4; node 3, referring only to itself,
-- is not held back; the account's delete waits for the row referring to it.
CREATE TABLE nodes(id INTEGER PRIMARY KEY, parent INTEGER REFERENCES nodes(id) ON DELETE CASCADE, name TEXT);
CREATE TABLE acct(a TEXT, b INTEGER, code TEXT UNIQUE, PRIMARY KEY(a, b));
CREATE TABLE refs(id INTEGER PRIMARY KEY, a TEXT, b INTEGER, code TEXT REFERENCES acct(code) ON DELETE SET NULL,
                  FOREIGN KEY(a, b) REFERENCES acct(a, b) ON DELETE CASCADE);
SELECT sync_track('nodes'), sync_track('acct'), sync_track('refs');
SELECT sync_apply('{"changes":[
  {"table":"nodes","op":"upsert","pk":{"id":1},"row":{"id":1,"parent":null,"name":"root"},"version":40},
  {"table":"nodes","op":"upsert","pk":{"id":2},"row":{"id":2,"parent":1,"name":"b"},"version":41},
  {"table":"nodes","op":"upsert","pk":{"id":3},"row":{"id":3,"parent":3,"name":"self"},"version":42},
  {"table":"nodes","op":"upsert","pk":{"id":4},"row":{"id":4,"parent":2,"name":"leaf"},"version":43},
  {"table":"acct","op":"upsert","pk":{"a":"x","b":1},"row":{"a":"x","b":1,"code":"K"},"version":44},
  {"table":"refs","op":"upsert","pk":{"id":1},"row":{"id":1,"a":"x","b":1,"code":"K"},"version":45}],"cursor":"45"}');
SELECT sync_apply('{"changes":[
  {"table":"nodes","op":"delete","pk":{"id":1},"version":47},
  {"table":"nodes","op":"delete","pk":{"id":3},"version":48},
  {"table":"acct","op":"delete","pk":{"a":"x","b":1},"version":49},
  {"table":"nodes","op":"upsert","pk":{"id":2},"row":{"id":2,"parent":null,"name":"b2"},"version":50},
  {"table":"refs","op":"upsert","pk":{"id":1},"row":{"id":1,"a":null,"b":null,"code":null},"version":51}],"cursor":"51"}');
SELECT * FROM nodes ORDER BY id;
SELECT * FROM acct;
SELECT * FROM refs;
PRAGMA foreign_key_check;
