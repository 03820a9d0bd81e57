/*
** sqlite_durable.h: group commit for the SQLite dialect (dialect_sqlite.c):
** commits written without an fsync each, made durable by one fsync of the
** WAL shared by every connection waiting for it (sqlite_durable.c).
*/
#ifndef SYNCD_SQLITE_DURABLE_H
#define SYNCD_SQLITE_DURABLE_H

#include <pthread.h>
#include <sqlite3.h>

/* One per database file: what the process committed and what is synced. */
typedef struct sqlite_durable {
  pthread_mutex_t mu;
  pthread_cond_t synced;
  long long written; /* commits whose frames are in the WAL */
  long long durable; /* of those, the ones an fsync is known to cover */
  long long started; /* fsyncs begun; done: ended */
  long long done;
  long long after; /* started when the last commit's frames were written */
  int inflight;    /* connections between a commit's start and its end */
  int syncing;
} sqlite_durable;

/* A connection's part: between its commit hook and the commit's end. */
typedef struct sqlite_durable_conn {
  sqlite_durable *d;
  int inflight;
} sqlite_durable_conn;

void sqlite_durable_init(sqlite_durable *d);
void sqlite_durable_free(sqlite_durable *d);

/* Commit on db without an fsync (synchronous = NORMAL) and count its
** commits in d. 0, or an SQLite code. */
int sqlite_durable_attach(sqlite_durable_conn *dc, sqlite_durable *d, sqlite3 *db);

/* The commit db was in has ended, written or not. */
void sqlite_durable_ended(sqlite_durable_conn *dc);

/* Before anything db read or wrote leaves the process: return once every
** commit it could have seen (its own too) is on disk. An fsync failure
** aborts the process, as nothing is known about what it holds. */
void sqlite_durable_wait(sqlite_durable_conn *dc, sqlite3 *db);

#endif
