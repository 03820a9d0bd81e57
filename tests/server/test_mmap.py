"""syncd --mmap-size BYTES (SQLite storage, server/store/sqlite_open.c):
each connection maps at most BYTES of the database file, seen from outside
in /proc/PID/maps (Linux), and serves the same rows through the mapping,
before and after a push; without the flag nothing of the file is mapped;
with --pg the flag is refused at startup."""
import os
import sqlite3
import subprocess
import unittest

from syncd_util import SYNCD, ManySyncd, SqliteStore, Syncd, ins

ROWS = 2000
# smaller than the file the test makes (about 300 KB), so the bound shows
LIMIT = 65536


class MmapTest(SqliteStore, ManySyncd, unittest.TestCase):

    def setUp(self):
        super().setUp()
        # the rows in the main file (rollback journal), not in a WAL a
        # mapping does not cover
        self.db = os.path.join(self.tmp, "server.db")
        db = sqlite3.connect(self.db)
        db.executescript("CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT);"
                         "INSERT INTO todos WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL"
                         " SELECT i + 1 FROM k WHERE i + 1 < %d)"
                         " SELECT printf('r%%05d', i), hex(randomblob(60)) FROM k;" % ROWS)
        self.rows = {r[0]: r[1] for r in db.execute("SELECT id, title FROM todos")}
        db.close()
        self.assertGreater(os.path.getsize(self.db), LIMIT)
        self.schema = self.file("schema.sql", "CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT);")

    def start(self, *extra):
        s = Syncd("sqlite", self.store_args(), list(extra), schema=self.schema)
        self.servers.append(s)
        return s

    def mapped(self, s):
        """Lengths of the regions of s's address space that map the
        database file itself (not its -wal or -shm)."""
        with open("/proc/%d/maps" % s.proc.pid) as f:
            lines = [line.split() for line in f]
        return [int(hi, 16) - int(lo, 16) for (lo, hi), path in
                ((cols[0].split("-"), cols[-1]) for cols in lines if len(cols) == 6)
                if path == os.path.realpath(self.db)]

    def served(self, s):
        changes, _ = s.pull_all("reader", limit=500)
        return {c["pk"]["id"]: c["row"]["title"] for c in changes}

    def test_maps_at_most_the_size_given_and_serves_the_same_rows(self):
        s = self.start("--mmap-size", str(LIMIT))
        self.assertEqual(self.served(s), self.rows)
        regions = self.mapped(s)
        self.assertTrue(regions, "nothing of server.db is mapped")
        self.assertTrue(all(0 < n <= LIMIT for n in regions), regions)
        self.assertEqual(s.push("w", [ins(1, "new", "written")])[0]["status"], "applied")
        self.rows["new"] = "written"
        self.assertEqual(self.served(s), self.rows)

    def test_without_the_flag_nothing_is_mapped(self):
        s = self.start()
        self.assertEqual(self.served(s), self.rows)
        self.assertEqual(self.mapped(s), [])

    def test_refused_with_postgresql(self):
        p = subprocess.run([SYNCD, "--listen", "127.0.0.1:0", "--schema", self.schema,
                            "--pg", "postgresql://127.0.0.1:1/none", "--mmap-size", "1048576"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--mmap-size is for SQLite storage (--db), not --pg", p.stderr)


if __name__ == "__main__":
    unittest.main()
