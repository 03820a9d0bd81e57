/*
** sqlite_durable.h: group commit for the SQLite dialect (dialect_sqlite.c):
** commits written without an fsync each, made durable by one fsync of the
** WAL shared by every connection waiting for it (sqlite_durable.c).
*/
#ifndef SYNCD_SQLITE_DURABLE_H
#define SYNCD_SQLITE_DURABLE_H

#include <pthread.h>
#include <sqlite3.h>

/* One per database file: the fsyncs of its WAL, begun and ended. */
typedef struct sqlite_durable {
  pthread_mutex_t mu;
  pthread_cond_t synced;
  long long started, done;
  int syncing;
  int early;      /* this filling of the WAL had its early checkpoint */
  int checkpoint; /* one is due, run by the next wait */
} sqlite_durable;

/* A connection's part, kept by its own thread. */
typedef struct sqlite_durable_conn {
  sqlite_durable *d;
  long long after;   /* fsyncs begun when its last commit's frames were written */
  int wrote;         /* committed since its last wait */
  unsigned int seen; /* its database's data version at its last wait or commit */
  long long need;    /* fsyncs done that its next wait waits for, as noted so far */
} sqlite_durable_conn;

void sqlite_durable_init(sqlite_durable *d);
void sqlite_durable_free(sqlite_durable *d);

/* Commit on db without an fsync (synchronous = NORMAL) and note its
** commits in dc, if db is in WAL mode (wal, from sqlite_open_conn); else
** leave db as it is and make dc wait for nothing. 0, or an SQLite code. */
int sqlite_durable_attach(sqlite_durable_conn *dc, sqlite_durable *d, sqlite3 *db, int wal);

/* Before anything db read or wrote leaves the process: return once every
** commit it could have seen (its own too, and other processes') is on
** disk. An fsync failure aborts the process, as nothing is known about
** what the WAL then holds. Runs the checkpoint a commit found due, on
** db: call it with no transaction open on db, nor any held for it. */
void sqlite_durable_wait(sqlite_durable_conn *dc, sqlite3 *db);

/* What db (attached as from) read or wrote so far becomes what to_db
** (attached as to) must wait for, as if to had done it: for a write
** transaction run on another connection than the one whose wait comes
** after it. to's own reads, made before from's commit, are covered by
** that commit's fsync. */
void sqlite_durable_pass(sqlite_durable_conn *from, sqlite3 *db, sqlite_durable_conn *to,
                         sqlite3 *to_db);

#endif
