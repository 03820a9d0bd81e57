"""GET /events?tables=T (docs/PROTOCOL.md): a stream limited to the
tables a client tracks carries only their changes, the parameter read as
/pull reads it, on SQLite and on PostgreSQL (skipped only when tests/server/run.py could not start a
cluster). The stream caps themselves are hostile-client matters
(test_hostile.py)."""
import http.client
import shutil
import tempfile
import time
import unittest
import urllib.parse

from syncd_util import EventStream, PgStore, SqliteStore, Syncd, ins


def events(server, client_id, tables, last_event_id=None, timeout=10):
    """An EventStream whose query carries tables (sent as given, so the
    test controls its encoding)."""
    ev = EventStream.__new__(EventStream)
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    ev.conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    ev.conn.request("GET", "/events?client_id=%s&tables=%s" %
                    (urllib.parse.quote(client_id), tables), headers=headers)
    ev.resp = ev.conn.getresponse()
    ev.status = ev.resp.status
    return ev


def lst(mid, id_, name="l"):
    return {"id": mid, "table": "lists", "op": "insert", "pk": {"id": id_},
            "data": {"id": id_, "name": name}}


def item(mid, list_id, pos):
    return {"id": mid, "table": "items", "op": "insert", "pk": {"list_id": list_id, "pos": pos},
            "data": {"list_id": list_id, "pos": pos, "label": "x"}}


class StreamFilterTests:
    backend = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="syncd-streams-")
        self.s = Syncd(self.backend, self.store_args(), ["--heartbeat", "1"])

    def tearDown(self):
        rc = self.s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.assertEqual(rc, 0, self.s.log()[-2000:])

    def tables_of(self, ev):
        got = ev.next_event(5)
        return got, sorted({c["table"] for c in got["data"]["changes"]})

    def test_a_stream_carries_only_its_tables(self):
        s = self.s
        start = s.pull("w")["cursor"]
        # names percent-encoded one by one and joined by commas, the whole
        # encoded again as a query value (%256C: an "l" encoded twice); an
        # unknown name and empty items are ignored
        ev = events(s, "w", "todos%2C%256Cists,nope,,")
        self.assertEqual(ev.status, 200)
        s.push("c", [ins(1, "a"), lst(2, 7), item(3, 7, 1)])
        got, tables = self.tables_of(ev)
        self.assertEqual(tables, ["lists", "todos"])
        self.assertFalse(got["data"]["has_more"])
        # a commit of other tables only sends no event at all (heartbeats
        # every second keep the reads short)
        s.push("c", [item(4, 7, 2)])
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:
            self.assertEqual(ev.next(5)[0], "comment")
        # the next wanted change comes with a cursor past the skipped one
        s.push("c", [ins(5, "b")])
        got, tables = self.tables_of(ev)
        self.assertEqual(tables, ["todos"])
        self.assertEqual(got["id"], s.pull("w", start)["cursor"])
        ev.close()
        # a replay (Last-Event-ID) is filtered the same way
        ev = events(s, "w", "items", last_event_id=start)
        got, tables = self.tables_of(ev)
        self.assertEqual(tables, ["items"])
        self.assertEqual(sorted(c["pk"]["pos"] for c in got["data"]["changes"]), [1, 2])
        ev.close()
        # a parameter that names no synced table carries nothing, and one
        # encoded once only names another table ("a%2Cb" is one name, a,b)
        for tables in [",", "nope", "todos%252Clists"]:
            ev = events(s, "w", tables, last_event_id=start)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.5:
                self.assertEqual(ev.next(5)[0], "comment", tables)
            ev.close()

    def test_filtered_pages_keep_their_shape(self):
        s = self.s
        start = s.pull("w")["cursor"]
        s.push("c", [ins(i + 1, "k%04d" % i) if i % 2 else lst(i + 1, 100 + i)
                     for i in range(2500)])
        ev = events(s, "w", "lists", last_event_id=start)
        seen, t0 = [], time.monotonic()
        while len(seen) < 1250 and time.monotonic() - t0 < 20:
            got, tables = self.tables_of(ev)
            self.assertEqual(tables, ["lists"])
            page = got["data"]
            self.assertEqual(set(page), {"changes", "cursor", "has_more", "last_mutation_id"})
            self.assertEqual(page["cursor"], got["id"])
            seen += [c["pk"]["id"] for c in page["changes"]]
        self.assertEqual(sorted(seen), [100 + i for i in range(0, 2500, 2)])
        ev.close()


class SqliteStreamFilterTest(SqliteStore, StreamFilterTests, unittest.TestCase):
    pass


class PgStreamFilterTest(PgStore, StreamFilterTests, unittest.TestCase):
    pass


if __name__ == "__main__":
    unittest.main()
