"""End-to-end: the worker sends the next push batch before it acknowledges
the previous answer, and an acknowledgement that fails with that batch out
loses and doubles nothing.

A proxy in front of a real syncd forwards pushes and pulls and records the
ids of each push; it answers the first push with a 200 that sync_ack
refuses, and serves the event stream itself (heartbeats only: it is an
e2e_util.RelayProxy); with the worker's verification off, no pull is due
between pushes. Nothing here depends on timing: with the
overlap the second request carries the batch after the first; without it
the failed acknowledgement comes first and the first batch goes again.
"""
import json
import threading

from e2e_util import E2ETest, RelayProxy, wait_for


class PushProxy(RelayProxy):
    """Records the ids of each push; answers the first with a 200 that
    sync_ack refuses."""

    def __init__(self, upstream):
        self.pushes = []  # the ids of each push request, in arrival order
        self.lock = threading.Lock()
        super().__init__(upstream)

    def relay(self, h, body):
        if not h.path.startswith("/push"):
            return super().relay(h, body)
        status, data = h.forward(body)
        with self.lock:
            first = not self.pushes
            self.pushes.append([m["id"] for m in json.loads(body)["mutations"]])
        if first:
            status, data = 200, b'{"results":"not an array"}'
        h.answer(status, data)


class PushOverlap(E2ETest):
    def test_next_batch_before_ack_and_failed_ack(self):
        s = self.syncd()
        p = PushProxy(s.url)
        self.addCleanup(p.stop)
        a = self.client("a", p.url)
        a.one("SELECT sync_config('batch_size', 5)")
        a.one("SELECT sync_config('backoff_min_ms', 50)")
        # no verification after the first sync: its pull would confirm the
        # batches whose answer was refused before they could go again
        a.one("SELECT sync_config('verify_interval_s', 0)")
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
