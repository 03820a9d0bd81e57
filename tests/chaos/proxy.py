"""A fault-injecting HTTP/1.1 proxy for the chaos test (tests/chaos/run.py).

    p = FaultProxy("127.0.0.1", syncd_port, random.Random(seed))
    ... clients sync through p.url ...
    p.calm()          # from now on every request passes untouched
    p.counts          # {"reset": 12, "stall": 9, ...}: each fault as it acted
    p.force = f       # f(method, path) -> kind or None, in place of the deck
    p.close()

It parses each request of a client connection (request line, headers,
Content-Length body), sends it to the server on a fresh connection with
"Connection: close", and relays the answer, keeping the client's connection
open when the answer has a length. Faults are dealt from a shuffled deck
(every kind once per deck, the rest pass), so a run of a few hundred
requests meets each kind several times whatever the seed:

  reset     the connection is reset (RST): before the request reaches the
            server, or after the server has answered it (the answer is lost)
  stall     the answer, or an event stream, waits 0.3 to 4 s
  cut       the answer (or an event stream) ends early, part way through
  burst     the next 2 to 8 requests get 502 or 503; a 502 is sent after the
            request was forwarded (the server acted, the client is told not)
  replay    the request is sent to the server twice and the second answer is
            relayed; for a push, half the time an older push (of any client)
            is sent again first

Standard library only.
"""
import socket
import struct
import threading
import time

KINDS = ("reset", "stall", "cut", "burst", "replay")
DECK_PASS = 14  # plain requests per deck, beside one card of each kind
MAX_HEAD = 64 << 10
MAX_BODY = 64 << 20


def _recv_until(sock, buf, marker):
    while marker not in buf:
        if len(buf) > MAX_HEAD:
            raise ConnectionError("header too long")
        d = sock.recv(65536)
        if not d:
            raise EOFError
        buf += d
    return buf


def _recv_exact(sock, buf, n):
    while len(buf) < n:
        d = sock.recv(min(65536, n - len(buf)))
        if not d:
            raise EOFError
        buf += d
    return buf


def _headers(head):
    lines = head.decode("latin-1").split("\r\n")
    h = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        h[k.strip().lower()] = v.strip()
    return lines[0], lines[1:], h


def _rst(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _error_response(code):
    body = b'{"error":"chaos proxy"}'
    reason = {502: "Bad Gateway", 503: "Service Unavailable"}[code]
    return (f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class FaultProxy:
    def __init__(self, host, port, rnd, trace=None):
        self.upstream = (host, port)
        self.trace_file = open(trace, "a") if trace else None
        self.rnd = rnd
        self.lock = threading.Lock()
        self.counts = dict.fromkeys(KINDS + ("requests", "http_5xx", "stale_replay"), 0)
        self.deck = []
        self.burst_left = 0
        self.burst_code = 503
        self.pushes = []  # recent push requests, for stale replays
        self.calm_flag = False
        self.force = None  # or f(method, path) -> kind: a script in place of the deck
        self.closed = False
        self.conns = set()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    # ---- control ----

    def calm(self):
        with self.lock:
            self.calm_flag = True
            self.burst_left = 0

    def close(self):
        self.closed = True
        self.sock.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(5)

    def _trace(self, c, what, data=b""):
        if self.trace_file:
            with self.lock:
                self.trace_file.write("%.3f %d %s %s\n" % (time.time(), c.fileno(), what,
                                                          data.decode("latin-1")))
                self.trace_file.flush()

    def _count(self, kind, n=1):
        with self.lock:
            self.counts[kind] += n

    def _deal(self, method, path, can):
        """The fault for this request: a kind, or None. A card the request
        cannot take (replay of an event stream) stays in the deck."""
        with self.lock:
            self.counts["requests"] += 1
            if self.force:
                kind = self.force(method, path)
                if kind == "burst":
                    self.counts["burst"] += 1
                return kind
            if self.calm_flag:
                return None
            if self.burst_left > 0:
                self.burst_left -= 1
                return "burst"
            if not self.deck:
                self.deck = list(KINDS) + [None] * DECK_PASS
                self.rnd.shuffle(self.deck)
            for i, card in enumerate(self.deck):
                if card is None or card in can:
                    del self.deck[i]
                    if card == "burst":
                        self.counts["burst"] += 1
                        self.burst_left = self.rnd.randint(1, 7)
                        self.burst_code = self.rnd.choice((502, 503))
                    return card
            return None

    # ---- connections ----

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.add(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while not self.closed:
                buf = _recv_until(c, buf, b"\r\n\r\n")
                head, _, buf = buf.partition(b"\r\n\r\n")
                first, lines, h = _headers(head)
                n = int(h.get("content-length", "0") or 0)
                if n > MAX_BODY:
                    break
                buf = _recv_exact(c, buf, n)
                body, buf = buf[:n], buf[n:]
                kept = [x for x in lines if x and not x.lower().startswith("connection:")]
                kept.append("Connection: close")
                req = ("\r\n".join([first] + kept) + "\r\n\r\n").encode() + body
                if not self._one(c, first, req):
                    break
        except (OSError, EOFError, ConnectionError, ValueError):
            pass
        finally:
            with self.lock:
                self.conns.discard(c)
            try:
                c.close()
            except OSError:
                pass

    def _upstream(self, req, timeout=30):
        """Sends req to the server; returns (head, headers, socket) with the
        answer's head read, the socket positioned at the body."""
        u = socket.create_connection(self.upstream, timeout=timeout)
        u.sendall(req)
        buf = _recv_until(u, b"", b"\r\n\r\n")
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head, rest, u

    def _exchange(self, req):
        """The server's whole answer to req, as (head, body)."""
        head, rest, u = self._upstream(req)
        try:
            while True:
                d = u.recv(65536)
                if not d:
                    break
                rest += d
        finally:
            u.close()
        return head, rest

    def _one(self, c, first, req):
        """Handles one request; returns whether the client connection stays."""
        method, path = first.split(" ")[:2]
        events = path.startswith("/events")
        can = {"reset", "stall", "burst", "replay", "cut"}
        if events:
            can.discard("replay")
        kind = self._deal(method, path, can)
        self._trace(c, "%s %s" % (kind, first), req.partition(b"\r\n\r\n")[2])
        if kind == "reset" and self.rnd.random() < 0.5:
            self._count("reset")
            _rst(c)
            return False
        if kind == "burst":
            self._count("http_5xx")
            code = self.burst_code
            if code == 502 and not events:
                try:
                    self._exchange(req)  # the server acts; the answer is lost
                except (OSError, EOFError, ConnectionError):
                    pass
            c.sendall(_error_response(code))
            return True
        if kind == "replay" and method == "POST":
            with self.lock:
                stale = self.pushes and self.rnd.random() < 0.5
                old = self.rnd.choice(self.pushes) if stale else None
            if old:
                self._count("stale_replay")
                try:
                    self._exchange(old)
                except (OSError, EOFError, ConnectionError):
                    pass
        if method == "POST" and path.startswith("/push"):
            with self.lock:
                self.pushes.append(req)
                del self.pushes[:-200]
        if events:
            return self._stream(c, req, kind)
        head, body = self._exchange(req)
        if kind == "replay":
            self._count("replay")
            head, body = self._exchange(req)
        if kind == "reset":
            self._count("reset")
            _rst(c)
            return False
        if kind == "stall":
            self._count("stall")
            time.sleep(self.rnd.uniform(0.3, 4.0))
        first_line, lines, h = _headers(head)
        kept = [line for line in lines if line and not line.lower().startswith("connection:")]
        chunked = "chunked" in h.get("transfer-encoding", "").lower()
        length = "content-length" in h
        keep = length or chunked
        if not keep:
            kept.append("Connection: close")
        out = ("\r\n".join([first_line] + kept) + "\r\n\r\n").encode() + body
        if kind == "cut":
            self._count("cut")
            c.sendall(out[: self.rnd.randint(0, len(out) - 1)])
            (_rst if self.rnd.random() < 0.5 else socket.socket.close)(c)
            return False
        self._trace(c, "answer", out)
        c.sendall(out)
        return keep

    def _stream(self, c, req, kind):
        """Relays an event stream until either side ends it; a fault acts at
        a random point of it."""
        head, rest, u = self._upstream(req, timeout=None)
        try:
            c.sendall(head + b"\r\n\r\n" + rest)
            at = time.monotonic() + self.rnd.uniform(0.05, 3.0) if kind else None
            cut = False
            u.settimeout(0.2)
            while not self.closed:
                if at and time.monotonic() >= at:
                    if kind == "stall":
                        self._count("stall")
                        time.sleep(self.rnd.uniform(0.3, 4.0))
                        at = None
                    elif kind == "reset":
                        self._count("reset")
                        _rst(c)
                        return False
                    else:  # cut: in the middle of the next piece of data
                        cut = True
                        at = None
                if self.calm_flag and kind:
                    at = None
                try:
                    d = u.recv(65536)
                except socket.timeout:
                    continue
                if not d:
                    return False
                self._trace(c, "event" + (" cut" if cut else ""), d)
                if cut:
                    self._count("cut")
                    c.sendall(d[: self.rnd.randint(0, len(d) - 1)])
                    return False
                c.sendall(d)
        finally:
            u.close()
        return False
