"""GET /events?tables=T (docs/PROTOCOL.md): a stream limited to the
tables a client tracks carries only their changes, the parameter read as
/pull reads it, on SQLite and on PostgreSQL (skipped only when tests/server/run.py could not start a
cluster). The stream caps themselves are hostile-client matters
(test_hostile.py). Many streams on one syncd hold no thread each
(ManyStreamsTest)."""
import http.client
import json
import os
import select
import shutil
import socket
import tempfile
import time
import unittest
import urllib.parse
import zlib

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


class SharedReadTests:
    """A push wakes every caught-up stream at the same cursor: one read of
    the change log serves the streams waiting there with the same tables
    and user (events.c, store_pull_group), each event still carrying its
    own client's last_mutation_id, identity and gzip alike. /health's
    event_reads counts the reads; a read per stream would count one for
    each of them."""

    CLIENTS = 12

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="syncd-shared-")
        self.s = Syncd(self.backend, self.store_args(), ["--max-connections", "400"])
        self.socks = []

    def tearDown(self):
        for k, _ in self.socks:
            k.close()
        rc = self.s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.assertEqual(rc, 0, self.s.log()[-2000:])

    def reads(self):
        status, _, body = self.s.request("GET", "/health")
        self.assertEqual(status, 200, body)
        return body["event_reads"]

    def open(self, client, tables=None, gzip=False):
        k = socket.create_connection((self.s.host, self.s.port), timeout=30)
        path = "/events?client_id=%s" % client + ("&tables=%s" % tables if tables else "")
        k.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n%s\r\n" %
                   (path, "Accept-Encoding: gzip\r\n" if gzip else "")).encode())
        self.socks.append((k, gzip))

    def events_of(self, timeout=30):
        """Every socket's bytes (gunzipped) until each holds an event."""
        raw = {k: b"" for k, _ in self.socks}
        gz = {k: zlib.decompressobj(16 + zlib.MAX_WBITS) for k, g in self.socks if g}
        text = {k: b"" for k, _ in self.socks}
        left = {k for k, _ in self.socks}
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            for k in select.select(list(left), [], [], 0.5)[0]:
                data = k.recv(65536)
                self.assertTrue(data, "a stream ended")
                raw[k] += data
                head, sep, body = raw[k].partition(b"\r\n\r\n")
                if not sep:
                    continue
                body = dechunk(body)
                text[k] = gz[k].decompress(body) if k in gz else body
                if k in gz:
                    gz[k] = zlib.decompressobj(16 + zlib.MAX_WBITS)
                if b"\n\ndata: " in text[k] or b"\ndata: " in text[k]:
                    if text[k].endswith(b"\n\n"):
                        left.discard(k)
        self.assertEqual(len(left), 0, "streams without the event")
        out = []
        for k, _ in self.socks:
            lines = text[k].decode().split("\n")
            data = [ln[6:] for ln in lines if ln.startswith("data: ")]
            ids = [ln[4:] for ln in lines if ln.startswith("id: ")]
            self.assertEqual(len(data), 1, text[k])
            out.append((ids[0], json.loads(data[0])))
        return out

    def settle(self):
        """The reads count once every stream has pulled and parked."""
        last, t0 = self.reads(), time.monotonic()
        while time.monotonic() - t0 < 30:
            time.sleep(0.5)
            now = self.reads()
            if now == last:
                return now
            last = now
        self.fail("event reads never settle")

    def test_one_read_serves_the_streams_at_a_cursor(self):
        s = self.s
        # client cK has processed K + 1 mutations: its last_mutation_id
        for k in range(self.CLIENTS):
            res = s.push("c%d" % k, [ins(j + 1, "c%d-%d" % (k, j)) for j in range(k + 1)])
            self.assertEqual({r["status"] for r in res}, {"applied"})
        want = {}
        for k in range(self.CLIENTS):
            for gzip in (False, True):
                self.open("c%d" % k, gzip=gzip)
                want[len(self.socks) - 1] = k + 1
            # (a client keeps two streams by default: another client here)
            self.open("t%d" % k, tables="todos")
            want[len(self.socks) - 1] = 0
        before = self.settle()
        self.assertEqual(s.push("w", [ins(1, "new")])[0]["status"], "applied")
        got = self.events_of()
        after = self.settle()
        cursors = {c for c, _ in got}
        self.assertEqual(len(cursors), 1, cursors)
        for i, (cursor, page) in enumerate(got):
            self.assertEqual([c["pk"] for c in page["changes"]], [{"id": "new"}], page)
            self.assertEqual(page["cursor"], cursor)
            self.assertFalse(page["has_more"])
            self.assertEqual(page["last_mutation_id"], want[i], (i, page))
        # 36 streams in two groups (with and without tables): a read each
        # would be 36
        self.assertLessEqual(after - before, 8, (before, after))


def dechunk(body):
    """The bytes of an HTTP/1.1 chunked body so far (whole chunks)."""
    out = b""
    while True:
        size, sep, rest = body.partition(b"\r\n")
        if not sep:
            return out
        n = int(size, 16)
        if n == 0 or len(rest) < n + 2:
            return out
        out += rest[:n]
        body = rest[n + 2:]


class SqliteSharedReadTest(SqliteStore, SharedReadTests, unittest.TestCase):
    pass


class PgSharedReadTest(PgStore, SharedReadTests, unittest.TestCase):
    pass


class SqliteStreamFilterTest(SqliteStore, StreamFilterTests, unittest.TestCase):
    pass


class PgStreamFilterTest(PgStore, StreamFilterTests, unittest.TestCase):
    pass


if __name__ == "__main__":
    unittest.main()
