-- A REPLACE that collides through a UNIQUE index on expressions, or a
-- partial UNIQUE index, deletes the other row without its delete trigger:
-- the capture finds that row through the index's own expressions and WHERE
-- (uniqexpr.c) and queues its 'delete' first. Before, an expression index
-- was left out: the row vanished locally, the server kept it, and a pending
-- update of it left the client without the row for good.
SELECT length(sync_init(NULL));
CREATE TABLE docs(id TEXT PRIMARY KEY, body TEXT, [tag x] TEXT);
CREATE UNIQUE INDEX docs_body ON docs(lower(body), /* a comment */
  substr([tag x], 1, 2) COLLATE NOCASE DESC) WHERE length(body) > 3;
CREATE TABLE w(a TEXT PRIMARY KEY, b TEXT) WITHOUT ROWID;
CREATE UNIQUE INDEX w_b ON w(upper(b));
CREATE TABLE p(id INTEGER PRIMARY KEY, k TEXT, live INTEGER);
CREATE UNIQUE INDEX p_k ON p(k) WHERE live;
SELECT sync_track('docs'), sync_track('w'), sync_track('p');
INSERT INTO docs VALUES ('d1', 'Hello', 'xyz'), ('d3', 'Hel', 'xyz');
INSERT INTO w VALUES ('a', 'q');
INSERT INTO p VALUES (1, 'k', 1), (3, 'k', 0);
DELETE FROM sync_outbox; DELETE FROM sync_shadow;
-- both expressions collide (lower, and substr under NOCASE): d1 goes
INSERT OR REPLACE INTO docs VALUES ('d2', 'hello', 'XYw');
-- 'hel' is outside the partial index: nothing collides
INSERT OR REPLACE INTO docs VALUES ('d4', 'hel', 'XYw');
-- an UPDATE that makes d3 collide with d2
UPDATE OR REPLACE docs SET body = 'HELLO' WHERE id = 'd3';
-- WITHOUT ROWID
INSERT OR REPLACE INTO w VALUES ('b', 'Q');
-- a partial index: a row that enters it through its WHERE's column
INSERT OR REPLACE INTO p VALUES (2, 'k', 1);
UPDATE OR REPLACE p SET live = 1 WHERE id = 3;
SELECT tbl, op, pk, data FROM sync_outbox ORDER BY id;
SELECT * FROM docs ORDER BY id;
SELECT * FROM w;
SELECT * FROM p ORDER BY id;
-- a change of case alone in a NOCASE column is a change: the server's
-- BINARY comparison, and other clients, must see it
CREATE TABLE n(id TEXT PRIMARY KEY, slug TEXT COLLATE NOCASE UNIQUE, note TEXT COLLATE RTRIM, x);
SELECT sync_track('n');
INSERT INTO n VALUES ('a', 'Y', 'q', 1);
DELETE FROM sync_outbox; DELETE FROM sync_shadow;
UPDATE n SET slug = 'y' WHERE id = 'a';
UPDATE n SET note = 'q  ' WHERE id = 'a';
UPDATE n SET x = 1.0 WHERE id = 'a';
UPDATE n SET slug = 'y' WHERE id = 'a';
SELECT op, pk, data FROM sync_outbox ORDER BY id;
