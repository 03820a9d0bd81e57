-- Bring-your-own-transport sync_verify (verify.c): the walk's error paths,
-- and a walk an app carries itself. Each error ends the walk under way.
SELECT length(sync_init(NULL));
CREATE TABLE t(id INTEGER PRIMARY KEY, v);
SELECT sync_track('t');
SELECT json_remove(sync_verify_request('t'), '$.client_id') AS body;
SELECT sync_apply('{"changes":[],"cursor":"1"}') AS applied;
SELECT sync_verify_request(NULL);
SELECT sync_verify_request('nope');
SELECT sync_verify_answer('{}');
-- the first request: the whole table, split in 256 buckets
SELECT json_remove(sync_verify_request('t'), '$.client_id') AS body;
SELECT sync_verify_answer(NULL);
SELECT sync_verify_answer('{}');
SELECT length(sync_verify_request('t')) > 0 AS asked;
SELECT sync_verify_answer('[1]');
SELECT length(sync_verify_request('t')) > 0 AS asked;
SELECT sync_verify_answer('{"cursor":"1"}');
SELECT length(sync_verify_request('t')) > 0 AS asked;
SELECT sync_verify_answer('{"cursor":"1","count":0}');
SELECT length(sync_verify_request('t')) > 0 AS asked;
SELECT sync_verify_answer('{"cursor":"1","count":0,"ranges":[{"buckets":[[0,"0000000000000000"]]}]}');
SELECT length(sync_verify_request('t')) > 0 AS asked;
SELECT sync_verify_answer('{"cursor":"1","count":0,"ranges":[{"buckets":[[-1,"0000000000000000"]]}]}');
SELECT length(sync_verify_request('t')) > 0 AS asked;
SELECT sync_verify_answer('{"cursor":"1","count":0,"ranges":[]}');
-- an empty table against an empty server: one round, nothing diverged
SELECT length(sync_verify_request('t')) > 0 AS asked;
WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < 255)
SELECT sync_verify_answer('{"cursor":"1","count":0,"ranges":[{"buckets":'
  || (SELECT json_group_array(json_array(0, '0000000000000000')) FROM i) || '}]}') AS report;
SELECT key, value FROM sync_meta WHERE key IN ('diverged_total', 'last_verify') ORDER BY key;
SELECT sync_verify_answer('{}');
-- below the top, a bucket that differs is split by one hex digit (16
-- buckets), by two only while that leaves more than 64 rows a bucket: the
-- server's bucket 00 holds 20000 rows (split 2), its bucket 01 100 (split
-- 1), each request one split
SELECT length(sync_verify_request('t')) > 0 AS asked;
WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < 255)
SELECT json_remove(sync_verify_answer('{"cursor":"1","count":20100,"ranges":[{"buckets":'
  || (SELECT json_group_array(json_array(CASE n WHEN 0 THEN 20000 WHEN 1 THEN 100 ELSE 0 END,
                                         '0000000000000000')) FROM i) || '}]}'),
  '$.client_id') AS body;
WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < 255)
SELECT json_remove(sync_verify_answer('{"cursor":"1","count":20100,"ranges":[{"buckets":'
  || (SELECT json_group_array(json_array(0, '0000000000000000')) FROM i) || '}]}'),
  '$.client_id') AS body;
WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < 15)
SELECT sync_verify_answer('{"cursor":"1","count":20100,"ranges":[{"buckets":'
  || (SELECT json_group_array(json_array(0, '0000000000000000')) FROM i) || '}]}') AS report;
