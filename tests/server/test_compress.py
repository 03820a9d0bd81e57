"""Compression (docs/PROTOCOL.md, "Compression"): a client whose
Accept-Encoding takes gzip gets large answers gzipped (the same JSON once
decoded) and its event stream as one gzip member flushed after every event,
so each event arrives at once; small answers, clients that do not ask and a
syncd run with --no-compress stay identity."""
import http.client
import json
import shutil
import tempfile
import time
import unittest
import urllib.parse
import zlib

from syncd_util import SECRET, ManySyncd, Syncd, bearer, claims, ins, make_token

GZIP = {"Accept-Encoding": "gzip"}


def todos(page):
    """The todos of a page (the schema seeds a row of lists)."""
    return [c for c in json.loads(page)["changes"] if c["table"] == "todos"]


def rows(n, start=0):
    return [ins(start + i + 1, "row-%05d" % (start + i), "a title of a typical row %d" % i,
                note="some note text that repeats") for i in range(n)]


class CompressTests(unittest.TestCase):
    extra = ["--heartbeat", "1"]

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="syncd-gzip-")
        self.s = Syncd("sqlite", ["--db", self.tmp + "/server.db"], self.extra)

    def tearDown(self):
        rc = self.s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.assertEqual(rc, 0, self.s.log()[-2000:])

    def get(self, path, headers=None):
        """(status, headers as a dict of lowercase names, raw body)"""
        status, resp, data = self.s.request("GET", path, headers=headers, raw=True)
        return status, {k.lower(): v for k, v in resp.getheaders()}, data

    def test_pull_is_gzipped_when_asked_and_decodes_to_the_same_json(self):
        self.s.push("w", rows(200))
        status, h, plain = self.get("/pull?client_id=c")
        self.assertEqual(status, 200)
        self.assertNotIn("content-encoding", h)
        self.assertEqual(h.get("vary"), "Accept-Encoding")
        status, h, packed = self.get("/pull?client_id=c", GZIP)
        self.assertEqual(status, 200)
        self.assertEqual(h.get("content-encoding"), "gzip")
        self.assertEqual(h.get("vary"), "Accept-Encoding")
        self.assertEqual(h.get("content-type"), "application/json")
        self.assertEqual(int(h["content-length"]), len(packed))
        self.assertEqual(zlib.decompress(packed, 16 + 15), plain)
        self.assertEqual(len(todos(plain)), 200)
        self.assertLess(len(packed) * 4, len(plain))

    def test_accept_encoding_is_read_as_http_says(self):
        self.s.push("w", rows(50))
        for ae, gz in [("gzip", True), ("GZIP", True), ("x-gzip", True), ("*", True),
                       ("deflate, gzip;q=0.5", True), ("br;q=1.0, gzip ; q=0.001", True),
                       ("gzip;q=0", False), ("gzip;q=0.000", False), ("*;q=0", False),
                       ("deflate", False), ("identity", False), ("gzip;q=0, *", False),
                       ("", False), ("gzipx", False)]:
            with self.subTest(ae=ae):
                status, h, body = self.get("/pull?client_id=c", {"Accept-Encoding": ae})
                self.assertEqual(status, 200)
                self.assertEqual(h.get("content-encoding"), "gzip" if gz else None)
                text = zlib.decompress(body, 16 + 15) if gz else body
                self.assertEqual(len(todos(text)), 50)

    def test_small_answers_stay_uncompressed(self):
        self.s.push("w", rows(1))
        for path in ["/pull?client_id=c", "/pull?client_id=zz&cursor=bad", "/health"]:
            with self.subTest(path=path):
                status, h, body = self.get(path, GZIP)
                self.assertNotIn("content-encoding", h)
                json.loads(body)
        status, _, body = self.get("/pull?client_id=c", GZIP)
        self.assertLess(len(body), 1024)

    def test_a_large_push_answer_is_gzipped_too(self):
        status, resp, data = self.s.request(
            "POST", "/push", {"client_id": "w", "mutations": rows(200)}, headers=GZIP, raw=True)
        self.assertEqual(status, 200)
        self.assertEqual(resp.getheader("Content-Encoding"), "gzip")
        self.assertEqual(len(json.loads(zlib.decompress(data, 16 + 15))["results"]), 200)

    def open_stream(self, client_id, headers):
        return GzipStream(self, self.s, client_id, headers)

    def test_an_event_stream_is_flushed_per_event(self):
        st = self.open_stream("c", GZIP)
        try:
            self.assertEqual(st.resp.status, 200)
            self.assertEqual(st.resp.getheader("Content-Encoding"), "gzip")
            self.assertEqual(st.resp.getheader("Vary"), "Accept-Encoding")
            st.until(lambda t: t.startswith(b": ok\n\n"), 2)
            for k in range(3):
                # each event must decode on its own, while the stream stays open
                t0 = time.monotonic()
                self.s.push("w", rows(20, 20 * k))
                st.until(lambda t: t.count(b"event: changes") == k + 1 and t.endswith(b"\n\n"), 2)
                self.assertLess(time.monotonic() - t0, 2)
                last = st.text.rsplit(b"data: ", 1)[1]
                self.assertEqual(len(todos(last)), 20)
                self.assertFalse(st.d.eof)
            # heartbeats are flushed too
            st.until(lambda t: t.endswith(b": ping\n\n"), 3)
        finally:
            st.conn.close()

    def test_a_stream_without_gzip_is_identity(self):
        st = self.open_stream("c", {"Accept-Encoding": "identity"})
        try:
            self.assertIsNone(st.resp.getheader("Content-Encoding"))
            self.assertEqual(st.resp.getheader("Vary"), "Accept-Encoding")
            st.conn.sock.settimeout(5)
            self.assertTrue(st.resp.read1(65536).startswith(b": ok\n\n"))
        finally:
            st.conn.close()


class GzipStream:
    """A GET /events read as raw bytes and inflated as they come."""

    def __init__(self, test, server, client_id, headers):
        self.test = test
        self.conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        self.conn.request("GET", "/events?" + urllib.parse.urlencode({"client_id": client_id}),
                          headers=dict(headers, Accept="text/event-stream"))
        self.resp = self.conn.getresponse()
        self.d = zlib.decompressobj(16 + 15)
        self.text = b""

    def until(self, pred, timeout):
        """Read and inflate until pred(text); fails when it takes longer."""
        deadline = time.monotonic() + timeout
        while not pred(self.text):
            left = deadline - time.monotonic()
            self.test.assertGreater(left, 0, "not decoded in time: %r" % self.text[-300:])
            self.conn.sock.settimeout(left)
            chunk = self.resp.read1(65536)
            self.test.assertTrue(chunk, "stream ended")
            self.text += self.d.decompress(chunk)

    def to_end(self, timeout):
        """Read and inflate until the server ends the stream."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            self.test.assertGreater(left, 0, "the stream did not end")
            self.conn.sock.settimeout(left)
            chunk = self.resp.read1(65536)
            if not chunk:
                return
            self.text += self.d.decompress(chunk)


class GzipStreamEndTest(ManySyncd, unittest.TestCase):
    def test_a_stream_that_ends_ends_its_gzip_member(self):
        # a JWT's expiry ends a stream from the server's side, the socket open
        secret = self.file("secret", SECRET + "\n")
        s = Syncd("sqlite", ["--db", self.tmp + "/server.db"],
                  ["--jwt-secret-file", secret, "--jwt-leeway", "0", "--heartbeat", "1"])
        self.servers.append(s)
        st = GzipStream(self, s, "c", dict(GZIP, **bearer(make_token(claims(ttl=2)))))
        try:
            self.assertEqual(st.resp.getheader("Content-Encoding"), "gzip")
            st.to_end(10)
            self.assertTrue(st.d.eof, "the gzip member was not ended: %r" % st.text)
            self.assertTrue(st.text.startswith(b": ok\n\n"))
        finally:
            st.conn.close()


class NoCompressTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="syncd-gzip-")
        self.s = Syncd("sqlite", ["--db", self.tmp + "/server.db"], ["--no-compress"])

    def tearDown(self):
        rc = self.s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.assertEqual(rc, 0, self.s.log()[-2000:])

    def test_no_compress_answers_identity(self):
        self.s.push("w", rows(200))
        status, resp, body = self.s.request("GET", "/pull?client_id=c", headers=GZIP, raw=True)
        self.assertEqual(status, 200)
        self.assertIsNone(resp.getheader("Content-Encoding"))
        self.assertIsNone(resp.getheader("Vary"))
        self.assertEqual(len(todos(body)), 200)
        ev = self.s.events("c", headers=GZIP)
        try:
            self.assertIsNone(ev.resp.getheader("Content-Encoding"))
            self.assertEqual(ev.next(5), ("comment", "ok"))
        finally:
            ev.close()


if __name__ == "__main__":
    unittest.main()
