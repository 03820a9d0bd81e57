"""syncd's JSON Web Token authentication (--jwt-secret-file, --jwt-public-key):
signatures with the pinned algorithm, exp/nbf/aud/iss, a 401 with a reason on
every endpoint but /health, event streams that end when their token expires,
and the shared and per-client tokens still accepted beside JWTs.

Tokens are made with syncd_util.make_token: hmac (HS256) and the openssl
command (RS256, ES256), so the test needs no JWT library.
"""
import hashlib
import hmac
import json
import os
import subprocess
import time
import unittest

from syncd_util import SECRET, ManySyncd, SqliteStore, Syncd, b64, bearer, claims, ins, make_token

ENDPOINTS = [("GET", "/pull?client_id=c", None),
             ("POST", "/push", {"client_id": "c", "mutations": []}),
             ("GET", "/events?client_id=c", None)]


class JwtTest(SqliteStore, ManySyncd, unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.secret_file = self.file("secret", SECRET + "\n")

    def server(self, *extra, store=True):
        s = Syncd(self.backend, self.store_args(), extra)
        self.servers.append(s)
        return s

    def keypair(self, kind):
        priv = os.path.join(self.tmp, kind + ".key")
        pub = os.path.join(self.tmp, kind + ".pub")
        if kind.startswith("rsa"):
            gen = ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
        else:
            gen = ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        subprocess.run(gen + ["-out", priv], check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True,
                       capture_output=True)
        return priv, pub

    def assertAccepted(self, s, tok):
        h = bearer(tok)
        for method, path, body in ENDPOINTS:
            if path == "/events?client_id=c":
                ev = s.events("c", headers=h)
                self.assertEqual(ev.status, 200)
                ev.close()
            else:
                self.assertEqual(s.request(method, path, body, headers=h)[0], 200, (path, tok))

    def assertRefused(self, s, tok, reason):
        for method, path, body in ENDPOINTS:
            status, _, data = s.request(method, path, body, headers=bearer(tok))
            self.assertEqual((status, data), (401, {"error": "unauthorized", "reason": reason}),
                             path)

    def test_hs256(self):
        s = self.server("--jwt-secret-file", self.secret_file, "--jwt-leeway", "0")
        self.assertEqual(s.request("GET", "/health")[0], 200)
        good = make_token(claims())
        self.assertAccepted(s, good)
        res = s.push("phone-1", [ins(1, "a")], headers=bearer(good))
        self.assertEqual(res[0]["status"], "applied")
        # one user, several devices: any client_id of the installation's own
        res = s.push("laptop-1", [ins(1, "b")], headers=bearer(good))
        self.assertEqual(res[0]["status"], "applied")
        now = int(time.time())
        self.assertRefused(s, make_token({"sub": "alice", "exp": now - 5}), "token expired")
        self.assertRefused(s, make_token(claims(nbf=now + 120)), "token not yet valid")
        self.assertRefused(s, make_token({"sub": "alice"}), "token has no exp")
        self.assertRefused(s, make_token({"exp": now + 60}), "token has no sub")
        self.assertRefused(s, make_token(claims(sub="")), "token sub is empty or malformed")
        self.assertRefused(s, make_token(claims(), key=SECRET + "x"),
                           "token malformed or signature invalid")
        self.assertRefused(s, make_token(claims(), alg="none"),
                           "token malformed or signature invalid")
        self.assertRefused(s, "not.a.jwt", "token malformed or signature invalid")
        # a forged claim: alice's valid token with sub changed to bob
        head, payload, sig = good.split(".")
        forged = b64(json.dumps(claims(sub="bob")).encode())
        self.assertRefused(s, ".".join([head, forged, sig]), "token malformed or signature invalid")
        # without a JWT-looking token, the answer stays as before
        for method, path, body in ENDPOINTS:
            self.assertEqual(s.request(method, path, body)[0:3:2], (401, {"error": "unauthorized"}))

    def test_leeway(self):
        s = self.server("--jwt-secret-file", self.secret_file, "--jwt-leeway", "60")
        now = int(time.time())
        self.assertAccepted(s, make_token({"sub": "a", "exp": now - 20, "nbf": now + 20}))
        self.assertRefused(s, make_token({"sub": "a", "exp": now - 120}), "token expired")

    def test_audience_issuer(self):
        s = self.server("--jwt-secret-file", self.secret_file, "--jwt-audience", "syncd",
                        "--jwt-issuer", "https://auth.example")
        iss = "https://auth.example"
        self.assertAccepted(s, make_token(claims(aud="syncd", iss=iss)))
        self.assertAccepted(s, make_token(claims(aud=["other", "syncd"], iss=iss)))
        self.assertRefused(s, make_token(claims(aud="other", iss=iss)), "token audience mismatch")
        self.assertRefused(s, make_token(claims(iss=iss)), "token audience mismatch")
        self.assertRefused(s, make_token(claims(aud="syncd", iss="https://evil")),
                           "token issuer mismatch")
        self.assertRefused(s, make_token(claims(aud="syncd")), "token issuer mismatch")

    def test_public_keys(self):
        for kind, alg in [("rsa", "RS256"), ("ec", "ES256")]:
            priv, pub = self.keypair(kind)
            s = self.server("--jwt-public-key", pub)
            self.assertAccepted(s, make_token(claims(), alg=alg, key=priv))
            other_priv, _ = self.keypair(kind + "-other")
            self.assertRefused(s, make_token(claims(), alg=alg, key=other_priv),
                               "token malformed or signature invalid")
            # algorithm confusion: HS256 "signed" with the public key's bytes
            with open(pub, "rb") as f:
                pem = f.read()
            self.assertRefused(s, make_token(claims(), alg="HS256", key=pem),
                               "token algorithm not accepted")
            self.assertRefused(s, make_token(claims(), alg="HS256"),
                               "token malformed or signature invalid")
            s.stop()
        # an RS256 token to an HS256 server
        priv, _ = self.keypair("rsa")
        s = self.server("--jwt-secret-file", self.secret_file)
        self.assertRefused(s, make_token(claims(), alg="RS256", key=priv),
                           "token malformed or signature invalid")

    def test_with_shared_and_client_tokens(self):
        csecret = self.file("csecret", "client-key")
        s = self.server("--jwt-secret-file", self.secret_file, "--token", "s3cret",
                        "--client-secret-file", csecret)
        self.assertAccepted(s, "s3cret")
        ctok = hmac.new(b"client-key", b"c", hashlib.sha256).hexdigest()
        self.assertAccepted(s, ctok)
        other = hmac.new(b"client-key", b"d", hashlib.sha256).hexdigest()
        self.assertEqual(s.request("GET", "/pull?client_id=c", headers=bearer(other))[0], 403)
        self.assertAccepted(s, make_token(claims()))

    def test_stream_ends_at_expiry(self):
        s = self.server("--jwt-secret-file", self.secret_file, "--jwt-leeway", "0",
                        "--heartbeat", "1", "--token", "s3cret")
        t0 = time.monotonic()
        ev = s.events("c", headers=bearer(make_token(claims(ttl=3))))
        self.assertEqual(ev.status, 200)
        lasting = s.events("d", headers=bearer("s3cret"))
        with self.assertRaises(EOFError):
            while time.monotonic() - t0 < 15:
                ev.next(5)
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 1.5)
        self.assertLess(elapsed, 8)
        ev.close()
        # a stream without expiry stays open (heartbeats still come)
        self.assertEqual(lasting.next(5)[0], "comment")
        lasting.close()
        # reconnecting with the lapsed token answers 401 with the reason
        status, _, data = s.request("GET", "/events?client_id=c",
                                    headers=bearer(make_token(claims(ttl=-1))))
        self.assertEqual((status, data), (401, {"error": "unauthorized", "reason": "token expired"}))

    def test_bad_options(self):
        import subprocess as sp
        from syncd_util import SYNCD, SCHEMAS
        base = [SYNCD, "--listen", "127.0.0.1:0", "--schema", SCHEMAS["sqlite"],
                "--db", os.path.join(self.tmp, "x.db")]
        short = self.file("short", "tooshort")
        notkey = self.file("notkey", "-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----\n")
        cases = [(["--jwt-secret-file", short], "at least 32 bytes"),
                 (["--jwt-secret-file", os.path.join(self.tmp, "missing")], "cannot read"),
                 (["--jwt-public-key", notkey], "not a PEM public key"),
                 (["--jwt-public-key", os.path.join(self.tmp, "missing")], "cannot read"),
                 (["--jwt-audience", "x"], "need --jwt-secret-file"),
                 (["--jwt-secret-file", self.secret_file, "--jwt-public-key", notkey], "usage")]
        for args, msg in cases:
            p = sp.run(base + args, capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn(msg, p.stderr, args)


if __name__ == "__main__":
    unittest.main()
