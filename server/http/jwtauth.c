/*
** jwtauth.c: verify a bearer JSON Web Token with libjwt (docs/PROTOCOL.md,
** "Authorization").
**
**   syncd --jwt-secret-file FILE    HS256, the secret in FILE (syncd.c reads the files)
**   syncd --jwt-public-key FILE     RS256 (RSA key) or ES256 (P-256 key)
**         [--jwt-audience AUD] [--jwt-issuer ISS] [--jwt-leeway SECONDS]
**
** The algorithm is pinned by the key, never taken from the token: libjwt
** verifies with whatever "alg" the token names, so an HS256 token "signed"
** with the bytes of a public key would pass its check; the alg read back
** after decoding must be the pinned one. Claims are read from the payload
** libjwt hands back, with the project's JSON scanner, so numbers are not
** rounded through a double and aud may be a string or an array.
*/
#include "jwtauth.h"

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"

struct jwtauth {
  unsigned char *key; /* the secret, or the PEM text of the public key */
  int key_len;
  jwt_alg_t alg;
  const char *audience, *issuer;
  int leeway;
};

static jwtauth *make(char *key, int len, jwt_alg_t alg) {
  jwtauth *a = sqlite3_malloc64(sizeof *a);
  if (!a) return sqlite3_free(key), (jwtauth *)0;
  memset(a, 0, sizeof *a);
  a->key = (unsigned char *)key;
  a->key_len = len;
  a->alg = alg;
  a->leeway = 30;
  return a;
}

jwtauth *jwtauth_secret(char *key, int len, char **err) {
  /* RFC 7518 3.2: an HS256 key must be at least as long as the hash */
  if (len < 32) {
    sqlite3_free(key);
    return *err = sqlite3_mprintf("an HS256 secret needs at least 32 bytes"), (jwtauth *)0;
  }
  jwtauth *a = make(key, len, JWT_ALG_HS256);
  if (!a) *err = sqlite3_mprintf("out of memory");
  return a;
}

jwtauth *jwtauth_public_key(char *pem, int len, char **err) {
  BIO *bio = BIO_new_mem_buf(pem, len);
  EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, 0, 0, 0) : 0;
  BIO_free(bio);
  jwt_alg_t alg = JWT_ALG_INVAL;
  if (pk && EVP_PKEY_base_id(pk) == EVP_PKEY_RSA && EVP_PKEY_get_bits(pk) >= 2048)
    alg = JWT_ALG_RS256;
  else if (pk && EVP_PKEY_base_id(pk) == EVP_PKEY_EC && EVP_PKEY_get_bits(pk) == 256)
    alg = JWT_ALG_ES256;
  EVP_PKEY_free(pk);
  if (alg == JWT_ALG_INVAL) {
    sqlite3_free(pem);
    return *err = sqlite3_mprintf("not a PEM public key of RSA (2048 bits or more, RS256) "
                                  "or P-256 (ES256)"),
           (jwtauth *)0;
  }
  jwtauth *a = make(pem, len, alg);
  if (!a) *err = sqlite3_mprintf("out of memory");
  return a;
}

void jwtauth_set_checks(jwtauth *a, const char *audience, const char *issuer, int leeway) {
  a->audience = audience;
  a->issuer = issuer;
  a->leeway = leeway;
}

void jwtauth_free(jwtauth *a) {
  if (!a) return;
  sqlite3_free(a->key);
  sqlite3_free(a);
}

void jwtauth_claims_clear(jwtauth_claims *c) {
  sqlite3_free(c->sub);
  sqlite3_free(c->json);
  memset(c, 0, sizeof *c);
}

/* A numeric date (RFC 7519: seconds, possibly fractional) into *out,
** rounded down. 0 when v is not a number. */
static int numeric_date(jspan v, long long *out) {
  sqlite3_int64 i;
  if (jscan_int64(v, &i)) return *out = i, 1;
  if (strcmp(jscan_type(v), "real") != 0) return 0;
  char buf[64];
  if (v.n >= (int)sizeof buf) return 0;
  memcpy(buf, v.z, (size_t)v.n);
  buf[v.n] = 0;
  double d = strtod(buf, 0);
  if (!(d > -9e15 && d < 9e15)) return 0;
  *out = (long long)d;
  return 1;
}

/* 1 when v is a string equal to want. */
static int text_is(jspan v, const char *want) {
  if (strcmp(jscan_type(v), "text") != 0) return 0;
  int nul = 0;
  char *z = jscan_text(v, &nul);
  int same = z && !nul && strcmp(z, want) == 0;
  sqlite3_free(z);
  return same;
}

/* aud holds want: the string itself, or an array with it. */
static int audience_ok(jspan aud, const char *want) {
  if (text_is(aud, want)) return 1;
  if (strcmp(jscan_type(aud), "array") != 0) return 0;
  const char *p = jscan_ws(aud.z + 1, aud.z + aud.n), *e = aud.z + aud.n;
  while (p < e && *p != ']') {
    const char *end = jscan_skip(p, e);
    if (text_is((jspan){p, (int)(end - p)}, want)) return 1;
    p = jscan_ws(end, e);
    if (p < e && *p == ',') p = jscan_ws(p + 1, e);
  }
  return 0;
}

/* The claims of a token whose signature checked out. */
static int check_claims(const jwtauth *a, char *json, long long now, jwtauth_claims *out,
                        const char **reason) {
  size_t n = strlen(json);
  if (!jscan_document(json, json + n)) return *reason = "token payload is not JSON", -1;
  jspan obj = {jscan_ws(json, json + n), (int)(json + n - jscan_ws(json, json + n))};
  if (strcmp(jscan_type(obj), "object") != 0)
    return *reason = "token payload is not a JSON object", -1;
  static const char *const names[] = {"sub", "exp", "nbf", "aud", "iss"};
  jspan f[5];
  jscan_fields(obj, names, 5, f);
  long long exp, nbf;
  if (!f[1].z) return *reason = "token has no exp", -1;
  if (!numeric_date(f[1], &exp)) return *reason = "token exp is not a number", -1;
  if (now > exp + a->leeway) return *reason = "token expired", -1;
  if (f[2].z && !numeric_date(f[2], &nbf)) return *reason = "token nbf is not a number", -1;
  if (f[2].z && now + a->leeway < nbf) return *reason = "token not yet valid", -1;
  if (a->audience && !(f[3].z && audience_ok(f[3], a->audience)))
    return *reason = "token audience mismatch", -1;
  if (a->issuer && !(f[4].z && text_is(f[4], a->issuer)))
    return *reason = "token issuer mismatch", -1;
  if (strcmp(jscan_type(f[0]), "text") != 0) return *reason = "token has no sub", -1;
  int nul = 0;
  char *sub = jscan_text(f[0], &nul);
  if (!sub || nul || !*sub || !jscan_utf8_valid((const unsigned char *)sub, strlen(sub))) {
    sqlite3_free(sub);
    return *reason = sub ? "token sub is empty or malformed" : "out of memory", -1;
  }
  out->sub = sub;
  out->json = sqlite3_mprintf("%.*s", obj.n, obj.z);
  out->expires = exp + a->leeway;
  if (!out->json) return jwtauth_claims_clear(out), *reason = "out of memory", -1;
  return 0;
}

int jwtauth_verify(const jwtauth *a, const char *token, long long now, jwtauth_claims *out,
                   const char **reason) {
  memset(out, 0, sizeof *out);
  jwt_t *jwt = 0;
  if (jwt_decode(&jwt, token, a->key, a->key_len) || !jwt) {
    jwt_free(jwt);
    return *reason = "token malformed or signature invalid", -1;
  }
  if (jwt_get_alg(jwt) != a->alg) {
    jwt_free(jwt);
    return *reason = "token algorithm not accepted", -1;
  }
  char *json = jwt_get_grants_json(jwt, 0);
  jwt_free(jwt);
  if (!json) return *reason = "token has no claims", -1;
  int rc = check_claims(a, json, now, out, reason);
  free(json);
  return rc;
}
