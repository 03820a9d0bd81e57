"""What syncd logs and serves on schemas real apps have (issue 13), once
per storage: rows a foreign-key cascade or a server trigger changes are
logged like the mutation's own row; internal, shadow and partition tables
are neither served nor writable; an insert whose data names another key
than pk is refused even when the pk row exists; an initial sync spanning
several pages finishes under --max-tombstones; a pull with `tables` ships
only those tables."""
import os
import shutil
import tempfile
import unittest
import urllib.parse

from syncd_util import PgStore, SqliteStore, Syncd

SCHEMA_SQLITE = """
CREATE TABLE parents(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE children(id INTEGER PRIMARY KEY,
  parent_id INTEGER REFERENCES parents(id) ON DELETE CASCADE, label TEXT);
CREATE TABLE audit(id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT);
CREATE TRIGGER parents_audit AFTER INSERT ON parents
BEGIN
  INSERT INTO audit(what) VALUES ('parent ' || new.id);
END;
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT);
CREATE TABLE "odd, name%"(id INTEGER PRIMARY KEY, v TEXT);
CREATE TABLE nodes(id INTEGER PRIMARY KEY,
  parent INTEGER REFERENCES nodes(id) ON DELETE CASCADE, label TEXT);
-- renaming a node renumbers its children: their old keys go, new ones come
CREATE TRIGGER nodes_renumber AFTER UPDATE OF label ON nodes WHEN new.label = 'renumber'
BEGIN
  UPDATE nodes SET id = id + 100 WHERE parent = new.id;
END;
CREATE VIRTUAL TABLE docs USING fts5(body);
INSERT INTO docs(body) VALUES ('seeded text');
"""

SCHEMA_PG = """
CREATE TABLE parents(id bigint PRIMARY KEY, name text);
CREATE TABLE children(id bigint PRIMARY KEY,
  parent_id bigint REFERENCES parents(id) ON DELETE CASCADE, label text);
CREATE TABLE audit(id bigserial PRIMARY KEY, what text);
CREATE FUNCTION parents_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit(what) VALUES ('parent ' || NEW.id);
  RETURN NULL;
END $$;
CREATE TRIGGER parents_audit AFTER INSERT ON parents FOR EACH ROW
  EXECUTE FUNCTION parents_audit();
CREATE TABLE todos(id text PRIMARY KEY, title text);
CREATE TABLE "odd, name%"(id bigint PRIMARY KEY, v text);
CREATE TABLE nodes(id bigint PRIMARY KEY,
  parent bigint REFERENCES nodes(id) ON DELETE CASCADE, label text);
CREATE FUNCTION nodes_renumber() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE nodes SET id = id + 100 WHERE parent = NEW.id;
  RETURN NULL;
END $$;
CREATE TRIGGER nodes_renumber AFTER UPDATE OF label ON nodes FOR EACH ROW
  WHEN (NEW.label = 'renumber') EXECUTE FUNCTION nodes_renumber();
CREATE TABLE dated(at date NOT NULL, id bigint NOT NULL, PRIMARY KEY (at, id))
  PARTITION BY RANGE (at);
CREATE TABLE dated_2026 PARTITION OF dated FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
"""


def ins(mid, table, key, **cols):
    return {"id": mid, "table": table, "op": "insert", "pk": {"id": key},
            "data": dict(id=key, **cols)}


def dele(mid, table, key):
    return {"id": mid, "table": table, "op": "delete", "pk": {"id": key}}


class LoggingTests:
    backend = None
    schema = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="syncd-test-")
        self.servers = []

    def tearDown(self):
        rcs = [(s.stop(), s.log()[-2000:]) for s in self.servers]
        shutil.rmtree(self.tmp, ignore_errors=True)
        for rc, log in rcs:
            self.assertEqual(rc, 0, log)

    def server(self, *extra):
        path = os.path.join(self.tmp, "schema.sql")
        with open(path, "w") as f:
            f.write(self.schema)
        s = Syncd(self.backend, self.store_args(), extra, path)
        self.servers.append(s)
        return s

    @staticmethod
    def live(changes):
        """{(table, id): row or None} after applying changes in order."""
        rows = {}
        for c in changes:
            rows[(c["table"], c["pk"]["id"])] = c.get("row")
        return {k: v for k, v in rows.items() if v is not None}

    # ---- 6: cascades and trigger-written rows are logged ----

    def test_cascaded_and_trigger_written_rows_are_logged(self):
        s = self.server()
        _, start = s.pull_all("c2")
        res = s.push("c1", [ins(1, "parents", 1, name="p"),
                            ins(2, "children", 10, parent_id=1, label="a"),
                            ins(3, "children", 11, parent_id=1, label="b")])
        self.assertEqual([r["status"] for r in res], ["applied"] * 3, res)
        changes, mid = s.pull_all("c2", start["cursor"])
        # the audit row the server's trigger wrote reaches other clients
        audit = [c for c in changes if c["table"] == "audit"]
        self.assertEqual([c["row"]["what"] for c in audit], ["parent 1"], changes)
        self.assertEqual(len({c["version"] for c in changes}), len(changes))
        res = s.push("c1", [dele(4, "parents", 1)])
        self.assertEqual(res[0]["status"], "applied", res)
        changes, _ = s.pull_all("c2", mid["cursor"])
        self.assertEqual(sorted((c["table"], c["pk"]["id"], c["op"]) for c in changes),
                         [("children", 10, "delete"), ("children", 11, "delete"),
                          ("parents", 1, "delete")])
        # a fresh client receives no row the cascade removed
        changes, _ = s.pull_all("c3")
        self.assertEqual([k for k in self.live(changes) if k[0] in ("parents", "children")], [])

    def test_a_refused_mutation_logs_none_of_its_cascade(self):
        s = self.server()
        s.push("c1", [ins(1, "parents", 1, name="p"), ins(2, "children", 10, parent_id=1)])
        _, start = s.pull_all("c2")
        # the parent's delete cascades, then the batch's next mutation is
        # refused: only the applied one's rows are logged
        res = s.push("c1", [dele(3, "parents", 1), ins(4, "children", 11, parent_id=1)])
        self.assertEqual([r["status"] for r in res], ["applied", "rejected"], res)
        changes, _ = s.pull_all("c2", start["cursor"])
        self.assertEqual(sorted((c["table"], c["pk"]["id"], c["op"]) for c in changes),
                         [("children", 10, "delete"), ("parents", 1, "delete")])

    def test_rows_of_the_same_table_and_moved_keys_are_logged(self):
        s = self.server()
        s.push("c1", [ins(1, "nodes", 1, label="root"), ins(2, "nodes", 2, parent=1),
                      ins(3, "nodes", 3, parent=1)])
        _, start = s.pull_all("c2")
        # a server trigger moves the children's keys: old keys go, new come
        res = s.push("c1", [{"id": 4, "table": "nodes", "op": "update", "pk": {"id": 1},
                             "data": {"label": "renumber"}}])
        self.assertEqual(res[0]["status"], "applied", res)
        changes, _ = s.pull_all("c2", start["cursor"])
        self.assertEqual(sorted((c["pk"]["id"], c["op"]) for c in changes),
                         [(1, "upsert"), (2, "delete"), (3, "delete"), (102, "upsert"),
                          (103, "upsert")])
        s.push("c1", [ins(5, "nodes", 4, parent=102)])
        _, mid = s.pull_all("c2")
        # deleting the root cascades down its own table, two levels
        s.push("c1", [dele(6, "nodes", 1)])
        changes, _ = s.pull_all("c2", mid["cursor"])
        self.assertEqual(sorted((c["pk"]["id"], c["op"]) for c in changes),
                         [(1, "delete"), (4, "delete"), (102, "delete"), (103, "delete")])
        changes, _ = s.pull_all("c3")
        self.assertEqual([k for k in self.live(changes) if k[0] == "nodes"], [])

    def test_deletes_a_trigger_makes_count_for_max_tombstones(self):
        s = self.server("--max-tombstones", "1")
        s.push("c1", [ins(1, "nodes", 1, label="root"), ins(2, "nodes", 2, parent=1),
                      ins(3, "nodes", 3, parent=1)])
        db = s.pull("c2")["cursor"].rsplit("-", 1)[0]
        s.pull("c2", db + "-0")  # no tombstone yet: served
        s.push("c1", [{"id": 4, "table": "nodes", "op": "update", "pk": {"id": 1},
                       "data": {"label": "renumber"}}])  # two deletes, no delete mutation
        self.assertEqual(s.pull("c2", db + "-0", expect=410), {"error": "cursor expired"})

    # ---- 7: only real synced tables are served ----

    def test_internal_and_shadow_tables_are_neither_served_nor_writable(self):
        s = self.server()
        s.push("c1", [ins(1, "parents", 1, name="p")])
        changes, _ = s.pull_all("c2")
        served = {c["table"] for c in changes}
        self.assertEqual(served, {"parents", "audit"}, changes)
        for mid, table in enumerate(self.hidden, 100):
            res = s.push("c1", [{"id": mid, "table": table, "op": "insert", "pk": {"id": 1},
                                 "data": {"id": 1}}])
            self.assertEqual(res[0], {"id": mid, "status": "rejected",
                                      "reason": f"no such table: {table}"})

    # ---- 8: an insert's data must name the key pk names ----

    def test_an_insert_naming_another_key_is_refused_even_when_pk_exists(self):
        s = self.server()
        s.push("c1", [ins(1, "todos", "a", title="first")])
        _, start = s.pull_all("c2")
        res = s.push("c1", [
            {"id": 2, "table": "todos", "op": "insert", "pk": {"id": "a"},
             "data": {"id": "b", "title": "sneaky"}},
            {"id": 3, "table": "todos", "op": "insert", "pk": {"id": "x"},
             "data": {"id": "y", "title": "sneaky"}}])
        for r in res:
            self.assertEqual(r["status"], "rejected", r)
            self.assertEqual(r["reason"], "the row's key does not match pk")
        changes, _ = s.pull_all("c2", start["cursor"])
        self.assertEqual(changes, [])
        changes, _ = s.pull_all("c3")
        self.assertEqual(sorted(k[1] for k in self.live(changes) if k[0] == "todos"), ["a"])
        # the same key written differently is still the same key
        body = ('{"client_id":"c1","mutations":[{"id":4,"table":"todos","op":"insert",'
                '"pk":{"id":"q"},"data":{"id":"\\u0071","title":"n"}}]}')
        status, _, data = s.request("POST", "/push", body)
        self.assertEqual(status, 200, data)
        self.assertEqual(data["results"][0]["status"], "applied", data)
        self.assertEqual(data["results"][0]["row"]["id"], "q")

    # ---- 5: an initial sync over several pages survives compaction ----

    def test_a_long_initial_sync_finishes_under_max_tombstones(self):
        s = self.server("--max-tombstones", "1")
        s.push("c1", [ins(i, "todos", f"r{i}", title="t") for i in range(1, 9)])
        s.push("c1", [dele(9, "todos", "r7"), dele(10, "todos", "r8")])  # horizon rises
        old = s.pull("c0")["cursor"].rsplit("-", 1)[0] + "-2"
        changes, page = s.pull_all("c2", limit=2)
        self.assertEqual(sorted(k[1] for k in self.live(changes) if k[0] == "todos"),
                         [f"r{i}" for i in range(1, 7)])
        # a row deleted while an initial sync is under way still reaches it
        first = s.pull("c3", limit=2)
        s.push("c1", [dele(11, "todos", "r1")])
        changes, _ = s.pull_all("c3", first["cursor"], limit=2)
        live = self.live(first["changes"] + changes)
        self.assertEqual(sorted(k[1] for k in live if k[0] == "todos"),
                         ["r2", "r3", "r4", "r5", "r6"])
        # unless its delete was purged meanwhile: then it starts over
        first = s.pull("c4", limit=2)
        s.push("c1", [dele(12, "todos", "r2"), dele(13, "todos", "r3")])
        self.assertEqual(s.pull("c4", first["cursor"], expect=410), {"error": "cursor expired"})
        # a client's own cursor below the horizon still expires
        self.assertEqual(s.pull("c2", old, expect=410), {"error": "cursor expired"})

    # ---- 12: a pull may name the tables it wants ----

    def pull_tables(self, s, tables, cursor=None, limit=None):
        q = {"client_id": "c2", "tables": tables}
        if cursor:
            q["cursor"] = cursor
        if limit:
            q["limit"] = str(limit)
        status, _, data = s.request("GET", "/pull?" + urllib.parse.urlencode(q))
        self.assertEqual(status, 200, data)
        return data

    def test_pull_with_tables_ships_only_those(self):
        s = self.server()
        s.push("c1", [ins(1, "parents", 1, name="p"), ins(2, "todos", "a", title="t"),
                      ins(3, "odd, name%", 5, v="x"), ins(4, "todos", "b", title="t")])
        enc = ",".join(urllib.parse.quote(n, safe="") for n in ("todos", "odd, name%", "nope"))
        page = self.pull_tables(s, enc)
        self.assertEqual([(c["table"], c["pk"]["id"]) for c in page["changes"]],
                         [("todos", "a"), ("odd, name%", 5), ("todos", "b")])
        self.assertFalse(page["has_more"])
        # paged: has_more and the cursor follow the filtered changes
        one = self.pull_tables(s, "todos", limit=1)
        self.assertEqual([c["pk"]["id"] for c in one["changes"]], ["a"])
        self.assertTrue(one["has_more"])
        rest = self.pull_tables(s, "todos", cursor=one["cursor"])
        self.assertEqual([c["pk"]["id"] for c in rest["changes"]], ["b"])
        self.assertFalse(rest["has_more"])
        # none known: nothing, at the head
        page = self.pull_tables(s, "nope")
        self.assertEqual(page["changes"], [])
        self.assertEqual(page["cursor"], s.pull("c2")["cursor"])
        # absent: every table, as before
        self.assertIn("parents", {c["table"] for c in s.pull("c2")["changes"]})


class SqliteLoggingTest(SqliteStore, LoggingTests, unittest.TestCase):
    schema = SCHEMA_SQLITE
    hidden = ["docs", "docs_data", "docs_idx", "docs_content", "docs_docsize", "docs_config",
              "sqlite_sequence", "sqlite_schema", "_syncd_changes", "_syncd_state"]


class PgLoggingTest(PgStore, LoggingTests, unittest.TestCase):
    schema = SCHEMA_PG
    hidden = ["dated_2026", "_syncd_changes", "_syncd_state", "pg_class"]

    def test_a_partitioned_table_is_synced_under_its_own_name(self):
        s = self.server()
        _, start = s.pull_all("c2")
        key = {"at": "2026-05-01", "id": 1}
        res = s.push("c1", [{"id": 1, "table": "dated", "op": "insert", "pk": key, "data": key},
                            {"id": 2, "table": "dated", "op": "delete", "pk": key}])
        self.assertEqual([r["status"] for r in res], ["applied", "applied"], res)
        changes, _ = s.pull_all("c2", start["cursor"])
        self.assertEqual([(c["table"], c["op"], c["version"]) for c in changes],
                         [("dated", "delete", res[1]["version"])])


if __name__ == "__main__":
    unittest.main()
