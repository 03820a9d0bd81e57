"""SIGKILL during sync_apply of a large page (20000 changes): afterwards the
database holds either the whole page or none of it, and the cursor is the
one that goes with what it holds.

A reference run measures how long the apply takes (from "start" to
"done"); each round then kills the child at a random moment
between its "start" and that duration (made shorter when a run finishes
sooner), and counts the kills that landed while sync_apply was running
(after "start", before "done"). Rounds go on past ROUNDS, up to
MAX_ROUNDS, until at least one kill landed inside and one left the page
out: without both the test proves nothing.
"""
import json
import os
import random
import shutil
import tempfile
import time
import unittest

from crash_util import SLOW, Child, connect, fingerprint

ROWS = 20000
# Under a sanitizer (SYNC_TEST_SLOW > 1) an apply takes 10x longer: fewer rounds.
ROUNDS = int(os.environ.get("CRASH_APPLY_ROUNDS") or (10 if SLOW == 1 else 3))
MAX_ROUNDS = max(ROUNDS, 20)


def page(cursor, changes):
    return json.dumps({"changes": changes, "cursor": cursor})


class ApplyKill(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="sync-crash-apply-")
        # The second page rewrites half the rows, deletes the other half and
        # touches keys with pending local mutations (the rebase path).
        cls.page2 = os.path.join(cls.dir, "page2.json")
        changes = []
        for i in range(ROWS):
            k = "k%05d" % i
            if i % 2:
                changes.append({"table": "items", "op": "delete", "pk": {"id": k},
                                "version": ROWS + 1 + i})
            else:
                changes.append({"table": "items", "op": "upsert", "pk": {"id": k},
                                "row": {"id": k, "n": i + 7, "body": "after"},
                                "version": ROWS + 1 + i})
        with open(cls.page2, "w") as f:
            f.write(page(str(2 * ROWS + 1), changes))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def template(self, mode):
        """A client holding page 1 and a few pending mutations, checkpointed
        and closed: copied afresh for every round."""
        path = os.path.join(self.dir, f"template-{mode}.db")
        c = connect(path)
        c.execute(f"PRAGMA journal_mode={mode}")
        c.execute("CREATE TABLE items(id TEXT PRIMARY KEY, n INTEGER NOT NULL, body TEXT)")
        c.execute("SELECT sync_init(NULL)")
        c.execute("SELECT sync_track('items')")
        c.execute("SELECT sync_apply(?)", (page(str(ROWS), [
            {"table": "items", "op": "upsert", "pk": {"id": "k%05d" % i},
             "row": {"id": "k%05d" % i, "n": i, "body": "before"}, "version": i + 1}
            for i in range(ROWS)]),))
        for i in (2, 3, 500, 501):
            c.execute("UPDATE items SET body = 'local' WHERE id = ?", ("k%05d" % i,))
        if mode == "wal":
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.close()
        return path

    def fresh(self, template, name):
        path = os.path.join(self.dir, name)
        for suffix in ("", "-wal", "-shm", "-journal"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        shutil.copyfile(template, path)
        return path

    def run_child(self, db, kill_after=None):
        """Runs the apply; kills it kill_after seconds after "start" when
        given. Returns (seconds from start to done or kill, done printed)."""
        ch = Child("apply", db, self.page2)
        ch.wait_line("start", 30)
        t0 = time.monotonic()
        if kill_after is None:
            ch.wait_line("done", 120)
            took = time.monotonic() - t0
            self.assertEqual(ch.proc.wait(120 * SLOW), 0, ch.stderr())
            ch.kill()
            return took, True
        time.sleep(kill_after)
        done = ch.printed("done")
        ch.kill()
        return time.monotonic() - t0, done

    def check_mode(self, mode):
        template = self.template(mode)
        before = fingerprint(template)
        ref = self.fresh(template, f"ref-{mode}.db")
        took, _ = self.run_child(ref)
        ref_took = took
        after = fingerprint(ref)
        self.assertNotEqual(before, after)
        self.assertEqual((before[1], after[1]), (str(ROWS), str(2 * ROWS + 1)))
        rng = random.Random(os.environ.get("CRASH_SEED") or time.time_ns())
        inside = outcome_before = outcome_after = rounds = 0
        for r in range(MAX_ROUNDS):
            if r >= ROUNDS and inside and outcome_before:
                break
            rounds += 1
            db = self.fresh(template, f"kill-{mode}.db")
            delay = rng.uniform(0, took)
            _, done = self.run_child(db, delay)
            if done:  # this run was quicker than the reference: aim earlier
                took = delay
            fp = fingerprint(db)
            self.assertIn(fp, (before, after),
                          f"round {r}: a partial page or a cursor that does not match the rows")
            inside += not done
            outcome_before += fp == before
            outcome_after += fp == after
            if done:
                self.assertEqual(fp, after, f"round {r}: done was printed but the page is gone")
        print(f"\n  {mode}: apply took {ref_took:.2f}s; {rounds} kills, {inside} inside sync_apply; "
              f"{outcome_before} left the page out, {outcome_after} had it whole", end=" ")
        self.assertGreater(inside, 0, "no kill landed while sync_apply was running")
        self.assertGreater(outcome_before, 0, "no kill interrupted the apply")

    def test_wal(self):
        self.check_mode("wal")

    def test_rollback_journal(self):
        self.check_mode("delete")


if __name__ == "__main__":
    unittest.main()
