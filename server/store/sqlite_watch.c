/*
** sqlite_watch.c: the script of TEMP triggers that watches the synced
** tables on one SQLite connection, and the one that undoes it
** (sqlite_watch.h).
*/
#include "sqlite_watch.h"

#include <sqlite3.h>

/* Append one statement of a watching trigger: record the key of `row` (old
** or new) of t, catalog index i, padded to width key columns; moved: only
** when an update changed the key. */
static void append_record(sqlite3_str *sql, const catalog_table *t, int i, int width,
                          const char *row, int moved) {
  sqlite3_str_appendf(sql, " INSERT INTO _syncd_touched SELECT %d", i);
  for (int k = 0; k < width; k++) {
    if (k < t->n_pk)
      sqlite3_str_appendf(sql, ", %s.\"%w\"", row, t->cols[t->pk[k]].name);
    else
      sqlite3_str_appendall(sql, ", NULL");
  }
  for (int k = 0; moved && k < t->n_pk; k++) {
    const char *name = t->cols[t->pk[k]].name;
    sqlite3_str_appendf(sql, "%s old.\"%w\" IS NOT new.\"%w\"", k ? " OR" : " WHERE", name, name);
  }
  sqlite3_str_appendchar(sql, 1, ';');
}

char *sqlite_watch_sql(const catalog *cat, char **undo) {
  int width = 1;
  for (int i = 0; i < cat->n_tables; i++)
    if (cat->tables[i].n_pk > width) width = cat->tables[i].n_pk;
  sqlite3_str *sql = sqlite3_str_new(0), *drop = sqlite3_str_new(0);
  sqlite3_str_appendall(sql, "CREATE TEMP TABLE IF NOT EXISTS _syncd_touched(tbl INTEGER");
  for (int k = 0; k < width; k++)
    sqlite3_str_appendf(sql, ", k%d", k);
  sqlite3_str_appendall(sql, ");");
  for (int i = 0; i < cat->n_tables; i++) {
    const catalog_table *t = &cat->tables[i];
    static const char *const ops[] = {"INSERT", "UPDATE", "DELETE"};
    for (int op = 0; op < 3; op++) {
      sqlite3_str_appendf(
          sql, "CREATE TEMP TRIGGER IF NOT EXISTS \"_syncd_%s_%d\" AFTER %s ON main.\"%w\" BEGIN",
          ops[op], i, ops[op], t->name);
      if (op > 0) append_record(sql, t, i, width, "old", op == 1);
      if (op < 2) append_record(sql, t, i, width, "new", 0);
      sqlite3_str_appendall(sql, " END;");
      sqlite3_str_appendf(drop, "DROP TRIGGER IF EXISTS temp.\"_syncd_%s_%d\";", ops[op], i);
    }
  }
  sqlite3_str_appendall(drop, "DROP TABLE IF EXISTS temp._syncd_touched;");
  *undo = sqlite3_str_finish(drop);
  char *z = sqlite3_str_finish(sql);
  if (!z || !*undo) {
    sqlite3_free(z);
    sqlite3_free(*undo);
    return *undo = 0, (char *)0;
  }
  return z;
}
