/*
** fk_sql.h: the query that tells whether a row refers to a row that does
** not exist (fk_sql.c), for the dialects' fk_dangling (dialect.h):
** sqlite_fk.c and pg_fk.c list a table's foreign keys from their own
** catalogs, the query is the same SQL on both.
*/
#ifndef SYNCD_FK_SQL_H
#define SYNCD_FK_SQL_H

#include <sqlite3.h>

#include "catalog.h"
#include "dialect.h"

/* One column of a foreign key of the child table: keys come column after
** column, each key's in order, told apart by key (any text the key's
** columns share). Its parent table is schema.parent (schema NULL: the
** search path's), to the parent's column (NULL: unknown, and the key is
** not judged). */
typedef struct fk_col {
  const char *key, *schema, *parent, *from, *to;
} fk_col;

/* Appends " WHERE <t's key> = <the key in $pkParam>", key names from
** $firstKey on, in a dialect's SQL (sqlite_sql_pk_where, pgsql_pk_where). */
typedef void (*fk_pk_where)(sqlite3_str *sql, const catalog_table *t, int pkParam, int firstKey);

/* The query of the row of t (in schema, or NULL) keyed $1 (key names $2 on): one
** row when it refers through a key of k[0..n) to no row (every column of
** the key set, no parent row holding their values), its one column the
** index in k of that key's first column; no row when it refers to rows
** that exist, or does not exist. NULL with *none 1 when no key of k can
** be judged; NULL with *none 0 when out of memory. */
char *fk_sql_query(const catalog_table *t, const char *schema, const fk_col *k, int n,
                   fk_pk_where pk_where, int *none);

/* After a failed search for the rows of w[0..n) that refer to no row:
** names none (push.c then runs the batch strict, which refuses the right
** mutations anyway) and says why on stderr; why is freed. */
void fk_sql_none(dialect_written *w, int n, char *why);

#endif
