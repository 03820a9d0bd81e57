-- A row parked out of a UNIQUE index's way gets a value no row holds, also
-- when the column's maximum is at the end of its range (converge-schemas
-- --schema 2 seed 67 as generated at 33334c7). Two swaps arrive in one
-- page, each a cycle that only a park breaks; the column holds 2^63-1
-- (and, in a REAL column, 1e308): one past the maximum was 2^63 as a REAL
-- (or Inf) for both parks, so the second collided with the first and the
-- page failed.
SELECT length(sync_init(NULL));
CREATE TABLE contacts(id INTEGER PRIMARY KEY, phone INTEGER UNIQUE);
CREATE TABLE gauges(id INTEGER PRIMARY KEY, level REAL UNIQUE);
SELECT sync_track('contacts'), sync_track('gauges');
SELECT sync_apply('{"changes":[
  {"table":"contacts","op":"upsert","pk":{"id":1},"row":{"id":1,"phone":9223372036854775807},"version":1},
  {"table":"contacts","op":"upsert","pk":{"id":2},"row":{"id":2,"phone":5},"version":2},
  {"table":"contacts","op":"upsert","pk":{"id":3},"row":{"id":3,"phone":6},"version":3},
  {"table":"contacts","op":"upsert","pk":{"id":4},"row":{"id":4,"phone":7},"version":4},
  {"table":"contacts","op":"upsert","pk":{"id":5},"row":{"id":5,"phone":8},"version":5},
  {"table":"gauges","op":"upsert","pk":{"id":1},"row":{"id":1,"level":1e308},"version":6},
  {"table":"gauges","op":"upsert","pk":{"id":2},"row":{"id":2,"level":0.5},"version":7},
  {"table":"gauges","op":"upsert","pk":{"id":3},"row":{"id":3,"level":1.5},"version":8},
  {"table":"gauges","op":"upsert","pk":{"id":4},"row":{"id":4,"level":2.5},"version":9},
  {"table":"gauges","op":"upsert","pk":{"id":5},"row":{"id":5,"level":3.5},"version":10}],
  "cursor":"10"}') AS applied;
SELECT sync_apply('{"changes":[
  {"table":"contacts","op":"upsert","pk":{"id":2},"row":{"id":2,"phone":6},"version":11},
  {"table":"contacts","op":"upsert","pk":{"id":3},"row":{"id":3,"phone":5},"version":12},
  {"table":"contacts","op":"upsert","pk":{"id":4},"row":{"id":4,"phone":8},"version":13},
  {"table":"contacts","op":"upsert","pk":{"id":5},"row":{"id":5,"phone":7},"version":14}],
  "cursor":"14"}') AS applied;
SELECT id, phone, typeof(phone) FROM contacts ORDER BY id;
SELECT sync_apply('{"changes":[
  {"table":"gauges","op":"upsert","pk":{"id":2},"row":{"id":2,"level":1.5},"version":15},
  {"table":"gauges","op":"upsert","pk":{"id":3},"row":{"id":3,"level":0.5},"version":16},
  {"table":"gauges","op":"upsert","pk":{"id":4},"row":{"id":4,"level":3.5},"version":17},
  {"table":"gauges","op":"upsert","pk":{"id":5},"row":{"id":5,"level":2.5},"version":18}],
  "cursor":"18"}') AS applied;
SELECT id, level, typeof(level) FROM gauges ORDER BY id;
-- both ends held: a random integer, still none a row holds
SELECT sync_apply('{"changes":[
  {"table":"contacts","op":"upsert","pk":{"id":6},"row":{"id":6,"phone":-9223372036854775808},"version":19},
  {"table":"contacts","op":"upsert","pk":{"id":2},"row":{"id":2,"phone":5},"version":20},
  {"table":"contacts","op":"upsert","pk":{"id":3},"row":{"id":3,"phone":6},"version":21},
  {"table":"contacts","op":"upsert","pk":{"id":4},"row":{"id":4,"phone":7},"version":22},
  {"table":"contacts","op":"upsert","pk":{"id":5},"row":{"id":5,"phone":8},"version":23}],
  "cursor":"23"}') AS applied;
SELECT id, phone, typeof(phone) FROM contacts ORDER BY id;
SELECT count(*) AS pending FROM sync_outbox;
