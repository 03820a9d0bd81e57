"""SIGKILL between syncd accepting a push and the client acknowledging it:
nothing is lost and nothing is applied twice.

The client's worker reaches syncd through a proxy (below) that can hold
back the answer to a push. In a held round the client is killed once syncd
has answered (the batch is committed there) and before the client has seen
the answer: the kill is inside the window by construction, and the test
checks that it is (the server's last id for the client is past mutations
still in the client's outbox). In the other rounds the client is killed at
a random moment. Every round restarts the client with more mutations; at
the end the outbox drains, the server's audit trigger has counted every
mutation exactly once, and both sides hold the same rows.
"""
import os
import random
import shutil
import socket
import tempfile
import threading
import time
import unittest

from child import mutations
from crash_util import SLOW, Child, Syncd, connect, wait_for

PER_ROUND = 300
BATCH = 50
ROUNDS = int(os.environ.get("CRASH_PUSH_ROUNDS") or 6)


class Proxy:
    """A TCP proxy to syncd. With hold set, the first answer that follows a
    POST /push on a connection is kept from the client (curl does not
    pipeline, so the next bytes from syncd are that push's answer), held is
    set, and the connection stays open until drop()."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.hold = threading.Event()
        self.held = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.conns = []
        self.acceptor = threading.Thread(target=self.accept, daemon=True)
        self.acceptor.start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.port))
            with self.lock:
                self.conns += [c, s]
            state = {"push": False, "running": 2}
            threading.Thread(target=self.pipe, args=(c, s, state, True), daemon=True).start()
            threading.Thread(target=self.pipe, args=(s, c, state, False), daemon=True).start()

    def pipe(self, src, dst, state, upstream):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if upstream:
                    if b"POST /push" in data:
                        state["push"] = True
                elif state["push"]:
                    state["push"] = False
                    if self.hold.is_set() and not self.held.is_set():
                        self.held.set()
                        self.release.wait()  # the client is killed meanwhile
                        break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        # The last of the pair closes both: closing a socket another thread
        # still reads is a race on the descriptor.
        with self.lock:
            state["running"] -= 1
            last = state["running"] == 0
            if last:
                for s in (src, dst):
                    if s in self.conns:
                        self.conns.remove(s)
        if last:
            src.close()
            dst.close()

    def drop(self):
        """End every connection (the killed client's ones included): shut
        down here, closed by their pipe threads."""
        self.release.set()
        with self.lock:
            conns = list(self.conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.acceptor.join()
        self.sock.close()
        self.drop()


class PushAckKill(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sync-crash-push-")
        self.syncd = Syncd(self.dir)
        self.proxy = Proxy(self.syncd.port)
        self.db = os.path.join(self.dir, "client.db")
        self.child = None

    def tearDown(self):
        if self.child:
            self.child.kill()
        self.proxy.close()
        self.syncd.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def last_id(self):
        rows = self.syncd.query("SELECT last_id FROM _syncd_clients")
        return rows[0][0] if rows else 0

    def outbox(self):
        c = connect(self.db, ext=False)
        try:
            return [r[0] for r in c.execute("SELECT id FROM sync_outbox ORDER BY id")]
        finally:
            c.close()

    def test_kill_between_push_and_ack(self):
        rng = random.Random(os.environ.get("CRASH_SEED") or time.time_ns())
        held = in_window = 0
        for r in range(ROUNDS):
            hold = r % 2 == 0
            if hold:
                self.proxy.hold.set()
            self.child = Child("client", self.db, self.proxy.url, r * PER_ROUND, PER_ROUND, BATCH)
            self.child.wait_line("ready", 60)
            if hold:
                wait_for(self.proxy.held.is_set, 60, "a push answer to hold")
            else:
                time.sleep(rng.uniform(0, 0.5) * SLOW)
            self.child.kill()
            self.child = None
            self.proxy.drop()
            # Killed in the window: syncd has processed ids the client still
            # holds as pending.
            pending = self.outbox()
            inside = bool(pending) and self.last_id() >= pending[0]
            held += hold
            in_window += inside
            if hold:
                self.assertTrue(inside, f"round {r}: the held push was not in the window: "
                                f"server last id {self.last_id()}, outbox from {pending[:1]}")
            self.proxy.hold.clear()
            self.proxy.held.clear()
            self.proxy.release.clear()
        print(f"\n  {ROUNDS} kills ({held} with a held push answer), {in_window} between "
              "push and ack", end=" ")
        self.assertGreater(in_window, 0)

        # A last run without kills drains the outbox.
        self.child = Child("client", self.db, self.proxy.url, ROUNDS * PER_ROUND, 0, BATCH)
        self.child.wait_line("ready", 60)
        wait_for(lambda: not self.outbox(), 120, "the outbox to drain")
        expected = mutations(0, ROUNDS * PER_ROUND)
        audit = self.syncd.query("SELECT item, n FROM audit ORDER BY n")
        counts = {}
        for row in audit:
            counts[row] = counts.get(row, 0) + 1
        doubled = {k: v for k, v in counts.items() if v > 1}
        lost = sorted(set(expected) - set(counts))
        self.assertEqual(doubled, {}, "mutations applied more than once")
        self.assertEqual(lost, [], "mutations never applied")
        self.assertEqual(len(audit), len(expected))
        c = connect(self.db, ext=False)
        try:
            self.assertEqual(c.execute("SELECT count(*) FROM sync_rejected").fetchone()[0], 0)
            server = self.syncd.query("SELECT id, n FROM items ORDER BY id")
            # The event stream may still be delivering the versions the
            # acks already showed: wait for it to catch up.
            wait_for(lambda: c.execute("SELECT id, n FROM items ORDER BY id").fetchall() == server,
                     60, "the client to hold the server's rows")
        finally:
            c.close()
        self.assertEqual(self.syncd.query("SELECT max(n) FROM items")[0][0],
                         ROUNDS * PER_ROUND - 1)


if __name__ == "__main__":
    unittest.main()
