/*
** site.c: the per-file registry of the network layer, and the functions
** that only read or nudge it.
**
**   SELECT sync_online();         -- 1 or 0: current connectivity
**   SELECT sync_online(0);        -- force offline (nothing leaves); 1: back, drain now
**   SELECT sync_wait(5000);       -- '["todos"]': tables the server changed since
**                                 -- the previous call on this connection; NULL on timeout
**   SELECT sync_wait(5000, 'all');  -- the same for any change: the server's and
**                                 -- local writes (this connection, others, other
**                                 -- processes), since the previous 'all' call
**                                 -- (the first one waits for the next change)
**
** One Site per database file in the process (keyed by its path), shared by
** every connection to it (NetConn) and by its worker thread (loop.c): the
** token (memory only), connectivity, the worker's status and counters, and
** the change counters sync_wait sleeps on. The registry survives fork() in
** the child as far as it can (atfork_child). Both functions need sync_init
** first, as every other one does. Errors:
**   sync_online: sync_init() has not been called on this database
**   sync_online: argument must be 0 or 1
**   sync_wait: timeout_ms must be a non-negative integer
**   sync_wait: scope must be 'server' or 'all'
**   sync_wait: needs a database file (this one is in memory or temporary)
**
** Local changes: every local write to a tracked table queues an outbox row
** (capture triggers, any connection, any process) with an id above every
** id issued before, so the outbox's high-water mark (its highest id, or
** sync_control.last_id once that row is gone) grows with each local
** commit, and the rows above the last mark seen name the tables
** (outbox_changes_after). site_scan_local reads them: on the waiting
** connection when sync_wait(.., 'all') starts and whenever its PRAGMA
** data_version moves (polled every LOCAL_POLL_MS while it waits: no commit
** hook of the host's is taken), and on the worker's connection each time
** it reads a batch (loop.c), while the batch's rows are still there; all
** only while some connection of the process has called it (watchers). Rows
** gone before any scan of this process saw them (sent and confirmed by
** another process's worker or by a sync_push) cannot be told apart: the
** scan then names every tracked table.
*/
#include "site.h"
#include "dataver.h"
#include "outbox.h"
#include "value.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LOCAL_POLL_MS 50 /* how often sync_wait(.., 'all') looks for commits */

struct SiteChange {
  char *name;
  unsigned long long seq;    /* site->seq when the server last changed it (0: never) */
  unsigned long long seqAll; /* site->seqAll when anything last changed it */
  SiteChange *next;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static Site *sites;

int64_t site_mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int64_t site_wall_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* *ts = now + ms on the monotonic clock (the clock of every site->cond). */
void site_deadline(struct timespec *ts, int64_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (ms % 1000) * 1000000;
  if (ts->tv_nsec >= 1000000000) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000;
  }
}

static void cond_init(pthread_cond_t *c) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(c, &a);
  pthread_condattr_destroy(&a);
}

/* In a child process after fork(): the worker threads did not come along.
** Their sites are marked stopped (a join would wait forever), the child's
** copy of the lock descriptor is closed (it would keep the parent's lock
** alive after the parent dies) and the mutexes start unlocked. Best effort:
** a fork while another thread changes the registry is not covered. */
static void atfork_child(void) {
  pthread_mutex_init(&reg_mu, 0);
  for (Site *s = sites; s; s = s->next) {
    pthread_mutex_init(&s->mu, 0);
    cond_init(&s->cond);
    if (s->lockfd >= 0) close(s->lockfd);
    s->lockfd = -1;
    if (!s->running) continue;
    s->running = s->stop = s->joining = s->sse = 0;
    s->refs--; /* the worker's reference: it has no thread here */
    s->multi = 0;
    s->owner = 0;
    s->state = "stopped";
  }
}

static void atfork_once(void) {
  pthread_atfork(0, 0, atfork_child);
}

static Site *site_get(const char *path) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, atfork_once);
  pthread_mutex_lock(&reg_mu);
  Site *s = sites;
  while (s && strcmp(s->path, path) != 0)
    s = s->next;
  if (s) {
    s->refs++;
  } else if ((s = sqlite3_malloc64(sizeof *s)) != 0) {
    memset(s, 0, sizeof *s);
    s->path = sqlite3_mprintf("%s", path);
    if (!s->path) {
      sqlite3_free(s);
      s = 0;
    } else {
      cond_init(&s->cond);
      pthread_mutex_init(&s->mu, 0);
      s->lockfd = -1;
      s->refs = 1;
      s->online = 1;
      s->state = "stopped";
      s->next = sites;
      sites = s;
    }
  }
  pthread_mutex_unlock(&reg_mu);
  return s;
}

void site_retain(Site *s) {
  pthread_mutex_lock(&reg_mu);
  s->refs++;
  pthread_mutex_unlock(&reg_mu);
}

void site_token_free(char *token) {
  if (token) memset(token, 0, strlen(token));
  sqlite3_free(token);
}

void site_release(Site *s) {
  if (!s) return;
  pthread_mutex_lock(&reg_mu);
  int last = --s->refs == 0;
  if (last) {
    Site **pp = &sites;
    while (*pp != s)
      pp = &(*pp)->next;
    *pp = s->next;
  }
  pthread_mutex_unlock(&reg_mu);
  if (!last) return;
  while (s->changed) {
    SiteChange *t = s->changed;
    s->changed = t->next;
    sqlite3_free(t->name);
    sqlite3_free(t);
  }
  site_token_free(s->token);
  sqlite3_free(s->lastError);
  sqlite3_free(s->path);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cond);
  sqlite3_free(s);
}

void site_nudge(Site *s, unsigned bits) {
  pthread_mutex_lock(&s->mu);
  s->nudge |= bits;
  if (s->multi) curl_multi_wakeup(s->multi);
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
}

/* Marks table name changed at seqAll (and by the server at seq, unless 0).
** Returns 0 when out of memory. The caller holds s->mu. */
static int mark_changed(Site *s, const char *name, unsigned long long seq,
                        unsigned long long seqAll) {
  SiteChange *t = s->changed;
  while (t && strcmp(t->name, name) != 0)
    t = t->next;
  if (!t) {
    if ((t = sqlite3_malloc64(sizeof *t)) == 0) return 0;
    memset(t, 0, sizeof *t);
    if ((t->name = sqlite3_mprintf("%s", name)) == 0) {
      sqlite3_free(t);
      return 0;
    }
    /* kept in name order, so that sync_wait's answer is too */
    SiteChange **pp = &s->changed;
    while (*pp && strcmp((*pp)->name, t->name) < 0)
      pp = &(*pp)->next;
    t->next = *pp;
    *pp = t;
  }
  if (seq) t->seq = seq;
  t->seqAll = seqAll;
  return 1;
}

void site_publish(Site *s, const ApplyResult *res) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  unsigned long long seq = s->seq + 1, seqAll = s->seqAll + 1;
  int any = 0;
  for (int k = 0; k < res->nTables; k++)
    any |= mark_changed(s, res->tables[k], seq, seqAll);
  if (any) {
    s->seq = seq;
    s->seqAll = seqAll;
    pthread_cond_broadcast(&s->cond);
  }
  pthread_mutex_unlock(&s->mu);
}

int site_scan_local(Site *s, SyncCtx *c) {
  if (!s) return SQLITE_OK;
  pthread_mutex_lock(&s->mu);
  int watched = s->watchers > 0;
  sqlite3_int64 lo = s->localKnown ? s->localHi : -1;
  pthread_mutex_unlock(&s->mu);
  /* The worker calls this for every batch it reads: no reads for nobody. */
  if (!watched) return SQLITE_OK;
  sqlite3_str *names = sqlite3_str_new(0);
  sqlite3_int64 hi = 0;
  int rc = outbox_changes_after(c, lo, &hi, names);
  int n = sqlite3_str_length(names);
  char *z = sqlite3_str_finish(names);
  if (rc == SQLITE_OK) {
    /* Scans that overlap may both publish a table: harmless. */
    pthread_mutex_lock(&s->mu);
    if (!s->localKnown || hi > s->localHi) s->localHi = hi;
    s->localKnown = 1;
    unsigned long long seqAll = s->seqAll + 1;
    int any = 0;
    for (int i = 0; i < n; i += (int)strlen(z + i) + 1)
      any |= mark_changed(s, z + i, 0, seqAll);
    if (any) {
      s->seqAll = seqAll;
      pthread_cond_broadcast(&s->cond);
    }
    pthread_mutex_unlock(&s->mu);
  }
  sqlite3_free(z);
  return rc;
}

void site_count(Site *s, int push, int64_t n) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  if (push) {
    s->pushed += n;
    s->lastPushAt = site_wall_ms();
  } else {
    s->pulled += n;
    s->lastPullAt = site_wall_ms();
  }
  pthread_mutex_unlock(&s->mu);
}

void site_stop(Site *s) {
  pthread_mutex_lock(&s->mu);
  if (!s->running) {
    pthread_mutex_unlock(&s->mu);
    return;
  }
  s->stop = 1;
  if (s->multi) curl_multi_wakeup(s->multi);
  pthread_cond_broadcast(&s->cond);
  if (s->joining) {
    while (s->running)
      pthread_cond_wait(&s->cond, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return;
  }
  s->joining = 1;
  pthread_t t = s->thread;
  pthread_mutex_unlock(&s->mu);
  pthread_join(t, 0);
  pthread_mutex_lock(&s->mu);
  s->running = s->joining = s->stop = 0;
  s->owner = 0;
  s->state = "stopped";
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
  site_release(s); /* the worker's reference */
}

int site_stopping(Site *s) {
  pthread_mutex_lock(&s->mu);
  int stop = s->stop;
  pthread_mutex_unlock(&s->mu);
  return stop;
}

char *site_token(Site *s, unsigned *pGen) {
  pthread_mutex_lock(&s->mu);
  char *t = s->token ? sqlite3_mprintf("%s", s->token) : 0;
  if (pGen) *pGen = s->tokenGen;
  pthread_mutex_unlock(&s->mu);
  return t;
}

void site_token_refused(Site *s, unsigned gen) {
  pthread_mutex_lock(&s->mu);
  /* A token set since the request went out may be good: only the one
  ** refused is known to need renewing. */
  if (gen == s->tokenGen) s->needsToken = 1;
  pthread_mutex_unlock(&s->mu);
}

void site_token_set(NetConn *nc, const char *token) {
  Site *s = nc->site;
  if (!s) return;
  char *t = token ? sqlite3_mprintf("%s", token) : 0;
  pthread_mutex_lock(&s->mu);
  site_token_free(s->token);
  s->token = t;
  s->tokenGen++;
  s->needsToken = 0;
  if (s->multi) curl_multi_wakeup(s->multi);
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
}

int site_token_is_set(NetConn *nc) {
  Site *s = nc->site;
  if (!s) return 0;
  pthread_mutex_lock(&s->mu);
  int set = s->token != 0;
  pthread_mutex_unlock(&s->mu);
  return set;
}

int site_forced_offline(Site *s) {
  pthread_mutex_lock(&s->mu);
  int forced = s->forcedOffline;
  pthread_mutex_unlock(&s->mu);
  return forced;
}

void site_show_error(Site *s, char *msg) {
  sqlite3_free(s->lastError);
  s->lastError = msg;
}

void site_snapshot_get(NetConn *nc, site_snapshot *o) {
  memset(o, 0, sizeof *o);
  o->state = "stopped";
  o->online = 1;
  Site *s = nc->site;
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  o->state = s->running ? s->state : "stopped";
  if (s->forcedOffline) o->state = "offline";
  o->online = s->online && !s->forcedOffline;
  o->sse_connected = s->running && s->sse;
  if (s->lastError) snprintf(o->last_error, sizeof o->last_error, "%s", s->lastError);
  o->last_push_at = s->lastPushAt;
  o->last_pull_at = s->lastPullAt;
  o->next_retry_at = s->running ? s->nextRetryAt : 0;
  o->pushed_total = s->pushed;
  o->pulled_total = s->pulled;
  o->needs_token = s->needsToken;
  o->role = !s->running ? 0 : s->lockfd >= 0 ? "worker" : s->standby ? "standby" : 0;
  pthread_mutex_unlock(&s->mu);
}

/* ---- per connection ---- */

NetConn *site_conn_new(sqlite3 *db, SyncCtx *c) {
  NetConn *nc = sqlite3_malloc64(sizeof *nc);
  if (!nc) return 0;
  memset(nc, 0, sizeof *nc);
  nc->db = db;
  nc->c = c;
  nc->dataVersion = -1;
  const char *path = sqlite3_db_filename(db, "main");
  if (path && *path) {
    nc->site = site_get(path);
    if (!nc->site) {
      sqlite3_free(nc);
      return 0;
    }
    pthread_mutex_lock(&nc->site->mu);
    nc->seen = nc->site->seq;
    pthread_mutex_unlock(&nc->site->mu);
  }
  return nc;
}

void site_conn_free(void *p) {
  NetConn *nc = p;
  if (!nc) return;
  if (nc->site) {
    pthread_mutex_lock(&nc->site->mu);
    int owner = nc->site->owner == nc;
    /* The last watcher gone: the next one's first scan takes the mark
    ** afresh (the scans skipped meanwhile would name every table). */
    if (nc->watching && --nc->site->watchers == 0) nc->site->localKnown = 0;
    pthread_mutex_unlock(&nc->site->mu);
    if (owner) site_stop(nc->site);
    site_release(nc->site);
  }
  sqlite3_free(nc);
}

/* ---- SQL functions ---- */

Site *site_need(sqlite3_context *ctx, NetConn *nc, const char *fn) {
  if (!nc->site) {
    ctx_error(ctx, fn, "needs a database file (this one is in memory or temporary)");
    return 0;
  }
  return nc->site;
}

void site_fn_online(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  NetConn *nc = sqlite3_user_data(ctx);
  if (!ctx_require_init(ctx, nc->c, "sync_online")) return;
  Site *s = site_need(ctx, nc, "sync_online");
  if (!s) return;
  if (argc == 1) {
    if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER ||
        (sqlite3_value_int64(argv[0]) != 0 && sqlite3_value_int64(argv[0]) != 1)) {
      ctx_error(ctx, "sync_online", "argument must be 0 or 1");
      return;
    }
    int on = sqlite3_value_int(argv[0]);
    pthread_mutex_lock(&s->mu);
    s->forcedOffline = !on;
    if (on) s->online = 1;
    s->nudge |= on ? N_ONLINE | N_PUSH | N_PULL : 0;
    if (s->multi) curl_multi_wakeup(s->multi);
    pthread_mutex_unlock(&s->mu);
  }
  pthread_mutex_lock(&s->mu);
  int online = s->online && !s->forcedOffline;
  pthread_mutex_unlock(&s->mu);
  sqlite3_result_int(ctx, online);
}

/* dataver_read on a statement not kept: one left on the host's connection
** would make its sqlite3_close fail (SQLITE_BUSY). */
static int data_version(sqlite3 *db) {
  sqlite3_stmt *q = 0;
  int v = dataver_read(&q, db);
  sqlite3_finalize(q);
  return v;
}

/* The tables changed after seen (by the server only unless all), as a
** JSON array in name order. The caller holds s->mu. */
static sqlite3_str *changed_since(Site *s, unsigned long long seen, int all) {
  sqlite3_str *out = sqlite3_str_new(0);
  int n = 0;
  sqlite3_str_appendchar(out, 1, '[');
  for (SiteChange *t = s->changed; t; t = t->next) {
    if ((all ? t->seqAll : t->seq) <= seen) continue;
    if (n++) sqlite3_str_appendchar(out, 1, ',');
    value_append_string(out, t->name, -1);
  }
  sqlite3_str_appendchar(out, 1, ']');
  return out;
}

/* sync_wait(ms, 'all'): scans on this connection at once (its own commits
** do not move its data_version), then each time another commit moves it.
** A connection's first call reports only what changes after it starts. */
static sqlite3_str *wait_all(NetConn *nc, Site *s, int64_t ms) {
  int64_t now = site_mono_ms(), end = now + ms, poll = now + LOCAL_POLL_MS;
  /* Counted before the first scan, so that the worker scans each batch it
  ** reads from then on. */
  pthread_mutex_lock(&s->mu);
  int first = !nc->watching;
  if (first) s->watchers++, nc->watching = 1;
  pthread_mutex_unlock(&s->mu);
  nc->dataVersion = data_version(nc->db);
  site_scan_local(s, nc->c);
  pthread_mutex_lock(&s->mu);
  if (first) nc->seenAll = s->seqAll; /* the watch starts: what changed before is not news */
  while (s->seqAll == nc->seenAll && (now = site_mono_ms()) < end) {
    if (now >= poll) {
      pthread_mutex_unlock(&s->mu);
      int v = data_version(nc->db);
      if (v != nc->dataVersion) {
        nc->dataVersion = v;
        site_scan_local(s, nc->c);
      }
      poll = now + LOCAL_POLL_MS;
      pthread_mutex_lock(&s->mu);
      continue;
    }
    struct timespec ts;
    site_deadline(&ts, (end < poll ? end : poll) - now);
    pthread_cond_timedwait(&s->cond, &s->mu, &ts);
  }
  sqlite3_str *out = 0;
  if (s->seqAll != nc->seenAll) {
    out = changed_since(s, nc->seenAll, 1);
    nc->seenAll = s->seqAll;
  }
  pthread_mutex_unlock(&s->mu);
  return out;
}

void site_fn_wait(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  NetConn *nc = sqlite3_user_data(ctx);
  if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER || sqlite3_value_int64(argv[0]) < 0) {
    ctx_error(ctx, "sync_wait", "timeout_ms must be a non-negative integer");
    return;
  }
  if (!ctx_require_init(ctx, nc->c, "sync_wait")) return;
  int all = 0;
  if (argc > 1) {
    const char *scope =
        sqlite3_value_type(argv[1]) == SQLITE_TEXT ? (const char *)sqlite3_value_text(argv[1]) : 0;
    if (!scope || (strcmp(scope, "server") != 0 && strcmp(scope, "all") != 0)) {
      ctx_error(ctx, "sync_wait", "scope must be 'server' or 'all'");
      return;
    }
    all = strcmp(scope, "all") == 0;
  }
  Site *s = site_need(ctx, nc, "sync_wait");
  if (!s) return;
  int64_t ms = sqlite3_value_int64(argv[0]);
  if (ms > (int64_t)INT32_MAX) ms = INT32_MAX;
  sqlite3_str *out = 0;
  if (all) {
    out = wait_all(nc, s, ms);
  } else {
    struct timespec ts;
    site_deadline(&ts, ms);
    pthread_mutex_lock(&s->mu);
    while (s->seq == nc->seen) {
      if (pthread_cond_timedwait(&s->cond, &s->mu, &ts) == ETIMEDOUT) break;
    }
    if (s->seq != nc->seen) {
      out = changed_since(s, nc->seen, 0);
      nc->seen = s->seq;
    }
    pthread_mutex_unlock(&s->mu);
  }
  if (!out) return; /* NULL: timed out */
  ctx_result_str(ctx, out);
}
