/*
** auth.c: syncd's credentials.
**
** Two kinds, both sent as "Authorization: Bearer TOKEN":
**   --token SECRET        one shared token that may act as any client_id;
**   --client-secret KEY   per-client tokens, hex(HMAC-SHA256(KEY, client_id)),
**                         each valid only for the client_id it was made for,
**                         so one client cannot read or confirm another
**                         client's mutation ids. Tokens are derived, not
**                         stored: a new client needs no restart, and
**                         `syncd --client-secret KEY --issue-token ID` prints
**                         one.
**   --jwt-secret-file / --jwt-public-key
**                         JSON Web Tokens (jwtauth.c): the user is the
**                         token's sub, with any client_id (one user, many
**                         devices); the claims go to the rules.
** A token equal to the shared token, or shaped like a client token, is
** taken as one; anything else is tried as a JWT when JWTs are configured.
** routes.c checks the header before reading a body (401) and the client_id
** of each request against a client token once it is known (403).
*/
#include "auth.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

static int equal_ct(const char *a, size_t n, const char *b, size_t m) {
  unsigned char diff = n != m;
  for (size_t i = 0; i < n && i < m; i++)
    diff |= (unsigned char)(a[i] ^ b[i]);
  return diff == 0;
}

static int is_client_token(const char *t, size_t n) {
  if (n != AUTH_CLIENT_TOKEN_LEN) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f'))) return 0;
  return 1;
}

auth_level auth_header(const auth_config *a, const char *h, long long now, char *tok,
                       jwtauth_claims *user, const char **reason) {
  *reason = 0;
  if (!a->token && !a->secret && !a->jwt) return AUTH_ANY_CLIENT;
  if (!h || strncmp(h, "Bearer ", 7) != 0) return AUTH_DENIED;
  h += 7;
  size_t n = strlen(h);
  if (a->token && equal_ct(h, n, a->token, strlen(a->token))) return AUTH_ANY_CLIENT;
  if (a->secret && is_client_token(h, n)) {
    memcpy(tok, h, n + 1);
    return AUTH_ONE_CLIENT;
  }
  if (a->jwt) return jwtauth_verify(a->jwt, h, now, user, reason) ? AUTH_DENIED : AUTH_USER;
  return AUTH_DENIED;
}

int auth_client_token(const char *secret, const char *client_id, size_t n, char *out) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)client_id, n, mac,
            &len) ||
      len * 2 != AUTH_CLIENT_TOKEN_LEN)
    return -1;
  static const char hex[] = "0123456789abcdef";
  for (unsigned i = 0; i < len; i++) {
    out[2 * i] = hex[mac[i] >> 4];
    out[2 * i + 1] = hex[mac[i] & 15];
  }
  out[AUTH_CLIENT_TOKEN_LEN] = 0;
  return 0;
}

int auth_client_ok(const auth_config *a, const char *tok, const char *client_id, size_t n) {
  char want[AUTH_CLIENT_TOKEN_LEN + 1];
  if (!a->secret || auth_client_token(a->secret, client_id, n, want)) return 0;
  return equal_ct(tok, strlen(tok), want, AUTH_CLIENT_TOKEN_LEN);
}
