/*
** pg_set.c: the statement that writes a run of a batch's inserts into one
** table in one go (pg_set.h), for pg_batch.c. Each row inserted by a
** statement of its own costs PostgreSQL an executor start and a parse of
** its JSON parameters per column; the run's rows go as one JSON array,
** inserted by one INSERT ... SELECT in the run's order.
**
** Each row's values are read and checked as pgsql_write's insert reads
** them (pgsql_value_in, the same cast and exactness check), its row and
** key printed as pgsql_write's RETURNING prints them. Whether each row was
** written under pk's key is answered by a join of the rows given to the
** rows written on that key: a row a trigger skipped or wrote under another
** key answers NULL, and pg_batch.c leaves the batch to the one-at-a-time
** run. syncd.own names the table: every row the INSERT writes itself is the
** run's own (pgsql_touch_function).
*/
#include "pg_set.h"

#include <string.h>

#include "pg_sql.h"

char *pgset_insert(const catalog_table *t, const dialect_cols *cols, const char **p, int *np) {
  int *used = sqlite3_malloc64(sizeof *used * (t->n_cols + 1));
  if (!used) return 0;
  memset(used, 0, sizeof *used * (t->n_cols + 1));
  sqlite3_str *sql = sqlite3_str_new(0), *vals = sqlite3_str_new(0);
  int n = 2;
  sqlite3_str_appendall(sql, "WITH s AS MATERIALIZED (SELECT x.n, x.e -> 0 AS d, x.e -> 1 AS k"
                             " FROM json_array_elements($1::json) WITH ORDINALITY x(e, n)),"
                             " i AS (INSERT INTO ");
  pgsql_ident(sql, t->name);
  sqlite3_str_appendchar(sql, 1, '(');
  /* every column present in data, plus key columns only pk carries */
  for (int j = 0; j < cols->n_data + t->n_pk; j++) {
    int from_pk = j >= cols->n_data, c = from_pk ? t->pk[j - cols->n_data] : cols->data[j];
    if (from_pk && used[c]) continue;
    used[c] = 1;
    if (n > 2) sqlite3_str_appendchar(sql, 1, ','), sqlite3_str_appendchar(vals, 1, ',');
    pgsql_ident(sql, t->cols[c].name);
    p[n++] = t->cols[c].key;
    pgsql_value_in(vals, &t->cols[c], from_pk ? "s.k" : "s.d", n);
  }
  sqlite3_free(used);
  char *v = sqlite3_str_finish(vals);
  sqlite3_str_appendf(sql,
                      ") SELECT %s FROM s, (SELECT set_config('syncd.own', $2, true)) _syncd_own"
                      " ORDER BY s.n RETURNING ",
                      v ? v : "");
  sqlite3_free(v);
  pgsql_columns(sql, t, 0);
  sqlite3_str_appendchar(sql, 1, ',');
  pgsql_columns(sql, t, 1);
  for (int k = 0; k < t->n_pk; k++) {
    sqlite3_str_appendchar(sql, 1, ',');
    pgsql_ident(sql, t->cols[t->pk[k]].name);
    sqlite3_str_appendf(sql, " AS _syncd_k%d", k);
  }
  sqlite3_str_appendall(sql, ") SELECT i.* FROM s LEFT JOIN i ON ");
  for (int k = 0; k < t->n_pk; k++) {
    const catalog_col *col = &t->cols[t->pk[k]];
    sqlite3_str_appendf(sql, "%si._syncd_k%d = ", k ? " AND " : "", k);
    p[n++] = col->key;
    pgsql_value_in(sql, col, "s.k", n);
  }
  sqlite3_str_appendall(sql, " ORDER BY s.n");
  *np = n;
  return sqlite3_str_finish(sql);
}
