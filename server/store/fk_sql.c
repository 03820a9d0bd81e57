/*
** fk_sql.c: the queries of a row that refers to no row and of a key
** deleted that rows still refer to (fk_sql.h). SQLite and PostgreSQL both
** take them: identifiers double-quoted, the parent matched by "=" between
** the two columns (the parent column's collation, on SQLite; its type's
** equality, on PostgreSQL), a key with a NULL column referring to nothing
** (MATCH SIMPLE, both engines' default).
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

/* Append the condition that the row c refers through the key whose
** columns are k[0..n) to no row. */
static void refers(sqlite3_str *sql, const catalog_table *t, const fk_col *k, int n,
                   const fk_dialect *d) {
  (void)t, (void)d;
  for (int i = 0; i < n; i++) {
    sqlite3_str_appendall(sql, "c.");
    ident(sql, k[i].from);
    sqlite3_str_appendall(sql, " IS NOT NULL AND ");
  }
  sqlite3_str_appendall(sql, "NOT EXISTS (SELECT 1 FROM ");
  table(sql, k->schema, k->table);
  sqlite3_str_appendall(sql, " AS p WHERE ");
  for (int i = 0; i < n; i++) {
    sqlite3_str_appendall(sql, i ? " AND p." : "p.");
    ident(sql, k[i].to);
    sqlite3_str_appendall(sql, " = c.");
    ident(sql, k[i].from);
  }
  sqlite3_str_appendchar(sql, 1, ')');
}

/* The position in t's key of column name, or -1. */
static int key_at(const catalog_table *t, const char *name, const fk_dialect *d) {
  for (int k = 0; k < t->n_pk; k++) {
    const char *col = t->cols[t->pk[k]].name;
    if (d->fold_case ? sqlite3_stricmp(col, name) == 0 : strcmp(col, name) == 0) return k;
  }
  return -1;
}

/* Append the condition that a row refers through the key whose columns
** are k[0..n) to t's key in $1. */
static void orphans(sqlite3_str *sql, const catalog_table *t, const fk_col *k, int n,
                    const fk_dialect *d) {
  sqlite3_str_appendall(sql, "EXISTS (SELECT 1 FROM ");
  table(sql, k->schema, k->table);
  sqlite3_str_appendall(sql, " AS c WHERE ");
  for (int i = 0; i < n; i++) {
    sqlite3_str_appendall(sql, i ? " AND c." : "c.");
    ident(sql, k[i].from);
    sqlite3_str_appendall(sql, " = ");
    d->key_value(sql, t, key_at(t, k[i].to, d));
  }
  sqlite3_str_appendchar(sql, 1, ')');
}

/* Whether the key k[0..n) can be judged: its parent columns known, and
** for orphans (whole) each of t's key columns once. */
static int judged(const catalog_table *t, const fk_col *k, int n, const fk_dialect *d, int whole) {
  if (whole && n != t->n_pk) return 0;
  for (int i = 0; i < n; i++) {
    if (!k[i].to) return 0;
    int at = whole ? key_at(t, k[i].to, d) : 0;
    if (at < 0) return 0;
    for (int j = 0; whole && j < i; j++)
      if (key_at(t, k[j].to, d) == at) return 0;
  }
  return 1;
}

/* "SELECT b FROM (SELECT CASE WHEN <cond of a key> THEN <its index> ...
** END AS b <from>) AS s WHERE b IS NOT NULL<tail>", the keys of k[0..n)
** that can be judged: fk_sql_refers's and fk_sql_orphans's query. */
static char *query(const catalog_table *t, const fk_col *k, int n, const fk_dialect *d, int whole,
                   void (*cond)(sqlite3_str *, const catalog_table *, const fk_col *, int,
                                const fk_dialect *),
                   const char *schema, int *none) {
  sqlite3_str *sql = sqlite3_str_new(0);
  *none = 1;
  sqlite3_str_appendall(sql, "SELECT b FROM (SELECT CASE");
  for (int i = 0, j; i < n; i = j) {
    for (j = i; j < n && strcmp(k[j].key, k[i].key) == 0; j++) {
    }
    if (!judged(t, k + i, j - i, d, whole)) continue;
    *none = 0;
    sqlite3_str_appendall(sql, " WHEN (");
    cond(sql, t, k + i, j - i, d);
    sqlite3_str_appendf(sql, ") THEN %d", i);
  }
  sqlite3_str_appendall(sql, " END AS b");
  if (!whole) {
    /* the row itself, by its key */
    sqlite3_str_appendall(sql, " FROM ");
    table(sql, schema, t->name);
    sqlite3_str_appendall(sql, " AS c");
    d->pk_where(sql, t, 1, 2);
  }
  sqlite3_str_appendall(sql, ") AS s WHERE b IS NOT NULL");
  if (whole) {
    /* no row holds the key */
    sqlite3_str_appendall(sql, " AND NOT EXISTS (SELECT 1 FROM ");
    table(sql, schema, t->name);
    d->pk_where(sql, t, 1, 2);
    sqlite3_str_appendchar(sql, 1, ')');
  }
  char *z = sqlite3_str_finish(sql);
  if (*none) sqlite3_free(z), z = 0;
  return z;
}

char *fk_sql_refers(const catalog_table *t, const char *schema, const fk_col *k, int n,
                    const fk_dialect *d, int *none) {
  return query(t, k, n, d, 0, refers, schema, none);
}

char *fk_sql_orphans(const catalog_table *t, const char *schema, const fk_col *k, int n,
                     const fk_dialect *d, int *none) {
  return query(t, k, n, d, 1, orphans, schema, none);
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
