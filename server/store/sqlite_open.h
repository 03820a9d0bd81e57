/*
** sqlite_open.h: a connection of the SQLite dialect to its database file,
** with syncd's settings and functions (sqlite_open.c).
*/
#ifndef SYNCD_SQLITE_OPEN_H
#define SYNCD_SQLITE_OPEN_H

#include <sqlite3.h>

#include "sqlite_durable.h"

/* One connection and what syncd keeps with it. It must stay where it was
** opened: the functions and the WAL hook registered on db point into it. */
typedef struct sqlite_conn {
  sqlite3 *db;
  char *user[2]; /* sqlite_conn_user's sub and claims, for syncd_sub() and syncd_claims() */
  /* dialect_sqlite.c's TEMP triggers on the synced tables (sqlite_watch.h) */
  int watching;     /* made (at the first push on db) */
  unsigned watched; /* the catalog generation they were made from */
  char *unwatch;    /* the script dropping them */
  sqlite_durable_conn durable;
} sqlite_conn;

/* Open h (zeroed) on the file at path (created if absent) in WAL mode,
** with foreign keys on, a busy timeout for other processes' writers,
** syncd's value functions (value_register), syncd_sub() and
** syncd_claims(), commits made durable by d (sqlite_durable.h), and up to
** mmap_size bytes of the file mapped into memory (0: none, every page read
** by a system call). 0, or -1 with *err (sqlite3_malloc'd, naming path)
** and nothing left open. */
int sqlite_conn_open(sqlite_conn *h, const char *path, long long mmap_size, sqlite_durable *d,
                     char **err);

/* What syncd_sub() and syncd_claims() return on h from now on (NULL:
** NULL); set in C, so that no SQL can claim another user. 0, or -1 with
** *err when out of memory. */
int sqlite_conn_user(sqlite_conn *h, const char *sub, const char *claims, char **err);

/* Close h's connection and free what it holds (not h itself). */
void sqlite_conn_close(sqlite_conn *h);

#endif
