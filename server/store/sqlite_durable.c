/*
** sqlite_durable.c: group commit for the SQLite dialect. With
** synchronous = FULL every commit waits for its own fsync of the WAL, and
** the disk's fsync rate caps pushes (about 2,500 commits/s on the
** benchmark machine, whatever the CPU could do). Here connections commit
** with synchronous = NORMAL (no fsync at COMMIT; SQLite still syncs before
** a checkpoint, so the file stays consistent) and nothing they read or
** wrote leaves the process before one fsync of the WAL covers it: a push's
** answer, a pull's page and an event all wait in sqlite_durable_wait, which
** dialect_sqlite.c calls as a connection goes back to the pool. While one
** fsync runs, every commit that ends queues for the next, and that one
** fsync serves them all.
**
** Why every reader waits too, not only the writer: WAL makes a commit
** visible to other connections before this module's fsync, so without it a
** pull could send a version that a power cut then takes back, and the
** version would be given again to another change the client never gets.
** An fsync that starts after a connection read covers all it saw: frames
** are in the WAL file before a commit becomes visible.
**
** What it counts, all under one mutex: the commit hook marks a connection
** in flight (its frames may be going to the file); the WAL hook, called
** once they are written, counts the commit as written and notes which
** fsync began last (after). A wait needs no fsync when nothing is in
** flight and the fsyncs done cover every written commit; else it needs
** the first fsync begun after the last written commit, or, with a commit
** in flight, one begun after the wait itself. A commit that writes no
** frame (nothing changed, or it failed) ends at sqlite_durable_ended.
**
** The WAL hook replaces SQLite's automatic checkpoint, so it checkpoints
** as that did (PASSIVE, once the WAL holds 1000 pages).
*/
#include "sqlite_durable.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DURABLE_CHECKPOINT_PAGES 1000

void sqlite_durable_init(sqlite_durable *d) {
  memset(d, 0, sizeof *d);
  pthread_mutex_init(&d->mu, 0);
  pthread_cond_init(&d->synced, 0);
}

void sqlite_durable_free(sqlite_durable *d) {
  pthread_cond_destroy(&d->synced);
  pthread_mutex_destroy(&d->mu);
}

static int on_commit(void *arg) {
  sqlite_durable_conn *dc = arg;
  if (!dc->inflight) {
    dc->inflight = 1;
    pthread_mutex_lock(&dc->d->mu);
    dc->d->inflight++;
    pthread_mutex_unlock(&dc->d->mu);
  }
  return 0;
}

static int on_wal(void *arg, sqlite3 *db, const char *name, int pages) {
  sqlite_durable_conn *dc = arg;
  sqlite_durable *d = dc->d;
  pthread_mutex_lock(&d->mu);
  d->written++;
  d->after = d->started;
  if (dc->inflight) d->inflight--;
  dc->inflight = 0;
  pthread_mutex_unlock(&d->mu);
  if (pages >= DURABLE_CHECKPOINT_PAGES) sqlite3_wal_checkpoint(db, name);
  return SQLITE_OK;
}

int sqlite_durable_attach(sqlite_durable_conn *dc, sqlite_durable *d, sqlite3 *db) {
  sqlite3_stmt *st;
  dc->d = 0;
  dc->inflight = 0;
  int rc = sqlite3_prepare_v2(db, "PRAGMA main.journal_mode", -1, &st, 0);
  if (rc != SQLITE_OK) return rc;
  int wal = sqlite3_step(st) == SQLITE_ROW &&
            sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
  rc = sqlite3_finalize(st);
  /* without WAL, NORMAL would weaken more than the fsync at COMMIT: stay
  ** FULL and wait for nothing */
  if (rc != SQLITE_OK || !wal) return rc;
  rc = sqlite3_exec(db, "PRAGMA main.synchronous = NORMAL", 0, 0, 0);
  if (rc != SQLITE_OK) return rc;
  dc->d = d;
  sqlite3_commit_hook(db, on_commit, dc);
  sqlite3_wal_hook(db, on_wal, dc);
  return SQLITE_OK;
}

void sqlite_durable_ended(sqlite_durable_conn *dc) {
  if (!dc->d || !dc->inflight) return;
  dc->inflight = 0;
  pthread_mutex_lock(&dc->d->mu);
  dc->d->inflight--;
  pthread_mutex_unlock(&dc->d->mu);
}

/* fsync the WAL through db's own handle of it (the same file every
** connection of the process writes). */
static void sync_wal(sqlite3 *db) {
  sqlite3_file *f = 0;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) != SQLITE_OK || !f ||
      !f->pMethods) {
    /* a connection opens the WAL at its first read */
    sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", 0, 0, 0);
    f = 0;
    sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f);
  }
  int rc = f && f->pMethods ? f->pMethods->xSync(f, SQLITE_SYNC_NORMAL) : SQLITE_CANTOPEN;
  if (rc != SQLITE_OK) {
    /* what the WAL holds on disk is unknown now, and commits were already
    ** answered as done by SQLite: stop rather than answer more */
    fprintf(stderr, "syncd: fsync of the write-ahead log failed (%s): stopping\n",
            sqlite3_errstr(rc));
    abort();
  }
}

void sqlite_durable_wait(sqlite_durable_conn *dc, sqlite3 *db) {
  sqlite_durable *d = dc->d;
  if (!d) return;
  sqlite_durable_ended(dc);
  pthread_mutex_lock(&d->mu);
  long long need = d->inflight ? d->started + 1 : d->durable >= d->written ? 0 : d->after + 1;
  while (d->done < need) {
    if (d->syncing) {
      pthread_cond_wait(&d->synced, &d->mu);
      continue;
    }
    d->syncing = 1;
    long long n = ++d->started, covers = d->written;
    pthread_mutex_unlock(&d->mu);
    sync_wal(db);
    pthread_mutex_lock(&d->mu);
    d->done = n;
    if (covers > d->durable) d->durable = covers;
    d->syncing = 0;
    pthread_cond_broadcast(&d->synced);
  }
  pthread_mutex_unlock(&d->mu);
}
