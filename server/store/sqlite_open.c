/*
** sqlite_open.c: how the SQLite dialect (dialect_sqlite.c) opens each of
** its pooled connections to the database file.
**
** --mmap-size (store_config.mmap_size) maps the file into each
** connection's address space, so a read of a page that is in the
** kernel's cache costs no system call and no copy. Under rules, an
** initial sync reads each row the rule's index names from a page of its
** own (a user's rows are scattered through the table): the mapping takes
** a fifth of syncd's CPU off it (bench/RESULTS.md, "mmap of the SQLite
** file"). It is off by default: an I/O error on a mapped page is a
** SIGBUS that ends syncd instead of an error answered to one request,
** and each connection reserves that much address space (docs/PROTOCOL.md,
** "syncd").
*/
#include "sqlite_open.h"

#include "value.h"
#include "wire.h"

/* WAL unless the file cannot have it (a database in memory, a VFS
** without shared memory): PRAGMA journal_mode answers the mode it set. */
static int set_wal(sqlite3 *db, int *wal) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, 0);
  if (rc != SQLITE_OK) return rc;
  *wal = sqlite3_step(st) == SQLITE_ROW &&
         sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
  return sqlite3_finalize(st);
}

sqlite3 *sqlite_open_conn(const char *path, long long mmap_size, int *wal, char **err) {
  sqlite3 *db = 0;
  /* NOMUTEX: the pool hands a connection to one thread at a time, so
  ** SQLite's own per-call locking of it is pure cost. */
  int rc = sqlite3_open_v2(path, &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, 0);
  char *pragmas = sqlite3_mprintf("PRAGMA foreign_keys = ON; PRAGMA mmap_size = %lld;", mmap_size);
  int nomem = rc == SQLITE_OK && !pragmas;
  if (nomem) rc = SQLITE_NOMEM;
  if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(db, 30000);
  if (rc == SQLITE_OK) rc = sqlite3_exec(db, pragmas, 0, 0, 0);
  if (rc == SQLITE_OK) rc = set_wal(db, wal);
  if (rc == SQLITE_OK) rc = value_register(db);
  sqlite3_free(pragmas);
  if (rc == SQLITE_OK) return db;
  *err = wire_errf("%s: %s", path, db && !nomem ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  sqlite3_close(db);
  return 0;
}
