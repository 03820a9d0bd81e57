"""A hostile server against the extension: sync_pull, sync_push and the
background worker (pull and event stream) each meet malformed or hostile
answers. Every case checks for a clear error naming the cause, local data
left as it was (tables, outbox, rejected, cursor, schema), no crash (the
client runs in its own process) and, for the big ones, bounded peak RSS."""
import json
import time

from fake_server import (drip, endless_headers, endless_line, event_stream, huge_body, json_body,
                         raw_body, redirect)
from hostile_util import EMPTY_PAGE, MB, ClientCase

EVIL = 'x"; DROP TABLE t; --'


def page(*changes, cursor="c-9"):
    return {"changes": list(changes), "cursor": cursor, "has_more": False}


def upsert(table, pk, row):
    return {"table": table, "op": "upsert", "pk": pk, "row": row, "version": 9}


# Pull answers that sync_pull must refuse with an error matching the regex.
BAD_PAGES = [
    ("malformed JSON", raw_body('{"changes": [{"table": "todos"'), r"malformed JSON|JSON"),
    ("not an object", json_body([1, 2]), r"must be a JSON object"),
    ("changes not an array", json_body({"changes": "x", "cursor": "c-9"}), r"changes"),
    ("table not a string", json_body(page(upsert(5, {"id": "a"}, {"id": "a", "title": "x"}))),
     r"table"),
    ("pk not an object", json_body(page(upsert("todos", "a", {"id": "a", "title": "x"}))),
     r"pk"),
    ("row not an object", json_body(page(upsert("todos", {"id": "a"}, [1, 2]))), r"row"),
    ("cursor not a string", json_body({"changes": [], "cursor": 42}), r"cursor must be a string"),
    ("NOT NULL broken", json_body(page(upsert("todos", {"id": "a"}, {"id": "a", "title": None}))),
     r"NOT NULL"),
    ("unknown op", json_body(page({"table": "todos", "op": "drop", "pk": {"id": "s"}})),
     r'unknown op "drop"'),
    ("injection in pk column", json_body(page(upsert("t", {EVIL: 1}, {"id": 1, "v": "z"}))),
     r"primary key"),
    ("unknown column in pk", json_body(page(upsert("todos", {"zzz": "a"}, {"id": "a", "title": "x"}))),
     r"primary key"),
    # Pending mutations 1 and 2 were never sent: a confirmation beyond the
    # ids this client sent must not drop them, issued or not.
    ("last_mutation_id never issued", json_body({"changes": [], "cursor": "c-9", "has_more": False,
                                                 "last_mutation_id": 1000}),
     r"last_mutation_id 1000 is above the highest mutation id this client has sent \(0\)"),
    ("last_mutation_id issued, never sent", json_body({"changes": [], "cursor": "c-9",
                                                       "has_more": False, "last_mutation_id": 2}),
     r"last_mutation_id 2 is above the highest mutation id this client has sent \(0\)"),
    ("last_mutation_id over 64 bits", raw_body('{"changes": [], "cursor": "c-9", "has_more": false,'
                                               ' "last_mutation_id": 99999999999999999999}'),
     r"last_mutation_id 1\.0e\+20 is above the highest mutation id"),
    ("last_mutation_id not an integer", json_body({"changes": [], "cursor": "c-9",
                                                   "last_mutation_id": "2"}),
     r"last_mutation_id must be an integer"),
]

# Changes for tables the client does not track (the server may have added
# one) are skipped and counted, never refused nor executed (issue 13 #12).
SKIPPED_PAGES = [
    ("unknown table", page(upsert("nope", {"id": "a"}, {"id": "a"}))),
    ("sqlite_master", page(upsert("sqlite_master", {"name": "t"},
                                  {"type": "table", "name": "t", "sql": "x"}))),
    ("injection in table name", page(upsert(EVIL, {"id": 1}, {"id": 1}))),
    ("delete of sqlite_master", page({"table": "sqlite_master", "op": "delete",
                                      "pk": {"name": "t"}})),
]

# Push answers that sync_push must refuse.
BAD_ACKS = [
    ("malformed JSON", raw_body('{"results": [{"id": 1,'), r"JSON|results"),
    ("results not an array", json_body({"results": "x"}), r'"results" array'),
    ("id not an integer", json_body({"results": [{"id": "1", "status": "applied"}]}),
     r'no integer "id"'),
    ("status not a string", json_body({"results": [{"id": 1, "status": 5}]}), r"status"),
    ("unknown status", json_body({"results": [{"id": 1, "status": "maybe"}]}),
     r'unknown status "maybe"'),
    ("row not an object", json_body({"results": [{"id": 1, "status": "applied", "row": "x"}]}),
     r'"row" of result 1'),
    ("nothing resolved", json_body({"results": [{"id": 999, "status": "applied", "row": None}]}),
     r"resolved none of the batch"),
]


class PullAnswers(ClientCase):
    """sync_pull: an SQL error naming the cause, nothing changed."""

    def test_bad_pages(self):
        for name, route, want in BAD_PAGES:
            with self.subTest(name):
                srv = self.server()
                srv.route("/pull", route)
                out = self.run_client(srv.url, "pull", db=f"{len(self.servers)}.db")
                self.assertIsNotNone(out["error"], f"{name}: accepted: {out['result']}")
                self.assertRegex(out["error"], r"^sync_pull: ")
                self.assertRegex(out["error"], want)
                self.assertUntouched(out)

    def test_untracked_tables_skipped_never_executed(self):
        for name, body in SKIPPED_PAGES:
            with self.subTest(name):
                srv = self.server()
                srv.route("/pull", json_body(body))
                out = self.run_client(srv.url, "pull", db=f"{len(self.servers)}.db")
                self.assertIsNone(out["error"], name)
                self.assertEqual(out["result"], 0)
                self.assertEqual(out["after"]["schema"], out["before"]["schema"])
                self.assertEqual(out["after"]["todos"], out["before"]["todos"])
                self.assertEqual(out["after"]["cursor"], "c-9")

    def test_unknown_row_column_is_ignored_never_executed(self):
        # A newer server may add columns: documented as ignored. A hostile
        # name there must be neither an error nor SQL.
        srv = self.server()
        srv.route("/pull", json_body(page(upsert("todos", {"id": "n"},
                                                 {"id": "n", "title": "new", EVIL: 1, "zzz": 2}))))
        out = self.run_client(srv.url, "pull")
        self.assertIsNone(out["error"])
        self.assertEqual(out["result"], 1)
        self.assertIn(["n", "new"], out["after"]["todos"])
        self.assertEqual(out["after"]["schema"], out["before"]["schema"])
        self.assertEqual(out["after"]["t"], out["before"]["t"])
        self.assertEqual(out["after"]["cursor"], "c-9")

    def test_100mb_body(self):
        for declared in (True, False):
            with self.subTest(declared=declared):
                srv = self.server()
                srv.route("/pull", huge_body(100 * MB, declared=declared))
                out = self.run_client(srv.url, "pull", db=f"big{declared}.db")
                self.assertRegex(out["error"] or "", r"^sync_pull: response body over \d+ bytes")
                self.assertUntouched(out)
                grew = self.assertRssGrowthBelow(out, 64)
                print(f"  100 MB pull answer (declared={declared}): peak RSS +{grew:.1f} MB")

    def test_endless_headers(self):
        srv = self.server()
        srv.route("/pull", endless_headers())
        out = self.run_client(srv.url, "pull", config={"timeout_ms": 3000})
        self.assertRegex(out["error"] or "", r"^sync_pull: ")
        self.assertUntouched(out)
        grew = self.assertRssGrowthBelow(out, 64)
        print(f"  endless header lines: {out['error']}: peak RSS +{grew:.1f} MB")

    def test_drip_hits_the_timeout(self):
        srv = self.server()
        srv.route("/pull", drip(prefix=b'{"changes": ['))
        out = self.run_client(srv.url, "pull", config={"timeout_ms": 1500})
        self.assertRegex(out["error"] or "", r"^sync_pull: cannot reach .*[Tt]imeout|timed out")
        self.assertLess(out["elapsed"], 15)
        self.assertUntouched(out)

    def test_wrong_content_type(self):
        # A valid page under the wrong type is still refused: a captive
        # portal or a misrouted proxy is not the sync server.
        srv = self.server()
        srv.route("/pull", json_body(page(upsert("todos", {"id": "h"}, {"id": "h", "title": "x"})),
                                     ctype="text/html"))
        out = self.run_client(srv.url, "pull")
        self.assertRegex(out["error"] or "", r"^sync_pull: .*content type \"?text/html")
        self.assertUntouched(out)

    def test_redirect_to_another_host_is_not_followed(self):
        other = self.server(host="localhost")
        other.route("/pull", json_body(page(upsert("todos", {"id": "r"}, {"id": "r", "title": "x"}))))
        srv = self.server()
        srv.route("/pull", redirect(other.url + "/pull"))
        out = self.run_client(srv.url, "pull", token="tok-redirect-secret")
        self.assertRegex(out["error"] or "", r"^sync_pull: HTTP 302: redirect to .*not followed")
        self.assertEqual(other.requests, [])
        self.assertUntouched(out)

    def test_same_host_redirect_is_not_followed_either(self):
        srv = self.server()
        srv.route("/pull", redirect(srv.url + "/elsewhere", status=301))
        srv.route("/elsewhere", json_body(EMPTY_PAGE))
        out = self.run_client(srv.url, "pull")
        self.assertRegex(out["error"] or "", r"HTTP 301: redirect to .*not followed")
        self.assertNotIn("/elsewhere", srv.paths())


class PushAnswers(ClientCase):
    """sync_push: an SQL error naming the cause; the outbox keeps every
    mutation (attempts and last_error are its bookkeeping) and no row moves."""

    def test_bad_acks(self):
        for name, route, want in BAD_ACKS:
            with self.subTest(name):
                srv = self.server()
                srv.route("/push", route)
                out = self.run_client(srv.url, "push", db=f"{len(self.servers)}.db")
                self.assertIsNotNone(out["error"], f"{name}: accepted: {out['result']}")
                self.assertRegex(out["error"], r"^sync_push: ")
                self.assertRegex(out["error"], want)
                self.assertUntouched(out)
                self.assertEqual(len(out["after"]["outbox"]), 2)

    def test_answer_resolving_an_unsent_mutation(self):
        # batch_size 1: the push carries mutation 1 only; an answer that
        # also resolves 2 would drop a mutation the server never received.
        srv = self.server()
        srv.route("/push", json_body({"results": [{"id": 1, "status": "applied", "row": None},
                                                  {"id": 2, "status": "applied", "row": None}]}))
        out = self.run_client(srv.url, "push", config={"batch_size": 1})
        # sync_push hands out the next batch (2) before it acknowledges this
        # answer, so what 2 breaks is the bound of the batch answered
        self.assertRegex(out["error"] or "", r"^sync_push: .*result 2: mutation 2 is above top"
                         r" \(1\), the last id of the batch answered")
        self.assertUntouched(out)
        self.assertEqual(len(out["after"]["outbox"]), 2)

    def test_hostile_names_in_an_acked_row(self):
        srv = self.server()
        srv.route("/push", json_body({"results": [
            {"id": 1, "status": "applied", "row": {"id": "p", "title": "canon", EVIL: 1}, "version": 5},
            {"id": 2, "status": "applied", "row": {"id": 1, "v": "local", "sqlite_master": 1},
             "version": 6}]}))
        out = self.run_client(srv.url, "push")
        self.assertIsNone(out["error"])
        self.assertEqual(out["after"]["outbox"], [])
        self.assertIn(["p", "canon"], out["after"]["todos"])
        self.assertEqual(out["after"]["schema"], out["before"]["schema"])

    def test_100mb_answer(self):
        srv = self.server()
        srv.route("/push", huge_body(100 * MB, declared=False))
        out = self.run_client(srv.url, "push")
        self.assertRegex(out["error"] or "", r"^sync_push: response body over \d+ bytes")
        self.assertUntouched(out)
        grew = self.assertRssGrowthBelow(out, 64)
        print(f"  100 MB push answer: peak RSS +{grew:.1f} MB")

    def test_drip_hits_the_timeout(self):
        srv = self.server()
        srv.route("/push", drip(prefix=b'{"results": ['))
        out = self.run_client(srv.url, "push", config={"timeout_ms": 1500})
        self.assertRegex(out["error"] or "", r"[Tt]imeout|timed out")
        self.assertLess(out["elapsed"], 15)
        self.assertUntouched(out)

    def test_wrong_content_type(self):
        srv = self.server()
        srv.route("/push", json_body({"results": [{"id": 1, "status": "applied", "row": None},
                                                  {"id": 2, "status": "applied", "row": None}]},
                                     ctype="text/plain"))
        out = self.run_client(srv.url, "push")
        self.assertRegex(out["error"] or "", r'^sync_push: .*content type "?text/plain')
        self.assertUntouched(out)

    def test_redirect_to_another_host_is_not_followed(self):
        other = self.server(host="localhost")
        other.route("/push", json_body({"results": []}))
        srv = self.server()
        srv.route("/push", redirect(other.url + "/push", status=307))
        out = self.run_client(srv.url, "push", token="tok-redirect-secret")
        self.assertRegex(out["error"] or "", r"^sync_push: HTTP 307: redirect to .*not followed")
        self.assertEqual(other.requests, [])
        self.assertUntouched(out)


class WorkerAnswers(ClientCase):
    """The background worker: the cause shows in sync_status.last_error,
    nothing changes, the worker stops cleanly after."""

    def worker_server(self):
        srv = self.server()
        srv.route("/health", json_body({"ok": True}))
        srv.route("/push", raw_body('{"error":"busy"}', status=503,
                                    headers=[("Retry-After", "3600")]))
        srv.route("/pull", json_body(EMPTY_PAGE))
        return srv

    def run_worker(self, srv, want, **kw):
        out = self.run_client(srv.url, "worker", want=want, wait_s=kw.pop("wait_s", 20), **kw)
        self.assertIn("matched", out, f"no last_error matching {want!r}; saw {out['errors_seen']}")
        self.assertUntouched(out)
        return out

    def test_endless_sse_line(self):
        srv = self.worker_server()
        srv.route("/events", endless_line())
        out = self.run_worker(srv, r"^events: .*line over \d+ bytes")
        grew = self.assertRssGrowthBelow(out, 64)
        print(f"  endless event-stream line: peak RSS +{grew:.1f} MB")

    def test_sse_drip(self):
        # One byte a second never completes a line: that is a stall.
        srv = self.worker_server()
        srv.route("/events", drip(prefix=b"data: ", ctype="text/event-stream"))
        t0 = time.monotonic()
        self.run_worker(srv, r"^events: no complete line for 1500 ms",
                        config={"sse_stall_ms": 1500})
        self.assertLess(time.monotonic() - t0, 15)

    def test_sse_wrong_content_type(self):
        srv = self.worker_server()
        body = b"event: changes\nid: c-9\ndata: " + json.dumps(
            page(upsert("todos", {"id": "h"}, {"id": "h", "title": "x"}))).encode() + b"\n\n"
        srv.route("/events", event_stream([body], ctype="application/json"))
        self.run_worker(srv, r'^events: .*content type "application/json"')

    def test_sse_bad_events(self):
        cases = [
            ("malformed", b"event: changes\ndata: {\"changes\": [\n\n", r"^events: sync_apply: .*JSON"),
            ("unknown op", b"event: changes\ndata: " + json.dumps(
                page({"table": "todos", "op": "nope", "pk": {"id": 1}})).encode() + b"\n\n",
             r'^events: sync_apply: change 1 has unknown op "nope"'),
            ("injection", b"event: changes\ndata: " + json.dumps(
                page({"table": "todos", "op": EVIL, "pk": {"id": 1}})).encode() + b"\n\n",
             r"^events: sync_apply: change 1 has unknown op"),
        ]
        for name, body, want in cases:
            with self.subTest(name):
                srv = self.worker_server()
                srv.route("/events", event_stream([b": hi\n\n", body]))
                self.run_worker(srv, want, db=f"{len(self.servers)}.db")

    def test_pull_100mb_body(self):
        srv = self.worker_server()
        srv.route("/pull", huge_body(100 * MB, declared=False))
        out = self.run_worker(srv, r"^pull: response body over \d+ bytes", config={"sse": "off"})
        grew = self.assertRssGrowthBelow(out, 64)
        print(f"  worker, 100 MB pull answer: peak RSS +{grew:.1f} MB")

    def test_pull_confirming_unissued_ids(self):
        srv = self.worker_server()
        srv.route("/pull", json_body({"changes": [], "cursor": "c-9", "has_more": False,
                                      "last_mutation_id": 1000}))
        self.run_worker(srv, r"^pull: sync_apply: last_mutation_id 1000 is above the highest mutation id",
                        config={"sse": "off"})

    def test_pull_confirming_unsent_ids(self):
        # batch_size 1: a push hands out mutation 1 only (the 503 may come
        # after the server took it); 2 was issued but never sent.
        srv = self.worker_server()
        srv.route("/pull", json_body({"changes": [], "cursor": "c-9", "has_more": False,
                                      "last_mutation_id": 2}))
        self.run_worker(srv, r"^pull: sync_apply: last_mutation_id 2 is above the highest mutation id this"
                        r" client has sent \([01]\)", config={"sse": "off", "batch_size": 1})

    def test_pull_drip(self):
        srv = self.worker_server()
        srv.route("/pull", drip(prefix=b'{"changes": ['))
        self.run_worker(srv, r"^pull: .*(Operation timed out|timeout)",
                        config={"sse": "off", "timeout_ms": 1500})

    def test_cursor_with_a_line_break_smuggles_no_header(self):
        # The cursor is opaque and kept as sent, but it travels as the
        # Last-Event-ID header too: never with its line break.
        srv = self.worker_server()
        evil = "c-3\r\nX-Injected: 1"
        srv.route("/pull", json_body({"changes": [], "cursor": evil, "has_more": False}))
        srv.route("/events", event_stream([b": hi\n\n"]))
        out = self.run_client(srv.url, "worker", want=r"^$", wait_s=3)
        self.assertEqual(out["after"]["cursor"], evil)
        self.assertIn("/events", srv.paths())
        for method, path, headers, _ in srv.requests:
            self.assertNotIn("X-Injected", headers, path)
            if path.startswith("/events"):
                self.assertIn("cursor=c-3%0D%0AX-Injected%3A%201", path)

    def test_huge_sse_retry_is_capped(self):
        # retry: takes any digits; the reconnect delay must neither overflow
        # (a reconnect loop) nor push the next pull past the one-hour cap.
        srv = self.worker_server()
        srv.route("/events", event_stream([b"retry: 9223372036854775807\n: x\n\n"],
                                          then_hold=False))
        out = self.run_client(srv.url, "worker", want=r"^$", wait_s=3)
        self.assertEqual(srv.paths().count("/events"), 1, srv.paths())
        self.assertEqual(srv.paths().count("/pull"), 1, srv.paths())
        self.assertUntouched(out)

    def test_events_redirect_not_followed(self):
        other = self.server(host="localhost")
        other.route("/events", event_stream([b": hi\n\n"]))
        srv = self.worker_server()
        srv.route("/events", redirect(other.url + "/events"))
        self.run_worker(srv, r"^events: HTTP 302: redirect to .*not followed")
        self.assertEqual(other.requests, [])
