/*
** sqlite_row.c: a SQLite row printed as the protocol's JSON, exactly
** (value.c), by the dialect (its reads, the change log) and by the
** fingerprint cache (fp_sqlite.c), whose hashes must match those rows.
*/
#include "sqlite_row.h"

#include "value.h"

char *sqlite_row_json(sqlite3_stmt *st) {
  sqlite3_str *out = sqlite3_str_new(0);
  value_append_row(out, st);
  return sqlite3_str_finish(out);
}

void sqlite_pk_append(sqlite3_str *out, const catalog_table *t, sqlite3_stmt *st, int first) {
  sqlite3_str_appendchar(out, 1, '{');
  for (int k = 0; k < t->n_pk; k++) {
    if (k) sqlite3_str_appendchar(out, 1, ',');
    value_append_string(out, t->cols[t->pk[k]].name, -1);
    sqlite3_str_appendchar(out, 1, ':');
    value_append_column(out, st, first < 0 ? t->pk[k] : first + k);
  }
  sqlite3_str_appendchar(out, 1, '}');
}

char *sqlite_pk_json(const catalog_table *t, sqlite3_stmt *st, int first) {
  sqlite3_str *out = sqlite3_str_new(0);
  sqlite_pk_append(out, t, st, first);
  return sqlite3_str_finish(out);
}
