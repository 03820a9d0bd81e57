/*
** fk_sql.h: the queries that tell whether a row refers to a row that does
** not exist, or a key deleted is still referred to (fk_sql.c), for the
** dialects' fk_dangling (dialect.h): sqlite_fk.c and pg_fk.c list the
** foreign keys from their own catalogs, the queries are the same SQL on
** both.
*/
#ifndef SYNCD_FK_SQL_H
#define SYNCD_FK_SQL_H

#include <sqlite3.h>

#include "catalog.h"
#include "dialect.h"

/* One column of a foreign key: keys come column after column, each key's
** in order, told apart by key (any text the key's columns share). table
** is the other table than the one judged (schema NULL: the search
** path's): the parent for fk_sql_refers, the child for fk_sql_orphans.
** from is the child's column, to the parent's (NULL: unknown, and the key
** is not judged). */
typedef struct fk_col {
  const char *key, *schema, *table, *from, *to;
} fk_col;

/* What the query takes of a dialect's SQL: a row's key from the JSON in
** $1, its key names from $2 on. */
typedef struct fk_dialect {
  /* append " WHERE <t's key> = <the key in $1>" (sqlite_sql_pk_where,
  ** pgsql_pk_where, with 1 and 2) */
  void (*pk_where)(sqlite3_str *sql, const catalog_table *t, int pkParam, int firstKey);
  /* append the value of t's key column t->pk[k] in $1 */
  void (*key_value)(sqlite3_str *sql, const catalog_table *t, int k);
  int fold_case; /* column names compare case-insensitively */
} fk_dialect;

/* The query of the row of t (in schema, or NULL) keyed $1: one row when it
** refers through a key of k[0..n) (t's) to no row (every column of the
** key set, no parent row holding their values), its one column the index
** in k of that key's first column; no row when it refers to rows that
** exist, or does not exist. NULL with *none 1 when no key of k can be
** judged; NULL with *none 0 when out of memory. */
char *fk_sql_refers(const catalog_table *t, const char *schema, const fk_col *k, int n,
                    const fk_dialect *d, int *none);

/* The same for a key $1 of t that no row holds while a row refers to it
** through a key of k[0..n) (other tables' and t's own, referring to t)
** whose parent columns are t's key. */
char *fk_sql_orphans(const catalog_table *t, const char *schema, const fk_col *k, int n,
                     const fk_dialect *d, int *none);

/* After a failed search for the rows of w[0..n) that refer to no row:
** names none (push.c then runs the batch strict, which refuses the right
** mutations anyway) and says why on stderr; why is freed. */
void fk_sql_none(dialect_written *w, int n, char *why);

#endif
