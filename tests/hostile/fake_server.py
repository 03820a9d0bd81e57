"""A fake sync server that answers whatever a test tells it to, for the
hostile-server tests (tests/hostile/test_*.py). Standard library only.

    srv = FakeServer()                       # 127.0.0.1, an OS-chosen port
    srv.route("/pull", json_body({"changes": "x"}))
    srv.route("/events", endless_line())
    ... point the client at srv.url ...
    srv.requests                             # [(method, path, headers), ...]
    srv.close()

A route is a function (handler) -> None that writes the whole answer with
the handler's send_response/send_header/end_headers/wfile. The helpers below
build the hostile answers; each one stops quietly when the client hangs up,
and the endless ones also stop when the server is closed.
"""
import http.server
import json
import socketserver
import ssl
import threading
import time

CHUNK = 64 * 1024


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _serve(self):
        srv = self.server.fake
        path = self.path.split("?", 1)[0]
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with srv.lock:
            srv.requests.append((self.command, self.path, dict(self.headers), body))
        fn = srv.routes.get(path) or srv.routes.get("*")
        if fn is None:
            fn = json_body({"error": "no such path"}, status=404)
        try:
            fn(self)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    do_GET = _serve
    do_POST = _serve


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # clients hanging up mid-answer is what these tests do


class FakeServer:
    """host: the name put in url (the socket always binds 127.0.0.1).
    tls: an ssl.SSLContext to serve https with."""

    def __init__(self, host="127.0.0.1", tls=None):
        self.routes = {}
        self.requests = []
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.fake = self
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"{'https' if tls else 'http'}://{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def route(self, path, fn):
        self.routes[path] = fn

    def paths(self):
        with self.lock:
            return [r[1].split("?", 1)[0] for r in self.requests]

    def close(self):
        self.closed.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def raw_body(data, status=200, ctype="application/json", headers=()):
    """A fixed answer."""
    if isinstance(data, str):
        data = data.encode()

    def fn(h):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    return fn


def json_body(obj, status=200, ctype="application/json"):
    return raw_body(json.dumps(obj), status, ctype)


def huge_body(size, declared=True, ctype="application/json"):
    """size bytes of a JSON string, sent as fast as the client takes them;
    with declared=False there is no Content-Length (the body ends when the
    connection closes), so only the client's running count can stop it."""

    def fn(h):
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        if declared:
            h.send_header("Content-Length", str(size))
        else:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        h.wfile.write(b'{"changes":"')
        left = size - 12
        block = b"x" * CHUNK
        while left > 0 and not h.server.fake.closed.is_set():
            n = min(left, CHUNK)
            h.wfile.write(block[:n])
            left -= n

    return fn


def drip(prefix=b"", ctype="application/json", every=1.0, byte=b"x", status=200):
    """Headers at once, then the body one byte per `every` seconds, forever."""

    def fn(h):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Connection", "close")
        h.close_connection = True
        h.end_headers()
        h.wfile.write(prefix)
        h.wfile.flush()
        while not h.server.fake.closed.wait(every):
            h.wfile.write(byte)
            h.wfile.flush()

    return fn


def event_stream(chunks, then_hold=True, ctype="text/event-stream"):
    """An event stream of the given chunks (bytes), then held open (with no
    more bytes) until the server closes or the client hangs up."""

    def fn(h):
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Connection", "close")
        h.close_connection = True
        h.end_headers()
        for c in chunks:
            h.wfile.write(c)
        h.wfile.flush()
        while then_hold and not h.server.fake.closed.wait(0.2):
            pass

    return fn


def endless_line():
    """One SSE line that never ends: 'data: xxxx...' as fast as it is read."""

    def fn(h):
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Connection", "close")
        h.close_connection = True
        h.end_headers()
        h.wfile.write(b"data: ")
        block = b"x" * CHUNK
        while not h.server.fake.closed.is_set():
            h.wfile.write(block)

    return fn


def endless_headers():
    """A status line, then header lines forever (the body never starts)."""

    def fn(h):
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        line = b"X-Filler: " + b"y" * 1000 + b"\r\n"
        block = line * 64
        while not h.server.fake.closed.is_set():
            h.wfile.write(block)

    return fn


def redirect(location, status=302):
    return raw_body(b"", status=status, headers=[("Location", location)])
