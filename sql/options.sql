-- sync_init's options are sync_config's keys (but the token), checked by the
-- same code (ext/engine/options.c); a refused option changes nothing.
SELECT length(sync_init(NULL)) AS id_length;
CREATE VIEW config AS SELECT substr(key, 8) AS key, value FROM sync_meta WHERE key LIKE 'config.%' ORDER BY key;
-- booleans: on/off, 1/0, true/false (text in any case), JSON true/false
SELECT sync_init(NULL, '{"sse":false}') IS NOT NULL AS ok, (SELECT value FROM config WHERE key = 'sse') AS sse;
SELECT sync_init(NULL, '{"sse":1}') IS NOT NULL AS ok, (SELECT value FROM config WHERE key = 'sse') AS sse;
SELECT sync_init(NULL, '{"sse":"0"}') IS NOT NULL AS ok, (SELECT value FROM config WHERE key = 'sse') AS sse;
SELECT sync_init(NULL, '{"sse":"TRUE"}') IS NOT NULL AS ok, (SELECT value FROM config WHERE key = 'sse') AS sse;
SELECT sync_init(NULL, '{"sse":"off"}') IS NOT NULL AS ok, (SELECT value FROM config WHERE key = 'sse') AS sse;
SELECT sync_init(NULL, '{"sse":true}') IS NOT NULL AS ok, (SELECT value FROM config WHERE key = 'sse') AS sse;
SELECT sync_init(NULL, '{"sse":2}');
SELECT sync_init(NULL, '{"sse":"maybe"}');
SELECT sync_init(NULL, '{"sse":0.5}');
-- counts, max_body and sse_stall_ms included; a whole REAL or digits as text
-- count too; max_body is at least 4096
SELECT sync_init(NULL, '{"max_body":65536,"sse_stall_ms":1000,"batch_size":"50","pull_limit":20.0}') IS NOT NULL AS ok;
SELECT * FROM config;
SELECT sync_init(NULL, '{"max_body":4095}');
SELECT sync_init(NULL, '{"max_body":4096}') IS NOT NULL AS ok, (SELECT value FROM config WHERE key = 'max_body') AS max_body;
SELECT sync_init(NULL, '{"batch_size":0}');
SELECT sync_init(NULL, '{"batch_size":-1}');
SELECT sync_init(NULL, '{"batch_size":50.5}');
SELECT sync_init(NULL, '{"batch_size":true}');
SELECT sync_init(NULL, '{"batch_size":"5x"}');
SELECT sync_init(NULL, '{"batch_size":[1]}');
SELECT sync_init(NULL, '{"timeout_ms":2147483648}');
-- null puts an option back to its default
SELECT sync_init(NULL, '{"batch_size":null,"pull_limit":null}') IS NOT NULL AS ok;
SELECT * FROM config;
-- backoff_min_ms may not be above backoff_max_ms: in one call, and whichever
-- is set first (against the stored value or the default)
SELECT sync_init(NULL, '{"backoff_min_ms":5000,"backoff_max_ms":1000}');
SELECT sync_init(NULL, '{"backoff_max_ms":1000}') IS NOT NULL AS ok;
SELECT sync_init(NULL, '{"backoff_min_ms":5000}');
SELECT sync_init(NULL, '{"backoff_max_ms":null,"backoff_min_ms":70000}');
SELECT sync_init(NULL, '{"backoff_min_ms":1000}') IS NOT NULL AS ok;
SELECT sync_init(NULL, '{"backoff_max_ms":999}');
SELECT * FROM config WHERE key LIKE 'backoff%';
-- header: one "Name: value" line, a value, no control character, and not
-- Authorization (the token's job)
SELECT sync_init(NULL, '{"header":"X-App: demo"}') IS NOT NULL AS ok, (SELECT value FROM config WHERE key = 'header') AS header;
SELECT sync_init(NULL, '{"header":"no colon"}');
SELECT sync_init(NULL, '{"header":"X-A: b\r\nX-B: c"}');
SELECT sync_init(NULL, '{"header":"X-App:"}');
SELECT sync_init(NULL, '{"header":": v"}');
SELECT sync_init(NULL, '{"header":"X A: v"}');
SELECT sync_init(NULL, '{"header":5}');
SELECT sync_init(NULL, '{"header":"authorization: Bearer abc"}');
SELECT sync_init(NULL, '{"header":"Authorization:Bearer abc"}');
SELECT value AS header FROM config WHERE key = 'header';
-- ca_file: a readable PEM file ("-----BEGIN " anywhere before a NUL byte,
-- also across the reader's 8 KiB chunks)
SELECT writefile('ca.pem', '# a bundle' || char(10) || '-----BEGIN CERTIFICATE-----' || char(10) || 'MIIB' || char(10) || '-----END CERTIFICATE-----' || char(10)) > 0 AS written;
SELECT writefile('late.pem', replace(hex(zeroblob(4095)), '0', 'x') || char(10) || '-----BEGIN CERTIFICATE-----' || char(10)) > 0 AS written;
SELECT writefile('der.crt', x'3082010a02820101002d2d2d2d2d424547494e20') > 0 AS written;
SELECT writefile('notes.txt', 'just text') > 0 AS written;
SELECT sync_init(NULL, '{"ca_file":"ca.pem"}') IS NOT NULL AS ok, (SELECT value FROM config WHERE key = 'ca_file') AS ca_file;
SELECT sync_init(NULL, '{"ca_file":"late.pem"}') IS NOT NULL AS ok, (SELECT value FROM config WHERE key = 'ca_file') AS ca_file;
SELECT sync_init(NULL, '{"ca_file":"missing.pem"}');
SELECT sync_init(NULL, '{"ca_file":"der.crt"}');
SELECT sync_init(NULL, '{"ca_file":"notes.txt"}');
SELECT sync_init(NULL, '{"ca_file":"."}');
SELECT sync_init(NULL, '{"ca_file":""}');
SELECT sync_init(NULL, '{"ca_file":1}');
-- the token is never stored: sync_config sets it, in memory
SELECT sync_init(NULL, '{"token":"secret"}');
-- a refused option leaves everything as it was, the url and the other
-- options of the same call included
SELECT sync_init('http://new.example', '{"batch_size":7,"header":"Authorization: x"}');
SELECT value AS url FROM sync_meta WHERE key = 'url';
SELECT * FROM config;
