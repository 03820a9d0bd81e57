/*
** client.h: the protocol's client side (client.c), written once for the
** worker's loop (loop.c) and for sync_push()/sync_pull() (oneshot.c): what
** a response means, what to do about it, the URLs, and the calls into the
** engine that count in the site's figures.
*/
#ifndef SYNC_CLIENT_H
#define SYNC_CLIENT_H

#include "config.h"
#include "http.h"
#include "outbox.h"
#include "site.h"

/* The requests the client makes. */
typedef enum { CLIENT_PUSH, CLIENT_PULL, CLIENT_EVENTS, CLIENT_HEALTH } client_kind;

/* What a finished request calls for. */
typedef enum {
  CL_OK,      /* a usable 2xx answer */
  CL_OFFLINE, /* the server could not be reached: offline until /health answers */
  CL_HALVE,   /* 413 or an answer over max_body: halve the batch or the page */
  CL_RESYNC,  /* the pull's cursor is gone (410) or unreadable: one full resync */
  CL_AUTH,    /* 401/403: wait for a new token */
  CL_RETRY    /* anything else (5xx, 429, other 4xx): retry after a backoff */
} client_class;

/* The one classification of a response (after http_finish), used by every
** path. size is the current batch size (push) or page limit (pull): at 1
** nothing can be halved and the answer is CL_RETRY. */
client_class client_classify(const http_req *r, client_kind kind, int64_t size);

/* Halves a batch size or page limit (never below 1). */
void client_halve(int64_t *size);

/* Starts a full resync (the cursor forgotten, pending mutations kept):
** *pResync becomes 1 (the next pull goes without a cursor). Returns 1 when
** a resync was already under way (*pResync was set): the caller backs off
** or fails instead of looping. Returns -1 when it could not start (*pzErr
** says why, *pResync unchanged): a pull without a cursor would then be
** applied as a first pull. */
int client_resync(SyncCtx *, int *pResync, char **pzErr);

/* The /pull URL: client id, the cursor (none while *pResync is 1: a
** resync's first page), the page limit and the lowest pending id
** (pending_from). A resync owed (resync_owed) while *pResync is 0 starts
** over here, for every path. sqlite3_malloc'd, NULL when out of memory. */
char *client_pull_url(SyncCtx *, const char *base, const char *client, int *pResync, int64_t limit);

/* The request options of one kind of request under cfg. */
void client_opts(http_opts *o, const sync_conf *cfg, const char *token, client_kind kind);

/* Applies a page (a resync's page when resync is set; flags: APPLY_EVENT
** for an event) in its own write transaction, then announces its tables to
** sync_wait and counts it in the site's figures (s may be NULL). *pMore
** gets has_more (pMore may be NULL). On failure *pzErr is "sync_apply:
** cause". */
int client_apply(SyncCtx *, Site *, const char *page, int flags, int resync, int64_t *pN,
                 int *pMore, char **pzErr);

/* Resolves the answer to batch b (outbox_answer) and counts what it
** resolved (*pN) in the site's figures (s may be NULL). */
int client_answer(SyncCtx *, Site *, const char *answer, const OutboxBatch *b, int64_t *pN,
                  char **pzErr);

/* SYNC_TRACE=1 in the environment: one stderr line per push, answer and
** applied page (bodies cut at 300 bytes; the token is never printed). */
void client_trace(const char *what, const char *body);

#endif
