/*
** sqlite_watch.c: the script of TEMP triggers that watches the synced
** tables on one SQLite connection, and the one that undoes it
** (sqlite_watch.h). They also keep the former values of the tables
** --rules judges by their columns (docs/RULES.md, "Move-in and move-out
** through a row's own columns"): TEMP, so an owner's ALTER TABLE on
** another connection never meets them.
*/
#include "sqlite_watch.h"

#include <sqlite3.h>
#include <stddef.h>

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

/* The columns of _syncd_was_<t> (rules.c makes it) into *cols, a
** sqlite3_malloc'd array of *n names (none: no such table). 0, or an
** SQLite code. */
static int was_columns(sqlite3 *db, const catalog_table *t, char ***cols, int *n) {
  sqlite3_stmt *st;
  *cols = 0, *n = 0;
  int rc =
      sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info('_syncd_was_' || ?1)", -1, &st, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    char **more = sqlite3_realloc64(*cols, sizeof *more * ((size_t)*n + 1));
    char *name = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, 0));
    if (!more || !name) {
      sqlite3_free(name);
      if (more) *cols = more;
      rc = SQLITE_NOMEM;
      break;
    }
    *cols = more;
    (*cols)[(*n)++] = name;
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* " AND "-joined "<a>."c" IS <b>."c"" over cols */
static void same(sqlite3_str *sql, char **cols, int n, const char *a, const char *b) {
  for (int i = 0; i < n; i++)
    sqlite3_str_appendf(sql, "%s%s.\"%w\" IS %s.\"%w\"", i ? " AND " : "", a, cols[i], b, cols[i]);
}

/* Keep the values of row (old, new) of t in was unless kept, or (drop)
** remove the kept ones equal to them; in an update, only when it changed
** them (the former values of rules.h: docs/RULES.md). */
static void was_write(sqlite3_str *sql, const char *was, char **cols, int n, const char *row,
                      int drop, int update) {
  /* a trigger's write names its table alone (it is main's, the only one) */
  char *w = sqlite3_mprintf("\"%w\"", was);
  if (!w) {
    sqlite3_str_appendall(sql, " SELECT RAISE(ABORT, 'out of memory');");
    return;
  }
  if (drop) {
    sqlite3_str_appendf(sql, " DELETE FROM %s WHERE ", w);
  } else {
    sqlite3_str_appendf(sql, " INSERT INTO %s(", w);
    for (int i = 0; i < n; i++)
      sqlite3_str_appendf(sql, "%s\"%w\"", i ? ", " : "", cols[i]);
    sqlite3_str_appendall(sql, ") SELECT ");
    for (int i = 0; i < n; i++)
      sqlite3_str_appendf(sql, "%s%s.\"%w\"", i ? ", " : "", row, cols[i]);
    sqlite3_str_appendf(sql, " WHERE NOT EXISTS(SELECT 1 FROM %s WHERE ", w);
  }
  same(sql, cols, n, w, row);
  if (!drop) sqlite3_str_appendchar(sql, 1, ')');
  if (update) {
    sqlite3_str_appendall(sql, " AND NOT (");
    same(sql, cols, n, "old", "new");
    sqlite3_str_appendchar(sql, 1, ')');
  }
  sqlite3_str_appendchar(sql, 1, ';');
  sqlite3_free(w);
}

char *sqlite_watch_sql(sqlite3 *db, const catalog *cat, char **undo) {
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
    char **cols = 0, *was = sqlite3_mprintf("_syncd_was_%s", t->name);
    int n_cols = 0;
    if (!was || was_columns(db, t, &cols, &n_cols) != SQLITE_OK) {
      for (int k = 0; k < n_cols; k++)
        sqlite3_free(cols[k]);
      sqlite3_free(cols);
      sqlite3_free(was);
      sqlite3_free(sqlite3_str_finish(sql));
      sqlite3_free(sqlite3_str_finish(drop));
      return *undo = 0, (char *)0;
    }
    for (int op = 0; op < 3; op++) {
      sqlite3_str_appendf(
          sql, "CREATE TEMP TRIGGER IF NOT EXISTS \"_syncd_%s_%d\" AFTER %s ON main.\"%w\" BEGIN",
          ops[op], i, ops[op], t->name);
      if (op > 0) append_record(sql, t, i, width, "old", op == 1);
      if (op < 2) append_record(sql, t, i, width, "new", 0);
      if (n_cols && op > 0) was_write(sql, was, cols, n_cols, "old", 0, op == 1);
      if (n_cols && op < 2) was_write(sql, was, cols, n_cols, "new", 1, op == 1);
      sqlite3_str_appendall(sql, " END;");
      sqlite3_str_appendf(drop, "DROP TRIGGER IF EXISTS temp.\"_syncd_%s_%d\";", ops[op], i);
    }
    for (int k = 0; k < n_cols; k++)
      sqlite3_free(cols[k]);
    sqlite3_free(cols);
    sqlite3_free(was);
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
