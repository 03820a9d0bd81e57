-- sync_val (one JSON value to an SQLite value) and sync_wire (BLOBs to
-- their wire form), the helpers every incoming and outgoing value uses.
SELECT typeof(sync_val('null')), sync_val('true'), sync_val('false');
SELECT sync_val('9223372036854775807'), sync_val('-9223372036854775808'), typeof(sync_val('9223372036854775808'));
SELECT typeof(sync_val('1.0')), sync_val('1e999') = 9e999, sync_val('-1e999') = -9e999, sync_val(' 42 ');
SELECT sync_val('0.30000000000000004') = 0.1 + 0.2 AS exact;
SELECT sync_val('"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00"') = 'a"b\c/d' || char(8, 12, 10, 13, 9) || 'é😀' AS unescaped;
SELECT hex(sync_val('{"$base64":"AP8Q"}')), hex(sync_val('{ "$base64" : "AP8=" }')), hex(sync_val('{"$hex":"00ff"}')), typeof(sync_val('{"$base64":""}'));
SELECT sync_val('{"a":1}'), sync_val('[1,2]'), sync_val('{"$base64":"AA==","x":1}');
SELECT sync_val(NULL) IS NULL;
-- malformed input is an error, not a guess
SELECT sync_val('tru');
SELECT sync_val('"open');
SELECT sync_val('"bad \x escape"');
SELECT sync_val('1.');
SELECT sync_val('-');
SELECT sync_val('01x');
SELECT sync_val('{"$base64":"A*=="}');
SELECT sync_val('{"$hex":"0"}');
-- sync_wire: {"$hex":..} objects inside a JSON object become {"$base64":..}
SELECT sync_wire('{"a":{"$hex":"00FF10"},"b":"{\"$hex\":\"00\"}","c":{"$hex":""},"d":{"$hex":"0G"}}');
SELECT sync_wire(NULL) IS NULL, sync_wire('{"$hex":"00"}');
-- large BLOBs in both forms decode to every byte
SELECT length(sync_val(json_object('$base64', sync_wire(json_object('b', json_object('$hex', hex(zeroblob(3000))))) ->> '$.b."$base64"'))) AS b64_len;
SELECT length(sync_val(json_object('$hex', hex(zeroblob(3001))))) AS hex_len;
SELECT sync_val(json_object('$base64', sync_wire(json_object('b', json_object('$hex', hex(x'0123456789abcdef0123456789abcdef0123456789abcdef')))) ->> '$.b."$base64"')) = x'0123456789abcdef0123456789abcdef0123456789abcdef' AS same;
