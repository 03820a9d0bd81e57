/*
** jwtauth.h: JSON Web Token verification for syncd (jwtauth.c, on
** libjwt). Named apart from libjwt's own <jwt.h>, which a local jwt.h
** would shadow on syncd's include path.
*/
#ifndef SYNCD_JWTAUTH_H
#define SYNCD_JWTAUTH_H

/* What a verified token says. Strings are sqlite3_malloc'd;
** jwtauth_claims_clear frees them. */
typedef struct jwtauth_claims {
  char *sub;         /* the user */
  char *json;        /* every claim, as the token's payload JSON */
  long long expires; /* exp + leeway, seconds since the epoch */
} jwtauth_claims;

typedef struct jwtauth jwtauth;

/* A verifier for HS256 tokens signed with the len bytes of key (syncd.c
** reads them from --jwt-secret-file). Both take their buffer
** (sqlite3_malloc'd), kept or freed; NULL with *err (sqlite3_malloc'd)
** set. */
jwtauth *jwtauth_secret(char *key, int len, char **err);

/* A verifier for tokens signed with the private half of the PEM public key
** (len bytes): RS256 for an RSA key, ES256 for a P-256 key, nothing else. */
jwtauth *jwtauth_public_key(char *pem, int len, char **err);

/* Optional checks: aud (a string, or an array holding it) and iss must
** equal these; leeway: seconds of clock skew allowed on exp and nbf. The
** strings are borrowed and must outlive a. */
void jwtauth_set_checks(jwtauth *a, const char *audience, const char *issuer, int leeway);

/* Verify token (NUL-terminated): signature with the pinned algorithm,
** exp (required) and nbf (when present) against now, aud and iss when
** set, sub (a non-empty string, required). 0 and *out filled, or -1 with
** *reason set to a static text for the 401 answer. */
int jwtauth_verify(const jwtauth *a, const char *token, long long now, jwtauth_claims *out,
                   const char **reason);

void jwtauth_claims_clear(jwtauth_claims *c);
void jwtauth_free(jwtauth *a);

#endif
