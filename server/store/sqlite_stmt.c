/*
** sqlite_stmt.c: statements kept prepared on their SQLite connection
** between requests (sqlite_stmt.h): compiling one costs more than running
** it, and a push runs about ten per mutation.
**
** sqlite_stmt_get finds an idle one of the same text on db
** (sqlite3_next_stmt) or prepares it; sqlite_stmt_put resets and unbinds
** it for the next caller, and finalizes it once the connection holds more
** than STMT_CACHE_MAX (the write statements vary with the columns a
** mutation names). No caller holds two statements of the same text at
** once, so an idle one (not busy) is never one a caller still holds.
*/
#include "sqlite_stmt.h"

#include <string.h>

#define STMT_CACHE_MAX 64

int sqlite_stmt_get(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  for (sqlite3_stmt *p = sqlite3_next_stmt(db, 0); p; p = sqlite3_next_stmt(db, p)) {
    if (!sqlite3_stmt_busy(p) && strcmp(sqlite3_sql(p), sql) == 0) {
      *st = p;
      return SQLITE_OK;
    }
  }
  return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, 0);
}

/* Only a statement on its first run can be the one over the limit (the
** count changes only when one is prepared), so the others skip counting
** the connection's statements. */
void sqlite_stmt_put(sqlite3_stmt *st) {
  if (!st) return;
  sqlite3 *db = sqlite3_db_handle(st);
  int first = sqlite3_stmt_status(st, SQLITE_STMTSTATUS_RUN, 0) <= 1;
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (!first) return;
  int n = 0;
  for (sqlite3_stmt *p = sqlite3_next_stmt(db, 0); p; p = sqlite3_next_stmt(db, p))
    n++;
  if (n > STMT_CACHE_MAX) sqlite3_finalize(st);
}
