"""The client's security promises: TLS certificates are verified by default
(ca_file names an extra CA bundle), and the token never reaches the
database files, a log line or sync_status, even when a server echoes it."""
import json
import os
import secrets
import shutil
import sqlite3
import ssl
import subprocess

from fake_server import event_stream, json_body
from hostile_util import EMPTY_PAGE, EXT, ClientCase

ACK = {"results": [
    {"id": 1, "status": "applied", "row": {"id": "p", "title": "pending"}, "version": 3},
    {"id": 2, "status": "applied", "row": {"id": 1, "v": "local"}, "version": 4}]}
TLS_PAGE = {"changes": [{"table": "todos", "op": "upsert", "pk": {"id": "tls"},
                         "row": {"id": "tls", "title": "over tls"}, "version": 5}],
            "cursor": "c-5", "has_more": False, "last_mutation_id": 0}


def make_cert(dir, name):
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    cert, key = os.path.join(dir, name + ".pem"), os.path.join(dir, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return cert, ctx


class Tls(ClientCase):
    def tls_server(self):
        cert, ctx = make_cert(self.tmp.name, "server")
        srv = self.server(tls=ctx)
        srv.route("/health", json_body({"ok": True}))
        srv.route("/pull", json_body(TLS_PAGE))
        srv.route("/push", json_body(ACK))
        srv.route("/events", event_stream([b": hello\n\n"]))
        return srv, cert

    def test_self_signed_fails_until_ca_file_names_it(self):
        srv, cert = self.tls_server()
        other, _ = make_cert(self.tmp.name, "other")
        out = self.run_client(srv.url, "pull")
        self.assertRegex(out["error"] or "",
                         r"^sync_pull: cannot reach https://127\.0\.0\.1:\d+: SSL certificate problem")
        self.assertUntouched(out)
        # Another CA does not vouch for it either.
        out = self.run_client(srv.url, "pull", reuse=True, config={"ca_file": other})
        self.assertRegex(out["error"] or "", r"SSL certificate problem")
        self.assertUntouched(out)
        self.assertEqual(srv.requests, [], "a request got through an unverified connection")
        # sync_config refuses a missing ca_file; one that goes missing later
        # fails the request, naming it
        gone = os.path.join(self.tmp.name, "gone.pem")
        shutil.copy(cert, gone)
        out = self.run_client(srv.url, "pull", reuse=True, config={"ca_file": gone})
        self.assertIsNone(out["error"])
        self.assertEqual(out["result"], 1)
        self.assertIn(["tls", "over tls"], out["after"]["todos"])
        self.assertEqual(out["after"]["cursor"], "c-5")
        os.remove(gone)
        out = self.run_client(srv.url, "pull", reuse=True)
        self.assertRegex(out["error"] or "", r"^sync_pull: cannot reach .*gone\.pem")
        self.assertUntouched(out)

    def test_worker_verifies_too(self):
        srv, cert = self.tls_server()
        out = self.run_client(srv.url, "worker", want=r"SSL certificate problem", wait_s=15)
        self.assertIn("matched", out, f"saw {out.get('errors_seen')}")
        self.assertEqual(out["status"]["state"], "offline")
        self.assertUntouched(out)
        self.assertEqual(srv.requests, [])
        out = self.run_client(srv.url, "worker", reuse=True, until_idle=True, wait_s=15,
                              config={"ca_file": cert})
        self.assertEqual(out.get("matched"), "idle", f"saw {out.get('errors_seen')}")
        self.assertEqual(out["after"]["outbox"], [])
        self.assertIn(["tls", "over tls"], out["after"]["todos"])


class Token(ClientCase):
    def test_token_with_a_line_break_is_refused(self):
        # It becomes a header line: a CR/LF in it would add headers.
        srv = self.server()
        srv.route("/pull", json_body(EMPTY_PAGE))
        db = sqlite3.connect(os.path.join(self.tmp.name, "t.db"), isolation_level=None)
        self.addCleanup(db.close)
        db.enable_load_extension(True)
        db.load_extension(EXT)
        db.execute("SELECT sync_init(?)", (srv.url,))
        for bad in ("tok\r\nX-Injected: 1", "tok\nX", "tok\tx", "tok\x7f"):
            with self.assertRaises(sqlite3.OperationalError) as cm:
                db.execute("SELECT sync_config('token', ?)", (bad,))
            self.assertEqual(str(cm.exception),
                             'sync_config: "token" must be printable text on one line')
        self.assertIsNone(db.execute("SELECT sync_config('token')").fetchone()[0])
        self.assertEqual(db.execute("SELECT sync_config('token', 'ok-token')").fetchone()[0],
                         "********")
        self.assertEqual(db.execute("SELECT sync_pull()").fetchone()[0], 0)
        self.assertEqual(srv.requests[0][2].get("Authorization"), "Bearer ok-token")

    def test_token_never_stored_logged_or_shown(self):
        token = "tok-" + secrets.token_hex(16)
        bearer = "Bearer " + token

        def guarded(route):
            def fn(h):
                if h.headers.get("Authorization") != bearer:
                    return json_body({"error": "unauthorized"}, status=401)(h)
                return route(h)
            return fn

        # 1. A server that echoes the token in its refusal: the error names
        # the refusal with the token masked, in the SQL error and in the
        # outbox's last_error (which is in the database file).
        srv = self.server()
        srv.route("/push", json_body({"error": f"token {token} is revoked ({token})"},
                                     status=401))
        out = self.run_client(srv.url, "push", token=token)
        self.assertEqual(out["error"], "sync_push: HTTP 401: token ******** is revoked (********)")
        self.assertEqual(srv.requests[0][2].get("Authorization"), bearer)
        srv.requests.clear()

        # 2. The worker over every channel with SYNC_TRACE logging on.
        srv.route("/health", json_body({"ok": True}))
        srv.route("/push", guarded(json_body(ACK)))
        srv.route("/pull", guarded(json_body(EMPTY_PAGE)))
        event = {"changes": [{"table": "todos", "op": "upsert", "pk": {"id": "e"},
                              "row": {"id": "e", "title": "event"}, "version": 6}],
                 "cursor": "c-6", "has_more": False}
        srv.route("/events", guarded(event_stream(
            [b": hi\n\nevent: changes\nid: c-6\ndata: " + json.dumps(event).encode() + b"\n\n"])))
        env = dict(os.environ, SYNC_TRACE="1")
        db = os.path.join(self.tmp.name, "c.db")
        out2 = self.run_client(srv.url, "worker", reuse=True, token=token, env=env,
                               until_idle=True, wait_s=15)
        self.assertEqual(out2.get("matched"), "idle", f"saw {out2.get('errors_seen')}")
        seen = {p.split("?")[0]: h.get("Authorization") for _, p, h, _ in srv.requests}
        self.assertEqual(seen.get("/push"), bearer)
        self.assertEqual(seen.get("/pull"), bearer)
        self.assertIn("sync: push", out2["stderr"], "SYNC_TRACE logged nothing")
        self.assertEqual(out2["config_token"], "********")

        # 3. A server that puts the token where an error message quotes it:
        # sync_status.last_error shows it masked. (SYNC_TRACE is off here:
        # it prints bodies as the server sent them.)
        bad = {"changes": [{"table": "todos", "op": token, "pk": {"id": 1}}], "cursor": "c-7"}
        srv.route("/events", guarded(event_stream(
            [b"event: changes\ndata: " + json.dumps(bad).encode() + b"\n\n"])))
        out3 = self.run_client(srv.url, "worker", reuse=True, token=token,
                               want=r"unknown op", wait_s=15)
        self.assertEqual(out3.get("matched"),
                         'events: sync_apply: change 1 has unknown op "********"')
        out2["stdout"] += out3["stdout"]
        out2["stderr"] += out3["stderr"]

        for name, o in (("push", out), ("worker", out2)):
            self.assertNotIn(token, o["stdout"], f"{name}: token in the output or sync_status")
            self.assertNotIn(token, o["stderr"], f"{name}: token in the log")
            self.assertEqual(o["token_in_files"]["found"], [], f"{name}: token in a file")
        self.assertIn("-wal", out2["token_in_files"]["sizes"], "no WAL file was checked")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                with open(db + suffix, "rb") as f:
                    self.assertNotIn(token.encode(), f.read(), f"token in {db + suffix}")
