"""End-to-end: a pull and the event stream never overlap, so an answer
computed before an event cannot take back what the event brought.

A proxy in front of a real syncd holds the worker's pull (computed at once,
its answer relayed only when the test says) and serves the event stream
itself: on connect, one event with what the server has after the stream's
cursor (as syncd would send), then heartbeats; the test can also send an
event on the stream that is open. The sequence:

  1. the client is caught up; another client sets todo 'a' to v1;
  2. the worker is asked to pull; the proxy computes the answer (a = v1)
     and holds it;
  3. the other client sets 'a' to v2; the event with it (computed from the
     client's cursor, as syncd's stream would) goes out on the open stream;
  4. the held answer (a = v1, an older cursor) is relayed.

Had the event been applied during the pull, the older answer would take
'a' back to v1 and move the cursor back under the stream, which goes on
after v2: the client would keep v1 until the stream reconnects. The
worker closes the stream while its pull is out and opens it again from
the pull's cursor, so it ends with v2.
"""
import json
import threading
import time
import urllib.parse
import urllib.request

from e2e_util import E2ETest, RelayProxy, wait_for


class PullEventProxy(RelayProxy):
    def __init__(self, upstream):
        self.held = threading.Event()  # a pull is being held
        self.release = threading.Event()
        self.hold = False
        self.streams = []  # open event streams' handlers
        self.lock = threading.Lock()
        self.base = upstream
        super().__init__(upstream)

    def pull(self, cursor):
        q = urllib.parse.urlencode({"client_id": "proxy", "cursor": cursor})
        with urllib.request.urlopen(self.base + "/pull?" + q, timeout=10) as r:
            return r.read()

    def relay(self, h, body):
        if h.path.startswith("/pull") and self.hold:
            self.hold = False
            status, data = h.forward(body)
            self.held.set()
            self.release.wait(20)
            return h.answer(status, data)
        return super().relay(h, body)

    def send(self, h, data):
        h.wfile.write(b"event: changes\ndata: " + data + b"\n\n")
        h.wfile.flush()

    def stream(self, h):
        """The event stream: what the server has after the cursor, then
        heartbeats until the client or the test ends it."""
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(h.path).query)
        cursor = h.headers.get("Last-Event-ID") or q.get("cursor", [""])[0]
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.end_headers()
        try:
            page = self.pull(cursor)
            if json.loads(page)["changes"]:
                self.send(h, page)
            with self.lock:
                self.streams.append(h)
            while not self.done.wait(0.2):
                with self.lock:
                    h.wfile.write(b": heartbeat\n\n")
                    h.wfile.flush()
        except OSError:
            pass
        with self.lock:
            if h in self.streams:
                self.streams.remove(h)
        h.close_connection = True

    def event(self, data):
        """Sends data as an event on every open stream; how many took it."""
        n = 0
        with self.lock:
            for h in list(self.streams):
                try:
                    self.send(h, data)
                    n += 1
                except OSError:
                    self.streams.remove(h)
        return n

    def stop(self):
        self.release.set()
        super().stop()


class PullEvents(E2ETest):
    def test_an_older_pull_answer_does_not_undo_an_event(self):
        s = self.syncd()
        p = PullEventProxy(s.url)
        self.addCleanup(p.stop)
        s.push("other", [{"id": 1, "table": "todos", "op": "insert", "pk": {"id": "a"},
                          "data": {"id": "a", "title": "v0", "done": 0}}])
        a = self.client("a", p.url)
        a.one("SELECT sync_config('verify_interval_s', 0)")
        a.one("SELECT sync_config('backoff_min_ms', 20)")
        a.one("SELECT sync_start()")
        wait_for(lambda: a.todos() == [("a", "v0", 0)], what="the first sync")
        wait_for(lambda: a.one("SELECT sse_connected FROM sync_status"), what="the stream")
        cursor = a.one("SELECT value FROM sync_meta WHERE key = 'cursor'")

        s.push("other", [{"id": 2, "table": "todos", "op": "update", "pk": {"id": "a"},
                          "data": {"title": "v1"}}])
        p.hold = True
        a.one("SELECT sync_online(1)")  # back online: the worker pulls at once
        self.assertTrue(p.held.wait(10), "the worker did not pull")
        s.push("other", [{"id": 3, "table": "todos", "op": "update", "pk": {"id": "a"},
                          "data": {"title": "v2"}}])
        # what syncd's stream, started at the client's cursor, sends next
        p.event(p.pull(cursor))
        time.sleep(0.5)  # the event is applied, if the stream is open
        p.release.set()
        want = s.query("SELECT id, title, done FROM todos ORDER BY id")
        self.assertEqual(want, [("a", "v2", 0)])
        # the client may pass through v1 (the held answer) but must end on
        # v2 and stay there: its stream goes on after the held answer's cursor
        wait_for(lambda: a.todos() == want and a.one("SELECT sse_connected FROM sync_status"),
                 what="v2 and the stream back")
        time.sleep(1.0)
        self.assertEqual(a.todos(), want)
