/*
** sqlite_sql.c: the SQL texts the SQLite dialect (dialect_sqlite.c) builds
** for a synced table: a value read from a push's JSON, the table's select
** list, its key's WHERE, and the statements every push needs of it, built
** once when the catalog is loaded (sqlite_sql_table). pg_sql.c is
** PostgreSQL's counterpart.
*/
#include "sqlite_sql.h"

void sqlite_sql_val(sqlite3_str *sql, int jsonParam, int pathParam) {
  sqlite3_str_appendf(sql, "sync_val(?%d -> ?%d)", jsonParam, pathParam);
}

void sqlite_sql_select(sqlite3_str *sql, const catalog_table *t) {
  sqlite3_str_appendall(sql, "SELECT ");
  for (int c = 0; c < t->n_cols; c++)
    sqlite3_str_appendf(sql, "%s\"%w\"", c ? "," : "", t->cols[c].name);
  sqlite3_str_appendf(sql, " FROM \"%w\"", t->name);
}

void sqlite_sql_pk_where(sqlite3_str *sql, const catalog_table *t, int pkParam, int firstPath) {
  for (int k = 0; k < t->n_pk; k++) {
    sqlite3_str_appendf(sql, "%s\"%w\" = ", k ? " AND " : " WHERE ", t->cols[t->pk[k]].name);
    sqlite_sql_val(sql, pkParam, firstPath + k);
  }
}

int sqlite_sql_table(catalog_table *t) {
  for (int c = 0; c < t->n_cols; c++)
    if (!(t->cols[c].key = sqlite3_mprintf("$.\"%s\"", t->cols[c].name))) return -1;
  sqlite3_str *sql = sqlite3_str_new(0);
  sqlite_sql_select(sql, t);
  sqlite_sql_pk_where(sql, t, 1, 2);
  t->read_sql = sqlite3_str_finish(sql);
  sql = sqlite3_str_new(0);
  sqlite3_str_appendf(sql, "INSERT INTO \"%w\"(", t->name);
  for (int c = 0; c < t->n_cols; c++)
    sqlite3_str_appendf(sql, "%s\"%w\"", c ? "," : "", t->cols[c].name);
  sqlite3_str_appendall(sql, ") VALUES(");
  for (int c = 0; c < t->n_cols; c++) {
    if (c) sqlite3_str_appendchar(sql, 1, ',');
    sqlite_sql_val(sql, 1, 3 + c);
  }
  sqlite3_str_appendchar(sql, 1, ')');
  t->insert_sql = sqlite3_str_finish(sql);
  return t->read_sql && t->insert_sql ? 0 : -1;
}
