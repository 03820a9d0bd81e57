/*
** fk_sql.c: the query of a row that refers to no row (fk_sql.h). SQLite
** and PostgreSQL both take it: identifiers double-quoted, the parent
** matched by "=" between the two columns (the parent column's collation,
** on SQLite; its type's equality, on PostgreSQL), a key with a NULL
** column referring to nothing (MATCH SIMPLE, both engines' default).
*/
#include "fk_sql.h"

#include <stdio.h>
#include <string.h>

/* Append a double-quoted identifier, as both dialects quote one. */
static void ident(sqlite3_str *sql, const char *name) {
  sqlite3_str_appendf(sql, "\"%w\"", name);
}

/* Append a table's name, in schema unless that is NULL. */
static void table(sqlite3_str *sql, const char *schema, const char *name) {
  if (schema) ident(sql, schema), sqlite3_str_appendchar(sql, 1, '.');
  ident(sql, name);
}

/* Append the condition of the key whose columns are k[0..n): the row
** refers through it to no row. */
static void broken(sqlite3_str *sql, const fk_col *k, int n) {
  sqlite3_str_appendchar(sql, 1, '(');
  for (int i = 0; i < n; i++) {
    sqlite3_str_appendall(sql, "c.");
    ident(sql, k[i].from);
    sqlite3_str_appendall(sql, " IS NOT NULL AND ");
  }
  sqlite3_str_appendall(sql, "NOT EXISTS (SELECT 1 FROM ");
  table(sql, k->schema, k->parent);
  sqlite3_str_appendall(sql, " AS p WHERE ");
  for (int i = 0; i < n; i++) {
    sqlite3_str_appendall(sql, i ? " AND p." : "p.");
    ident(sql, k[i].to);
    sqlite3_str_appendall(sql, " = c.");
    ident(sql, k[i].from);
  }
  sqlite3_str_appendall(sql, "))");
}

char *fk_sql_query(const catalog_table *t, const char *schema, const fk_col *k, int n,
                   fk_pk_where pk_where, int *none) {
  sqlite3_str *sql = sqlite3_str_new(0);
  int judged = 0;
  sqlite3_str_appendall(sql, "SELECT b FROM (SELECT CASE");
  for (int i = 0, j; i < n; i = j) {
    int known = 1;
    for (j = i; j < n && strcmp(k[j].key, k[i].key) == 0; j++)
      known = known && k[j].to;
    if (!known) continue;
    judged = 1;
    sqlite3_str_appendall(sql, " WHEN ");
    broken(sql, k + i, j - i);
    sqlite3_str_appendf(sql, " THEN %d", i);
  }
  sqlite3_str_appendall(sql, " END AS b FROM ");
  table(sql, schema, t->name);
  sqlite3_str_appendall(sql, " AS c");
  pk_where(sql, t, 1, 2);
  sqlite3_str_appendall(sql, ") AS s WHERE b IS NOT NULL");
  char *z = sqlite3_str_finish(sql);
  *none = !judged;
  if (!judged) sqlite3_free(z), z = 0;
  return z;
}

void fk_sql_none(dialect_written *w, int n, char *why) {
  for (int i = 0; i < n; i++) {
    sqlite3_free(w[i].reason);
    w[i].reason = 0;
  }
  fprintf(stderr,
          "syncd: the rows referring to no row were not found (%s): the batch runs strict\n",
          why ? why : "out of memory");
  sqlite3_free(why);
}
