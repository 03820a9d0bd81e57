"""End-to-end: the extension asks for compressed answers and syncd gzips
them (docs/PROTOCOL.md, "Compression"): a first sync and the event stream
pass a counting TCP proxy gzipped, and the rows land as sent."""
import re
import socket
import threading
import time
import urllib.request

from e2e_util import E2ETest, wait_for


class CountingProxy:
    """Relays TCP connections to a syncd and keeps every byte each way (the
    tests' traffic is small), so a test reads the HTTP heads as sent."""

    def __init__(self, upstream_port):
        self.upstream = ("127.0.0.1", upstream_port)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.up = []    # what clients sent, one bytearray per connection
        self.down = []  # what syncd answered, one bytearray per connection
        self.socks = []
        self.threads = [threading.Thread(target=self.accept, daemon=True)]
        self.closing = False
        self.threads[0].start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(self.upstream)
            up, down = bytearray(), bytearray()
            with self.lock:
                self.up.append(up)
                self.down.append(down)
                self.socks += [c, u]
                if self.closing:
                    return
                for args in ((c, u, up), (u, c, down)):
                    t = threading.Thread(target=self.pipe, args=args, daemon=True)
                    self.threads.append(t)
                    t.start()

    def pipe(self, src, dst, keep):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                with self.lock:
                    keep += b
                dst.sendall(b)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def traffic(self):
        with self.lock:
            return b"".join(self.up), b"".join(self.down)

    def close(self):
        # shut every socket down, wait for the threads that read them, and
        # only then close them (a close under a thread's recv is a race,
        # which make tsan reports)
        with self.lock:
            self.closing = True
            socks = [self.sock] + self.socks
            threads = list(self.threads)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in threads:
            t.join(10)
        for s in socks:
            s.close()


def heads(data):
    """The response heads in the bytes a connection received."""
    return [m.group(0) for m in re.finditer(rb"HTTP/1\.1 \d{3}.*?\r\n\r\n", data, re.S)]


class Compression(E2ETest):
    def setUp(self):
        super().setUp()
        self.s = self.syncd("--heartbeat", "1")
        self.proxy = CountingProxy(self.s.port)

    def tearDown(self):
        self.proxy.close()
        super().tearDown()

    def test_first_sync_travels_gzipped(self):
        a = self.client("a", self.s.url)
        a.db.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)"
                     " INSERT INTO todos SELECT printf('todo-%05d', i),"
                     " 'buy milk and bread number ' || i, i % 2 FROM n")
        self.assertEqual(a.one("SELECT sync_push()"), 500)
        b = self.client("b", self.proxy.url)
        self.assertEqual(b.one("SELECT sync_pull()"), 500)
        self.assertEqual(b.todos(), a.todos())
        up, down = self.proxy.traffic()
        self.assertRegex(up, rb"(?i)\r\nAccept-Encoding: [^\r]*gzip")
        pulls = [h for h in heads(down) if b"application/json" in h]
        self.assertTrue(pulls)
        self.assertTrue(all(re.search(rb"(?i)\r\nContent-Encoding: gzip\r\n", h) for h in pulls),
                        pulls)
        # 500 rows are about 60 KB of JSON; gzipped they take a fraction
        with urllib.request.urlopen(self.s.url + "/pull?client_id=b2&limit=1000") as r:
            plain = len(r.read())  # urllib asks for identity
        self.assertLess(len(down) * 4, plain, (len(down), plain))

    def test_events_arrive_through_a_gzipped_stream(self):
        a = self.client("a", self.s.url)
        b = self.client("b", self.proxy.url)
        b.one("SELECT sync_start()")
        wait_for(lambda: b.status()["sse_connected"] == 1, 10, what="stream connected")
        t0 = time.monotonic()
        a.db.execute("INSERT INTO todos VALUES('e1', 'by the stream', 0)")
        self.assertEqual(a.one("SELECT sync_push()"), 1)
        wait_for(lambda: b.todos() == [("e1", "by the stream", 0)], 10, what="row arrived")
        self.assertLess(time.monotonic() - t0, 5)
        _, down = self.proxy.traffic()
        streams = [h for h in heads(down) if b"text/event-stream" in h]
        self.assertTrue(streams, heads(down))
        self.assertRegex(streams[0], rb"(?i)\r\nContent-Encoding: gzip\r\n")
        b.one("SELECT sync_stop()")

    def test_compress_off_asks_for_plain_answers(self):
        a = self.client("a", self.s.url)
        a.db.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)"
                     " INSERT INTO todos SELECT printf('todo-%05d', i), 'row ' || i, 0 FROM n")
        self.assertEqual(a.one("SELECT sync_push()"), 200)
        b = self.client("b", self.proxy.url, {"compress": "off"})
        self.assertEqual(b.one("SELECT sync_config('compress')"), "off")
        self.assertEqual(b.one("SELECT sync_pull()"), 200)
        self.assertEqual(b.todos(), a.todos())
        up, down = self.proxy.traffic()
        self.assertNotRegex(up, rb"(?i)\r\nAccept-Encoding:[^\r]*gzip")
        self.assertNotRegex(down, rb"(?i)\r\nContent-Encoding:")
        # and back on, by sync_config, for the next request
        b.one("SELECT sync_config('compress', 'on')")
        a.db.execute("UPDATE todos SET done = 1")
        self.assertEqual(a.one("SELECT sync_push()"), 200)
        self.assertEqual(b.one("SELECT sync_pull()"), 200)
        up, down = self.proxy.traffic()
        self.assertRegex(down, rb"(?i)\r\nContent-Encoding: gzip\r\n")
