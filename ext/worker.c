/*
** worker.c: the background sync worker and the functions that drive it.
**
**   SELECT sync_start();          -- 1: the worker runs (or waits as standby)
**   SELECT sync_stop();           -- 1: stopped and joined
**   SELECT sync_push();           -- drain now, synchronously: mutations confirmed
**   SELECT sync_pull();           -- pull now, synchronously: changes applied
**   SELECT sync_online();         -- 1 or 0: current connectivity
**   SELECT sync_online(0);        -- force offline (nothing leaves); 1: back, drain now
**   SELECT sync_wait(5000);       -- '["todos"]': tables the server changed since
**                                 -- the previous call on this connection; NULL on timeout
**
** One worker thread per database file in a process (a registry keyed by the
** file's path) and one per file across processes (lock.c: the others are
** standbys that poll the lock). The worker has its own connection with the
** extension registered and touches data only through the engine's
** functions: sync_push_batch, sync_ack, sync_apply, sync_cursor, plus plain
** SQL on the extension's tables for what the engine has no function for:
** counting attempts/last_error on the mutations of a failed push, deleting
** the cursor and, after a full resync, the rows the server no longer has.
** Its network side is one curl_multi loop running the event stream beside
** the push or the pull and, while offline, a /health probe; it sleeps in
** curl_multi_poll until a socket is ready, the next deadline (retry,
** data_version poll) or curl_multi_wakeup from another thread (sync_stop,
** sync_online, sync_config, ...).
**
** Order rules that keep rejections from getting lost: a push and a pull
** never overlap, and events arriving while a push is out are held (the
** transfer is paused) until its answer is acked. Otherwise a page whose
** last_mutation_id covers the batch could drop it from the outbox before
** the answer that says which of its mutations were rejected. sync_push and
** sync_pull calls of the same process count as transfers too (the worker
** waits for them, they wait for its transfer under way); across processes
** only one side runs a worker, but a sync_push in another process is not
** ordered with it. Events never confirm mutations (their last_mutation_id
** is dropped): they carry no "rejected" list, so after a lost push answer
** only the retried push or a pull (with pending_from) resolves the batch.
** A drain keeps a push out all along: the next batch goes before the
** previous answer is acked (done_push), which is acked with its own batch's
** last id so that it cannot resolve the batch sent after it.
**
** Each retry loop has its own backoff (backoff.h): network errors make the
** worker offline until /health answers; 5xx, 429 and other 4xx retry after
** a delay (Retry-After honoured); 413, or an answer over max_body, halves
** the batch; 401/403 wait for a
** new token; 410 (or a malformed cursor) starts one full resync, and a
** resync that meets 410 again backs off.
**
** Local writes are noticed without taking the host's commit or update hooks:
** the worker reads PRAGMA data_version on its own connection every
** DV_POLL_MS, which changes when any other connection (in any process)
** commits.
**
** Errors (all "fn: cause"):
**   sync_start: needs a database file (this one is in memory or temporary)
**   sync_start: no server url (sync_init was given NULL)
**   sync_push: cannot reach http://...: Couldn't connect to server
**   sync_push: HTTP 401: unauthorized
**   sync_push: offline (sync_online(0) is in effect)
**   sync_wait: timeout_ms must be a non-negative integer
*/
#include "sync.h"
#include "backoff.h"
#include "http.h"
#include "lock.h"
#include "sse.h"
#include "value.h"
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DV_POLL_MS 50       /* how often the worker looks for local commits */
#define STANDBY_POLL_MS 500 /* how often a standby tries the lock */
#define POLL_PULL_MS 10000  /* with sse off: pull this often */
#define HEALTH_TIMEOUT_MS 5000
#define RETRY_AFTER_CAP_MS (3600 * 1000)
#define SSE_MAX ((size_t)16 << 20) /* cap of one event-stream line and event */

/* Nudges: why the worker was woken. */
#define N_PUSH 1
#define N_PULL 2
#define N_CONFIG 4
#define N_ONLINE 8
#define N_TOKEN 16

typedef struct ChangedTable {
  char *name;
  unsigned long long seq; /* site->seq when it last changed */
  struct ChangedTable *next;
} ChangedTable;

/* Process-wide state of one database file. Fields after mu are guarded by
** it; path and refs by reg_mu. */
typedef struct Site {
  char *path;
  int refs; /* WorkerConns + the running worker */
  struct Site *next;
  pthread_mutex_t mu;
  pthread_cond_t cond; /* sync_wait, standby sleep, joiners */
  char *token;
  unsigned tokenGen;
  int forcedOffline;
  /* the worker */
  int running, stop, joining;
  pthread_t thread;
  CURLM *multi; /* set while the worker loop runs: curl_multi_wakeup target */
  WorkerConn *owner;
  int lockfd;   /* the worker's lock descriptor while held, else -1 */
  int hostXfer; /* sync_push/sync_pull calls under way in this process */
  int busy;     /* the worker has a push or a pull out */
  unsigned nudge;
  /* status */
  const char *state;
  int online, sse, standby;
  char *lastError;
  int64_t lastPushAt, lastPullAt, nextRetryAt, pushed, pulled;
  /* sync_wait */
  unsigned long long seq;
  ChangedTable *changed;
} Site;

struct WorkerConn {
  sqlite3 *db;
  Site *site;              /* NULL for an in-memory or temporary database */
  unsigned long long seen; /* site->seq at this connection's last sync_wait */
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static Site *sites;

/* ---- time ---- */

static int64_t mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int64_t wall_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void deadline_in(struct timespec *ts, int64_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (ms % 1000) * 1000000;
  if (ts->tv_nsec >= 1000000000) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000;
  }
}

/* ---- the registry ---- */

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
    s->running = s->stop = s->joining = s->sse = s->standby = 0;
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

static void site_release(Site *s) {
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
    ChangedTable *t = s->changed;
    s->changed = t->next;
    sqlite3_free(t->name);
    sqlite3_free(t);
  }
  if (s->token) memset(s->token, 0, strlen(s->token));
  sqlite3_free(s->token);
  sqlite3_free(s->lastError);
  sqlite3_free(s->path);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cond);
  sqlite3_free(s);
}

static void site_nudge(Site *s, unsigned bits) {
  pthread_mutex_lock(&s->mu);
  s->nudge |= bits;
  if (s->multi) curl_multi_wakeup(s->multi);
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
}

/* Records that the server changed the tables the page sync_apply just
** applied on c wrote (it leaves their names in c) and wakes sync_wait. */
static void site_publish(Site *s, SyncCtx *c) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  unsigned long long seq = s->seq + 1;
  int any = 0;
  for (int k = 0; k < c->nApplyTables; k++) {
    const char *name = c->applyTables[k];
    ChangedTable *t = s->changed;
    while (t && strcmp(t->name, name) != 0)
      t = t->next;
    if (!t && (t = sqlite3_malloc64(sizeof *t)) != 0) {
      if ((t->name = sqlite3_mprintf("%s", name)) == 0) {
        sqlite3_free(t);
        continue;
      }
      /* kept in name order, so that sync_wait's answer is too */
      ChangedTable **pp = &s->changed;
      while (*pp && strcmp((*pp)->name, t->name) < 0)
        pp = &(*pp)->next;
      t->next = *pp;
      *pp = t;
    }
    if (t) t->seq = seq, any = 1;
  }
  if (any) {
    s->seq = seq;
    pthread_cond_broadcast(&s->cond);
  }
  pthread_mutex_unlock(&s->mu);
}

/* ---- small SQL helpers ---- */

/* Runs "SELECT fn(?1)" style statement text with one text argument; *pOut
** gets the first column as text (sqlite3_malloc'd, NULL for NULL) and *pN
** the second column as an integer when there is one. Returns an SQLite
** code; *pzErr gets the message on failure. */
static int sql_call(sqlite3 *db, const char *sql, const char *arg, sqlite3_int64 iArg, char **pOut,
                    sqlite3_int64 *pN, char **pzErr) {
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(db, sql, -1, &s, 0);
  if (rc == SQLITE_OK) {
    if (arg)
      sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC);
    else
      sqlite3_bind_int64(s, 1, iArg);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      if (pOut)
        *pOut = sqlite3_column_type(s, 0) == SQLITE_NULL
                    ? 0
                    : sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
      if (pN) *pN = sqlite3_column_count(s) > 1 ? sqlite3_column_int64(s, 1) : 0;
      rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
      rc = SQLITE_OK;
    }
  }
  if (rc != SQLITE_OK && pzErr) *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(db));
  sqlite3_finalize(s);
  return rc;
}

/* A write by the worker (or by sync_push/sync_pull outside a transaction)
** takes the write lock first with BEGIN IMMEDIATE, which the busy handler
** waits for: a deferred transaction that read first could fail with
** SQLITE_BUSY_SNAPSHOT at its first write when another connection
** committed in between, and the busy handler cannot help then. Returns 1
** when it began a transaction (db was in autocommit mode), 0 when the
** caller's transaction is used, -1 when BEGIN failed. */
static int tx_begin(sqlite3 *db) {
  if (!sqlite3_get_autocommit(db)) return 0;
  return sqlite3_exec(db, "BEGIN IMMEDIATE", 0, 0, 0) == SQLITE_OK ? 1 : -1;
}

/* Commits (rc OK) or rolls back what tx_begin began; returns the final code. */
static int tx_end(sqlite3 *db, int began, int rc) {
  if (began != 1) return rc;
  if (rc == SQLITE_OK) rc = sqlite3_exec(db, "COMMIT", 0, 0, 0);
  if (rc != SQLITE_OK) sqlite3_exec(db, "ROLLBACK", 0, 0, 0);
  return rc;
}

/* sql_call for a statement that writes, in its own transaction. */
static int sql_write_call(sqlite3 *db, const char *sql, const char *arg, sqlite3_int64 *pN,
                          char **pzErr) {
  int began = tx_begin(db);
  if (began < 0) {
    *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(db));
    return sqlite3_errcode(db);
  }
  char *unused = 0;
  int rc = sql_call(db, sql, arg, 0, &unused, pN, pzErr);
  sqlite3_free(unused);
  rc = tx_end(db, began, rc);
  if (rc != SQLITE_OK && !*pzErr) *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(db));
  return rc;
}

static char *meta_text(sqlite3 *db, const char *key) {
  char *v = 0;
  sql_call(db, "SELECT value FROM main.sync_meta WHERE key=?1", key, 0, &v, 0, 0);
  return v;
}

/* The next batch body (NULL: none left) of at most batch mutations with
** ids above after. */
static int push_build(sqlite3 *db, sqlite3_int64 batch, sqlite3_int64 after, char **pBody,
                      char **pzErr) {
  char *sql = sqlite3_mprintf("SELECT sync_push_batch(?1, %lld)", after);
  if (!sql) return SQLITE_NOMEM;
  int rc = sql_call(db, sql, 0, batch, pBody, 0, pzErr);
  sqlite3_free(sql);
  return rc;
}

/* The id of the last mutation of a body sync_push_batch built. */
static sqlite3_int64 push_top(sqlite3 *db, const char *body) {
  sqlite3_int64 top = 0;
  char *unused = 0;
  sql_call(db, "SELECT 0, ?1->>'$.mutations[#-1].id'", body, 0, &unused, &top, 0);
  sqlite3_free(unused);
  return top;
}

/* After a failed push: count the attempt and keep the cause on the
** mutations the batch carried. */
static void record_attempt(sqlite3 *db, const char *batch, const char *why) {
  sqlite3_stmt *s = 0;
  if (sqlite3_prepare_v2(db,
                         "UPDATE main.sync_outbox SET attempts = attempts + 1, last_error = ?2"
                         " WHERE id BETWEEN ?1->>'$.mutations[0].id'"
                         " AND ?1->>'$.mutations[#-1].id'",
                         -1, &s, 0) == SQLITE_OK) {
    sqlite3_bind_text(s, 1, batch, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, why, -1, SQLITE_STATIC);
    sqlite3_step(s);
  }
  sqlite3_finalize(s);
}

/* 1 when a mutation of this push batch is still in the outbox. An answer
** that resolved none may be fine: an event's last_mutation_id can confirm
** the batch while its answer is on the way. */
static int batch_pending(sqlite3 *db, const char *batch) {
  sqlite3_int64 n = 0;
  char *unused = 0;
  sql_call(db,
           "SELECT 0, EXISTS(SELECT 1 FROM main.sync_outbox WHERE id BETWEEN"
           " ?1->>'$.mutations[0].id' AND ?1->>'$.mutations[#-1].id')",
           batch, 0, &unused, &n, 0);
  sqlite3_free(unused);
  return n != 0;
}

/* Acknowledges the answer resp to the push batch body, whose last id is top
** (the next batch may be out already: the answer may not resolve its ids),
** and counts what it resolved (*pN) in the site's figures. An answer that
** resolved none of a batch still pending is an error, recorded on it. */
static int ack_answer(sqlite3 *db, Site *site, const char *resp, const char *body,
                      sqlite3_int64 top, sqlite3_int64 *pN, char **pzErr) {
  static const char none[] = "the server's answer resolved none of the batch";
  char *sql = sqlite3_mprintf("SELECT 0, sync_ack(?1, %lld)", top);
  int rc = sql ? sql_write_call(db, sql, resp, pN, pzErr) : SQLITE_NOMEM;
  sqlite3_free(sql);
  if (rc == SQLITE_OK && *pN == 0 && batch_pending(db, body)) {
    record_attempt(db, body, none);
    *pzErr = sqlite3_mprintf("%s", none);
    rc = SQLITE_ERROR;
  }
  if (rc == SQLITE_OK && site) {
    pthread_mutex_lock(&site->mu);
    site->pushed += *pN;
    site->lastPushAt = wall_ms();
    pthread_mutex_unlock(&site->mu);
  }
  return rc;
}

/* The lowest pending mutation id as text, NULL when the outbox is empty:
** a pull sends it as pending_from, so that a page whose last_mutation_id
** covers mutations whose push answer was lost also lists those the server
** rejected ("rejected"), and sync_apply moves them to sync_rejected. */
static char *pending_from(sqlite3 *db) {
  char *v = 0;
  sql_call(db, "SELECT min(id) FROM main.sync_outbox", 0, 0, &v, 0, 0);
  return v;
}

static int clear_cursor(sqlite3 *db) {
  return sqlite3_exec(db, "DELETE FROM main.sync_meta WHERE key='cursor'", 0, 0, 0);
}

/* ---- full resync ----
**
** A resync pulls every live row again (upserts only), so rows the server
** deleted while this client's cursor was too old would stay. While a resync
** runs, the keys it delivers are noted in a temp table on the pulling
** connection; when its last page is applied, rows of tracked tables that it
** did not deliver and that have no pending mutation are deleted, as an
** engine write (sync_control.applying set, so nothing is queued). Keys are
** compared as quote() of each key part, both sides read through sync_val. */

static int resync_begin(sqlite3 *db) {
  return sqlite3_exec(db,
                      "CREATE TEMP TABLE IF NOT EXISTS sync_resync_seen(tbl TEXT, k TEXT,"
                      " PRIMARY KEY(tbl, k)) WITHOUT ROWID;"
                      "DELETE FROM temp.sync_resync_seen;",
                      0, 0, 0);
}

/* The key text of a table: quote(part1)||','||quote(part2)... over the
** expression `fmt` (a printf format with one %w for the column name). */
static char *key_expr(sqlite3 *db, const char *tbl, const char *fmt) {
  sqlite3_stmt *q = 0;
  if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk", -1,
                         &q, 0) != SQLITE_OK) {
    sqlite3_finalize(q);
    return 0;
  }
  sqlite3_bind_text(q, 1, tbl, -1, SQLITE_STATIC);
  sqlite3_str *k = sqlite3_str_new(0);
  int n = 0;
  while (sqlite3_step(q) == SQLITE_ROW) {
    char *part = sqlite3_mprintf(fmt, sqlite3_column_text(q, 0));
    sqlite3_str_appendf(k, "%squote(%s)", n++ ? "||','||" : "", part ? part : "NULL");
    sqlite3_free(part);
  }
  sqlite3_finalize(q);
  char *z = sqlite3_str_finish(k);
  if (!n) {
    sqlite3_free(z);
    return 0;
  }
  return z;
}

/* Notes the keys of one page (before it is applied). */
static int resync_note(sqlite3 *db, const char *page) {
  sqlite3_stmt *t = 0;
  int rc = sqlite3_prepare_v2(db,
                              "SELECT DISTINCT value->>'table' FROM json_each(?1,'$.changes')"
                              " WHERE value->>'op' = 'upsert'",
                              -1, &t, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(t, 1, page, -1, SQLITE_STATIC);
  while (rc == SQLITE_OK && sqlite3_step(t) == SQLITE_ROW) {
    const char *tbl = (const char *)sqlite3_column_text(t, 0);
    char *k = key_expr(db, tbl, "sync_val(value->'$.pk.\"%w\"')");
    if (!k) continue; /* not a local table: sync_apply reports it */
    char *sql = sqlite3_mprintf("INSERT OR IGNORE INTO temp.sync_resync_seen(tbl, k)"
                                " SELECT ?2, %s FROM json_each(?1,'$.changes')"
                                " WHERE value->>'table' = ?2 AND value->>'op' = 'upsert'",
                                k);
    sqlite3_free(k);
    sqlite3_stmt *ins = 0;
    rc = sql ? sqlite3_prepare_v2(db, sql, -1, &ins, 0) : SQLITE_NOMEM;
    sqlite3_free(sql);
    if (rc == SQLITE_OK) {
      sqlite3_bind_text(ins, 1, page, -1, SQLITE_STATIC);
      sqlite3_bind_text(ins, 2, tbl, -1, SQLITE_STATIC);
      rc = sqlite3_step(ins) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    }
    sqlite3_finalize(ins);
  }
  sqlite3_finalize(t);
  return rc;
}

/* After the last page: drops what the server no longer has. Returns an
** SQLite code; *pN gets the number of rows deleted. */
static int resync_finish(sqlite3 *db, sqlite3_int64 *pN, char **pzErr) {
  *pN = 0;
  int rc = sqlite3_exec(db,
                        "SAVEPOINT sync_resync; PRAGMA defer_foreign_keys=ON;"
                        " UPDATE main.sync_control SET applying = 1",
                        0, 0, 0);
  int open = rc == SQLITE_OK;
  sqlite3_stmt *t = 0;
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(db, "SELECT name FROM main.sync_tracked", -1, &t, 0);
  while (rc == SQLITE_OK && sqlite3_step(t) == SQLITE_ROW) {
    const char *tbl = (const char *)sqlite3_column_text(t, 0);
    char *local = key_expr(db, tbl, "\"%w\"");
    char *queued = key_expr(db, tbl, "sync_val(pk->'$.\"%w\"')");
    char *sql = local && queued
                    ? sqlite3_mprintf("DELETE FROM main.\"%w\" WHERE %s NOT IN (SELECT k FROM"
                                      " temp.sync_resync_seen WHERE tbl = ?1) AND %s NOT IN"
                                      " (SELECT %s FROM main.sync_outbox WHERE tbl = ?1)",
                                      tbl, local, local, queued)
                    : 0;
    sqlite3_free(local);
    sqlite3_free(queued);
    if (!sql) continue;
    sqlite3_stmt *d = 0;
    rc = sqlite3_prepare_v2(db, sql, -1, &d, 0);
    sqlite3_free(sql);
    if (rc == SQLITE_OK) {
      sqlite3_bind_text(d, 1, tbl, -1, SQLITE_STATIC);
      rc = sqlite3_step(d) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
      if (rc == SQLITE_OK) *pN += sqlite3_changes(db);
    }
    sqlite3_finalize(d);
  }
  sqlite3_finalize(t);
  if (rc == SQLITE_OK)
    rc =
        sqlite3_exec(db, "UPDATE main.sync_control SET applying = 0; RELEASE sync_resync", 0, 0, 0);
  if (rc != SQLITE_OK) {
    if (pzErr) *pzErr = sqlite3_mprintf("resync cleanup: %s", sqlite3_errmsg(db));
    if (open) sqlite3_exec(db, "ROLLBACK TO sync_resync; RELEASE sync_resync", 0, 0, 0);
  }
  if (rc == SQLITE_OK) sqlite3_exec(db, "DELETE FROM temp.sync_resync_seen", 0, 0, 0);
  return rc;
}

/* SYNC_TRACE=1 in the environment: one stderr line per push, answer and
** applied page (bodies cut at 300 bytes; the token is never printed). */
static int trace_enabled;
static void trace_init(void) {
  trace_enabled = getenv("SYNC_TRACE") != 0;
}
static void trace(const char *what, const char *body) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, trace_init);
  if (trace_enabled) fprintf(stderr, "sync: %s %.300s\n", what, body ? body : "(null)");
}

/* Applies one page with sync_apply; *pMore gets has_more. An event's
** last_mutation_id is dropped: events carry no "rejected" list, so after a
** lost push answer it would confirm a refused mutation as applied. Those
** mutations stay pending; the next push gets their recorded outcomes. */
static int apply_page(SyncCtx *c, Site *site, const char *page, int event, sqlite3_int64 *pN,
                      int *pMore, char **pzErr) {
  /* has_more and the tables written come from sync_apply's own reading of
  ** the page (left in c), not from another parse of it. */
  static const char sql[] =
      "SELECT sync_apply(iif(?2 AND json_valid(?1), json_remove(?1,'$.last_mutation_id'), ?1))";
  sqlite3 *db = c->db;
  trace("apply", page);
  sqlite3_stmt *s = 0;
  int began = tx_begin(db);
  int rc = began < 0 ? sqlite3_errcode(db) : SQLITE_OK;
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(db, sql, -1, &s, 0);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(s, 1, page, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, event);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      *pN = sqlite3_column_int64(s, 0);
      if (pMore) *pMore = c->applyMore;
      rc = SQLITE_OK;
    }
  }
  if (rc != SQLITE_OK && !*pzErr) *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(db));
  sqlite3_finalize(s);
  int r2 = tx_end(db, began, rc);
  if (r2 != rc && !*pzErr) *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(db));
  rc = r2;
  /* Announced once committed (inside a caller's transaction: at once). */
  if (rc == SQLITE_OK && *pN > 0) site_publish(site, c);
  return rc;
}

/* One page of a full resync: its keys noted, the page applied and, after
** the last page, the rows it did not deliver dropped, all in one
** transaction (nobody sees the last page without the cleanup). */
static int resync_page(SyncCtx *c, Site *site, const char *page, sqlite3_int64 *pN, int *pMore,
                       char **pzErr) {
  sqlite3 *db = c->db;
  int began = tx_begin(db);
  int rc =
      began < 0 ? sqlite3_errcode(db) : sqlite3_exec(db, "SAVEPOINT sync_resync_page", 0, 0, 0);
  if (rc == SQLITE_OK) rc = resync_note(db, page);
  if (rc != SQLITE_OK) *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(db));
  if (rc == SQLITE_OK) rc = apply_page(c, 0, page, 0, pN, pMore, pzErr);
  if (rc == SQLITE_OK && !*pMore) {
    sqlite3_int64 gone = 0;
    rc = resync_finish(db, &gone, pzErr);
    *pN += gone;
  }
  if (rc == SQLITE_OK) rc = sqlite3_exec(db, "RELEASE sync_resync_page", 0, 0, 0);
  if (rc != SQLITE_OK) {
    if (!*pzErr) *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(db));
    if (began >= 0)
      sqlite3_exec(db, "ROLLBACK TO sync_resync_page; RELEASE sync_resync_page", 0, 0, 0);
  }
  rc = tx_end(db, began, rc);
  if (rc == SQLITE_OK) site_publish(site, c);
  return rc;
}

/* ---- the worker thread ---- */

enum { CH_PUSH, CH_PULL, CH_SSE, CH_HEALTH, CH_N };
static const char *const ch_name[CH_N] = {"push", "pull", "events", "health"};

typedef struct Chan {
  http_req r;
  int active;
  int failing; /* last attempt failed: retry at `at` */
  int64_t at;  /* monotonic ms before which it does not start */
  backoff bo;
} Chan;

typedef struct Worker {
  Site *site;
  sqlite3 *db;
  SyncCtx *c; /* db's context: what sync_apply read from the last page */
  CURLM *multi;
  int lockfd;
  char *url, *client, *token;
  /* The push out: its body, the id of its last mutation, and whether its
  ** answer is dropped unacknowledged (an earlier batch's ack failed once
  ** it was out). The batch after it, built while it is out (NULL: none):
  ** the id it follows, its last id, the data_version it was built at. */
  char *batchBody, *nextBody;
  sqlite3_int64 batchTop, nextAfter, nextTop;
  int batchStale, nextVersion;
  unsigned tokenGen;
  sync_conf cfg;
  Chan ch[CH_N];
  int wantPush, wantPull, resync, authBlocked, online, forced;
  int pushedLast;           /* the last transfer started was a push: a due pull goes next */
  int64_t batch, pullLimit; /* current sizes: halved after 413 / a page over max_body */
  sse_parser *sse;
  size_t sseCap; /* the parser's line and event cap */
  int sseUp, ssePaused;
  char *sseErr;
  char *err; /* set_error's message until publish_status shows it */
  int errNew;
  int64_t sseLast; /* when the stream last delivered bytes (or connected) */
  int dataVersion;
  sqlite3_stmt *dvStmt;
  int64_t nextDv, nextPoll;
} Worker;

static int stop_requested(Site *s) {
  pthread_mutex_lock(&s->mu);
  int stop = s->stop;
  pthread_mutex_unlock(&s->mu);
  return stop;
}

static int busy_cb(void *arg, int count) {
  Worker *w = arg;
  if (count > 2000 || stop_requested(w->site)) return 0;
  struct timespec ts = {0, 5 * 1000000};
  nanosleep(&ts, 0);
  return 1;
}

/* Keeps the message for the next publish_status, so that sync_status
** never shows a new error next to an old state. */
static void set_error(Worker *w, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sqlite3_free(w->err);
  w->err = sqlite3_vmprintf(fmt, ap);
  /* sync_status shows it: a server's text may echo the token. */
  http_mask_token(w->err, w->token);
  w->errNew = 1;
  va_end(ap);
}

/* Moves a new error to the site; the caller holds s->mu. */
static void error_move(Worker *w) {
  if (!w->errNew) return;
  sqlite3_free(w->site->lastError);
  w->site->lastError = w->err;
  w->err = 0;
  w->errNew = 0;
}

static void publish_status(Worker *w) {
  Site *s = w->site;
  int64_t now = mono_ms(), wall = wall_ms(), next = 0;
  int failing = 0;
  for (int i = 0; i < CH_N; i++) {
    if (!w->ch[i].failing && !(i == CH_HEALTH && !w->online)) continue;
    if (i != CH_HEALTH) failing = 1;
    /* A retry under way counts as due now. */
    int64_t at = !w->ch[i].active && w->ch[i].at > now ? wall + (w->ch[i].at - now) : wall;
    if (!next || at < next) next = at;
  }
  const char *state = w->forced || !w->online ? "offline"
                      : w->authBlocked        ? "error"
                      : w->ch[CH_PUSH].active ? "pushing"
                      : w->ch[CH_PULL].active ? "pulling"
                      : failing               ? "error"
                                              : "idle";
  int busy = w->ch[CH_PUSH].active || w->ch[CH_PULL].active;
  pthread_mutex_lock(&s->mu);
  if (busy != s->busy) {
    s->busy = busy;
    pthread_cond_broadcast(&s->cond);
  }
  s->state = state;
  s->online = w->online && !w->forced;
  s->sse = w->sseUp;
  s->nextRetryAt = w->authBlocked || w->forced ? 0 : next;
  error_move(w);
  if (!failing && !w->authBlocked && w->online && s->lastError) {
    sqlite3_free(s->lastError);
    s->lastError = 0;
  }
  pthread_mutex_unlock(&s->mu);
}

/* Lets held events in again once no push is out (see on_sse_data). */
/* A sync_push or sync_pull of this process is under way: the worker then
** starts no push or pull and holds events, for the same reason as for its
** own push (see the order rules above). */
static int host_busy(Worker *w) {
  pthread_mutex_lock(&w->site->mu);
  int n = w->site->hostXfer;
  pthread_mutex_unlock(&w->site->mu);
  return n > 0;
}

static void sse_resume(Worker *w) {
  if (!w->ssePaused || w->ch[CH_PUSH].active || host_busy(w)) return;
  w->ssePaused = 0;
  if (w->ch[CH_SSE].active) curl_easy_pause(w->ch[CH_SSE].r.easy, CURLPAUSE_CONT);
}

static void chan_stop(Worker *w, int i) {
  Chan *c = &w->ch[i];
  if (!c->active) return;
  curl_multi_remove_handle(w->multi, c->r.easy);
  c->active = 0;
  if (i == CH_SSE) {
    sse_end(w->sse);
    w->sseUp = 0;
    w->ssePaused = 0;
  }
  if (i == CH_PUSH) sse_resume(w);
}

static void reset_backoffs(Worker *w) {
  for (int i = 0; i < CH_N; i++) {
    backoff_reset(&w->ch[i].bo);
    w->ch[i].at = 0;
    w->ch[i].failing = 0;
  }
}

static void fail(Worker *w, int i, int64_t retryMs, const char *msg) {
  Chan *c = &w->ch[i];
  int64_t d = backoff_next_ms(&c->bo, retryMs);
  if (d > RETRY_AFTER_CAP_MS) d = RETRY_AFTER_CAP_MS;
  c->at = mono_ms() + d;
  c->failing = 1;
  set_error(w, "%s: %s", ch_name[i], msg);
}

static void succeed(Worker *w, int i) {
  backoff_reset(&w->ch[i].bo);
  w->ch[i].failing = 0;
  w->ch[i].at = 0;
}

/* A transfer could not reach the server: offline until /health answers. */
static void went_offline(Worker *w, int i, const char *msg) {
  set_error(w, "%s: %s", ch_name[i], msg);
  if (w->online) {
    w->online = 0;
    backoff_reset(&w->ch[CH_HEALTH].bo);
  }
  for (int k = 0; k < CH_N; k++)
    if (k != CH_HEALTH) chan_stop(w, k);
  Chan *h = &w->ch[CH_HEALTH];
  h->at = mono_ms() + backoff_next_ms(&h->bo, -1);
}

static void auth_blocked(Worker *w, int i, const char *msg) {
  w->authBlocked = 1;
  set_error(w, "%s: %s (waiting for a new token: sync_config('token', ...))", ch_name[i], msg);
  for (int k = 0; k < CH_N; k++)
    chan_stop(w, k);
}

static void opts_for(Worker *w, http_opts *o, int i) {
  memset(o, 0, sizeof *o);
  o->token = w->token;
  o->ca_file = w->cfg.ca_file;
  o->header = w->cfg.header;
  o->max_body = (size_t)w->cfg.max_body;
  o->timeout_ms = i == CH_HEALTH && w->cfg.timeout_ms > HEALTH_TIMEOUT_MS ? HEALTH_TIMEOUT_MS
                  : i == CH_SSE                                           ? 0
                                                                          : (long)w->cfg.timeout_ms;
  o->stall_ms = i == CH_SSE ? (long)w->cfg.sse_stall_ms : 0;
}

static int chan_start(Worker *w, int i, const char *url, const char *post, const char *lastId) {
  Chan *c = &w->ch[i];
  http_opts o;
  opts_for(w, &o, i);
  o.last_event_id = lastId;
  if (!url || http_prepare(&c->r, url, post, &o) != 0) {
    fail(w, i, -1, "out of memory");
    return -1;
  }
  if (curl_multi_add_handle(w->multi, c->r.easy) != CURLM_OK) {
    fail(w, i, -1, "curl_multi_add_handle failed");
    return -1;
  }
  c->active = 1;
  return 0;
}

static int has_cursor(Worker *w) {
  char *cursor = meta_text(w->db, "cursor");
  sqlite3_free(cursor);
  return cursor != 0;
}

/* PRAGMA data_version (-1 on failure): it changes when another connection
** commits. The statement is kept and reset at once (no read transaction
** stays open). */
static int db_version(Worker *w) {
  if (!w->dvStmt && sqlite3_prepare_v3(w->db, "PRAGMA main.data_version", -1,
                                       SQLITE_PREPARE_PERSISTENT, &w->dvStmt, 0) != SQLITE_OK)
    return -1;
  int v = sqlite3_step(w->dvStmt) == SQLITE_ROW ? sqlite3_column_int(w->dvStmt, 0) : -1;
  sqlite3_reset(w->dvStmt);
  return v;
}

/* Builds the batch of mutations with ids above after (0: from the outbox's
** head) and sends it. Returns 1 when it went out. A failure to build one
** from the head is the channel's; after an id (the batch following one
** just answered) it is left to the push from the head that comes next. */
static int push_send(Worker *w, sqlite3_int64 after) {
  char *body = 0, *err = 0;
  sqlite3_int64 top = 0;
  int rc = SQLITE_OK;
  /* The batch built ahead, unless another connection committed since
  ** (sync_untrack drops pending mutations). */
  if (after && w->nextBody && w->nextAfter == after && w->nextVersion >= 0 &&
      db_version(w) == w->nextVersion) {
    body = w->nextBody, top = w->nextTop;
    w->nextBody = 0;
  } else {
    rc = push_build(w->db, w->batch, after, &body, &err);
    if (rc == SQLITE_OK && body) top = push_top(w->db, body);
  }
  sqlite3_free(w->nextBody);
  w->nextBody = 0;
  if (rc == SQLITE_OK && body && top <= 0) rc = SQLITE_NOMEM; /* a batch has ids >= 1 */
  if (rc != SQLITE_OK) {
    if (!after) fail(w, CH_PUSH, -1, err ? err : "sync_push_batch failed");
    sqlite3_free(err);
    sqlite3_free(body);
    return 0;
  }
  if (!body) {
    if (!after) w->wantPush = 0;
    return 0;
  }
  sqlite3_free(w->batchBody);
  w->batchBody = body;
  w->batchTop = top;
  w->batchStale = 0;
  trace("push", body);
  char *url = http_url(w->url, "/push", 0, 0);
  w->pushedLast = 1;
  rc = chan_start(w, CH_PUSH, url, body, 0);
  sqlite3_free(url);
  return rc == 0;
}

static void start_push(Worker *w) {
  push_send(w, 0);
}

static void start_pull(Worker *w) {
  char *cursor = w->resync == 1 ? 0 : meta_text(w->db, "cursor");
  char *from = pending_from(w->db);
  char lim[24];
  snprintf(lim, sizeof lim, "%lld", (long long)w->pullLimit);
  const char *q[] = {"client_id", w->client, "cursor", cursor, "limit", lim, "pending_from", from};
  char *url = http_url(w->url, "/pull", q, 4);
  w->pushedLast = 0;
  chan_start(w, CH_PULL, url, 0, 0);
  sqlite3_free(url);
  sqlite3_free(cursor);
  sqlite3_free(from);
}

static int on_sse_event(void *arg, const char *type, const char *data, size_t n, const char *id) {
  (void)n, (void)id;
  Worker *w = arg;
  if (strcmp(type, "changes") != 0) return 0;
  sqlite3_int64 k = 0;
  char *err = 0;
  if (apply_page(w->c, w->site, data, 1, &k, 0, &err) != SQLITE_OK) {
    sqlite3_free(w->sseErr);
    w->sseErr = err;
    return 1;
  }
  pthread_mutex_lock(&w->site->mu);
  w->site->pulled += k;
  w->site->lastPullAt = wall_ms();
  pthread_mutex_unlock(&w->site->mu);
  return 0;
}

static int on_sse_data(void *arg, const char *p, size_t n) {
  Worker *w = arg;
  if (w->ch[CH_PUSH].active || host_busy(w)) {
    /* Hold events while a push is out: one could confirm the batch through
    ** last_mutation_id before its answer arrives, and a rejection in it
    ** would then never reach sync_rejected. */
    w->sseLast = mono_ms();
    w->ssePaused = 1;
    return HTTP_PAUSE;
  }
  if (!w->sseUp) {
    w->sseUp = 1;
    w->sseLast = mono_ms();
    succeed(w, CH_SSE);
    publish_status(w);
  }
  unsigned long long lines = sse_lines(w->sse);
  int rc = sse_feed(w->sse, p, n);
  /* Only an ended line is a sign of life: bytes that never end one (a
  ** 1 byte/s drip) leave the stall timer running. */
  if (sse_lines(w->sse) != lines) w->sseLast = mono_ms();
  if (rc == SSE_OK) return 0;
  if (rc != SSE_EABORT) {
    sqlite3_free(w->sseErr);
    unsigned long long cap = w->sseCap;
    w->sseErr = rc == SSE_ELINE    ? sqlite3_mprintf("a line over %llu bytes", cap)
                : rc == SSE_EEVENT ? sqlite3_mprintf("an event over %llu bytes", cap)
                                   : sqlite3_mprintf("out of memory");
  }
  return 1;
}

static void start_sse(Worker *w) {
  char *cursor = meta_text(w->db, "cursor");
  const char *q[] = {"client_id", w->client, "cursor", cursor};
  char *url = http_url(w->url, "/events", q, 2);
  sse_end(w->sse);
  if (chan_start(w, CH_SSE, url, 0, cursor ? cursor : "") == 0) {
    w->ch[CH_SSE].r.on_data = on_sse_data;
    w->ch[CH_SSE].r.arg = w;
    w->sseLast = mono_ms();
  }
  sqlite3_free(url);
  sqlite3_free(cursor);
}

static void start_health(Worker *w) {
  char *url = http_url(w->url, "/health", 0, 0);
  chan_start(w, CH_HEALTH, url, 0, 0);
  sqlite3_free(url);
}

/* Whether the batch after the one just answered may go out before that
** answer is acknowledged: when schedule would start it right after the
** acknowledgement (which asks for a pull when events are off: a due pull
** goes first). */
static int push_goes_on(Worker *w) {
  int pullDue = (w->wantPull || !w->cfg.sse) && mono_ms() >= w->ch[CH_PULL].at;
  return w->wantPush && w->online && !w->forced && !w->authBlocked && !pullDue &&
         !w->ch[CH_PULL].active && !host_busy(w) && !stop_requested(w->site) && has_cursor(w);
}

/* Writes as much of the push request as the socket takes now: one
** curl_multi_perform sends at most curl's upload buffer (64 KiB), and the
** server starts on a batch once all of it is in. */
static void push_flush(Worker *w) {
  CURL *e = w->ch[CH_PUSH].r.easy;
  size_t len = strlen(w->batchBody);
  curl_off_t up = 0, was;
  int running = 0;
  do {
    was = up;
    curl_multi_perform(w->multi, &running);
    if (curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &up) != CURLE_OK) break;
  } while (up > was && (size_t)up < len);
}

/* Builds the batch after the one out, while the server works on it, so
** that it goes the moment the answer comes (push_send). A failure here is
** left to that push_send, which then builds it itself. */
static void push_prepare(Worker *w) {
  char *body = 0, *err = 0;
  sqlite3_free(w->nextBody);
  w->nextBody = 0;
  w->nextVersion = db_version(w);
  if (push_build(w->db, w->batch, w->batchTop, &body, &err) == SQLITE_OK && body) {
    w->nextTop = push_top(w->db, body);
    w->nextAfter = w->batchTop;
    w->nextBody = body;
    body = 0;
  }
  sqlite3_free(body);
  sqlite3_free(err);
}

/* A push answered. On a 200 the next batch (ids above this one's) goes out
** first, written to the socket at once, and this answer is acknowledged
** while the server works on it, as sync_push does. Requests stay one at a
** time and in id order. If the acknowledgement fails, the answer to the
** batch out is dropped when it comes: both batches stay pending and go
** again from the outbox's head (syncd answers ids it has seen with their
** recorded outcomes). */
static void done_push(Worker *w, http_req *r) {
  trace(r->msg[0] ? r->msg : "answer", r->buf);
  char *owned = w->batchBody;
  const char *batch = owned ? owned : "{}";
  sqlite3_int64 top = w->batchTop;
  int stale = w->batchStale;
  w->batchBody = 0;
  w->batchStale = 0;
  if (r->status == 200 && !r->msg[0] && stale) {
    sqlite3_free(owned);
    return;
  }
  if (r->status == 200 && !r->msg[0]) {
    char *answer = r->buf; /* kept: the next request reuses r */
    r->buf = 0;
    r->n = r->cap = 0;
    sqlite3_int64 was = w->batch;
    w->batch = w->batch * 2 < w->cfg.batch_size ? w->batch * 2 : w->cfg.batch_size;
    if (push_goes_on(w) && push_send(w, top)) push_flush(w);
    sqlite3_int64 n = 0;
    char *err = 0;
    int rc = ack_answer(w->db, w->site, answer ? answer : "", batch, top, &n, &err);
    sqlite3_free(answer);
    sqlite3_free(owned);
    if (rc != SQLITE_OK) {
      w->batch = was;
      fail(w, CH_PUSH, -1, err ? err : "sync_ack failed");
      sqlite3_free(err);
      if (w->ch[CH_PUSH].active) w->batchStale = 1;
      return;
    }
    succeed(w, CH_PUSH);
    if (!w->cfg.sse) w->wantPull = 1;
    if (w->ch[CH_PUSH].active) push_prepare(w);
    return;
  }
  record_attempt(w->db, batch, r->msg);
  sqlite3_free(owned);
  if (r->net) {
    went_offline(w, CH_PUSH, r->msg);
  } else if ((r->status == 413 || r->too_big) && w->batch > 1) {
    /* a request or its answer too large: the same batch would fail again */
    w->batch /= 2;
    set_error(w, "push: %s (batch halved to %lld)", r->msg, (long long)w->batch);
    w->ch[CH_PUSH].at = 0;
  } else if (r->status == 401 || r->status == 403) {
    auth_blocked(w, CH_PUSH, r->msg);
  } else {
    fail(w, CH_PUSH, r->retry_ms, r->msg);
  }
}

static void done_pull(Worker *w, http_req *r) {
  if (r->status == 200 && !r->msg[0]) {
    sqlite3_int64 n = 0;
    int more = 0;
    char *err = 0;
    const char *page = r->buf ? r->buf : "";
    int rc = w->resync ? resync_page(w->c, w->site, page, &n, &more, &err)
                       : apply_page(w->c, w->site, page, 0, &n, &more, &err);
    if (rc != SQLITE_OK) {
      fail(w, CH_PULL, -1, err ? err : "sync_apply failed");
      sqlite3_free(err);
      return;
    }
    if (w->resync == 1) w->resync = 2; /* later pages follow the cursor */
    succeed(w, CH_PULL);
    if (!more) {
      w->wantPull = 0;
      w->resync = 0;
      w->nextPoll = mono_ms() + POLL_PULL_MS;
    }
    pthread_mutex_lock(&w->site->mu);
    w->site->pulled += n;
    w->site->lastPullAt = wall_ms();
    pthread_mutex_unlock(&w->site->mu);
    return;
  }
  if (r->too_big && w->pullLimit > 1) {
    /* A page over max_body: ask for smaller ones. */
    w->pullLimit /= 2;
    set_error(w, "pull: %s (limit halved to %lld)", r->msg, (long long)w->pullLimit);
    w->ch[CH_PULL].at = 0;
  } else if (r->net) {
    went_offline(w, CH_PULL, r->msg);
  } else if (r->status == 410 || (r->status == 400 && strstr(r->msg, "cursor"))) {
    /* The cursor is gone (or unreadable: "malformed cursor"): pull
    ** everything again, keeping pending mutations.
    ** A resync that meets 410 again waits instead of looping. */
    clear_cursor(w->db);
    resync_begin(w->db);
    chan_stop(w, CH_SSE);
    if (w->resync) {
      fail(w, CH_PULL, r->retry_ms, "cursor expired again during a full resync");
    } else {
      set_error(w, "pull: %s: full resync", r->msg);
      w->ch[CH_PULL].at = 0;
    }
    w->resync = 1;
  } else if (r->status == 401 || r->status == 403) {
    auth_blocked(w, CH_PULL, r->msg);
  } else {
    fail(w, CH_PULL, r->retry_ms, r->msg);
  }
}

static void done_sse(Worker *w, http_req *r) {
  int wasUp = w->sseUp;
  sse_end(w->sse);
  w->sseUp = 0;
  if (r->aborted && w->sseErr) {
    /* An event failed to apply: the cursor stayed; pull again later. */
    fail(w, CH_SSE, -1, w->sseErr);
  } else if (r->status == 401 || r->status == 403) {
    auth_blocked(w, CH_SSE, r->msg);
    return;
  } else if (r->net && !wasUp) {
    went_offline(w, CH_SSE, r->msg);
    return;
  } else if (wasUp && (r->status == 200 || r->status == 0)) {
    /* The stream ended (server restart, network drop): reconnect, after
    ** the server's retry: field but never later than Retry-After's cap
    ** (any digits are valid there; unbounded it would overflow `at`). */
    Chan *c = &w->ch[CH_SSE];
    int64_t d = backoff_next_ms(&c->bo, sse_retry_ms(w->sse));
    c->at = mono_ms() + (d > RETRY_AFTER_CAP_MS ? RETRY_AFTER_CAP_MS : d);
  } else {
    fail(w, CH_SSE, r->retry_ms, r->msg[0] ? r->msg : "event stream ended");
  }
  sqlite3_free(w->sseErr);
  w->sseErr = 0;
  /* Pull first on every reconnect. */
  w->wantPull = 1;
  if (w->ch[CH_PULL].at < w->ch[CH_SSE].at) w->ch[CH_PULL].at = w->ch[CH_SSE].at;
}

static void done_health(Worker *w, http_req *r) {
  if (r->status >= 200 && r->status < 300) {
    w->online = 1;
    reset_backoffs(w);
    w->wantPull = w->wantPush = 1;
    return;
  }
  Chan *h = &w->ch[CH_HEALTH];
  int64_t d = backoff_next_ms(&h->bo, r->retry_ms);
  h->at = mono_ms() + (d > RETRY_AFTER_CAP_MS ? RETRY_AFTER_CAP_MS : d);
}

static void drain_done(Worker *w) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(w->multi, &left)) != 0) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *e = m->easy_handle;
    CURLcode cc = m->data.result;
    int i = 0;
    while (i < CH_N && w->ch[i].r.easy != e)
      i++;
    if (i == CH_N) continue;
    curl_multi_remove_handle(w->multi, e);
    w->ch[i].active = 0;
    http_finish(&w->ch[i].r, cc);
    switch (i) {
    case CH_PUSH:
      done_push(w, &w->ch[i].r);
      sse_resume(w);
      break;
    case CH_PULL:
      done_pull(w, &w->ch[i].r);
      break;
    case CH_SSE:
      done_sse(w, &w->ch[i].r);
      break;
    default:
      done_health(w, &w->ch[i].r);
    }
  }
}

/* Another connection committed (any process): maybe new mutations. */
static void check_data_version(Worker *w) {
  int v = db_version(w);
  if (v < 0) return;
  if (v != w->dataVersion) w->wantPush = 1;
  w->dataVersion = v;
}

/* A stream that ends no line for sse_stall_ms (no event, no heartbeat;
** the server sends one every 15 s by default) is dropped and reconnected,
** pull first.
** curl's low-speed limit is the backstop; this is the precise timer. */
static void check_stall(Worker *w, int64_t now) {
  Chan *c = &w->ch[CH_SSE];
  if (!c->active || w->ssePaused || now - w->sseLast < w->cfg.sse_stall_ms) return;
  chan_stop(w, CH_SSE);
  set_error(w, "events: no complete line for %lld ms: reconnecting",
            (long long)w->cfg.sse_stall_ms);
  c->at = now + backoff_next_ms(&c->bo, -1);
  w->wantPull = 1;
  if (w->ch[CH_PULL].at < c->at) w->ch[CH_PULL].at = c->at;
}

static void schedule(Worker *w, int64_t now) {
  Chan *c = w->ch;
  if (!w->online) {
    if (!c[CH_HEALTH].active && now >= c[CH_HEALTH].at) start_health(w);
    return;
  }
  /* Push and pull take turns: a pull answered after a push committed could
  ** confirm that batch (last_mutation_id) before its answer is acked. A due
  ** pull goes before the next push, so steady writes cannot starve it. With
  ** no cursor yet the pull goes first: an initial sync sends live rows only,
  ** so a row pushed before it and deleted by another client would stay. */
  int host = host_busy(w);
  int pullTurn = w->wantPull && now >= c[CH_PULL].at && w->pushedLast;
  if (w->wantPush && !host && !c[CH_PUSH].active && !c[CH_PULL].active && now >= c[CH_PUSH].at &&
      !pullTurn && has_cursor(w))
    start_push(w);
  if (!w->online) return;
  if (w->wantPull && !host && !c[CH_PULL].active && !c[CH_PUSH].active && now >= c[CH_PULL].at)
    start_pull(w);
  if (!w->cfg.sse && !w->wantPull && !c[CH_PULL].active && now >= w->nextPoll) w->wantPull = 1;
  if (w->cfg.sse && !w->wantPull && !c[CH_PULL].active && !c[CH_SSE].active && now >= c[CH_SSE].at)
    start_sse(w);
}

static int64_t wait_ms(Worker *w, int64_t now) {
  int64_t t = w->nextDv;
  Chan *c = w->ch;
#define AT(x)                                                                                      \
  do {                                                                                             \
    if ((x) < t) t = (x);                                                                          \
  } while (0)
  if (!w->forced && !w->authBlocked) {
    if (!w->online) {
      if (!c[CH_HEALTH].active) AT(c[CH_HEALTH].at);
    } else {
      int idle = !c[CH_PUSH].active && !c[CH_PULL].active && !host_busy(w);
      if (w->wantPush && idle) AT(c[CH_PUSH].at);
      if (w->wantPull && idle) AT(c[CH_PULL].at);
      if (w->cfg.sse && !w->wantPull && !c[CH_PULL].active && !c[CH_SSE].active) AT(c[CH_SSE].at);
      if (!w->cfg.sse) AT(w->nextPoll);
      if (c[CH_SSE].active && !w->ssePaused) AT(w->sseLast + w->cfg.sse_stall_ms);
    }
  }
#undef AT
  int64_t d = t - now;
  return d < 0 ? 0 : d > 1000 ? 1000 : d;
}

static void load_config(Worker *w) {
  config_clear(&w->cfg);
  config_load(w->db, &w->cfg);
  for (int i = 0; i < CH_N; i++) {
    w->ch[i].bo.min_ms = w->cfg.backoff_min_ms;
    w->ch[i].bo.max_ms = w->cfg.backoff_max_ms;
  }
  if (w->batch <= 0 || w->batch > w->cfg.batch_size) w->batch = w->cfg.batch_size;
  w->pullLimit = w->cfg.pull_limit;
  sqlite3_free(w->nextBody); /* built at the old batch size */
  w->nextBody = 0;
}

static void worker_loop(Worker *w) {
  Site *s = w->site;
  w->wantPush = w->wantPull = 1;
  w->online = 1;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    int stop = s->stop;
    unsigned nudge = s->nudge;
    s->nudge = 0;
    int forced = s->forcedOffline;
    int newToken = s->tokenGen != w->tokenGen;
    if (newToken) {
      sqlite3_free(w->token);
      w->token = s->token ? sqlite3_mprintf("%s", s->token) : 0;
      w->tokenGen = s->tokenGen;
    }
    pthread_mutex_unlock(&s->mu);
    if (stop) break;
    if (nudge & N_CONFIG) load_config(w);
    if (nudge & N_PUSH) w->wantPush = 1;
    if (nudge & N_PULL) w->wantPull = 1;
    if (newToken) {
      /* A new token: retry what 401/403 stopped, and reconnect the stream. */
      w->authBlocked = 0;
      chan_stop(w, CH_SSE);
      reset_backoffs(w);
      w->wantPush = w->wantPull = 1;
    }
    if (forced && !w->forced) {
      for (int i = 0; i < CH_N; i++)
        chan_stop(w, i);
    }
    if (!forced && (w->forced || (nudge & N_ONLINE))) {
      /* Back online: drain and pull at once. */
      w->online = 1;
      reset_backoffs(w);
      w->wantPush = w->wantPull = 1;
    }
    w->forced = forced;
    int64_t now = mono_ms();
    if (now >= w->nextDv) {
      check_data_version(w);
      w->nextDv = now + DV_POLL_MS;
    }
    check_stall(w, now);
    sse_resume(w);
    if (!w->forced && !w->authBlocked) schedule(w, now);
    int running = 0;
    curl_multi_perform(w->multi, &running);
    drain_done(w);
    publish_status(w);
    now = mono_ms();
    if (!w->forced && !w->authBlocked) schedule(w, now);
    curl_multi_perform(w->multi, &running);
    drain_done(w);
    curl_multi_poll(w->multi, 0, 0, (int)wait_ms(w, mono_ms()), 0);
  }
}

/* Waits for the cross-process lock; returns 1 once held, 0 when stopped. */
static int take_lock(Worker *w) {
  Site *s = w->site;
  int said = 0;
  for (;;) {
    if (stop_requested(s)) return 0;
    int got = lock_try(s->path, &w->lockfd);
    if (got == 1) {
      pthread_mutex_lock(&s->mu);
      s->lockfd = w->lockfd;
      pthread_mutex_unlock(&s->mu);
      break;
    }
    if (!said || got < 0) {
      set_error(w,
                got < 0 ? "cannot open the lock file %s-synclock: %s"
                        : "standby: another process is syncing %s%s",
                s->path, got < 0 ? strerror(errno) : "");
      said = 1;
    }
    pthread_mutex_lock(&s->mu);
    error_move(w);
    s->standby = 1;
    s->state = "idle";
    struct timespec ts;
    deadline_in(&ts, STANDBY_POLL_MS);
    if (!s->stop) pthread_cond_timedwait(&s->cond, &s->mu, &ts);
    pthread_mutex_unlock(&s->mu);
  }
  pthread_mutex_lock(&s->mu);
  s->standby = 0;
  sqlite3_free(s->lastError);
  s->lastError = 0;
  pthread_mutex_unlock(&s->mu);
  return 1;
}

static void *worker_main(void *arg) {
  Worker *w = arg;
  Site *s = w->site;
  char *err = 0;
  if (!take_lock(w)) goto out;
  int rc = sqlite3_open_v2(s->path, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, 0);
  if (rc == SQLITE_OK) rc = sync_register(w->db, &w->c, &err);
  if (rc == SQLITE_OK) {
    sqlite3_busy_handler(w->db, busy_cb, w);
    w->url = meta_text(w->db, "url");
    w->client = meta_text(w->db, "client_id");
    load_config(w);
    /* An event's data is one pull page on one line: lines get the same cap
    ** as events (a larger event drops the stream; the pull that follows
    ** fetches the same changes under max_body). */
    w->sseCap = (size_t)w->cfg.max_body < SSE_MAX ? (size_t)w->cfg.max_body : SSE_MAX;
    w->sse = sse_new(w->sseCap, w->sseCap, on_sse_event, w);
    w->multi = curl_multi_init();
    for (int i = 0; i < CH_N; i++)
      backoff_init(&w->ch[i].bo, w->cfg.backoff_min_ms, w->cfg.backoff_max_ms, 0);
  }
  if (rc != SQLITE_OK || !w->url || !w->client || !w->sse || !w->multi) {
    set_error(w, "worker cannot start: %s",
              err               ? err
              : rc != SQLITE_OK ? sqlite3_errstr(rc)
              : !w->url         ? "no server url"
              : !w->client      ? "sync_init() has not been called"
                                : "out of memory");
    sqlite3_free(err);
    pthread_mutex_lock(&s->mu);
    error_move(w);
    s->state = "error";
    pthread_mutex_unlock(&s->mu);
    /* Stay until stopped, so that sync_status shows why. */
    pthread_mutex_lock(&s->mu);
    while (!s->stop)
      pthread_cond_wait(&s->cond, &s->mu);
    pthread_mutex_unlock(&s->mu);
    goto out;
  }
  pthread_mutex_lock(&s->mu);
  s->multi = w->multi;
  pthread_mutex_unlock(&s->mu);
  worker_loop(w);
out:
  pthread_mutex_lock(&s->mu);
  s->multi = 0;
  s->busy = 0;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
  for (int i = 0; i < CH_N; i++) {
    if (w->ch[i].active) curl_multi_remove_handle(w->multi, w->ch[i].r.easy);
    http_req_free(&w->ch[i].r);
  }
  if (w->multi) curl_multi_cleanup(w->multi);
  sse_free(w->sse);
  sqlite3_finalize(w->dvStmt);
  if (w->db && sqlite3_close(w->db) != SQLITE_OK) sqlite3_close_v2(w->db);
  pthread_mutex_lock(&s->mu);
  s->lockfd = -1;
  pthread_mutex_unlock(&s->mu);
  lock_release(&w->lockfd);
  config_clear(&w->cfg);
  sqlite3_free(w->url);
  sqlite3_free(w->client);
  if (w->token) memset(w->token, 0, strlen(w->token));
  sqlite3_free(w->token);
  sqlite3_free(w->batchBody);
  sqlite3_free(w->nextBody);
  sqlite3_free(w->sseErr);
  sqlite3_free(w->err);
  sqlite3_free(w);
  pthread_mutex_lock(&s->mu);
  s->state = "stopped";
  s->sse = 0;
  s->standby = 0;
  pthread_mutex_unlock(&s->mu);
  return 0;
}

/* Stops the site's worker and joins it. Safe from any thread but the
** worker's; concurrent callers all return once it has stopped. */
static void site_stop(Site *s) {
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

/* ---- per connection ---- */

static void wconn_free(void *p) {
  WorkerConn *wc = p;
  if (!wc) return;
  if (wc->site) {
    pthread_mutex_lock(&wc->site->mu);
    int owner = wc->site->owner == wc;
    pthread_mutex_unlock(&wc->site->mu);
    if (owner) site_stop(wc->site);
    site_release(wc->site);
  }
  sqlite3_free(wc);
}

extern sqlite3_module vtab_status_module;

int worker_conn_register(sqlite3 *db, SyncCtx *c) {
  WorkerConn *wc = sqlite3_malloc64(sizeof *wc);
  if (!wc) return SQLITE_NOMEM;
  memset(wc, 0, sizeof *wc);
  wc->db = db;
  const char *path = sqlite3_db_filename(db, "main");
  if (path && *path) {
    wc->site = site_get(path);
    if (!wc->site) {
      sqlite3_free(wc);
      return SQLITE_NOMEM;
    }
    pthread_mutex_lock(&wc->site->mu);
    wc->seen = wc->site->seq;
    pthread_mutex_unlock(&wc->site->mu);
  }
  c->wc = wc;
  /* The module's destructor runs at close, after every function's (and at
  ** once when the registration fails). */
  int rc = sqlite3_create_module_v2(db, "sync_status", &vtab_status_module, wc, wconn_free);
  if (rc != SQLITE_OK) c->wc = 0;
  return rc;
}

sqlite3 *worker_conn_db(WorkerConn *wc) {
  return wc->db;
}

void worker_snapshot_get(WorkerConn *wc, worker_snapshot *o) {
  memset(o, 0, sizeof *o);
  o->state = "stopped";
  o->online = 1;
  Site *s = wc->site;
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
  pthread_mutex_unlock(&s->mu);
}

void worker_token_set(WorkerConn *wc, const char *token) {
  Site *s = wc->site;
  if (!s) return;
  char *t = token ? sqlite3_mprintf("%s", token) : 0;
  pthread_mutex_lock(&s->mu);
  if (s->token) memset(s->token, 0, strlen(s->token));
  sqlite3_free(s->token);
  s->token = t;
  s->tokenGen++;
  if (s->multi) curl_multi_wakeup(s->multi);
  pthread_mutex_unlock(&s->mu);
}

int worker_token_is_set(WorkerConn *wc) {
  Site *s = wc->site;
  if (!s) return 0;
  pthread_mutex_lock(&s->mu);
  int set = s->token != 0;
  pthread_mutex_unlock(&s->mu);
  return set;
}

void worker_config_changed(WorkerConn *wc) {
  if (wc->site) site_nudge(wc->site, N_CONFIG);
}

/* ---- SQL functions ---- */

static Site *need_site(sqlite3_context *ctx, SyncCtx *c, const char *fn) {
  if (!c->wc || !c->wc->site) {
    sync_error(ctx, fn, "needs a database file (this one is in memory or temporary)");
    return 0;
  }
  return c->wc->site;
}

void worker_fn_start(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc, (void)argv;
  SyncCtx *c = sqlite3_user_data(ctx);
  Site *s = need_site(ctx, c, "sync_start");
  if (!s || !sync_require_init(ctx, c, "sync_start")) return;
  if (!sqlite3_threadsafe()) {
    sync_error(ctx, "sync_start", "this SQLite library was built without thread support");
    return;
  }
  char *url = sync_meta_get(c, "url");
  if (!url) {
    sync_error(ctx, "sync_start", "no server url (sync_init was given NULL)");
    return;
  }
  sqlite3_free(url);
  if (http_global_init() != 0) {
    sync_error(ctx, "sync_start", "curl_global_init failed");
    return;
  }
  pthread_mutex_lock(&s->mu);
  if (s->running) {
    pthread_mutex_unlock(&s->mu);
    sqlite3_result_int(ctx, 1);
    return;
  }
  Worker *w = sqlite3_malloc64(sizeof *w);
  if (!w) {
    pthread_mutex_unlock(&s->mu);
    sqlite3_result_error_nomem(ctx);
    return;
  }
  memset(w, 0, sizeof *w);
  w->site = s;
  w->lockfd = -1;
  w->tokenGen = s->tokenGen - 1; /* take the token on the first turn */
  pthread_mutex_lock(&reg_mu);
  s->refs++;
  pthread_mutex_unlock(&reg_mu);
  s->running = 1;
  s->stop = 0;
  s->owner = c->wc;
  s->state = "idle";
  sqlite3_free(s->lastError);
  s->lastError = 0;
  int e = pthread_create(&s->thread, 0, worker_main, w);
  if (e) {
    s->running = 0;
    s->owner = 0;
    s->state = "stopped";
  }
  pthread_mutex_unlock(&s->mu);
  if (e) {
    sqlite3_free(w);
    site_release(s);
    sync_error(ctx, "sync_start", "cannot start a thread: %s", strerror(e));
    return;
  }
  sqlite3_result_int(ctx, 1);
}

void worker_fn_stop(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc, (void)argv;
  SyncCtx *c = sqlite3_user_data(ctx);
  if (c->wc && c->wc->site) site_stop(c->wc->site);
  sqlite3_result_int(ctx, 1);
}

void worker_fn_online(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  SyncCtx *c = sqlite3_user_data(ctx);
  Site *s = need_site(ctx, c, "sync_online");
  if (!s) return;
  if (argc == 1) {
    if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER ||
        (sqlite3_value_int64(argv[0]) != 0 && sqlite3_value_int64(argv[0]) != 1)) {
      sync_error(ctx, "sync_online", "argument must be 0 or 1");
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

void worker_fn_wait(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  SyncCtx *c = sqlite3_user_data(ctx);
  if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER || sqlite3_value_int64(argv[0]) < 0) {
    sync_error(ctx, "sync_wait", "timeout_ms must be a non-negative integer");
    return;
  }
  Site *s = need_site(ctx, c, "sync_wait");
  if (!s) return;
  int64_t ms = sqlite3_value_int64(argv[0]);
  if (ms > (int64_t)INT32_MAX) ms = INT32_MAX;
  struct timespec ts;
  deadline_in(&ts, ms);
  WorkerConn *wc = c->wc;
  pthread_mutex_lock(&s->mu);
  while (s->seq == wc->seen) {
    if (pthread_cond_timedwait(&s->cond, &s->mu, &ts) == ETIMEDOUT) break;
  }
  sqlite3_str *out = 0;
  if (s->seq != wc->seen) {
    out = sqlite3_str_new(0);
    int n = 0;
    sqlite3_str_appendchar(out, 1, '[');
    for (ChangedTable *t = s->changed; t; t = t->next) {
      if (t->seq <= wc->seen) continue;
      if (n++) sqlite3_str_appendchar(out, 1, ',');
      value_append_string(out, t->name, -1);
    }
    sqlite3_str_appendchar(out, 1, ']');
    wc->seen = s->seq;
  }
  pthread_mutex_unlock(&s->mu);
  if (!out) return; /* NULL: timed out */
  sync_result_str(ctx, out);
}

/* ---- synchronous push and pull on the caller's connection ---- */

typedef struct Sync {
  sqlite3_context *ctx;
  SyncCtx *c;
  const char *fn;
  char *url;
  sync_conf cfg;
  char *token;
  Site *site; /* counted in site->hostXfer while set */
  http_req r;
} Sync;

static int sync_open(Sync *x, sqlite3_context *ctx, const char *fn) {
  memset(x, 0, sizeof *x);
  http_req_init(&x->r);
  x->ctx = ctx;
  x->c = sqlite3_user_data(ctx);
  x->fn = fn;
  if (!sync_require_init(ctx, x->c, fn)) return -1;
  Site *s = x->c->wc ? x->c->wc->site : 0;
  if (s) {
    pthread_mutex_lock(&s->mu);
    int forced = s->forcedOffline;
    x->token = s->token ? sqlite3_mprintf("%s", s->token) : 0;
    pthread_mutex_unlock(&s->mu);
    if (forced) {
      sync_error(ctx, fn, "offline (sync_online(0) is in effect)");
      return -1;
    }
  }
  x->url = sync_meta_get(x->c, "url");
  if (!x->url) {
    sync_error(ctx, fn, "no server url (sync_init was given NULL)");
    return -1;
  }
  if (http_global_init() != 0) {
    sync_error(ctx, fn, "curl_global_init failed");
    return -1;
  }
  config_load(x->c->db, &x->cfg);
  if (s) {
    /* Let this process's worker finish the push or pull it has out (up to
    ** timeout_ms) and start none while this call runs. */
    struct timespec ts;
    deadline_in(&ts, x->cfg.timeout_ms);
    pthread_mutex_lock(&s->mu);
    s->hostXfer++;
    x->site = s;
    if (s->multi) curl_multi_wakeup(s->multi);
    while (s->busy && pthread_cond_timedwait(&s->cond, &s->mu, &ts) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&s->mu);
  }
  return 0;
}

static void sync_close(Sync *x) {
  if (x->site) {
    pthread_mutex_lock(&x->site->mu);
    x->site->hostXfer--;
    if (x->site->multi) curl_multi_wakeup(x->site->multi);
    pthread_mutex_unlock(&x->site->mu);
  }
  http_req_free(&x->r);
  config_clear(&x->cfg);
  sqlite3_free(x->url);
  if (x->token) memset(x->token, 0, strlen(x->token));
  sqlite3_free(x->token);
}

/* Runs one request; returns 0 on a 2xx, else -1 (r.msg, r.status, r.net). */
static int sync_request(Sync *x, const char *url, const char *post) {
  http_opts o = {.token = x->token,
                 .ca_file = x->cfg.ca_file,
                 .header = x->cfg.header,
                 .timeout_ms = (long)x->cfg.timeout_ms,
                 .max_body = (size_t)x->cfg.max_body};
  if (!url || http_prepare(&x->r, url, post, &o) != 0) {
    snprintf(x->r.msg, sizeof x->r.msg, "out of memory");
    return -1;
  }
  CURLcode cc = curl_easy_perform(x->r.easy);
  http_finish(&x->r, cc);
  return x->r.msg[0] ? -1 : 0;
}

static void sync_fail(Sync *x) {
  if (x->r.net)
    sync_error(x->ctx, x->fn, "cannot reach %s: %s", x->url, x->r.msg);
  else
    sync_error(x->ctx, x->fn, "%s", x->r.msg);
}

/* One push request, run on its own thread so that the caller's thread can
** meanwhile acknowledge the previous answer and build the next batch: the
** server's work and the client's then overlap. Requests stay one at a time
** and in id order (the next is sent once this one is answered), as syncd
** requires of one client. */
typedef struct PushXfer {
  Sync *x;
  const char *url, *body;
  int rc;
} PushXfer;

static void *push_xfer_main(void *arg) {
  PushXfer *p = arg;
  p->rc = sync_request(p->x, p->url, p->body);
  return 0;
}

/* Acknowledges the answer *pResp to the batch *pBody (last id top), adds
** what it resolved to *pTotal, and frees both. */
static int push_ack(Sync *x, char **pResp, char **pBody, sqlite3_int64 top, sqlite3_int64 *pTotal,
                    char **pzErr) {
  sqlite3_int64 n = 0;
  int rc = ack_answer(x->c->db, x->c->wc ? x->c->wc->site : 0, *pResp, *pBody, top, &n, pzErr);
  if (rc == SQLITE_OK) *pTotal += n;
  sqlite3_free(*pResp);
  sqlite3_free(*pBody);
  *pResp = *pBody = 0;
  return rc;
}

void worker_fn_push(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc, (void)argv;
  Sync x;
  if (sync_open(&x, ctx, "sync_push") != 0) {
    sync_close(&x);
    return;
  }
  sqlite3 *db = x.c->db;
  sqlite3_int64 total = 0, batch = x.cfg.batch_size;
  char *url = http_url(x.url, "/push", 0, 0);
  char *body = 0, *next = 0, *prevResp = 0, *prevBody = 0, *err = 0;
  sqlite3_int64 top = 0, prevTop = 0;
  int rc = SQLITE_OK, sent = 1;
  for (;;) {
    /* Out of batches after the last one sent: its answer, then from the
    ** outbox's head again (what that answer left unresolved, what was
    ** written meanwhile), until nothing is left. */
    if (!body && prevResp) rc = push_ack(&x, &prevResp, &prevBody, prevTop, &total, &err);
    if (rc == SQLITE_OK && !body) rc = push_build(db, batch, 0, &body, &err);
    if (rc != SQLITE_OK || !body) break;
    PushXfer p = {&x, url, body, 0};
    pthread_t tid;
    int threaded = pthread_create(&tid, 0, push_xfer_main, &p) == 0;
    if (!threaded) push_xfer_main(&p);
    /* While the server works on body: the previous answer, the next batch. */
    if (prevResp) rc = push_ack(&x, &prevResp, &prevBody, prevTop, &total, &err);
    top = push_top(db, body);
    if (rc == SQLITE_OK && top <= 0) rc = SQLITE_NOMEM; /* a batch has ids >= 1 */
    if (rc == SQLITE_OK) rc = push_build(db, batch, top, &next, &err);
    if (threaded) pthread_join(tid, 0);
    if (rc != SQLITE_OK) break; /* body's answer is dropped: it stays pending */
    if (p.rc != 0) {
      record_attempt(db, body, x.r.msg);
      sqlite3_free(body);
      sqlite3_free(next);
      body = next = 0;
      if ((x.r.status == 413 || x.r.too_big) && batch > 1) {
        batch /= 2;
        continue;
      }
      sent = 0;
      break;
    }
    prevResp = sqlite3_mprintf("%s", x.r.buf ? x.r.buf : "");
    prevBody = body;
    prevTop = top;
    body = next;
    next = 0;
    if (!prevResp) rc = SQLITE_NOMEM;
    if (rc != SQLITE_OK) break;
  }
  if (!sent)
    sync_fail(&x);
  else if (rc != SQLITE_OK)
    sync_error(ctx, "sync_push", "%s", err ? err : sqlite3_errstr(rc));
  else
    sqlite3_result_int64(ctx, total);
  sqlite3_free(err);
  sqlite3_free(body);
  sqlite3_free(next);
  sqlite3_free(prevResp);
  sqlite3_free(prevBody);
  sqlite3_free(url);
  sync_close(&x);
}

void worker_fn_pull(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc, (void)argv;
  Sync x;
  if (sync_open(&x, ctx, "sync_pull") != 0) {
    sync_close(&x);
    return;
  }
  sqlite3 *db = x.c->db;
  Site *s = x.c->wc ? x.c->wc->site : 0;
  char *client = sync_meta_get(x.c, "client_id");
  char lim[24];
  snprintf(lim, sizeof lim, "%lld", (long long)x.cfg.pull_limit);
  sqlite3_int64 total = 0;
  int resync = 0;
  for (;;) {
    char *cursor = resync == 1 ? 0 : meta_text(db, "cursor");
    char *from = pending_from(db);
    const char *q[] = {"client_id", client, "cursor", cursor, "limit", lim, "pending_from", from};
    char *url = http_url(x.url, "/pull", q, 4);
    sqlite3_free(cursor);
    sqlite3_free(from);
    int bad = sync_request(&x, url, 0);
    sqlite3_free(url);
    if (bad) {
      int gone = x.r.status == 410 || (x.r.status == 400 && strstr(x.r.msg, "cursor"));
      if (gone && !resync) {
        clear_cursor(db);
        resync_begin(db);
        resync = 1;
        continue;
      }
      if (gone) clear_cursor(db);
      sync_fail(&x);
      break;
    }
    sqlite3_int64 n = 0;
    int more = 0;
    char *err = 0;
    const char *page = x.r.buf ? x.r.buf : "";
    int rc = resync ? resync_page(x.c, s, page, &n, &more, &err)
                    : apply_page(x.c, s, page, 0, &n, &more, &err);
    if (rc != SQLITE_OK) {
      sync_error(ctx, "sync_pull", "%s", err ? err : "sync_apply failed");
      sqlite3_free(err);
      break;
    }
    total += n;
    if (resync) resync = 2;
    if (s) {
      pthread_mutex_lock(&s->mu);
      s->pulled += n;
      s->lastPullAt = wall_ms();
      pthread_mutex_unlock(&s->mu);
    }
    if (!more) {
      sqlite3_result_int64(ctx, total);
      break;
    }
  }
  sqlite3_free(client);
  sync_close(&x);
}
