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
** Why readers wait too, not only writers: WAL makes a commit visible to
** other connections (of this process or another syncd's on the file)
** before its fsync, so without it a pull could send a version that a
** power cut then takes back, and the version would be given again to
** another change the client never gets.
**
** What a wait needs: for the connection's own commit, the first fsync
** begun after its frames were written (the WAL hook notes which that is);
** when it read anything committed since its last wait (its pager's data
** version moved), the first fsync begun after the wait itself, which
** covers what it saw: frames are in the WAL file before a commit becomes
** visible, and an fsync flushes the whole file, whoever wrote it. A
** connection that saw nothing new waits for nothing. A commit's own reads
** come before it in the WAL, so its fsync covers them.
**
** A write transaction run on another connection than the one that then
** waits (dialect_sqlite.c's pushes) hands over what it needs
** (sqlite_durable_pass).
**
** The WAL hook replaces SQLite's automatic checkpoint, so it checkpoints
** as that did (PASSIVE, once the WAL holds 1000 pages), inside the COMMIT
** that finds it due: with no writer beside it, that checkpoint reaches the
** WAL's end, and the next writer starts the WAL again from its start (one
** run outside the write lock never caught up with the commits made
** meanwhile, and the WAL grew without end: bench/RESULTS.md). But while
** it runs, every other push of the process waits for the write lock
** (dialect_sqlite.c), so most of the copying is done before: once per
** filling of the WAL, at half of it, the next wait runs a checkpoint
** after its fsync, outside any write lock, and the one at 1000 pages then
** copies only what came after.
*/
#include "sqlite_durable.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DURABLE_CHECKPOINT_PAGES 1000
#define DURABLE_EARLY_PAGES (DURABLE_CHECKPOINT_PAGES / 2)

void sqlite_durable_init(sqlite_durable *d) {
  memset(d, 0, sizeof *d);
  pthread_mutex_init(&d->mu, 0);
  pthread_cond_init(&d->synced, 0);
}

void sqlite_durable_free(sqlite_durable *d) {
  pthread_cond_destroy(&d->synced);
  pthread_mutex_destroy(&d->mu);
}

/* The data version of db's main pager: it moves at every change to the
** file that db commits or first sees (SQLITE_FCNTL_DATA_VERSION). */
static unsigned int seen(sqlite3 *db) {
  unsigned int v = 0;
  sqlite3_file_control(db, "main", SQLITE_FCNTL_DATA_VERSION, &v);
  return v;
}

static int on_wal(void *arg, sqlite3 *db, const char *name, int pages) {
  sqlite_durable_conn *dc = arg;
  sqlite_durable *d = dc->d;
  pthread_mutex_lock(&d->mu);
  dc->after = d->started;
  if (pages < DURABLE_EARLY_PAGES)
    d->early = 0; /* the WAL started again */
  else if (!d->early)
    d->early = d->checkpoint = 1;
  pthread_mutex_unlock(&d->mu);
  dc->wrote = 1;
  dc->seen = seen(db);
  if (pages >= DURABLE_CHECKPOINT_PAGES) sqlite3_wal_checkpoint(db, name);
  return SQLITE_OK;
}

int sqlite_durable_attach(sqlite_durable_conn *dc, sqlite_durable *d, sqlite3 *db, int wal) {
  memset(dc, 0, sizeof *dc);
  /* without WAL, NORMAL would weaken more than the fsync at COMMIT: stay
  ** FULL and wait for nothing */
  if (!wal) return SQLITE_OK;
  int rc = sqlite3_exec(db, "PRAGMA main.synchronous = NORMAL", 0, 0, 0);
  if (rc != SQLITE_OK) return rc;
  dc->d = d;
  sqlite3_wal_hook(db, on_wal, dc);
  return SQLITE_OK;
}

/* fsync the WAL through db's own handle of it (the same file every
** connection writes). The handle is there: switching to WAL
** (sqlite_open.c) opened it, and only leaving WAL closes it. */
static void sync_wal(sqlite3 *db) {
  sqlite3_file *f = 0;
  int rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f);
  if (rc == SQLITE_OK)
    rc = f && f->pMethods ? f->pMethods->xSync(f, SQLITE_SYNC_NORMAL) : SQLITE_CANTOPEN;
  if (rc != SQLITE_OK) {
    /* what the WAL holds on disk is unknown now, and commits were already
    ** answered as done by SQLite: stop rather than answer more */
    fprintf(stderr, "syncd: fsync of the write-ahead log failed (%s): stopping\n",
            sqlite3_errstr(rc));
    abort();
  }
}

/* Under d->mu: what dc committed or read since the last note, added to
** dc->need. */
static void note(sqlite_durable_conn *dc, sqlite3 *db) {
  unsigned int now = seen(db);
  long long need = dc->wrote ? dc->after + 1 : 0;
  if (now != dc->seen && dc->d->started + 1 > need) need = dc->d->started + 1;
  if (need > dc->need) dc->need = need;
  dc->wrote = 0;
  dc->seen = now;
}

void sqlite_durable_pass(sqlite_durable_conn *from, sqlite3 *db, sqlite_durable_conn *to,
                         sqlite3 *to_db) {
  sqlite_durable *d = from->d;
  if (!d) return;
  pthread_mutex_lock(&d->mu);
  if (from->wrote) to->seen = seen(to_db);
  note(from, db);
  if (from->need > to->need) to->need = from->need;
  from->need = 0;
  pthread_mutex_unlock(&d->mu);
}

void sqlite_durable_wait(sqlite_durable_conn *dc, sqlite3 *db) {
  sqlite_durable *d = dc->d;
  if (!d) return;
  pthread_mutex_lock(&d->mu);
  note(dc, db);
  long long need = dc->need;
  dc->need = 0;
  while (d->done < need) {
    if (d->syncing) {
      pthread_cond_wait(&d->synced, &d->mu);
      continue;
    }
    d->syncing = 1;
    long long n = ++d->started;
    pthread_mutex_unlock(&d->mu);
    sync_wal(db);
    pthread_mutex_lock(&d->mu);
    d->done = n;
    d->syncing = 0;
    pthread_cond_broadcast(&d->synced);
  }
  int checkpoint = d->checkpoint;
  d->checkpoint = 0;
  pthread_mutex_unlock(&d->mu);
  if (checkpoint) sqlite3_wal_checkpoint(db, "main");
}
