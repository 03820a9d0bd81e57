"""End-to-end: the worker sends the next push batch before it acknowledges
the previous answer, and an acknowledgement that fails with that batch out
loses and doubles nothing.

A proxy in front of a real syncd forwards pushes and pulls and records the
ids of each push; it answers the first push with a 200 that sync_ack
refuses, and serves the event stream itself (heartbeats only), so that no
pull is due between pushes. Nothing here depends on timing: with the
overlap the second request carries the batch after the first; without it
the failed acknowledgement comes first and the first batch goes again.
"""
import http.client
import http.server
import json
import threading
import urllib.parse

from e2e_util import E2ETest, wait_for


class PushProxy(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream):
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.upstream = urllib.parse.urlsplit(upstream).netloc
        self.url = "http://127.0.0.1:%d" % self.server_address[1]
        self.pushes = []  # the ids of each push request, in arrival order
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.t = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        self.t.start()

    def stop(self):
        self.done.set()
        self.shutdown()
        self.server_close()
        self.t.join()


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self, body=None):
        c = http.client.HTTPConnection(self.server.upstream, timeout=10)
        try:
            hdrs = {"Content-Type": "application/json"} if body is not None else {}
            c.request(self.command, self.path, body, hdrs)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def answer(self, status, data):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.startswith("/events"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            try:
                while not self.server.done.wait(0.2):
                    self.wfile.write(b": heartbeat\n\n")
                    self.wfile.flush()
            except OSError:
                pass
            self.close_connection = True
            return
        self.answer(*self.forward())

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status, data = self.forward(body)
        with self.server.lock:
            first = not self.server.pushes
            self.server.pushes.append([m["id"] for m in json.loads(body)["mutations"]])
        if first:
            status, data = 200, b'{"results":"not an array"}'
        self.answer(status, data)


class PushOverlap(E2ETest):
    def test_next_batch_before_ack_and_failed_ack(self):
        s = self.syncd()
        p = PushProxy(s.url)
        self.addCleanup(p.stop)
        a = self.client("a", p.url)
        a.one("SELECT sync_config('batch_size', 5)")
        a.one("SELECT sync_config('backoff_min_ms', 50)")
        a.db.execute("BEGIN")
        for i in range(12):
            a.db.execute("INSERT INTO todos(id, title) VALUES(?, ?)", ("r%02d" % i, "row %d" % i))
        a.db.execute("COMMIT")
        a.one("SELECT sync_start()")
        wait_for(lambda: a.one("SELECT sync_pending()") == 0, what="the outbox drained")
        a.one("SELECT sync_stop()")
        with p.lock:
            pushes = list(p.pushes)
        # 1-5 answered with what sync_ack refuses; 6-10 was out by then (the
        # overlap), its answer dropped; both again from the head, then 11-12.
        self.assertEqual(pushes, [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [1, 2, 3, 4, 5],
                                  [6, 7, 8, 9, 10], [11, 12]])
        want = [("r%02d" % i, "row %d" % i, 0) for i in range(12)]
        self.assertEqual(a.todos(), want)
        self.assertEqual(a.one("SELECT count(*) FROM sync_rejected"), 0)
        self.assertEqual(s.query("SELECT id, title, done FROM todos ORDER BY id"), want)
        # syncd applied each mutation once: re-sent ids were answered from
        # their recorded outcomes, not applied again.
        self.assertEqual(s.query("SELECT count(*) FROM _syncd_outcomes"), [(12,)])
        self.assertEqual(s.query("SELECT max(version) FROM _syncd_changes"), [(12,)])
