/*
** site.h: the process-wide state of one database file (site.c), shared by
** the worker (loop.c), sync_push/sync_pull (oneshot.c), sync_config
** (config.c) and sync_status (vtab_status.c).
**
** Every connection that registers the network layer gets a NetConn (freed
** by the destructor of the sync_status module, which SQLite runs at close,
** after the engine's). It links the connection and its SyncCtx to the Site
** of its database file: the token, connectivity, the worker thread and its
** status, the change counters behind sync_wait (the server's, and any
** change, local writes included: site_scan_local).
*/
#ifndef SYNC_SITE_H
#define SYNC_SITE_H

#include "apply.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Nudges: why the worker was woken. */
#define N_PUSH 1
#define N_PULL 2
#define N_CONFIG 4
#define N_ONLINE 8

typedef struct SiteChange SiteChange;
typedef struct NetConn NetConn;

/* One database file in this process. path and refs are guarded by the
** registry's lock; every other field by mu. */
typedef struct Site {
  char *path;
  int refs; /* NetConns + the running worker */
  struct Site *next;
  pthread_mutex_t mu;
  pthread_cond_t cond; /* sync_wait, standby sleep, joiners, busy */
  char *token;         /* memory only; wiped when replaced */
  unsigned tokenGen;   /* bumped by each new token */
  int forcedOffline;   /* sync_online(0) */
  int needsToken;      /* the worker met 401/403; cleared by a new token */
  /* the worker */
  int running, stop, joining;
  pthread_t thread;
  CURLM *multi;   /* set while the worker loop runs: curl_multi_wakeup target */
  NetConn *owner; /* the connection that started it: its close stops it */
  int lockfd;     /* the worker's lock descriptor while held, else -1 */
  int standby;    /* the worker waits: another process holds the lock */
  int hostXfer;   /* sync_push/sync_pull calls under way in this process */
  int busy;       /* the worker has a push or a pull out */
  unsigned nudge; /* N_* bits, taken by the worker */
  /* status, published by the worker */
  const char *state;
  int online, sse;
  char *lastError;
  int64_t lastPushAt, lastPullAt, nextRetryAt, pushed, pulled;
  /* sync_wait: seq counts the server's changes, seqAll every change;
  ** localHi is the outbox's highest id already published (localKnown 0:
  ** no scan yet, the first one only takes it); watchers counts the
  ** connections that called sync_wait(.., 'all'): with none, nothing scans */
  unsigned long long seq, seqAll;
  SiteChange *changed;
  int64_t localHi;
  int localKnown, watchers;
} Site;

struct NetConn {
  sqlite3 *db;
  SyncCtx *c;                 /* the engine's context of db */
  Site *site;                 /* NULL for an in-memory or temporary database */
  unsigned long long seen;    /* site->seq at this connection's last sync_wait */
  unsigned long long seenAll; /* site->seqAll at its last sync_wait(..., 'all') */
  int watching;               /* it has called sync_wait(..., 'all'): counted in watchers */
  int dataVersion;            /* db's PRAGMA data_version at its last scan (-1: none) */
};

/* db's NetConn (NULL when out of memory), and its destructor, which stops
** the worker this connection started (net.c hangs it on the sync_status
** module, whose destructor SQLite runs at close). */
NetConn *site_conn_new(sqlite3 *db, SyncCtx *c);
void site_conn_free(void *nc);

int64_t site_mono_ms(void);
int64_t site_wall_ms(void);
void site_deadline(struct timespec *ts, int64_t ms);

/* Takes one more reference (the worker's) / drops one; the last frees s. */
void site_retain(Site *);
void site_release(Site *);
/* Sets bits in s->nudge and wakes the worker and the waiters. */
void site_nudge(Site *, unsigned bits);
/* Records that the server changed res's tables and wakes sync_wait. */
void site_publish(Site *, const ApplyResult *res);
/* Publishes the tracked tables that local writes changed since the last
** scan of any connection of this process (site.c, "Local changes"), read
** through c, the engine of a connection to the site's file; 0, or an
** SQLite code. Reads nothing while no connection watches (watchers 0). */
int site_scan_local(Site *, SyncCtx *c);
/* Counts n mutations pushed (push 1) or changes pulled (push 0) now. */
void site_count(Site *, int push, int64_t n);
/* Stops the site's worker and joins it. Not from the worker's thread. */
void site_stop(Site *);
/* 1 once sync_stop (or the owner's close) asked the worker to stop. */
int site_stopping(Site *);
/* A copy of the token (sqlite3_malloc'd, NULL when none); *pGen, unless
** NULL, gets its generation. */
char *site_token(Site *, unsigned *pGen);
/* A sync_push or sync_pull was answered 401/403 with the token of
** generation gen: sync_status.needs_token, as when the worker meets it. */
void site_token_refused(Site *, unsigned gen);
void site_token_set(NetConn *, const char *token);
int site_token_is_set(NetConn *);
/* The site's offline flag as set by sync_online(0). */
int site_forced_offline(Site *);
/* Frees a token copy, wiping it first. */
void site_token_free(char *token);

/* Makes msg (sqlite3_malloc'd, taken; NULL: none) the error sync_status
** shows, freeing the one before. The caller holds s->mu. */
void site_show_error(Site *, char *msg);

/* One consistent copy of the worker's status for sync_status. */
typedef struct site_snapshot {
  const char *state; /* stopped, idle, pushing, pulling, offline, error */
  int online;
  int sse_connected;
  char last_error[512];                              /* "" for none */
  int64_t last_push_at, last_pull_at, next_retry_at; /* unix ms, 0 for none */
  int64_t pushed_total, pulled_total;
  int needs_token;
  const char *role; /* worker (holds the file's lock), standby, or NULL */
} site_snapshot;
void site_snapshot_get(NetConn *, site_snapshot *);

/* NULL, with "fn: needs a database file ..." as ctx's error, for a
** connection to an in-memory or temporary database. */
Site *site_need(sqlite3_context *ctx, NetConn *, const char *fn);

void site_fn_online(sqlite3_context *, int, sqlite3_value **);
void site_fn_wait(sqlite3_context *, int, sqlite3_value **);

#endif
