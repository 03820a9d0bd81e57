/*
** oneshot.h: sync_push() and sync_pull() on the caller's thread
** (oneshot.c).
*/
#ifndef SYNC_ONESHOT_H
#define SYNC_ONESHOT_H

#include "client.h"
#include "sqlite_api.h"

/* One call's session with the server, on the caller's thread (also used by
** sync_verify, verify_net.c). */
typedef struct Oneshot {
  sqlite3_context *ctx;
  NetConn *nc;
  SyncCtx *c;
  const char *fn;
  char *url;
  sync_conf cfg;
  char *token;
  unsigned tokenGen; /* the generation of token (site.c) */
  Site *site;        /* counted in site->hostXfer while set */
  http_req r;
} Oneshot;

/* Opens x for SQL function fn (its name in errors): refused inside a
** transaction, offline or without a url (the error set on ctx, x closed,
** -1); holds this process's worker off until oneshot_close. */
int oneshot_open(Oneshot *x, sqlite3_context *ctx, const char *fn);
void oneshot_close(Oneshot *x);
/* Runs one request; returns 0 on a usable 2xx answer, else -1 (r.msg,
** r.status, r.net). */
int oneshot_request(Oneshot *x, const char *url, const char *post, client_kind kind);
/* Sets the error of a failed request on x's ctx. */
void oneshot_fail(Oneshot *x);
/* Pulls until the server has no more (one resync on 410): 0 with *pTotal
** the changes applied, or -1 with the error set on x's ctx. */
int oneshot_pull_all(Oneshot *x, int64_t *pTotal);

void oneshot_fn_push(sqlite3_context *, int, sqlite3_value **);
void oneshot_fn_pull(sqlite3_context *, int, sqlite3_value **);

#endif
