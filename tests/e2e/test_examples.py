"""The multi-user example (examples/multi_user/run.py) runs as printed: two
users against a syncd with JWTs and --rules, a shared project, a rejected
takeover and move-in and move-out. It checks what each user holds itself;
here its exit status and last line are checked, and that its checks do
fail against a syncd that ignores the rules.
"""
import os
import stat
import subprocess
import sys
import unittest

from e2e_util import EXT, ROOT, SLOW, SYNCD, E2ETest

SCRIPT = os.path.join(ROOT, "examples", "multi_user", "run.py")


class MultiUserExampleTest(E2ETest):

    def run_example(self, syncd):
        p = subprocess.run([sys.executable, SCRIPT, "--syncd", syncd, "--ext", EXT],
                           capture_output=True, text=True, timeout=60 * SLOW)
        return p.returncode, p.stdout, p.stderr

    def test_runs_and_checks_what_each_user_holds(self):
        rc, out, err = self.run_example(SYNCD)
        self.assertEqual((rc, out.splitlines()[-1]), (0, "multi_user: ok"), out + err)
        self.assertIn("rejected with 'permission denied': yes", out)
        self.assertIn("  bob   tasks   (t1, garden, dig the beds), (t2, garden, sow the beans)",
                      out)  # move-in
        self.assertNotIn("EXPECTED", out)

    def test_fails_against_a_server_without_rules(self):
        # the same syncd with --rules and its file dropped: everyone reads
        # everything, so the example must notice and exit 1
        # (a python script: sh crashes under make tsan's preloaded runtime)
        wrapper = os.path.join(self.dir, "syncd")
        with open(wrapper, "w") as f:
            f.write("#!/usr/bin/python3\nimport os, sys\nargs = sys.argv[1:]\n"
                    "if '--rules' in args:\n    i = args.index('--rules')\n"
                    "    del args[i:i + 2]\n"
                    "os.execv(%r, [%r] + args)\n" % (SYNCD, SYNCD))
        os.chmod(wrapper, os.stat(wrapper).st_mode | stat.S_IXUSR)
        rc, out, err = self.run_example(wrapper)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("EXPECTED", out)
        self.assertNotIn("multi_user: ok", out)


if __name__ == "__main__":
    unittest.main()
