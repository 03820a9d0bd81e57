"""Protocol v1 (docs/PROTOCOL.md) against syncd, once per storage: every
test runs on SQLite (SqliteProtocolTest) and on PostgreSQL
(PgProtocolTest, skipped only when tests/server/run.py could not start a
cluster)."""
import base64
import http.client
import json
import shutil
import signal
import tempfile
import threading
import time
import unittest

from syncd_util import PgStore, SqliteStore, Syncd, dele, ins, upd

INT_BIG = 9007199254740993
INT_MIN = -9223372036854775808
INT_MAX = 9223372036854775807
TRICKY_TEXT = 'quote " backslash \\ slash / newline \n tab \t emoji \U0001F600 nul-free \u00e9'


X1, X2 = {"a": "x", "b": 1}, {"a": "x", "b": 2}


def mut(mid, table, op, pk, data=None):
    return dict({"id": mid, "table": table, "op": op, "pk": pk}, **({"data": data} if data else {}))


class ProtocolTests:
    backend = None
    # Substrings (lower case) the database's own message carries per refusal.
    reasons = {}

    def setUp(self):
        self.servers = []
        self.tmp = tempfile.mkdtemp(prefix="syncd-test-")

    def tearDown(self):
        # every server must stop cleanly (exit 0 on SIGTERM; under a
        # sanitizer or valgrind wrapper this also catches leaks)
        unclean = [(s.stop(), s.log()[-2000:]) for s in self.servers if s.proc.poll() is None]
        shutil.rmtree(self.tmp, ignore_errors=True)
        for rc, log in unclean:
            self.assertEqual(rc, 0, log)

    def store_args(self):
        raise NotImplementedError

    def server(self, *extra, store_args=None, schema=None):
        s = Syncd(self.backend, store_args or self.store_args(), extra, schema)
        self.servers.append(s)
        return s

    def assertReason(self, result, key):
        self.assertEqual(result["status"], "rejected", result)
        self.assertIn(self.reasons[key], result["reason"].lower(), result)

    # ---- push ----

    def test_health(self):
        s = self.server()
        status, resp, body = s.request("GET", "/health")
        self.assertEqual((status, body), (200, {"ok": True, "event_reads": 0}))
        self.assertEqual(resp.getheader("Content-Type"), "application/json")
        s.stop()
        self.assertIn("GET /health 200", s.log())  # --verbose: one line per request

    def test_push_shapes_and_canonical_row(self):
        s = self.server()
        res = s.push("c1", [ins(1, "a", "x"), upd(2, "a", title="y"), dele(3, "a"),
                            ins(4, "b", "z")])
        self.assertEqual([r["id"] for r in res], [1, 2, 3, 4])
        self.assertEqual([r["status"] for r in res], ["applied"] * 4)
        # insert: the full row with server defaults
        self.assertEqual(res[0]["row"], {"id": "a", "title": "x", "n": None, "r": None, "b": None,
                                         "note": None, "slug": None, "rev": 0,
                                         "updated_at": "server-default"})
        # update: the trigger's metadata reaches the client
        self.assertEqual(res[1]["row"]["title"], "y")
        self.assertEqual(res[1]["row"]["rev"], 1)
        self.assertIsNone(res[2]["row"])
        versions = [r["version"] for r in res]
        self.assertTrue(all(isinstance(v, int) for v in versions), versions)
        self.assertEqual(versions, sorted(versions))
        self.assertEqual(len(set(versions)), 4)
        self.assertNotIn("reason", res[0])

    def test_exact_values(self):
        s = self.server()
        blob = bytes(range(256)) + b"\x00\xff"
        b64 = base64.b64encode(blob).decode()
        values = [
            (1, {"n": INT_BIG, "r": 0.1 + 0.2}),
            (2, {"n": INT_MIN, "r": 1.7976931348623157e308}),
            (3, {"n": INT_MAX, "r": 5e-324}),
            (4, {"n": -1, "r": -2.5e-310}),
        ]
        muts = []
        for mid, cols in values:
            muts.append(ins(mid, f"v{mid}", TRICKY_TEXT, note=TRICKY_TEXT,
                            b={"$base64": b64}, **cols))
        raw = s.push("c1", muts)
        for (mid, cols), r in zip(values, raw):
            self.assertEqual(r["status"], "applied", r)
            row = r["row"]
            self.assertEqual(row["n"], cols["n"])
            self.assertIsInstance(row["n"], int)
            self.assertEqual(repr(row["r"]), repr(cols["r"]))
            self.assertEqual(row["title"], TRICKY_TEXT)
            self.assertEqual(row["b"], {"$base64": b64})
        # the wire text itself: shortest round-trip digits, exact integers
        _, _, raw = s.request("GET", "/pull?client_id=c1", raw=True)
        self.assertIn(b"9007199254740993", raw)
        self.assertIn(b"0.30000000000000004", raw)
        body = json.loads(raw)
        changes = [c for c in body["changes"] if c["table"] == "todos"]
        self.assertEqual(len(changes), 4)
        by_id = {c["pk"]["id"]: c["row"] for c in changes}
        self.assertEqual(by_id["v1"]["r"], 0.30000000000000004)
        self.assertEqual(by_id["v2"]["n"], INT_MIN)
        self.assertEqual(by_id["v2"]["r"], 1.7976931348623157e308)
        self.assertEqual(by_id["v3"]["n"], INT_MAX)

    def test_malformed_base64_is_refused_alike_on_every_store(self):
        # SQLite and PostgreSQL storage answer the same: a {"$base64"} value
        # that is not base64 is refused with one reason, whatever the column
        # type (BLOB/bytea or TEXT) and wherever it is (data or pk), and
        # nothing of it is stored; a valid one still goes in
        s = self.server()
        reason = "sync_val: malformed base64 or hex BLOB"
        bad = {"$base64": "not base64!"}
        res = s.push("c1", [ins(1, "a"),
                            ins(2, "b1", b=bad),
                            ins(3, "b2", note=bad),
                            upd(4, "a", b=bad),
                            {"id": 5, "table": "todos", "op": "update",
                             "pk": {"id": bad}, "data": {"title": "u"}},
                            {"id": 6, "table": "todos", "op": "delete", "pk": {"id": bad}},
                            ins(7, "ok", b={"$base64": "AP8="})])
        self.assertEqual([r["status"] for r in res],
                         ["applied"] + ["rejected"] * 5 + ["applied"], res)
        for r in res[1:6]:
            self.assertEqual(r["reason"], reason, r)
        self.assertEqual(res[6]["row"]["b"], {"$base64": "AP8="})
        changes, _ = s.pull_all("c1")
        rows = {c["pk"]["id"]: c["row"] for c in changes if c["table"] == "todos"}
        self.assertEqual(sorted(rows), ["a", "ok"])
        self.assertIsNone(rows["a"]["b"])

    def test_exact_values_on_the_wire(self):
        s = self.server()
        body = ('{"client_id":"c1","mutations":[{"id":1,"table":"todos","op":"insert",'
                '"pk":{"id":"w"},"data":{"id":"w","title":"t","n":9007199254740993,'
                '"r":0.30000000000000004}}]}')
        status, _, pushed = s.request("POST", "/push", body)
        self.assertEqual(status, 200)
        self.assertEqual(pushed["results"][0]["row"]["n"], INT_BIG)
        # raw bytes: the JSON decoder must not hide a rounded number
        status, _, raw = s.request("GET", "/pull?client_id=c1", raw=True)
        raw = raw.decode()
        self.assertIn('"n":9007199254740993', raw)
        self.assertIn('"r":0.30000000000000004', raw)

    def test_rejections_keep_the_rest_of_the_batch(self):
        s = self.server()
        long_title = "x" * 150
        muts = [
            ins(1, "ok1"),
            ins(2, "c", long_title),                                      # CHECK
            {"id": 3, "table": "todos", "op": "insert", "pk": {"id": "nn"},
             "data": {"id": "nn", "title": None}},                        # NOT NULL
            ins(4, "u1", slug="same"),
            ins(5, "u2", slug="same"),                                    # UNIQUE
            ins(6, "ok1"),                                                # UNIQUE (pk)
            ins(7, "x", table="nope"),                                    # unknown table
            ins(8, "col", bogus=1),                                       # unknown column
            upd(9, "missing", title="z"),                                 # missing row
            {"id": 10, "table": "items", "op": "insert", "pk": {"list_id": 99, "pos": 1},
             "data": {"list_id": 99, "pos": 1, "label": "l"}},            # FOREIGN KEY
            {"id": 11, "table": "todos", "op": "insert", "pk": {"nope": "a"},
             "data": {"id": "a", "title": "t"}},                          # bad pk
            {"id": 12, "table": "typed", "op": "insert", "pk": {"id": 1},
             "data": {"id": 1, "n": "not a number"}},                     # wrong type
            ins(13, "ok2"),
            dele(14, "never-existed"),                                    # applied, no change
        ]
        res = s.push("c1", muts)
        st = {r["id"]: r for r in res}
        self.assertEqual(st[1]["status"], "applied")
        self.assertReason(st[2], "check")
        self.assertReason(st[3], "not_null")
        self.assertEqual(st[4]["status"], "applied")
        self.assertReason(st[5], "unique")
        self.assertReason(st[6], "unique")
        self.assertEqual((st[7]["status"], st[7]["reason"]), ("rejected", "no such table: nope"))
        self.assertEqual((st[8]["status"], st[8]["reason"]),
                         ("rejected", "table todos has no column named bogus"))
        self.assertEqual((st[9]["status"], st[9]["reason"]), ("rejected", "no such row"))
        self.assertReason(st[10], "fk")
        self.assertEqual((st[11]["status"], st[11]["reason"]),
                         ("rejected", "table todos has no column named nope"))
        self.assertEqual(st[12]["status"], "rejected")
        self.assertTrue(st[12]["reason"])
        self.assertEqual(st[13]["status"], "applied")
        self.assertEqual(st[14]["status"], "applied")
        self.assertIsNone(st[14]["row"])
        self.assertIsNone(st[14].get("version"))
        changes, page = s.pull_all("c1")
        ids = sorted(c["pk"]["id"] for c in changes if c["table"] == "todos")
        self.assertEqual(ids, ["ok1", "ok2", "u1"])
        self.assertEqual(page["last_mutation_id"], 14)

    def test_a_trigger_veto_refuses_only_its_mutation(self):
        s = self.server()
        res = s.push("c1", [ins(1, "a"), ins(2, "v1", "veto"), ins(3, "b"), ins(4, "v2", "veto"),
                            upd(5, "a", title="after")])
        self.assertEqual([r["status"] for r in res],
                         ["applied", "rejected", "applied", "rejected", "applied"])
        self.assertEqual(res[1]["reason"], "vetoed by the server")
        self.assertEqual(res[4]["row"]["title"], "after")
        changes, page = s.pull_all("c1")
        self.assertEqual(sorted(c["pk"]["id"] for c in changes if c["table"] == "todos"),
                         ["a", "b"])
        self.assertEqual(page["last_mutation_id"], 5)
        again = s.push("c1", [ins(2, "v1", "veto")])
        self.assertEqual((again[0]["status"], again[0]["reason"]),
                         ("rejected", "vetoed by the server"))

    def test_deferred_foreign_key_refuses_its_mutation(self):
        s = self.server()
        res = s.push("c1", [
            {"id": 1, "table": "notes", "op": "insert", "pk": {"id": 1},
             "data": {"id": 1, "list_id": 99}},
            {"id": 2, "table": "notes", "op": "insert", "pk": {"id": 2},
             "data": {"id": 2, "list_id": 1}},
            ins(3, "a")])
        self.assertReason(res[0], "fk")
        self.assertEqual([r["status"] for r in res[1:]], ["applied", "applied"])
        changes, _ = s.pull_all("c1")
        self.assertEqual(sorted((c["table"], c["pk"]["id"]) for c in changes),
                         [("lists", 1), ("notes", 2), ("todos", "a")])

    def test_injection_like_names_are_refused(self):
        s = self.server()
        names = ['todos"; DROP TABLE todos; --', "sqlite_master", "_syncd_clients",
                 "_syncd_changes", "nokey", "pg_catalog.pg_class", "information_schema.tables",
                 "TODOS\" --"]
        muts = [ins(i + 1, "a", table=n) for i, n in enumerate(names)]
        muts.append({"id": 50, "table": "todos", "op": "insert", "pk": {"id": "a"},
                     "data": {"id": "a", "title": "t", 'title" = 1; --': 1}})
        muts.append({"id": 51, "table": "todos", "op": "insert", "pk": {"id": "b"},
                     "data": {"id": "b", "title": "t", "rowid": 5}})
        res = s.push("c1", muts)
        for name, r in zip(names, res):
            self.assertEqual((r["status"], r["reason"]), ("rejected", "no such table: " + name))
        for r in res[len(names):]:
            self.assertEqual(r["status"], "rejected", r)
            self.assertIn("has no column named", r["reason"])
        # the table is intact and writable
        res = s.push("c1", [ins(60, "a")])
        self.assertEqual(res[0]["status"], "applied")
        changes, _ = s.pull_all("c1")
        self.assertEqual([c["pk"] for c in changes if c["table"] == "todos"], [{"id": "a"}])

    def test_a_rejected_mutation_leaves_no_trace(self):
        s = self.server()
        # the INSERT itself succeeds; the key check after it fails: the
        # savepoint must take the row back out
        res = s.push("c1", [{"id": 1, "table": "todos", "op": "insert", "pk": {"id": "y"},
                             "data": {"id": "x", "title": "t"}}, ins(2, "z")])
        self.assertEqual(res[0]["status"], "rejected")
        self.assertEqual(res[1]["status"], "applied")
        changes, _ = s.pull_all("c1")
        self.assertEqual([c["pk"] for c in changes if c["table"] == "todos"], [{"id": "z"}])
        res = s.push("c1", [ins(3, "x")])  # "x" is free: nothing was left behind
        self.assertEqual(res[0]["status"], "applied")
        # a key value the database cannot read refuses that mutation only
        bad_pk = {"id": {"$base64": "!!not base64"}}
        res = s.push("c1", [{"id": 4, "table": "todos", "op": "update", "pk": bad_pk, "data": {}},
                            {"id": 6, "table": "todos", "op": "update", "pk": bad_pk,
                             "data": {"title": "u"}},
                            upd(7, "x", title="fine")])
        self.assertEqual([r["status"] for r in res], ["rejected"] * 2 + ["applied"])

    def test_update_and_delete_semantics(self):
        s = self.server()
        res = s.push("c1", [ins(1, "a", "x", note="keep"), upd(2, "a", title="y"),
                            upd(3, "a"), dele(4, "a"), dele(5, "a")])
        self.assertEqual(res[1]["row"]["note"], "keep")  # only given columns change
        self.assertEqual(res[2]["status"], "applied")    # empty update of a live row
        self.assertEqual(res[3]["status"], "applied")
        self.assertIsInstance(res[3]["version"], int)
        self.assertEqual(res[4]["status"], "applied")    # delete of a missing row
        self.assertIsNone(res[4]["row"])
        self.assertIsNone(res[4].get("version"))

    def test_composite_key_and_seeded_rows(self):
        s = self.server()
        changes, _ = s.pull_all("c1")
        self.assertIn({"table": "lists", "op": "upsert", "pk": {"id": 1},
                       "row": {"id": 1, "name": "seeded"},
                       "version": changes[0]["version"]}, changes)
        res = s.push("c1", [{"id": 1, "table": "items", "op": "insert",
                             "pk": {"list_id": 1, "pos": 2},
                             "data": {"list_id": 1, "pos": 2, "label": "a"}},
                            {"id": 2, "table": "items", "op": "update",
                             "pk": {"pos": 2, "list_id": 1}, "data": {"label": "b"}}])
        self.assertEqual([r["status"] for r in res], ["applied", "applied"])
        self.assertEqual(res[1]["row"], {"list_id": 1, "pos": 2, "label": "b"})

    def test_ids_apply_in_order_with_gaps(self):
        s = self.server()
        # sent out of order: 7 (update) must run after 3 (insert)
        res = s.push("c1", [upd(7, "a", title="second"), ins(3, "a", "first")])
        self.assertEqual([r["id"] for r in res], [7, 3])
        self.assertEqual([r["status"] for r in res], ["applied", "applied"])
        self.assertEqual(res[0]["row"]["title"], "second")
        self.assertEqual(s.pull("c1")["last_mutation_id"], 7)
        # a gap id below the last processed one is answered, never applied
        res = s.push("c1", [ins(5, "gap")])
        self.assertEqual(res[0]["status"], "rejected")
        changes, _ = s.pull_all("c1")
        self.assertNotIn({"id": "gap"}, [c["pk"] for c in changes])

    def test_replayed_batch_is_answered_not_reapplied(self):
        s = self.server()
        batch = [ins(1, "a", "x"), upd(2, "a", title="y"), ins(3, "a", "dup"), dele(4, "b")]
        first = s.push("c1", batch)
        self.assertEqual([r["status"] for r in first], ["applied", "applied", "rejected", "applied"])
        head = s.pull("c1")["cursor"]
        # another client changes the row; the replay shows the CURRENT row
        s.push("c2", [upd(1, "a", title="z")])
        head2 = s.pull("c1")["cursor"]
        again = s.push("c1", batch)
        self.assertEqual([r["status"] for r in again], ["applied", "applied", "rejected", "applied"])
        self.assertEqual(again[2]["reason"], first[2]["reason"])
        self.assertEqual(again[0]["row"]["title"], "z")
        self.assertEqual(again[0]["row"]["rev"], 2)  # not bumped again by a re-applied update
        self.assertNotEqual(head, head2)
        self.assertEqual(s.pull("c1", cursor=head2)["changes"], [])  # nothing new was written
        # a batch mixing old and new ids applies only the new ones; each
        # answer shows the row as it stands at that point in id order
        mixed = s.push("c1", [upd(5, "a", title="new"), upd(2, "a", title="old")])
        self.assertEqual(mixed[0]["row"]["title"], "new")
        self.assertEqual(mixed[1]["row"]["title"], "z")

    def test_concurrent_pushes_of_one_client_serialize(self):
        s = self.server()
        s.push("c1", [ins(1, "first")])  # the client is known: its row exists
        batch = [ins(i, f"row{i}") for i in range(2, 42)]
        out, errors = [None, None, None], []

        def go(k):
            try:
                out[k] = s.push("c1", batch)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=go, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        for res in out:
            # a second application of an insert would answer UNIQUE
            self.assertEqual([r["status"] for r in res], ["applied"] * 40, res)
        changes, page = s.pull_all("c1")
        todos = [c for c in changes if c["table"] == "todos"]
        self.assertEqual(len(todos), 41)
        self.assertEqual(page["last_mutation_id"], 41)

    def test_restart_remembers_ids_and_cursors(self):
        s = self.server()
        s.push("c1", [ins(1, "a"), ins(2, "b")])
        cursor = s.pull("c1")["cursor"]
        self.assertEqual(s.restart(), 0)
        res = s.push("c1", [ins(1, "a"), ins(2, "b"), ins(3, "c")])
        self.assertEqual([r["status"] for r in res], ["applied"] * 3)
        page = s.pull("c1", cursor=cursor)
        self.assertEqual([c["pk"]["id"] for c in page["changes"]], ["c"])
        self.assertEqual(page["last_mutation_id"], 3)

    # ---- pull ----

    def test_pull_paging_and_last_mutation_id(self):
        s = self.server()
        self.assertEqual(s.pull("nobody")["last_mutation_id"], 0)
        s.push("c1", [ins(i, f"r{i:02}") for i in range(1, 26)])
        s.push("c2", [dele(1, "r03"), upd(2, "r04", title="changed")])
        # initial sync: live rows only, paged
        pages, cursor = [], None
        while True:
            page = s.pull("c1", cursor, limit=10)
            pages.append(page)
            cursor = page["cursor"]
            if not page["has_more"]:
                break
        # 24 todos + the seeded list; pages after the first continue from a
        # cursor, so the tombstone of r03 (newer than that cursor) comes too
        self.assertEqual([len(p["changes"]) for p in pages], [10, 10, 6])
        self.assertEqual([p["has_more"] for p in pages], [True, True, False])
        got = [c for p in pages for c in p["changes"] if c["op"] == "upsert"]
        self.assertEqual(len(got), 25)
        self.assertNotIn("r03", [c["pk"].get("id") for c in got])
        dels = [c for p in pages for c in p["changes"] if c["op"] == "delete"]
        self.assertEqual([c["pk"] for c in dels], [{"id": "r03"}])
        versions = [c["version"] for p in pages for c in p["changes"]]
        self.assertEqual(versions, sorted(versions))
        self.assertEqual(pages[-1]["last_mutation_id"], 25)
        self.assertEqual(s.pull("c2")["last_mutation_id"], 2)
        # incremental: tombstones and the changed row, in version order
        s.push("c2", [dele(3, "r05"), upd(4, "r06", title="again")])
        page = s.pull("c1", cursor)
        self.assertEqual([(c["op"], c["pk"]["id"]) for c in page["changes"]],
                         [("delete", "r05"), ("upsert", "r06")])
        self.assertNotIn("row", page["changes"][0])
        self.assertEqual(page["changes"][1]["row"]["title"], "again")
        # an empty page answers the head cursor
        empty = s.pull("c1", page["cursor"])
        self.assertEqual((empty["changes"], empty["has_more"]), ([], False))
        self.assertEqual(empty["cursor"], page["cursor"])
        # the change log keeps only the latest change per row
        s.push("c2", [upd(5, "r07", title="1"), upd(6, "r07", title="2")])
        page = s.pull("c1", empty["cursor"])
        self.assertEqual(len(page["changes"]), 1)
        self.assertEqual(page["changes"][0]["row"]["title"], "2")

    def test_pull_pending_from_answers_rejected_mutations(self):
        s = self.server()
        long_title = "x" * 200
        res = s.push("c1", [ins(17, "a", long_title), ins(18, "b", "ok")])  # CHECK, applied
        self.assertEqual([r["status"] for r in res], ["rejected", "applied"])
        s.push("c2", [ins(1, "c", long_title)])  # another client's rejection
        # the lost-answer case: the client still has 17 and 18 pending
        changes, page = s.pull_all("c1", None)
        self.assertEqual(page["last_mutation_id"], 18)
        self.assertEqual(page.get("rejected", []), [])  # not asked: none
        page = s.pull("c1", page["cursor"], pending_from=17)
        self.assertEqual(page["last_mutation_id"], 18)
        self.assertEqual(page["rejected"], [{"id": 17, "reason": res[0]["reason"]}])
        self.assertIn(self.reasons["check"], page["rejected"][0]["reason"].lower())
        # from the first page of an initial sync too, and below the first id
        first = s.pull("c1", limit=1, pending_from=1)
        self.assertEqual((first["has_more"], first["rejected"]),
                         (True, [{"id": 17, "reason": res[0]["reason"]}]))
        # above the rejected id: excluded
        self.assertEqual(s.pull("c1", pending_from=18)["rejected"], [])
        self.assertEqual([r["id"] for r in s.pull("c2", pending_from=1)["rejected"]], [1])
        self.assertEqual(s.pull("nobody", pending_from=1)["rejected"], [])
        # only up to last_mutation_id, in id order; later rejections follow
        res2 = s.push("c1", [ins(19, "b", "dup"), ins(20, "d", "ok"), upd(21, "zz", title="y")])
        self.assertEqual([r["status"] for r in res2], ["rejected", "applied", "rejected"])
        page = s.pull("c1", pending_from=17)
        self.assertEqual(page["last_mutation_id"], 21)
        self.assertEqual([r["id"] for r in page["rejected"]], [17, 19, 21])
        self.assertEqual(page["rejected"][2]["reason"], "no such row")
        # a malformed pending_from is 400 like other bad parameters
        for bad in ["0", "-1", "x", "", "1.5", "+3", " 1", "99999999999999999999"]:
            body = s.pull("c1", pending_from=bad, expect=400)
            self.assertIn("error", body)

    def test_pull_limit_validation(self):
        s = self.server()
        s.pull("c1", limit=0, expect=400)
        s.pull("c1", limit="x", expect=400)
        self.assertEqual(s.pull("c1", limit=10**9)["has_more"], False)
        for path in ["/pull", "/pull?client_id=", "/pull?client_id=%FF", "/events?client_id=%C0%AF",
                     "/pull?client_id=" + "x" * 257]:
            status, _, body = s.request("GET", path)
            self.assertEqual(status, 400, path)
            self.assertIn("error", body)

    def test_cursor_errors(self):
        s = self.server()
        s.push("c1", [ins(1, "a")])
        cur = s.pull("c1")["cursor"]
        dbid, _, ver = cur.rpartition("-")
        for bad in ["garbage", "-5", dbid + "-", dbid + "-1x", dbid + "--1", "a b-1", "\u00e9-1"]:
            body = s.pull("c1", bad, expect=400)
            self.assertIn("error", body)
        other = ("A" if dbid[0] != "A" else "B") + dbid[1:]
        # another database, or the future: the server was replaced or restored
        self.assertEqual(s.pull("c1", other + "-" + ver, expect=410),
                         {"error": "cursor expired", "reset": True})
        self.assertEqual(s.pull("c1", dbid + "-" + str(int(ver) + 100), expect=410),
                         {"error": "cursor expired", "reset": True})
        s.pull("c1", dbid + "-0")

    def test_compaction_expires_old_cursors(self):
        s = self.server("--max-tombstones", "2")
        s.push("c1", [ins(i, f"r{i}") for i in range(1, 6)])
        c0 = s.pull("c1")["cursor"]
        s.push("c1", [dele(6, "r1"), dele(7, "r2")])
        c1 = s.pull("c1")["cursor"]
        page = s.pull("c1", c0)  # two tombstones: still served
        self.assertEqual([c["op"] for c in page["changes"]], ["delete", "delete"])
        s.push("c1", [dele(8, "r3"), dele(9, "r4")])  # four: the oldest two go
        self.assertEqual(s.pull("c1", c0, expect=410), {"error": "cursor expired"})
        # c1 sits exactly at the new horizon: nothing it needs was purged
        page = s.pull("c1", c1)
        self.assertEqual([c["pk"]["id"] for c in page["changes"]], ["r3", "r4"])
        # initial sync still works and has only the live row
        changes, head = s.pull_all("c2")
        self.assertEqual([c["pk"]["id"] for c in changes if c["table"] == "todos"], ["r5"])
        self.assertEqual(s.pull("c2", head["cursor"])["changes"], [])

    # ---- events ----

    def test_events_replay_then_live(self):
        s = self.server()
        start = s.pull("watcher")["cursor"]
        s.push("c1", [ins(1, "a")])
        s.push("c1", [ins(2, "b")])
        ev = s.events("watcher", last_event_id=start)
        self.assertEqual(ev.status, 200)
        self.assertEqual(ev.resp.getheader("Content-Type"), "text/event-stream")
        first = ev.next_event()
        self.assertEqual(first["event"], "changes")
        self.assertEqual([c["pk"]["id"] for c in first["data"]["changes"]], ["a", "b"])
        self.assertEqual(first["id"], first["data"]["cursor"])
        self.assertEqual(first["id"], s.pull("watcher")["cursor"])
        s.push("c2", [ins(1, "live"), upd(2, "live", title="u")])
        live = ev.next_event(10)
        self.assertEqual([c["pk"]["id"] for c in live["data"]["changes"]], ["live"])
        self.assertEqual(live["data"]["changes"][0]["row"]["title"], "u")
        self.assertEqual(live["id"], live["data"]["cursor"])
        self.assertEqual(live["data"]["last_mutation_id"], 0)
        self.assertEqual(live["data"]["has_more"], False)
        # resuming from the live event's id replays nothing old
        ev.close()
        ev2 = s.events("watcher", last_event_id=live["id"])
        s.push("c2", [ins(3, "later")])
        nxt = ev2.next_event(10)
        self.assertEqual([c["pk"]["id"] for c in nxt["data"]["changes"]], ["later"])
        ev2.close()

    def test_events_replay_in_pages(self):
        s = self.server()
        start = s.pull("w")["cursor"]
        s.push("c1", [ins(i, f"r{i:04}") for i in range(1, 1501)])
        ev = s.events("w", last_event_id=start)
        first, second = ev.next_event(20), ev.next_event(20)
        ev.close()
        self.assertEqual(len(first["data"]["changes"]), 1000)
        self.assertTrue(first["data"]["has_more"])
        self.assertEqual(first["id"], first["data"]["cursor"])
        self.assertEqual(len(second["data"]["changes"]), 500)
        self.assertFalse(second["data"]["has_more"])
        self.assertEqual(second["id"], s.pull_all("w")[1]["cursor"])

    def test_events_cursor_param_and_header_precedence(self):
        s = self.server()
        c0 = s.pull("w")["cursor"]
        s.push("c1", [ins(1, "a")])
        c1 = s.pull("w")["cursor"]
        s.push("c1", [ins(2, "b")])
        ev = s.events("w", cursor=c0)
        self.assertEqual([c["pk"]["id"] for c in ev.next_event()["data"]["changes"]], ["a", "b"])
        ev.close()
        ev = s.events("w", cursor=c0, last_event_id=c1)
        self.assertEqual([c["pk"]["id"] for c in ev.next_event()["data"]["changes"]], ["b"])
        ev.close()

    def test_events_without_cursor_start_at_head(self):
        s = self.server()
        s.push("c1", [ins(1, "old")])
        ev = s.events("w")
        kind, _ = ev.next(5)  # the stream is open before the push
        self.assertEqual(kind, "comment")
        s.push("c1", [ins(2, "new")])
        got = ev.next_event(10)
        self.assertEqual([c["pk"]["id"] for c in got["data"]["changes"]], ["new"])
        ev.close()

    def test_events_expired_and_malformed_cursor(self):
        s = self.server()
        ev = s.events("w", cursor="zzzzzzzzzzzz-1")
        self.assertEqual(ev.status, 410)
        self.assertEqual(ev.resp.read(), b'{"error":"cursor expired"}')
        ev.close()
        ev = s.events("w", last_event_id="not a cursor")
        self.assertEqual(ev.status, 400)
        ev.close()

    def test_heartbeat(self):
        s = self.server("--heartbeat", "1")
        ev = s.events("w")
        t0 = time.monotonic()
        comments = []
        while len(comments) < 2 and time.monotonic() - t0 < 6:
            kind, text = ev.next(5)
            if kind == "comment" and text == "ping":
                comments.append(time.monotonic() - t0)
        ev.close()
        self.assertEqual(len(comments), 2)
        self.assertLess(comments[1], 4)

    def test_sigterm_ends_streams_and_exits_zero(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            s = self.server()
            ev = s.events("w")
            ev.next(5)
            t0 = time.monotonic()
            self.assertEqual(s.stop(sig), 0, sig)
            self.assertLess(time.monotonic() - t0, 5)
            with self.assertRaises((EOFError, ConnectionError, OSError)):
                while True:
                    ev.next(2)
            ev.close()

    # ---- HTTP rules ----

    def test_token(self):
        s = self.server("--token", "s3cret")
        self.assertEqual(s.request("GET", "/health")[0], 200)
        good = {"Authorization": "Bearer s3cret"}
        for method, path, body in [("GET", "/pull?client_id=c", None),
                                   ("POST", "/push", {"client_id": "c", "mutations": []}),
                                   ("GET", "/events?client_id=c", None)]:
            for hdrs in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                         {"Authorization": "Bearer s3cre"}]:
                status, _, data = s.request(method, path, body, headers=hdrs)
                self.assertEqual((status, data), (401, {"error": "unauthorized"}), (path, hdrs))
        self.assertEqual(s.request("GET", "/pull?client_id=c", headers=good)[0], 200)
        res = s.push("c", [ins(1, "a")], headers=good)
        self.assertEqual(res[0]["status"], "applied")
        ev = s.events("c", headers=good)
        self.assertEqual(ev.status, 200)
        ev.close()

    def test_body_limit(self):
        s = self.server("--max-body", "1000")
        small = {"client_id": "c", "mutations": [ins(1, "a", "x" * 50)]}
        self.assertEqual(s.request("POST", "/push", small)[0], 200)
        big = {"client_id": "c", "mutations": [ins(2, "b", "x" * 2000)]}
        status, _, data = s.request("POST", "/push", big)
        self.assertEqual(status, 413)
        self.assertIn("error", data)
        self.assertEqual(s.pull("c")["last_mutation_id"], 1)
        # a chunked body has no length to check up front: it is counted
        chunks = (b"x" * 300 for _ in range(10))
        conn = http.client.HTTPConnection(s.host, s.port, timeout=10)
        conn.request("POST", "/push", body=chunks, encode_chunked=True,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 413)
        self.assertIn(b"error", resp.read())
        conn.close()

    def test_connection_limit(self):
        # streams leave a reserve of the slots to requests: of a cap of 2,
        # one may stream (docs/PROTOCOL.md, --max-connections)
        s = self.server("--max-connections", "2", "--heartbeat", "1")
        first = s.events("w1")
        first.next(5)
        second = s.events("w2")
        self.assertEqual(second.status, 429)
        second.close()
        # the one free slot may still be held by the 429's connection for a
        # moment (its thread closes it): a client retries a refused connect
        deadline = time.monotonic() + 2
        while True:
            try:
                self.assertEqual(s.request("GET", "/health", timeout=5)[0], 200)
                break
            except (ConnectionError, http.client.HTTPException):
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.1)
        first.close()
        deadline = time.monotonic() + 10
        while True:  # the server notices the hang-up at its next heartbeat
            try:
                second = s.events("w2")
                if second.status == 200:
                    break
                second.close()
            except (ConnectionError, http.client.HTTPException):
                pass
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.2)
        second.close()

    def test_bad_requests_change_nothing(self):
        s = self.server()
        good = ins(1, "a")
        bodies = [
            "{not json",
            "",
            "[]",
            '"just a string"',
            {"mutations": [good]},
            {"client_id": 5, "mutations": [good]},
            {"client_id": "", "mutations": [good]},
            {"client_id": "c", "mutations": {"0": good}},
            {"client_id": "c"},
            {"client_id": "c", "mutations": [good, dict(good, id=1.5)]},
            {"client_id": "c", "mutations": [good, dict(good, id="2")]},
            {"client_id": "c", "mutations": [good, dict(good, id=18446744073709551616)]},
            {"client_id": "c", "mutations": [good, dict(good, id=-3)]},
            {"client_id": "c", "mutations": [good, dict(good, id=2, op="upsert")]},
            {"client_id": "c", "mutations": [good, dict(good, id=2, op=None)]},
            {"client_id": "c", "mutations": [good, dict(good, id=2, pk=["a"])]},
            {"client_id": "c", "mutations": [good, dict(good, id=2, pk="a")]},
            {"client_id": "c", "mutations": [good, dict(good, id=2, table=7)]},
            {"client_id": "c", "mutations": [good, dict(good, id=2, data="x")]},
            {"client_id": "c", "mutations": [good, "not an object"]},
            {"client_id": "c", "mutations": [good, []]},
            {"client_id": "c", "mutations": [good, None]},
            {"client_id": "c", "mutations": [good, {}]},
            # a key given twice counts once, its first occurrence
            '{"client_id":"c","mutations":[{"id":"x","id":1,"table":"todos","op":"insert",'
            '"pk":{"id":"a"},"data":{"id":"a","title":"t"}}]}',
            '{"client_id":"c","mutations":[{"id":1,"table":"todos\\u0000x","table":"todos",'
            '"op":"insert","pk":{"id":"a"},"data":{"id":"a","title":"t"}}]}',
            {"client_id": "c\u0000x", "mutations": [good]},
            {"client_id": "c", "mutations": [good, dict(good, id=2, table="todos\u0000x")]},
            {"client_id": "x" * 257, "mutations": [good]},
            b'{"client_id":"c\xff","mutations":[]}',
            b'{"client_id":"c","mutations":[{"id":1,"table":"todos","op":"insert",'
            b'"pk":{"id":"a"},"data":{"id":"a","title":"\xed\xa0\x80"}}]}',
            b'{"client_id":"c","mutations":[{"id":1,"table":"todos","op":"insert",'
            b'"pk":{"id":"a"},"data":{"id":"a","title":"\xc0\xaf"}}]}',
        ]
        for body in bodies:
            status, _, data = s.request("POST", "/push", body)
            self.assertEqual(status, 400, body)
            self.assertIsInstance(data, dict, body)
            self.assertIsInstance(data.get("error"), str, body)
        changes, page = s.pull_all("c")
        self.assertEqual([c for c in changes if c["table"] == "todos"], [])
        self.assertEqual(page["last_mutation_id"], 0)
        self.assertEqual(s.request("GET", "/health")[0], 200)  # still alive

    def test_a_key_given_twice_counts_its_first_occurrence(self):
        s = self.server()
        body = ('{"client_id":"c","mutations":[{"id":1,"id":"x","table":"todos","table":7,'
                '"op":"insert","op":"drop","pk":{"id":"a"},"pk":1,'
                '"data":{"id":"a","title":"first"},"data":{"id":"a","title":"second"}}]}')
        status, _, data = s.request("POST", "/push", body)
        self.assertEqual(status, 200, data)
        self.assertEqual([(r["id"], r["status"], r["row"]["title"]) for r in data["results"]],
                         [(1, "applied", "first")])

    def test_escapes_in_a_push_body(self):
        # string values are unescaped (a surrogate pair is one character);
        # keys compare as written, as json_extract's paths do
        s = self.server()
        body = ('{"client_id":"c\\ud83d\\ude00","mutations":[{"id":1,"table":"\\u0074odos",'
                '"op":"ins\\u0065rt","pk":{ "id" : "a" },"data":{"id":"a","title":"\\"q\\" \\\\"}}]}')
        status, _, data = s.request("POST", "/push", body)
        self.assertEqual(status, 200, data)
        self.assertEqual(data["results"][0]["row"]["title"], '"q" \\')
        changes, page = s.pull_all("c\U0001F600")
        self.assertEqual(page["last_mutation_id"], 1)
        status, _, data = s.request("POST", "/push", body.replace('"id":1', '"\\u0069d":2'))
        self.assertEqual((status, data["error"]), (400, "mutations[0].id must be a positive"
                                                       " 64-bit integer"))

    def test_not_found_and_method_not_allowed(self):
        s = self.server()
        for method, path in [("GET", "/nope"), ("POST", "/pushx"), ("GET", "/"),
                             ("GET", "/push/extra")]:
            status, _, data = s.request(method, path)
            self.assertEqual(status, 404, path)
            self.assertIn("error", data)
        for method, path in [("GET", "/push"), ("POST", "/pull"), ("DELETE", "/events"),
                             ("PUT", "/push"), ("POST", "/health")]:
            status, resp, data = s.request(method, path, body="{}" if method != "GET" else None)
            self.assertEqual(status, 405, (method, path))
            self.assertIn("error", data)
            self.assertTrue(resp.getheader("Allow"), (method, path))

    def docs_server(self):
        """A server whose folder x1 holds doc d1: WITHOUT ROWID tables on
        SQLite (foreign_key_check names no rowid there), a key of two
        columns, a table referring to itself (PostgreSQL defers DEFERRABLE
        keys only)."""
        tail, fk = (" WITHOUT ROWID", "") if self.backend == "sqlite" else ("", " DEFERRABLE")
        path = f"{self.tmp}/schema.sql"
        with open(path, "w") as f:
            f.write(f"CREATE TABLE folders(a TEXT, b INTEGER, PRIMARY KEY(a, b)){tail};"
                    f"CREATE TABLE docs(id TEXT PRIMARY KEY, fa TEXT, fb INTEGER,"
                    f" up TEXT REFERENCES docs(id){fk},"
                    f" FOREIGN KEY(fa, fb) REFERENCES folders(a, b){fk}){tail};")
        s = self.server(schema=path)
        res = s.push("c1", [mut(1, "folders", "insert", X1, X1),
                            mut(2, "docs", "insert", {"id": "d1"}, {"id": "d1", "fa": "x", "fb": 1})])
        self.assertEqual([r["status"] for r in res], ["applied"] * 2, res)
        return s

    def test_rows_referring_to_no_row_are_found_by_key(self):
        # d1's folder changes key; in the same batch, rows referring to no
        # row, d4 written twice (both writes refused, one run after the
        # other)
        s = self.docs_server()
        res = s.push("c1", [
            mut(3, "docs", "update", {"id": "d1"}, {"fb": 2}),
            mut(4, "docs", "insert", {"id": "d2"}, {"id": "d2", "up": "gone"}),
            mut(5, "docs", "insert", {"id": "d3"}, {"id": "d3", "fa": "x", "up": "d1"}),
            mut(6, "docs", "insert", {"id": "d4"}, {"id": "d4", "fa": "y", "fb": 9}),
            mut(7, "docs", "update", {"id": "d4"}, {"up": "d1"}),
            mut(8, "folders", "delete", X1),
            mut(9, "folders", "insert", X2, X2)])
        self.assertEqual([r["status"] for r in res],
                         ["applied", "rejected", "applied", "rejected", "rejected", "applied",
                          "applied"], res)
        for r in (res[1], res[3], res[4]):
            self.assertReason(r, "fk")
        changes, _ = s.pull_all("c2")
        live = {(c["table"], json.dumps(c["row"], sort_keys=True))
                for c in changes if c["row"] is not None}
        self.assertEqual(live, {("folders", '{"a": "x", "b": 2}'),
                                ("docs", '{"fa": "x", "fb": 2, "id": "d1", "up": null}'),
                                ("docs", '{"fa": "x", "fb": null, "id": "d3", "up": "d1"}')})

    def test_a_refusal_that_leaves_another_row_without_its_parent(self):
        # dA refers to no row, dB (written twice) to dA: the runs refuse dA,
        # then dB's update, then dB's insert, and the key change is applied
        s = self.docs_server()
        res = s.push("c1", [
            mut(3, "docs", "update", {"id": "d1"}, {"fb": 2}),
            mut(4, "docs", "insert", {"id": "dA"}, {"id": "dA", "up": "gone"}),
            mut(5, "docs", "insert", {"id": "dB"}, {"id": "dB", "up": "dA"}),
            mut(6, "docs", "update", {"id": "dB"}, {"fb": None}),
            mut(7, "folders", "delete", X1),
            mut(8, "folders", "insert", X2, X2)])
        self.assertEqual([r["status"] for r in res],
                         ["applied"] + ["rejected"] * 3 + ["applied"] * 2, res)
        for r in res[1:4]:
            self.assertReason(r, "fk")

    def test_a_parent_deleted_under_a_child_does_not_refuse_a_key_change(self):
        # c1 moves list 7 to key 8 and deletes list 3, to which c2 has added
        # a note meanwhile: only that delete is refused
        s = self.server()
        res = s.push("c1", [
            {"id": 1, "table": "lists", "op": "insert", "pk": {"id": 7}, "data": {"id": 7}},
            {"id": 2, "table": "lists", "op": "insert", "pk": {"id": 3}, "data": {"id": 3}},
            {"id": 3, "table": "notes", "op": "insert", "pk": {"id": 5},
             "data": {"id": 5, "list_id": 7}}])
        res += s.push("c2", [{"id": 1, "table": "notes", "op": "insert", "pk": {"id": 6},
                              "data": {"id": 6, "list_id": 3}}])
        self.assertEqual([r["status"] for r in res], ["applied"] * 4, res)
        res = s.push("c1", [
            {"id": 4, "table": "notes", "op": "update", "pk": {"id": 5}, "data": {"list_id": 8}},
            {"id": 5, "table": "lists", "op": "delete", "pk": {"id": 7}},
            {"id": 6, "table": "lists", "op": "insert", "pk": {"id": 8}, "data": {"id": 8}},
            {"id": 7, "table": "lists", "op": "delete", "pk": {"id": 3}}])
        self.assertEqual([r["status"] for r in res], ["applied"] * 3 + ["rejected"], res)
        self.assertReason(res[3], "fk")
        changes, _ = s.pull_all("c3")
        live = sorted((c["table"], c["pk"]["id"], (c["row"] or {}).get("list_id"))
                      for c in changes if c["row"] is not None)
        self.assertEqual(live, [("lists", 1, None), ("lists", 3, None), ("lists", 8, None),
                                ("notes", 5, 8), ("notes", 6, 3)])

    def test_a_fault_not_found_runs_the_batch_strict(self):
        # a key that refers to other columns than the parent's key: its
        # parent's delete is not traced to the rows left without it, and the
        # batch runs with each mutation held to the keys
        fk = "" if self.backend == "sqlite" else " DEFERRABLE"
        path = f"{self.tmp}/schema.sql"
        with open(path, "w") as f:
            f.write("CREATE TABLE p(id INTEGER PRIMARY KEY, code TEXT UNIQUE);"
                    f"CREATE TABLE ch(id INTEGER PRIMARY KEY, code TEXT REFERENCES p(code){fk});")
        s = self.server(schema=path)
        res = s.push("c1", [
            {"id": 1, "table": "p", "op": "insert", "pk": {"id": 1}, "data": {"id": 1, "code": "a"}},
            {"id": 2, "table": "p", "op": "insert", "pk": {"id": 2}, "data": {"id": 2, "code": "b"}},
            {"id": 3, "table": "ch", "op": "insert", "pk": {"id": 1},
             "data": {"id": 1, "code": "a"}}])
        self.assertEqual([r["status"] for r in res], ["applied"] * 3, res)
        res = s.push("c1", [
            {"id": 4, "table": "p", "op": "delete", "pk": {"id": 1}},
            {"id": 5, "table": "ch", "op": "insert", "pk": {"id": 2},
             "data": {"id": 2, "code": "b"}}])
        self.assertReason(res[0], "fk")
        self.assertEqual(res[1]["status"], "applied", res)


class SqliteProtocolTest(SqliteStore, ProtocolTests, unittest.TestCase):
    reasons = {"check": "check constraint failed", "not_null": "not null constraint failed",
               "unique": "unique constraint failed", "fk": "foreign key constraint failed"}

    def test_foreign_keys_hold_at_the_end_of_the_batch(self):
        # A client's key change with ON UPDATE CASCADE queues the children's
        # new key before the parent's new row: a child may come before its
        # parent in a batch, and is applied when the batch ends consistent.
        s = self.server()
        item = {"id": 1, "table": "items", "op": "insert", "pk": {"list_id": 7, "pos": 1},
                "data": {"list_id": 7, "pos": 1, "label": "x"}}
        note = {"id": 2, "table": "notes", "op": "insert", "pk": {"id": 5},
                "data": {"id": 5, "list_id": 7}}
        lst = {"id": 3, "table": "lists", "op": "insert", "pk": {"id": 7},
               "data": {"id": 7, "name": "seven"}}
        res = s.push("c1", [item, note, lst, ins(4, "a")])
        self.assertEqual([r["status"] for r in res], ["applied"] * 4, res)
        changes, _ = s.pull_all("c2")
        self.assertEqual(sorted(str(c["pk"]) for c in changes if c["table"] != "todos"),
                         ["{'id': 1}", "{'id': 5}", "{'id': 7}", "{'list_id': 7, 'pos': 1}"])
        # one left broken at the end: the batch runs again with each
        # mutation held to them, and only the ones that break one are refused
        res = s.push("c1", [
            dict(item, id=5, pk={"list_id": 99, "pos": 1}, data={"list_id": 99, "pos": 1}),
            dict(item, id=6, pk={"list_id": 7, "pos": 2}, data={"list_id": 7, "pos": 2}),
            ins(7, "b")])
        self.assertReason(res[0], "fk")
        self.assertEqual([r["status"] for r in res[1:]], ["applied", "applied"])

    def test_a_dangling_child_does_not_refuse_a_key_change_of_the_same_batch(self):
        # c1 moves list 7 to key 8 (its item's key follows: the item's new
        # row comes before the new list's); in the same batch a child of a
        # list no one has. Only that child is refused: the key change, whose
        # new item refers to a row the batch writes later, is applied.
        s = self.server()
        item = {"table": "items", "op": "insert", "pk": {"list_id": 7, "pos": 1},
                "data": {"list_id": 7, "pos": 1, "label": "x"}}
        lst = {"table": "lists", "op": "insert", "pk": {"id": 7}, "data": {"id": 7, "name": "l"}}
        note = {"id": 3, "table": "notes", "op": "insert", "pk": {"id": 5},
                "data": {"id": 5, "list_id": 7}}
        res = s.push("c1", [dict(lst, id=1), dict(item, id=2), note])
        self.assertEqual([r["status"] for r in res], ["applied"] * 3, res)
        batch = [
            dict(item, id=4, op="delete", data=None),
            dict(item, id=5, pk={"list_id": 8, "pos": 1}, data={"list_id": 8, "pos": 1}),
            {"id": 6, "table": "notes", "op": "update", "pk": {"id": 5}, "data": {"list_id": 8}},
            dict(item, id=7, pk={"list_id": 99, "pos": 1}, data={"list_id": 99, "pos": 1}),
            dict(lst, id=8, op="delete", data=None),
            dict(lst, id=9, pk={"id": 8}, data={"id": 8, "name": "l"}),
            dict(item, id=10, pk={"list_id": 8, "pos": 2}, data={"list_id": 8, "pos": 2})]
        batch = [{k: v for k, v in m.items() if v is not None} for m in batch]
        res = s.push("c1", batch)
        self.assertEqual([r["status"] for r in res],
                         ["applied"] * 3 + ["rejected"] + ["applied"] * 3, res)
        self.assertReason(res[3], "fk")
        # the refusal is recorded like any other: a replay answers the same
        self.assertEqual(s.push("c1", batch), res)
        changes, _ = s.pull_all("c2")
        live = sorted((c["table"], json.dumps(c["pk"], sort_keys=True))
                      for c in changes if c["row"] is not None)
        self.assertEqual(live, [("items", '{"list_id": 8, "pos": 1}'),
                                ("items", '{"list_id": 8, "pos": 2}'),
                                ("lists", '{"id": 1}'), ("lists", '{"id": 8}'),
                                ("notes", '{"id": 5}')])


class PgProtocolTest(PgStore, ProtocolTests, unittest.TestCase):
    reasons = {"check": "check constraint", "not_null": "not-null constraint",
               "unique": "unique constraint", "fk": "foreign key constraint"}

    def test_deferrable_foreign_keys_hold_at_the_end_of_the_batch(self):
        # notes.list_id is DEFERRABLE (schema_pg.sql): a child before its
        # parent in a batch is applied, as on SQLite; items.list_id is not,
        # and PostgreSQL checks it at each statement: its child is put off
        # until the rest of the batch has run, then applied too
        s = self.server()
        note = {"id": 1, "table": "notes", "op": "insert", "pk": {"id": 5},
                "data": {"id": 5, "list_id": 7}}
        item = {"id": 2, "table": "items", "op": "insert", "pk": {"list_id": 7, "pos": 1},
                "data": {"list_id": 7, "pos": 1}}
        lst = {"id": 3, "table": "lists", "op": "insert", "pk": {"id": 7},
               "data": {"id": 7, "name": "seven"}}
        res = s.push("c1", [note, item, lst, ins(4, "a")])
        self.assertEqual([r["status"] for r in res], ["applied"] * 4, res)
        # still broken at the end: refused alone
        res = s.push("c1", [dict(note, id=5, pk={"id": 6}, data={"id": 6, "list_id": 99}),
                            dict(note, id=6, pk={"id": 7}, data={"id": 7, "list_id": 7}),
                            ins(7, "b")])
        self.assertReason(res[0], "fk")
        self.assertEqual([r["status"] for r in res[1:]], ["applied", "applied"])

    def test_a_key_change_keeps_its_children_under_a_key_checked_at_once(self):
        # items.list_id is not DEFERRABLE: list 7 moves to key 8 and its
        # items follow as the client's ON UPDATE CASCADE wrote them, each
        # item's new row before the new list. Those are put off until the
        # rest of the batch has run, with the later update of one of them;
        # an item of a list no one has is still refused. Before, the new
        # items were refused and the old list's delete left none.
        s = self.server()

        def item(id, op, list_id, pos, label=None):
            m = {"id": id, "table": "items", "op": op, "pk": {"list_id": list_id, "pos": pos}}
            if op != "delete":
                m["data"] = {"label": label} if op == "update" else \
                    {"list_id": list_id, "pos": pos, "label": label}
            return m
        res = s.push("c1", [
            {"id": 1, "table": "lists", "op": "insert", "pk": {"id": 7}, "data": {"id": 7}},
            item(2, "insert", 7, 1, "a"), item(3, "insert", 7, 2, "b")])
        self.assertEqual([r["status"] for r in res], ["applied"] * 3, res)
        batch = [item(4, "delete", 7, 1), item(5, "insert", 8, 1, "a"),
                 item(6, "delete", 7, 2), item(7, "insert", 8, 2, "b"),
                 item(8, "update", 8, 2, "b2"),
                 {"id": 9, "table": "lists", "op": "delete", "pk": {"id": 7}},
                 {"id": 10, "table": "lists", "op": "insert", "pk": {"id": 8}, "data": {"id": 8}},
                 item(11, "insert", 99, 1, "x"), ins(12, "a")]
        res = s.push("c1", batch)
        self.assertEqual([r["status"] for r in res], ["applied"] * 7 + ["rejected", "applied"], res)
        self.assertReason(res[7], "fk")
        self.assertEqual(res[4]["row"], {"list_id": 8, "pos": 2, "label": "b2"})
        # a replay answers from the outcomes recorded, rows as they are now
        again = s.push("c1", batch)
        self.assertEqual([(r["status"], r.get("reason")) for r in again],
                         [(r["status"], r.get("reason")) for r in res])
        changes, _ = s.pull_all("c2")
        live = sorted((c["table"], json.dumps(c["row"], sort_keys=True)) for c in changes
                      if c["row"] is not None and c["table"] in ("lists", "items"))
        self.assertEqual(live, [
            ("items", json.dumps({"label": "a", "list_id": 8, "pos": 1}, sort_keys=True)),
            ("items", json.dumps({"label": "b2", "list_id": 8, "pos": 2}, sort_keys=True)),
            ("lists", json.dumps({"id": 1, "name": "seeded"}, sort_keys=True)),
            ("lists", json.dumps({"id": 8, "name": None}, sort_keys=True))])

    def test_a_mutation_sent_twice_in_one_batch_is_not_put_off(self):
        # an id twice in one batch is answered twice alike: put off, its
        # first copy would run after its second (refused again before the
        # list is there) and be applied, two outcomes for one id
        s = self.server()
        item = {"id": 2, "table": "items", "op": "insert", "pk": {"list_id": 7, "pos": 1},
                "data": {"list_id": 7, "pos": 1}}
        lst = {"id": 3, "table": "lists", "op": "insert", "pk": {"id": 7}, "data": {"id": 7}}
        res = s.push("c1", [ins(1, "a"), item, dict(item), lst])
        self.assertEqual([r["status"] for r in res], ["applied", "rejected", "rejected", "applied"])
        self.assertEqual(res[1], res[2])
        self.assertReason(res[1], "fk")
        changes, _ = s.pull_all("c2")
        self.assertEqual([c for c in changes if c["table"] == "items"], [])

    def test_a_dangling_child_does_not_refuse_a_key_change_of_the_same_batch(self):
        # list 7 moves to key 8, its note following before the new list is
        # written; a note of a list no one has, in the same batch, is the
        # only one refused
        s = self.server()
        res = s.push("c1", [
            {"id": 1, "table": "lists", "op": "insert", "pk": {"id": 7}, "data": {"id": 7}},
            {"id": 2, "table": "notes", "op": "insert", "pk": {"id": 5},
             "data": {"id": 5, "list_id": 7}}])
        self.assertEqual([r["status"] for r in res], ["applied"] * 2, res)
        batch = [
            {"id": 3, "table": "notes", "op": "update", "pk": {"id": 5}, "data": {"list_id": 8}},
            {"id": 4, "table": "notes", "op": "insert", "pk": {"id": 6},
             "data": {"id": 6, "list_id": 99}},
            {"id": 5, "table": "lists", "op": "delete", "pk": {"id": 7}},
            {"id": 6, "table": "lists", "op": "insert", "pk": {"id": 8}, "data": {"id": 8}},
            ins(7, "a")]
        res = s.push("c1", batch)
        self.assertEqual([r["status"] for r in res],
                         ["applied", "rejected", "applied", "applied", "applied"], res)
        self.assertReason(res[1], "fk")
        self.assertIn('"notes"', res[1]["reason"])
        self.assertEqual(s.push("c1", batch), res)
        changes, _ = s.pull_all("c2")
        live = sorted((c["table"], c["pk"]["id"]) for c in changes
                      if c["row"] is not None and c["table"] != "todos")
        self.assertEqual(live, [("lists", 1), ("lists", 8), ("notes", 5)])

    def test_values_follow_the_column_types(self):
        s = self.server()
        res = s.push("c1", [
            {"id": 1, "table": "typed", "op": "insert", "pk": {"id": INT_MIN},
             "data": {"id": INT_MIN, "n": INT_MAX, "flag": True}},
            {"id": 2, "table": "typed", "op": "insert", "pk": {"id": 2},
             "data": {"id": 2, "n": None, "flag": False}},
            {"id": 3, "table": "typed", "op": "insert", "pk": {"id": 3},
             "data": {"id": 3, "n": 1.5}},                      # not an integer
            {"id": 4, "table": "typed", "op": "insert", "pk": {"id": 4},
             "data": {"id": 4, "flag": "maybe"}},               # not a boolean
            {"id": 5, "table": "todos", "op": "insert", "pk": {"id": "b"},
             "data": {"id": "b", "title": "t", "b": {"$base64": "not base64!"}}},
            {"id": 6, "table": "todos", "op": "insert", "pk": {"id": "r"},
             "data": {"id": "r", "title": "t", "r": 2.0}},
        ])
        self.assertEqual(res[0]["row"], {"id": INT_MIN, "n": INT_MAX, "flag": True})
        self.assertEqual(res[1]["row"], {"id": 2, "n": None, "flag": False})
        for r in res[2:5]:
            self.assertEqual(r["status"], "rejected", r)
        self.assertIsInstance(res[5]["row"]["r"], float)  # printed 2.0, not 2
        page = s.pull("c1")
        rows = {c["pk"]["id"]: c["row"] for c in page["changes"] if c["table"] == "typed"}
        self.assertEqual(rows[INT_MIN]["flag"], True)


if __name__ == "__main__":
    unittest.main()
