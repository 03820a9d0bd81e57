"""End-to-end: one API. sync_config takes what sync_init's options take,
checked by the same code (ext/engine/options.c; sql/options.sql has the
sync_init side), and the network layer's functions need sync_init first."""
import os
import sqlite3

from e2e_util import E2ETest, connect
from test_worker import FlakyServer

PEM = "# bundle\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class OneApi(E2ETest):
    def assertRefused(self, c, sql, args, message):
        with self.assertRaises(sqlite3.OperationalError) as e:
            c.one(sql, args)
        self.assertEqual(str(e.exception), message)

    def test_sync_config_takes_what_sync_init_takes(self):
        a = self.client("a", "http://127.0.0.1:9")
        for value, want in [("off", "off"), ("on", "on"), (0, "off"), (1, "on"),
                            ("false", "off"), ("TRUE", "on"), ("0", "off"), ("1", "on")]:
            self.assertEqual(a.one("SELECT sync_config('sse', ?)", (value,)), want, value)
        for value in (2, "maybe", 0.5):
            self.assertRefused(a, "SELECT sync_config('sse', ?)", (value,),
                               'sync_config: "sse" must be on or off (or 1/0, true/false)')
        self.assertEqual(a.one("SELECT sync_config('sse')"), "on")
        # counts: digits as text and whole REALs (a binding's numbers) too
        self.assertEqual(a.one("SELECT sync_config('batch_size', '50')"), 50)
        self.assertEqual(a.one("SELECT sync_config('pull_limit', 20.0)"), 20)
        self.assertRefused(a, "SELECT sync_config('batch_size', 2.5)", (),
                           'sync_config: "batch_size" must be a positive integer')
        self.assertRefused(a, "SELECT sync_config('timeout_ms', 2147483648)", (),
                           'sync_config: "timeout_ms" must be at most 2147483647')
        # max_body has a floor
        self.assertEqual(a.one("SELECT sync_config('max_body', 4096)"), 4096)
        self.assertRefused(a, "SELECT sync_config('max_body', 4095)", (),
                           'sync_config: "max_body" must be an integer of at least 4096')
        self.assertEqual(a.one("SELECT sync_config('max_body')"), 4096)

    def test_backoff_min_above_max_is_refused_in_either_order(self):
        a = self.client("a", "http://127.0.0.1:9")
        self.assertEqual(a.one("SELECT sync_config('backoff_max_ms', 1000)"), 1000)
        self.assertRefused(a, "SELECT sync_config('backoff_min_ms', 5000)", (),
                           'sync_config: "backoff_min_ms" (5000) must not be above'
                           ' "backoff_max_ms" (1000)')
        self.assertEqual(a.one("SELECT sync_config('backoff_min_ms')"), 250)
        self.assertEqual(a.one("SELECT sync_config('backoff_min_ms', 800)"), 800)
        self.assertRefused(a, "SELECT sync_config('backoff_max_ms', 500)", (),
                           'sync_config: "backoff_min_ms" (800) must not be above'
                           ' "backoff_max_ms" (500)')
        self.assertEqual(a.one("SELECT sync_config('backoff_max_ms')"), 1000)
        # back to the default (60000) is checked too
        self.assertEqual(a.one("SELECT sync_config('backoff_max_ms', 70000)"), 70000)
        self.assertEqual(a.one("SELECT sync_config('backoff_min_ms', 61000)"), 61000)
        self.assertRefused(a, "SELECT sync_config('backoff_max_ms', NULL)", (),
                           'sync_config: "backoff_min_ms" (61000) must not be above'
                           ' "backoff_max_ms" (60000)')
        self.assertEqual(a.one("SELECT sync_config('backoff_max_ms')"), 70000)

    def test_ca_file_header_and_token_are_checked(self):
        a = self.client("a", "http://127.0.0.1:9")
        pem = os.path.join(self.dir, "ca.pem")
        with open(pem, "w") as f:
            f.write(PEM)
        der = os.path.join(self.dir, "ca.der")
        with open(der, "wb") as f:
            f.write(b"\x30\x82\x01\x0a\x00-----BEGIN ")
        self.assertEqual(a.one("SELECT sync_config('ca_file', ?)", (pem,)), pem)
        missing = os.path.join(self.dir, "missing.pem")
        self.assertRefused(a, "SELECT sync_config('ca_file', ?)", (missing,),
                           f'sync_config: "ca_file" cannot be read: {missing}:'
                           ' No such file or directory')
        self.assertRefused(a, "SELECT sync_config('ca_file', ?)", (der,),
                           f'sync_config: "ca_file" {der} is not a PEM file'
                           ' (no "-----BEGIN" line)')
        self.assertRefused(a, "SELECT sync_config('ca_file', ?)", (self.dir,),
                           f'sync_config: "ca_file" cannot be read: {self.dir}: Is a directory')
        self.assertRefused(a, "SELECT sync_config('ca_file', '')", (),
                           'sync_config: "ca_file" must be the path of a PEM file'
                           " (NULL: the system's CAs)")
        self.assertEqual(a.one("SELECT sync_config('ca_file')"), pem)
        self.assertIsNone(a.one("SELECT sync_config('ca_file', NULL)"))
        for header in ("Authorization: Bearer x", "authorization:x"):
            self.assertRefused(a, "SELECT sync_config('header', ?)", (header,),
                               'sync_config: "header" must not set Authorization'
                               " (set the token: sync_config('token', ...))")
        for header in ("X-App:", "X App: v", "X-App: a\r\nX-B: b"):
            self.assertRefused(a, "SELECT sync_config('header', ?)", (header,),
                               'sync_config: "header" must be one "Name: value" line')
        self.assertRefused(a, "SELECT sync_config('token', '')", (),
                           'sync_config: "token" must not be empty (NULL removes it)')
        self.assertIsNone(a.one("SELECT sync_config('token')"))

    def test_header_and_booleans_from_sync_init_reach_the_server(self):
        # sync_init used to store any header text, which the worker then
        # dropped without a word; and took sse only as 'on'/'off'
        srv = FlakyServer(200)
        try:
            a = self.client("a", srv.url, {"sse": False, "header": "X-App: from-init"})
            self.assertEqual(a.one("SELECT sync_config('sse')"), "off")
            self.assertEqual(a.one("SELECT sync_config('header')"), "X-App: from-init")
            self.assertEqual(a.one("SELECT sync_pull()"), 0)
            self.assertEqual(srv.headers.get("X-App"), "from-init")
        finally:
            srv.close()

    def test_sync_init_null_keeps_the_url(self):
        srv = FlakyServer(200)
        try:
            a = self.client("a", srv.url, {"sse": "off"})
            a.one("SELECT sync_init(NULL)")
            self.assertEqual(a.one("SELECT sync_pull()"), 0)
            self.assertEqual(a.status()["url"], srv.url)
            a.one("SELECT sync_init('')")
            self.assertIsNone(a.status()["url"])
            with self.assertRaisesRegex(sqlite3.OperationalError, r"^sync_pull: no server url"):
                a.one("SELECT sync_pull()")
        finally:
            srv.close()

    def test_online_and_wait_need_sync_init(self):
        db = connect(os.path.join(self.dir, "fresh.db"))
        try:
            for sql, fn in (("SELECT sync_online()", "sync_online"),
                            ("SELECT sync_online(0)", "sync_online"),
                            ("SELECT sync_wait(0)", "sync_wait")):
                with self.assertRaises(sqlite3.OperationalError) as e:
                    db.execute(sql)
                self.assertEqual(str(e.exception),
                                 f"{fn}: sync_init() has not been called on this database")
            db.execute("SELECT sync_init(NULL)")
            self.assertEqual(db.execute("SELECT sync_online()").fetchone()[0], 1)
            self.assertIsNone(db.execute("SELECT sync_wait(0)").fetchone()[0])
        finally:
            db.close()
