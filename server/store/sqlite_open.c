/*
** sqlite_open.c: how the SQLite dialect (dialect_sqlite.c) opens each of
** its connections to the database file (sqlite_open.h).
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

static sqlite3 *open_db(const char *path, long long mmap_size, int *wal, char **err) {
  sqlite3 *db = 0;
  /* NOMUTEX: the pool (for dialect_sqlite.c's pushes connection, the
  ** writer mutex) hands a connection to one thread at a time, so SQLite's
  ** own per-call locking of it is pure cost. */
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

static void fn_user(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc, (void)argv;
  const char *const *v = sqlite3_user_data(ctx);
  if (*v) sqlite3_result_text(ctx, *v, -1, SQLITE_TRANSIENT);
}

int sqlite_conn_open(sqlite_conn *h, const char *path, long long mmap_size, sqlite_durable *d,
                     char **err) {
  int wal = 0;
  sqlite3 *db = h->db = open_db(path, mmap_size, &wal, err);
  if (!db) return -1;
  if (sqlite_durable_attach(&h->durable, d, db, wal) ||
      sqlite3_create_function(db, "syncd_sub", 0, SQLITE_UTF8, &h->user[0], fn_user, 0, 0) ||
      sqlite3_create_function(db, "syncd_claims", 0, SQLITE_UTF8, &h->user[1], fn_user, 0, 0)) {
    *err = wire_errf("%s: %s", path, sqlite3_errmsg(db));
    sqlite3_close(db);
    h->db = 0;
    return -1;
  }
  return 0;
}

int sqlite_conn_user(sqlite_conn *h, const char *sub, const char *claims, char **err) {
  const char *v[2] = {sub, claims};
  for (int i = 0; i < 2; i++) {
    sqlite3_free(h->user[i]);
    h->user[i] = v[i] ? sqlite3_mprintf("%s", v[i]) : 0;
    if (v[i] && !h->user[i]) return *err = wire_errf("out of memory"), -1;
  }
  return 0;
}

/* A virtual table (FTS5) prepares statements of its own on the connection
** and finalizes them when it disconnects: the first close disconnects
** every virtual table, then only ours are left to finalize (finalizing
** FTS5's first made its disconnect free them again). */
void sqlite_conn_close(sqlite_conn *h) {
  if (sqlite3_close(h->db) == SQLITE_BUSY) {
    sqlite3_stmt *p;
    while ((p = sqlite3_next_stmt(h->db, 0)) != 0)
      sqlite3_finalize(p);
    sqlite3_close(h->db);
  }
  sqlite3_free(h->user[0]);
  sqlite3_free(h->user[1]);
  sqlite3_free(h->unwatch);
}
