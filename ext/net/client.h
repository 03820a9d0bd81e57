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
  CL_REFUSED, /* 413 to a batch of one mutation: that mutation is refused for good */
  CL_STUCK,   /* an answer over max_body to a batch or page of one: only a larger
              ** max_body helps (terminal for the client until sync_config) */
  CL_RESYNC,  /* the pull's cursor is gone (410) or unreadable: one full resync */
  CL_AUTH,    /* 401/403: wait for a new token */
  CL_RETRY    /* anything else (5xx, 429, other 4xx): retry after a backoff */
} client_class;

/* The one classification of a response (after http_finish), used by every
** path. size is the number of mutations in the batch (push) or the page
** limit (pull): at 1 nothing can be halved, and a 413 or an answer over
** max_body is CL_REFUSED or CL_STUCK instead of CL_HALVE. */
client_class client_classify(const http_req *r, client_kind kind, int64_t size);

/* The size to classify a push of batch b with: 1 when it holds a single
** mutation (whatever the batch size), else the batch size. */
int64_t client_batch_size(const OutboxBatch *b, int64_t batchSize);

/* Refuses the one mutation of batch b after a 413 (CL_REFUSED): it moves
** to sync_rejected with "too large for the server: <why>" and is rolled
** back locally like any refusal (outbox_answer), and the rest of the
** outbox goes on. Counted in the site's figures (s may be NULL). */
int client_refuse(SyncCtx *, Site *, const OutboxBatch *b, const char *why, char **pzErr);

/* The reason sync_status shows when the worker stops until someone acts
** (terminal for the client): r was CL_STUCK (kind CLIENT_PUSH: to mutation
** id alone; CLIENT_PULL: to a page of one), or, when resyncs > 0, the 410
** that cut short that many resyncs in a row. Says what to do.
** sqlite3_malloc'd. */
char *client_stuck_reason(const http_req *r, client_kind kind, int64_t id, int resyncs);

/* Whether a failure to apply a page or an answer (SQLite code rc) would
** come again on a retry: not for a busy, locked or full database, an I/O
** error or a lack of memory. */
int client_lasting(int rc);

/* Halves a batch size or page limit (never below 1). */
void client_halve(int64_t *size);

/* Starts a full resync (the cursor forgotten, pending mutations kept) after
** the answer r (NULL: none) -- a 410 saying "reset": true (the server was
** restored or replaced) marks it as a server reset (sync_meta
** "server_reset", see existing.c) --:
** *pResync becomes 1 (the next pull goes without a cursor). Returns 1 when
** a resync was already under way (*pResync was set) and r does not say
** "moved": true (the user's memberships changed, docs/RULES.md): the
** caller backs off or fails instead of looping. Returns -1 when it could not start (*pzErr
** says why, *pResync unchanged): a pull without a cursor would then be
** applied as a first pull. */
int client_resync(SyncCtx *, const http_req *r, int *pResync, char **pzErr);

/* The /pull URL: client id, the cursor (none while *pResync is 1: a
** resync's first page), the page limit, the lowest pending id
** (pending_from) and the tracked tables (client_tables). A resync owed
** (resync_owed) while *pResync is 0 starts over here, for every path, and
** one starts when a table was tracked since the cursor was pulled (its
** older rows never came). sqlite3_malloc'd, NULL when out of memory. */
char *client_pull_url(SyncCtx *, const char *base, const char *client, int *pResync, int64_t limit);

/* The /events URL from cursor (NULL: none), with the same tables. */
char *client_events_url(SyncCtx *, const char *base, const char *client, const char *cursor);

/* The value of the tables parameter of /pull and /events: the tracked
** tables' names joined by commas (the URL escapes them). NULL, and the
** parameter left out (the server then sends every table, and the apply
** side skips and counts the others), when none is tracked, when a name
** holds a comma (it could not be told apart), or when out of memory.
** sqlite3_malloc'd. */
char *client_tables(SyncCtx *);

/* Whether a SQL function that talks to the server and writes the engine's
** tables may run on db now: not inside the caller's transaction, whose
** ROLLBACK (or a crash before its COMMIT) would undo the client's record
** of what the server already has. Sets "fn: cannot run inside a
** transaction (COMMIT or ROLLBACK first)" as ctx's error and returns 0
** when it may not. */
int client_outside_tx(sqlite3_context *ctx, sqlite3 *db, const char *fn);

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
