-- sync_apply when the server's order does not fit the local constraints
-- (foreign keys on): the change log keeps the latest change per row, so a
-- UNIQUE swap arrives as rows that each collide with the other's old value,
-- and a page boundary can fall between a child and its parent.
PRAGMA foreign_keys = ON;
SELECT length(sync_init(NULL));
CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE);
CREATE TABLE codes(id INTEGER PRIMARY KEY, code TEXT UNIQUE CHECK (length(code) = 3), rank INTEGER UNIQUE);
SELECT sync_track('u'), sync_track('codes');
SELECT sync_apply('{"changes":[
  {"table":"u","op":"upsert","pk":{"id":1},"row":{"id":1,"email":"x"},"version":1},
  {"table":"u","op":"upsert","pk":{"id":2},"row":{"id":2,"email":"y"},"version":2},
  {"table":"codes","op":"upsert","pk":{"id":1},"row":{"id":1,"code":"aaa","rank":1},"version":3},
  {"table":"codes","op":"upsert","pk":{"id":2},"row":{"id":2,"code":"bbb","rank":2},"version":4}],"cursor":"4"}');
-- a swap in one page: each row is parked out of the other's way, then both
-- end at the server's values
SELECT sync_apply('{"changes":[
  {"table":"u","op":"upsert","pk":{"id":1},"row":{"id":1,"email":"y"},"version":5},
  {"table":"u","op":"upsert","pk":{"id":2},"row":{"id":2,"email":"x"},"version":6}],"cursor":"6"}');
SELECT * FROM u ORDER BY id;
-- a swap of a text and an integer column under a CHECK (parked values skip it)
SELECT sync_apply('{"changes":[
  {"table":"codes","op":"upsert","pk":{"id":1},"row":{"id":1,"code":"bbb","rank":2},"version":7},
  {"table":"codes","op":"upsert","pk":{"id":2},"row":{"id":2,"code":"aaa","rank":1},"version":8}],"cursor":"8"}');
SELECT * FROM codes ORDER BY id;
-- a three-row rotation
SELECT sync_apply('{"changes":[{"table":"u","op":"upsert","pk":{"id":3},"row":{"id":3,"email":"z"},"version":9}],"cursor":"9"}');
SELECT sync_apply('{"changes":[
  {"table":"u","op":"upsert","pk":{"id":1},"row":{"id":1,"email":"x"},"version":10},
  {"table":"u","op":"upsert","pk":{"id":2},"row":{"id":2,"email":"z"},"version":11},
  {"table":"u","op":"upsert","pk":{"id":3},"row":{"id":3,"email":"y"},"version":12}],"cursor":"12"}');
SELECT * FROM u ORDER BY id;
-- a value handed from row 3 to a new row 5, row 5 first on the page
SELECT sync_apply('{"changes":[
  {"table":"u","op":"upsert","pk":{"id":5},"row":{"id":5,"email":"y"},"version":13},
  {"table":"u","op":"upsert","pk":{"id":3},"row":{"id":3,"email":"c"},"version":14}],"cursor":"14"}');
SELECT * FROM u ORDER BY id;
-- a swap split across two pages: the first cannot apply yet (row 1 still
-- holds "x" and its change is on the next page), so it is staged in
-- sync_inbox and the cursor moves on; the last page applies both
SELECT sync_apply('{"changes":[
  {"table":"u","op":"upsert","pk":{"id":2},"row":{"id":2,"email":"x"},"version":15}],"cursor":"15","has_more":true}');
SELECT * FROM u ORDER BY id;
SELECT sync_cursor(), (SELECT count(*) FROM sync_inbox) AS staged;
SELECT sync_apply('{"changes":[
  {"table":"u","op":"upsert","pk":{"id":1},"row":{"id":1,"email":"z"},"version":16}],"cursor":"16"}');
SELECT * FROM u ORDER BY id;
SELECT sync_cursor(), (SELECT count(*) FROM sync_inbox) AS staged;
-- on the pull's last page, a local row holding the value that no page
-- changes is stale (the server never holds two equal values): server wins
SELECT sync_apply('{"changes":[
  {"table":"u","op":"upsert","pk":{"id":8},"row":{"id":8,"email":"c"},"version":17}],"cursor":"17"}');
SELECT * FROM u ORDER BY id;

-- a pending local row holding a value the server gives another row: the
-- server's row wins, the local insert is hidden and stays queued
INSERT INTO u VALUES (9, 'w');
UPDATE u SET email = 'q' WHERE id = 2;
SELECT sync_apply('{"changes":[
  {"table":"u","op":"upsert","pk":{"id":6},"row":{"id":6,"email":"w"},"version":18},
  {"table":"u","op":"upsert","pk":{"id":7},"row":{"id":7,"email":"q"},"version":19}],"cursor":"19"}');
SELECT * FROM u ORDER BY id;
SELECT op, pk, data FROM sync_pending ORDER BY id;
-- a pending edit that no longer fits once the server's row for its own key
-- arrives (its replay collides): hidden too, the server's row shows
UPDATE u SET email = 'n' WHERE id = 7;
SELECT sync_apply('{"changes":[
  {"table":"u","op":"upsert","pk":{"id":1},"row":{"id":1,"email":"n"},"version":20}],"cursor":"20"}');
SELECT sync_apply('{"changes":[
  {"table":"u","op":"upsert","pk":{"id":7},"row":{"id":7,"email":"q2"},"version":21}],"cursor":"21"}');
SELECT * FROM u WHERE id IN (1, 7) ORDER BY id;
SELECT op, pk, data FROM sync_pending ORDER BY id;
DELETE FROM sync_outbox;
DELETE FROM sync_shadow;

-- a child on an earlier page than its parent: staged until the last page;
-- while the inbox is not empty, further pages with has_more wait there too
CREATE TABLE p(id TEXT PRIMARY KEY, title TEXT);
CREATE TABLE c(id TEXT PRIMARY KEY, p TEXT NOT NULL REFERENCES p(id) ON DELETE CASCADE);
SELECT sync_track('p'), sync_track('c');
SELECT sync_apply('{"changes":[
  {"table":"c","op":"upsert","pk":{"id":"c1"},"row":{"id":"c1","p":"p1"},"version":20}],"cursor":"20","has_more":true}');
SELECT sync_apply('{"changes":[
  {"table":"u","op":"upsert","pk":{"id":10},"row":{"id":10,"email":"t"},"version":21}],"cursor":"21","has_more":true}');
SELECT (SELECT count(*) FROM c) AS c, (SELECT count(*) FROM u WHERE id = 10) AS u10,
       sync_cursor(), (SELECT count(*) FROM sync_inbox) AS staged;
SELECT sync_apply('{"changes":[
  {"table":"p","op":"upsert","pk":{"id":"p1"},"row":{"id":"p1","title":"home"},"version":22}],"cursor":"22"}') AS applied;
SELECT * FROM c;
SELECT * FROM p;
SELECT count(*) AS u10, sync_cursor(), (SELECT count(*) FROM sync_inbox) AS staged FROM u WHERE id = 10;
PRAGMA foreign_key_check;
-- a parent the client does not track: the last page fails and says so
CREATE TABLE owners(id TEXT PRIMARY KEY);
CREATE TABLE pets(id TEXT PRIMARY KEY, owner TEXT REFERENCES owners(id));
SELECT sync_track('pets');
SELECT sync_apply('{"changes":[
  {"table":"pets","op":"upsert","pk":{"id":"rex"},"row":{"id":"rex","owner":"ann"},"version":23}],"cursor":"23"}');
SELECT count(*) AS pets, sync_cursor() FROM pets;

-- a change for a table this client does not track (the server added it
-- later) is skipped and counted in sync_meta 'skipped_changes'
SELECT sync_apply('{"changes":[
  {"table":"extra","op":"upsert","pk":{"id":1},"row":{"id":1},"version":24},
  {"table":"u","op":"upsert","pk":{"id":11},"row":{"id":11,"email":"s"},"version":25},
  {"table":"extra","op":"delete","pk":{"id":2},"version":26}],"cursor":"26"}') AS applied;
SELECT value AS skipped_changes FROM sync_meta WHERE key = 'skipped_changes';
SELECT sync_apply('{"changes":[{"table":"extra","op":"upsert","pk":{"id":3},"row":{"id":3}}],"cursor":"27"}') AS applied;
SELECT value AS skipped_changes, sync_cursor() FROM sync_meta WHERE key = 'skipped_changes';
SELECT * FROM u WHERE id = 11;

-- a staged page that turns out not to apply names itself; nothing changes,
-- the staged pages and the cursor stay for the next pull
CREATE TABLE strict(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
SELECT sync_track('strict');
SELECT sync_apply('{"changes":[
  {"table":"c","op":"upsert","pk":{"id":"c2"},"row":{"id":"c2","p":"p2"}}],"cursor":"30","has_more":true}');
SELECT sync_apply('{"changes":[
  {"table":"strict","op":"upsert","pk":{"id":1},"row":{"id":1,"v":null}}],"cursor":"31","has_more":true}');
SELECT sync_apply('{"changes":[
  {"table":"p","op":"upsert","pk":{"id":"p2"},"row":{"id":"p2","title":"work"}}],"cursor":"32"}');
SELECT sync_cursor(), (SELECT count(*) FROM sync_inbox) AS staged, (SELECT count(*) FROM c) AS c;

-- a UNIQUE index on an expression: its holders are looked up through the
-- expression (as the index's text gives it), so a swap through it applies
DELETE FROM sync_inbox;
CREATE TABLE e(id INTEGER PRIMARY KEY, email TEXT);
CREATE UNIQUE INDEX e_lower ON e(lower(email));
SELECT sync_track('e');
SELECT sync_apply('{"changes":[
  {"table":"e","op":"upsert","pk":{"id":1},"row":{"id":1,"email":"X"}},
  {"table":"e","op":"upsert","pk":{"id":2},"row":{"id":2,"email":"y"}}],"cursor":"40"}');
SELECT sync_apply('{"changes":[
  {"table":"e","op":"upsert","pk":{"id":1},"row":{"id":1,"email":"y"}},
  {"table":"e","op":"upsert","pk":{"id":2},"row":{"id":2,"email":"x"}}],"cursor":"41","has_more":true}');
SELECT sync_apply('{"changes":[],"cursor":"42"}');
SELECT sync_cursor(), (SELECT count(*) FROM sync_inbox) AS staged;
SELECT * FROM e ORDER BY id;
