-- sync_apply: server changes into local tables, in one transaction.
SELECT length(sync_init(NULL));
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0);
CREATE TABLE tags(todo TEXT, tag TEXT, PRIMARY KEY (todo, tag)) WITHOUT ROWID;
CREATE TABLE other(id INTEGER PRIMARY KEY, x);
SELECT sync_track('todos'), sync_track('tags');
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"a"},"row":{"id":"a","title":"milk","done":0},"version":1},{"table":"todos","op":"upsert","pk":{"id":"b"},"row":{"id":"b","title":"eggs","done":1,"added_later":"ignored"},"version":2},{"table":"tags","op":"upsert","pk":{"todo":"a","tag":"shop"},"row":{"todo":"a","tag":"shop"},"version":3}],"cursor":"c-3","has_more":false}') AS applied;
SELECT * FROM todos ORDER BY id;
SELECT * FROM tags;
SELECT sync_cursor();
-- the engine's own writes are not queued
SELECT sync_pending();
SELECT sync_apply('{"changes":[{"table":"todos","op":"delete","pk":{"id":"b"},"version":4},{"table":"todos","op":"upsert","pk":{"id":"a"},"row":{"id":"a","title":"oat milk","done":1},"version":5},{"table":"todos","op":"delete","pk":{"id":"never-had"},"version":6}],"cursor":"c-6"}') AS applied;
SELECT * FROM todos ORDER BY id;
SELECT sync_cursor(), sync_pending();
-- an empty page still moves the cursor
SELECT sync_apply('{"changes":[],"cursor":"c-7"}') AS applied, sync_cursor();
SELECT sync_apply('{"cursor":"c-8"}') AS applied, sync_cursor();
-- a row missing a column keeps the local value on update, the default on insert
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"a"},"row":{"id":"a","title":"milk again"}},{"table":"todos","op":"upsert","pk":{"id":"n"},"row":{"id":"n","title":"new"}}]}');
SELECT * FROM todos ORDER BY id;
-- errors: nothing applied, cursor unchanged
SELECT sync_apply('not json');
SELECT sync_apply('[]');
SELECT sync_apply('{"changes":{}}');
-- a table that is not tracked (or not a table at all) is skipped, not
-- refused: 0 changes applied, counted in sync_meta 'skipped_changes'
SELECT sync_apply('{"changes":[{"table":"other","op":"upsert","pk":{"id":1},"row":{"id":1}}]}');
SELECT sync_apply('{"changes":[{"table":"sqlite_master","op":"delete","pk":{"name":"todos"}}]}');
SELECT sync_apply('{"changes":[{"table":"x\"; DROP TABLE todos; --","op":"delete","pk":{"id":"a"}}]}');
SELECT value AS skipped_changes FROM sync_meta WHERE key = 'skipped_changes';
SELECT name FROM sqlite_master WHERE name = 'todos';
SELECT sync_apply('{"changes":[{"op":"delete","pk":{"id":"a"}}]}');
SELECT sync_apply('{"changes":[{"table":"todos","op":"truncate","pk":{"id":"a"}}]}');
SELECT sync_apply('{"changes":[{"table":"todos","op":"delete","pk":{"nope":"a"}}]}');
SELECT sync_apply('{"changes":[{"table":"todos","op":"delete","pk":"a"}]}');
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"a"}}]}');
SELECT sync_apply('{"changes":[],"cursor":42}');
SELECT sync_apply('{"changes":[],"last_mutation_id":"x"}');
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"z"},"row":{"id":"z","title":{"$base64":"!!"}}}]}');
-- a change that the local schema refuses fails the page: the first change
-- of the page is undone too, and the cursor stays
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"ok"},"row":{"id":"ok","title":"fine"}},{"table":"todos","op":"upsert","pk":{"id":"bad"},"row":{"id":"bad","title":null}}],"cursor":"c-99"}');
SELECT * FROM todos ORDER BY id;
SELECT sync_cursor();
SELECT name FROM sqlite_master WHERE name = 'todos';
-- the set-based statement kept per table follows a schema change
CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
SELECT sync_track('notes');
SELECT sync_apply('{"changes":[{"table":"notes","op":"upsert","pk":{"id":1},"row":{"id":1,"body":"one"}}]}');
ALTER TABLE notes ADD COLUMN color TEXT;
SELECT sync_apply('{"changes":[{"table":"notes","op":"upsert","pk":{"id":2},"row":{"id":2,"body":"two","color":"red"}},{"table":"notes","op":"upsert","pk":{"id":1},"row":{"id":1,"body":"uno","color":"blue"}}]}');
SELECT * FROM notes ORDER BY id;
SELECT count(*) AS queued FROM sync_outbox WHERE tbl = 'notes';
-- one key spelt two ways in a page ({"id":1} and {"id":"1"}), or a row
-- whose key is not its pk: page order decides, whichever way the page is
-- applied (found by tests/fuzz, target apply)
CREATE TABLE nums(id INTEGER PRIMARY KEY, v);
SELECT sync_track('nums');
SELECT sync_apply('{"changes":[{"table":"nums","op":"upsert","pk":{"id":1},"row":{"id":1,"v":"one"}},{"table":"nums","op":"upsert","pk":{"id":2},"row":{"id":2,"v":"two"}}]}');
SELECT sync_apply('{"changes":[{"table":"nums","op":"delete","pk":{"id":"1"}},{"table":"nums","op":"upsert","pk":{"id":1},"row":{"id":1,"v":"one again"}}]}');
SELECT sync_apply('{"changes":[{"table":"nums","op":"delete","pk":{"id":2}},{"table":"nums","op":"upsert","pk":{"id":9},"row":{"id":2,"v":"two by its row"}}]}');
SELECT * FROM nums ORDER BY id;
-- the page is read in C: a change that is not an object is refused (a
-- string holding JSON text is not read as a change), and nothing is applied
SELECT sync_apply('{"changes":[{"table":"nums","op":"upsert","pk":{"id":3},"row":{"id":3,"v":"three"}},5],"cursor":"c-100"}');
SELECT sync_apply('{"changes":["{\"table\":\"nums\",\"op\":\"upsert\",\"pk\":{\"id\":4},\"row\":{\"id\":4,\"v\":\"four\"}}"],"cursor":"c-100"}');
SELECT sync_apply('{"changes":[{"table":5,"op":"upsert","pk":{"id":3},"row":{"id":3}}]}');
SELECT * FROM nums ORDER BY id;
SELECT sync_cursor();
-- text that is not JSON by SQLite's json_valid is refused as a whole
SELECT sync_apply('{"changes":[{"table":"nums","op":"upsert","pk":{"id":3},"row":{"id":3,"v":01}}]}');
SELECT sync_apply('{"changes":[{"table":"nums","op":"upsert","pk":{"id":3},"row":{"id":3,"v":1.}}]}');
SELECT sync_apply('{"changes":[],}');
SELECT sync_apply('{"changes":[]} x');
-- spaces anywhere; nested JSON stored as SQLite renders it; the first of
-- equal keys counts; escapes in names and values; 64-bit integers exact
SELECT sync_apply(' { "changes" : [ { "op" : "upsert" , "table" : "nums" , "pk" : { "id" : 5 } , "row" : { "v" : { "a" : [ 1 , "x y" ] } , "id" : 5 } } ] , "changes" : [] } ') AS applied;
SELECT sync_apply('{"changes":[{"table":"n\u0075ms","op":"\u0075psert","pk":{"id":6},"row":{"id":6,"v":"caf\u00e9 \"q\""}},{"table":"nums","op":"upsert","pk":{"id":7},"row":{"id":7,"v":9223372036854775807,"v":1}},{"table":"nums","op":"upsert","pk":{"id":8},"row":{"id":8,"v":-9007199254740993}}],"cursor":"c-\u0031"}') AS applied;
SELECT id, v, typeof(v) FROM nums WHERE id >= 5 ORDER BY id;
SELECT sync_cursor();
-- a failure in a run of rows written together names its own change
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"r1"},"row":{"id":"r1","title":"one","done":0}},{"table":"todos","op":"upsert","pk":{"id":"r2"},"row":{"id":"r2","title":"two","done":0}},{"table":"todos","op":"upsert","pk":{"id":"r3"},"row":{"id":"r3","title":null,"done":0}}]}');
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"r1"},"row":{"id":"r1","title":"one","done":0}},{"table":"todos","op":"upsert","pk":{"id":"r2"},"row":{"id":"r2","title":"two","done":{"$base64":"*"}}}]}');
SELECT count(*) AS none FROM todos WHERE id LIKE 'r_';
-- with two failures the first in page order is reported
SELECT sync_apply('{"changes":[{"table":"todos","op":"upsert","pk":{"id":"r1"},"row":{"id":"r1","title":null,"done":0}},{"table":"nope","op":"upsert","pk":{"id":"r2"},"row":{"id":"r2"}}]}');
