"""GET /events?tables=T (docs/PROTOCOL.md): a stream limited to the
tables a client tracks carries only their changes, the parameter read as
/pull reads it, on SQLite and on PostgreSQL (skipped only when tests/server/run.py could not start a
cluster). The stream caps themselves are hostile-client matters
(test_hostile.py). Many streams on one syncd hold no thread each
(ManyStreamsTest)."""
import http.client
import os
import select
import shutil
import socket
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


class ManyStreamsTest(SqliteStore, unittest.TestCase):
    """Issue 17: a stream waits suspended, not in a thread of its own
    (events.c). 600 streams of 300 clients leave syncd's threads at its
    fixed few (a thread per connection made them 600 more), each stream
    gets the next change, and /health and /push answer meanwhile; SIGTERM
    ends every stream and syncd exits cleanly. Nothing here is timed
    beyond generous bounds."""

    N = 600

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="syncd-many-")
        self.s = Syncd(self.backend, self.store_args(), ["--max-connections", "2000"])
        self.socks = []

    def tearDown(self):
        for k in self.socks:
            k.close()
        rc = self.s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.assertEqual(rc, 0, self.s.log()[-2000:])

    def read_until(self, want, timeout):
        """Read every socket until its bytes hold want (or it ends, when
        want is None); returns the sockets that did not get there."""
        got = {k: b"" for k in self.socks}
        left = set(self.socks)
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            for k in select.select(list(left), [], [], 0.5)[0]:
                data = k.recv(65536)
                got[k] += data
                if (want is None and not data) or (want is not None and want in got[k]):
                    left.discard(k)
        return left

    def test_many_streams_few_threads(self):
        s = self.s
        for i in range(self.N):
            k = socket.create_connection((s.host, s.port), timeout=30)
            k.sendall(b"GET /events?client_id=m%d HTTP/1.1\r\nHost: x\r\n"
                      b"Accept: text/event-stream\r\n\r\n" % (i // 2))
            self.socks.append(k)
        self.assertEqual(len(self.read_until(b": ok", 60)), 0)
        threads = len(os.listdir("/proc/%d/task" % s.proc.pid))
        self.assertLess(threads, 48, "a thread per stream?")
        self.assertEqual(s.request("GET", "/health", timeout=10)[0], 200)
        self.assertEqual(s.push("w", [ins(1, "a")])[0]["status"], "applied")
        self.assertEqual(len(self.read_until(b"event: changes", 60)), 0)
        # shutdown ends them all: each reads the end of its stream
        self.assertEqual(s.stop(), 0, s.log()[-2000:])
        self.assertEqual(len(self.read_until(None, 30)), 0)


class SqliteStreamFilterTest(SqliteStore, StreamFilterTests, unittest.TestCase):
    pass


class PgStreamFilterTest(PgStore, StreamFilterTests, unittest.TestCase):
    pass


if __name__ == "__main__":
    unittest.main()
