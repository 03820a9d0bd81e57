-- Every SQLite value round-trips exactly through every JSON body: captured
-- by the triggers, sent by sync_push_batch, received by sync_apply,
-- sync_ack and sync_mutate.
SELECT length(sync_init(NULL));
CREATE TABLE src(id INTEGER PRIMARY KEY, v);
CREATE TABLE dst(id INTEGER PRIMARY KEY, v);
SELECT sync_track('src'), sync_track('dst');
INSERT INTO src VALUES
  (1, NULL), (2, 0), (3, 9007199254740993), (4, -9223372036854775808), (5, 9223372036854775807),
  (6, 0.1 + 0.2), (7, 1.7976931348623157e308), (8, 5e-324), (9, -0.0), (10, 1e300), (11, 9e999),
  (12, -9e999), (13, 100.0), (14, 2.2250738585072014e-308), (15, 'plain'),
  (16, 'quote " backslash \ slash / tab' || char(9) || 'newline' || char(10) || 'cr' || char(13)),
  (17, 'unicode: é ü 中文 😀 ' || char(1) || char(31) || char(127)), (18, ''), (19, x''),
  (20, x'00ff10'), (21, zeroblob(5)), (22, '{"$hex":"00"}'), (23, '{"$base64":"AA=="}'),
  (24, '9007199254740993'), (25, '1.5'), (26, 3.141592653589793), (27, -1.5e-200),
  (28, randomblob(4000)), (29, randomblob(3)), (30, randomblob(1)), (31, randomblob(2));
-- a spread of awkward doubles over the whole range
INSERT INTO src SELECT 100 + value, (SELECT 1.7976931348623157e308 / pow(3.7, value)) FROM generate_series(0, 560);
INSERT INTO src SELECT 1000 + value, -2.2250738585072014e-308 * pow(1.9, value) FROM generate_series(0, 1100);
-- how the special ones travel
SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.data') AS data
  FROM json_each(sync_push_batch(1000), '$.mutations') WHERE json_extract(value, '$.id') <= 27;
-- apply the pushed data as the server's rows for dst; compare value and type
SELECT sync_apply((SELECT json_object('changes', json_group_array(json_object(
  'table', 'dst', 'op', 'upsert', 'pk', value -> '$.pk', 'row', value -> '$.data')))
  FROM json_each(sync_push_batch(5000), '$.mutations')));
SELECT count(*) AS rows, sum(s.v IS d.v AND typeof(s.v) = typeof(d.v)) AS exact
  FROM src s JOIN dst d USING (id);
SELECT s.id, s.v, d.v FROM src s JOIN dst d USING (id) WHERE NOT (s.v IS d.v AND typeof(s.v) = typeof(d.v));
-- sync_ack's rows are read exactly too: acknowledge every insert with its own
-- data as the server's row; src must not change by a bit
CREATE TABLE keep AS SELECT id, v FROM src;
SELECT sync_ack((SELECT json_object('results', json_group_array(json_object('id', value -> '$.id',
  'status', 'applied', 'row', value -> '$.data')))
  FROM json_each(sync_push_batch(5000), '$.mutations') WHERE value ->> '$.table' = 'src'));
SELECT count(*) AS rows, sum(s.v IS k.v AND typeof(s.v) = typeof(k.v)) AS exact
  FROM src s JOIN keep k USING (id);
SELECT sync_pending();
-- the same through a connection that never loaded the extension: its writes
-- are captured by the same triggers
SELECT sync_apply((SELECT json_object('changes', json_group_array(json_object(
  'table', 'dst', 'op', 'delete', 'pk', json_object('id', id)))) FROM dst));
.open test.db
DELETE FROM src;
INSERT INTO src SELECT id, v FROM keep;
.open test.db
.load ./sync
SELECT count(*) AS dst_rows, sync_pending() AS pending FROM dst;
SELECT sync_apply((SELECT json_object('changes', json_group_array(json_object(
  'table', 'dst', 'op', 'upsert', 'pk', value -> '$.pk', 'row', value -> '$.data')))
  FROM json_each(sync_push_batch(5000), '$.mutations') WHERE value ->> '$.op' = 'insert'));
SELECT count(*) AS rows, sum(k.v IS d.v AND typeof(k.v) = typeof(d.v)) AS exact
  FROM keep k JOIN dst d USING (id);
-- sync_mutate reads exact values from its JSON
CREATE TABLE m(id INTEGER PRIMARY KEY, v);
SELECT sync_track('m');
SELECT sync_mutate('m', 'insert', '{"id":1,"v":9007199254740993}'),
       sync_mutate('m', 'insert', '{"id":2,"v":-9223372036854775808}'),
       sync_mutate('m', 'insert', '{"id":3,"v":0.30000000000000004}'),
       sync_mutate('m', 'insert', '{"id":4,"v":1.7976931348623157e308}'),
       sync_mutate('m', 'insert', '{"id":5,"v":{"$base64":"AP8Q"}}'),
       sync_mutate('m', 'insert', '{"id":6,"v":"caf\u00e9 \ud83d\ude00 \"q\" \\"}'),
       sync_mutate('m', 'insert', '{"id":7,"v":true}'),
       sync_mutate('m', 'insert', '{"id":8,"v":1e2}') > 0 AS ok;
SELECT id, typeof(v), quote(v), v = 0.1 + 0.2 AS is_sum FROM m ORDER BY id;
SELECT data FROM sync_pending WHERE table_name = 'm';
-- The row an INSERT OR REPLACE replaces keeps its exact REAL in the server
-- image, and the replacing row in the outbox, with a rowid (stashed by
-- sync_bs_T) and without one (stashed by the BEFORE INSERT trigger).
CREATE TABLE rr(id TEXT PRIMARY KEY, v REAL);
CREATE TABLE rw(id TEXT PRIMARY KEY, v REAL) WITHOUT ROWID;
SELECT sync_track('rr'), sync_track('rw');
INSERT INTO rr VALUES ('k', 0.1);
INSERT INTO rw VALUES ('k', 0.1);
DELETE FROM sync_outbox;
INSERT OR REPLACE INTO rr VALUES ('k', 1.7976931348623157e308);
REPLACE INTO rw VALUES ('k', 1.7976931348623157e308);
SELECT tbl, op, data FROM sync_outbox ORDER BY id;
SELECT tbl, row FROM sync_shadow WHERE tbl IN ('rr', 'rw') ORDER BY tbl;
