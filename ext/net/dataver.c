/*
** dataver.c: PRAGMA data_version, read on a kept statement (dataver.h).
*/
#include "dataver.h"

int dataver_read(sqlite3_stmt **pStmt, sqlite3 *db) {
  if (!*pStmt && sqlite3_prepare_v3(db, "PRAGMA main.data_version", -1, SQLITE_PREPARE_PERSISTENT,
                                    pStmt, 0) != SQLITE_OK)
    return -1;
  int v = sqlite3_step(*pStmt) == SQLITE_ROW ? sqlite3_column_int(*pStmt, 0) : -1;
  sqlite3_reset(*pStmt);
  return v;
}
