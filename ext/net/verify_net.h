/*
** verify_net.h: sync_verify([table]) over HTTP, and the worker's periodic
** verification (verify_net.c).
*/
#ifndef SYNC_VERIFY_NET_H
#define SYNC_VERIFY_NET_H

#include "config.h"
#include "site.h"

void verify_net_fn(sqlite3_context *, int, sqlite3_value **);

/* The worker's verification of every tracked table (its client caught up
** at its cursor; the url and client id from sync_meta), requests made on
** this thread one at a time: the repair and its record (sync_meta
** last_verified_at, diverged_total, last_verify) as sync_verify does, the
** tables it wrote told to site (sync_wait). 0 done, 1 the server moved on
** (pull, then try again), 3 the server does not offer /verify (HTTP 404 or
** 501), 4 it refused the token (401/403), -1 failed; *pzErr
** (sqlite3_malloc'd) says why for -1, 3 and 4. */
int verify_net_worker(Site *site, SyncCtx *c, const sync_conf *cfg, const char *token,
                      char **pzErr);

/* When the worker verifies: once idle after a first sync or a resync
** (due, set by the loop), and every verify_interval_s seconds after the
** last; never when verify_interval_s is 0. */
typedef struct VerifySched {
  int due;
  int off;      /* the server does not offer /verify (404 or 501) */
  int64_t last; /* monotonic ms of the last one (or the first look); 0: none */
} VerifySched;

/* Runs verify_net_worker when vs says so at now (monotonic ms): its result,
** or 2 when nothing was due. A verification that ends (done or failed)
** schedules the next; one refused the token stays due. */
int verify_net_sched(VerifySched *vs, int64_t now, Site *site, SyncCtx *c, const sync_conf *cfg,
                     const char *token, char **pzErr);

#endif
