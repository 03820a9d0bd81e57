/*
** auth.h: who may call syncd (see auth.c and docs/PROTOCOL.md,
** "Authorization").
*/
#ifndef SYNCD_AUTH_H
#define SYNCD_AUTH_H

#include <stddef.h>

#include "jwtauth.h"

#define AUTH_CLIENT_TOKEN_LEN 64 /* hex of an HMAC-SHA256 */

typedef struct auth_config {
  const char *token;  /* shared token: any client_id; NULL: none */
  const char *secret; /* per-client tokens HMAC(secret, client_id); NULL: none */
  jwtauth *jwt;       /* JSON Web Tokens naming a user; NULL: none */
} auth_config;

typedef enum auth_level {
  AUTH_DENIED,     /* 401 */
  AUTH_ANY_CLIENT, /* no auth configured, or the shared token */
  AUTH_ONE_CLIENT, /* a client token: valid for one client_id only */
  AUTH_USER        /* a verified JWT: its user (sub), any client_id */
} auth_level;

/* Classify the Authorization header value h (may be NULL) at time now
** (seconds since the epoch). For AUTH_ONE_CLIENT the token is copied into
** tok (AUTH_CLIENT_TOKEN_LEN + 1); for AUTH_USER the claims fill *user
** (the caller clears them). AUTH_DENIED sets *reason to why a JWT was
** refused, or NULL. */
auth_level auth_header(const auth_config *a, const char *h, long long now, char *tok,
                       jwtauth_claims *user, const char **reason);

/* Whether tok (from auth_header) is client_id's token. Constant time. */
int auth_client_ok(const auth_config *a, const char *tok, const char *client_id, size_t n);

/* client_id's token into out (AUTH_CLIENT_TOKEN_LEN + 1 bytes). 0 on success. */
int auth_client_token(const char *secret, const char *client_id, size_t n, char *out);

#endif
