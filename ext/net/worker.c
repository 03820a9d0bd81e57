/*
** worker.c: the worker thread's life.
**
**   SELECT sync_start();          -- 1: the worker runs (or waits as standby)
**   SELECT sync_stop();           -- 1: stopped and joined
**
** sync_start starts one thread per database file in the process (its Site,
** site.c). The thread first takes the cross-process lock (lock.c: one
** worker per file across processes; the others are standbys that poll the
** lock), then opens its own connection (foreign keys enforced) with the
** engine registered (engine_register) and runs the scheduler (loop.c)
** until sync_stop, or the close of the connection that started it
** (site_conn_free), asks it to stop. A worker that cannot start stays,
** in state 'error', until stopped, so that sync_status shows why. Errors (all "fn: cause"):
**   sync_start: needs a database file (this one is in memory or temporary)
**   sync_start: sync_init() has not been called on this database
**   sync_start: no server url (give one with sync_init(url))
**   sync_start: cannot start a thread: ...
*/
#include "worker.h"
#include "engine.h"
#include "http.h"
#include "lock.h"
#include "loop.h"

#include <errno.h>
#include <string.h>

#define STANDBY_POLL_MS 500 /* how often a standby tries the lock */

/* Waits for the cross-process lock; returns 1 once held (*pFd), 0 when
** stopped. */
static int take_lock(Site *s, int *pFd) {
  int said = 0;
  for (;;) {
    if (site_stopping(s)) return 0;
    int got = lock_try(s->path, pFd);
    if (got == 1) break;
    char *msg = 0;
    if (!said || got < 0) {
      msg = got < 0 ? sqlite3_mprintf("cannot open the lock file %s-synclock: %s", s->path,
                                      strerror(errno))
                    : sqlite3_mprintf("standby: another process is syncing %s", s->path);
      said = 1;
    }
    pthread_mutex_lock(&s->mu);
    if (msg) site_show_error(s, msg);
    s->standby = got == 0;
    s->state = "idle";
    struct timespec ts;
    site_deadline(&ts, STANDBY_POLL_MS);
    if (!s->stop) pthread_cond_timedwait(&s->cond, &s->mu, &ts);
    pthread_mutex_unlock(&s->mu);
  }
  pthread_mutex_lock(&s->mu);
  s->lockfd = *pFd;
  s->standby = 0;
  site_show_error(s, 0);
  pthread_mutex_unlock(&s->mu);
  return 1;
}

/* The worker's connection waits for the write lock, but not once stopping. */
static int busy_cb(void *arg, int count) {
  if (count > 2000 || site_stopping(arg)) return 0;
  struct timespec ts = {0, 5 * 1000000};
  nanosleep(&ts, 0);
  return 1;
}

static void *worker_main(void *arg) {
  Site *s = arg;
  int lockfd = -1;
  sqlite3 *db = 0;
  if (take_lock(s, &lockfd)) {
    SyncCtx *c = 0;
    char *err = 0;
    Loop *l = 0;
    int rc = sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, 0);
    /* Foreign keys on, as an app that declares them runs: applying a
    ** parent's delete then cascades to its children here as on the server
    ** (deferred to the end of each page: ctx_engine_begin). */
    int fk = 0;
    if (rc == SQLITE_OK) rc = sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FKEY, 1, &fk);
    if (rc == SQLITE_OK && !fk) rc = SQLITE_ERROR;
    if (rc == SQLITE_OK) rc = engine_register(db, &c, &err);
    if (rc == SQLITE_OK) {
      sqlite3_busy_handler(db, busy_cb, s);
      l = loop_new(s, db, c, &err);
    }
    if (l) {
      loop_run(l);
      loop_free(l);
    } else {
      char *msg = sqlite3_mprintf("worker cannot start: %s", err ? err : sqlite3_errstr(rc));
      pthread_mutex_lock(&s->mu);
      site_show_error(s, msg);
      s->state = "error";
      /* Stay until stopped, so that sync_status shows why. */
      while (!s->stop)
        pthread_cond_wait(&s->cond, &s->mu);
      pthread_mutex_unlock(&s->mu);
    }
    sqlite3_free(err);
  }
  if (db && sqlite3_close(db) != SQLITE_OK) sqlite3_close_v2(db);
  pthread_mutex_lock(&s->mu);
  s->lockfd = -1;
  pthread_mutex_unlock(&s->mu);
  lock_release(&lockfd);
  pthread_mutex_lock(&s->mu);
  s->state = "stopped";
  s->sse = 0;
  s->standby = 0;
  pthread_mutex_unlock(&s->mu);
  return 0;
}

/* ---- SQL functions ---- */

void worker_fn_start(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc, (void)argv;
  NetConn *nc = sqlite3_user_data(ctx);
  SyncCtx *c = nc->c;
  Site *s = site_need(ctx, nc, "sync_start");
  if (!s || !ctx_require_init(ctx, c, "sync_start")) return;
  if (!sqlite3_threadsafe()) {
    ctx_error(ctx, "sync_start", "this SQLite library was built without thread support");
    return;
  }
  char *url = ctx_meta_get(c, "url");
  if (!url) {
    ctx_error(ctx, "sync_start", "no server url (give one with sync_init(url))");
    return;
  }
  sqlite3_free(url);
  if (http_global_init() != 0) {
    ctx_error(ctx, "sync_start", "curl_global_init failed");
    return;
  }
  pthread_mutex_lock(&s->mu);
  if (s->running) {
    pthread_mutex_unlock(&s->mu);
    sqlite3_result_int(ctx, 1);
    return;
  }
  site_retain(s);
  s->running = 1;
  s->stop = 0;
  s->owner = nc;
  s->state = "idle";
  site_show_error(s, 0);
  int e = pthread_create(&s->thread, 0, worker_main, s);
  if (e) {
    s->running = 0;
    s->owner = 0;
    s->state = "stopped";
  }
  pthread_mutex_unlock(&s->mu);
  if (e) {
    site_release(s);
    ctx_error(ctx, "sync_start", "cannot start a thread: %s", strerror(e));
    return;
  }
  sqlite3_result_int(ctx, 1);
}

void worker_fn_stop(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc, (void)argv;
  NetConn *nc = sqlite3_user_data(ctx);
  if (nc->site) site_stop(nc->site);
  sqlite3_result_int(ctx, 1);
}
