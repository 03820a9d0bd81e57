/*
** pg_set.c: the statement that writes a run of a batch's inserts into one
** table in one go (pg_set.h), for pg_batch.c. Each row inserted by a
** statement of its own costs PostgreSQL an executor start and a parse of
** its JSON parameters per column; the run's rows go as two JSON arrays
** (data and pk), each read once by json_to_recordset (a column's text as
** ->> gives it), inserted by one INSERT ... SELECT in the run's order.
**
** Each row's values are cast and checked as pgsql_write's insert casts
** them (pgsql_value_of, the same cast and exactness check), its row and
** key printed as pgsql_write's RETURNING prints them. Whether each row was
** written under pk's key is answered by a join of the rows given to the
** rows written on that key: a row a trigger skipped or wrote under another
** key answers NULL, and pg_batch.c leaves the batch to the one-at-a-time
** run; so does a table whose triggers, foreign keys or rules could tell
** one statement from many (guard below). syncd.own names the table: every
** row the INSERT writes itself is the run's own (pgsql_touch_function).
*/
#include "pg_set.h"

#include <string.h>

#include "pg_sql.h"

/* Append "AS ("c1" text, ...)" for the n columns of t in cols[]. */
static void text_columns(sqlite3_str *sql, const catalog_table *t, const int *cols, int n) {
  sqlite3_str_appendall(sql, " AS (");
  for (int j = 0; j < n; j++) {
    if (j) sqlite3_str_appendchar(sql, 1, ',');
    pgsql_ident(sql, t->cols[cols[j]].name);
    sqlite3_str_appendall(sql, " text");
  }
  sqlite3_str_appendchar(sql, 1, ')');
}

/* Append the value of column c of t, out of the field f of s (as text). */
static void value(sqlite3_str *sql, const catalog_table *t, int c, const char *f, int j) {
  char x[32], *name = sqlite3_mprintf("%Q", t->cols[c].name);
  snprintf(x, sizeof x, "s.%s%d", f, j);
  pgsql_value_of(sql, &t->cols[c], x, name ? name : "NULL");
  sqlite3_free(name);
}

/* Whether the rows of one statement answer as the same rows inserted one
** statement each: the table's own rows are then written in the same order,
** but its AFTER triggers and foreign key checks run once all are written,
** and a statement trigger once. Unless the table (or a partition of it)
** has no trigger but syncd's and the foreign keys' (which a row inserted
** into it fires once, the same for all: they check other tables' rows, or
** record the row for the log, its former values under rules, or the
** verify cache: syncd's own, named _syncd_*, a name kept for it), no
** foreign key to itself (a row could refer to one inserted after it) and
** no rule, the statement writes nothing and answers ok false. */
static const char guard[] =
    "g AS MATERIALIZED (WITH r AS (SELECT to_regclass(quote_ident($3::text::json ->> 't')) AS oid),"
    " p AS (SELECT oid AS relid FROM r UNION SELECT t.relid FROM r, pg_partition_tree(r.oid) t)"
    " SELECT NOT EXISTS (SELECT 1 FROM p JOIN pg_trigger tg ON tg.tgrelid = p.relid"
    " WHERE NOT tg.tgisinternal AND tg.tgname NOT LIKE '\\_syncd\\_%')"
    " AND NOT EXISTS (SELECT 1 FROM p JOIN pg_constraint f ON f.conrelid = p.relid"
    " AND f.contype = 'f' WHERE f.confrelid IN (SELECT relid FROM p))"
    " AND NOT EXISTS (SELECT 1 FROM p JOIN pg_class pc ON pc.oid = p.relid"
    " WHERE pc.relhasrules) AS ok)";

char *pgset_insert(const catalog_table *t, const dialect_cols *cols) {
  int *in_data = sqlite3_malloc64(sizeof *in_data * (t->n_cols + 1));
  if (!in_data) return 0;
  memset(in_data, 0, sizeof *in_data * (t->n_cols + 1));
  sqlite3_str *sql = sqlite3_str_new(0);
  sqlite3_str_appendall(sql, "WITH s AS MATERIALIZED (SELECT * FROM ROWS FROM (");
  if (cols->n_data) {
    sqlite3_str_appendall(sql, "json_to_recordset($1::json)");
    text_columns(sql, t, cols->data, cols->n_data);
    sqlite3_str_appendall(sql, ", ");
  }
  sqlite3_str_appendall(sql, "json_to_recordset($2::json)");
  text_columns(sql, t, t->pk, t->n_pk);
  sqlite3_str_appendall(sql, ") WITH ORDINALITY x(");
  for (int j = 0; j < cols->n_data; j++)
    sqlite3_str_appendf(sql, "d%d,", j);
  for (int k = 0; k < t->n_pk; k++)
    sqlite3_str_appendf(sql, "k%d,", k);
  /* $1 read where no recordset reads it, for PostgreSQL to know its type */
  sqlite3_str_appendf(sql, "n)%s), %s, i AS (INSERT INTO ",
                      cols->n_data ? "" : " WHERE $1::json IS NOT NULL", guard);
  pgsql_ident(sql, t->name);
  sqlite3_str_appendchar(sql, 1, '(');
  /* every column present in data, plus key columns only pk carries */
  sqlite3_str *vals = sqlite3_str_new(0);
  for (int j = 0; j < cols->n_data; j++) {
    in_data[cols->data[j]] = 1;
    if (j) sqlite3_str_appendchar(sql, 1, ','), sqlite3_str_appendchar(vals, 1, ',');
    pgsql_ident(sql, t->cols[cols->data[j]].name);
    value(vals, t, cols->data[j], "d", j);
  }
  for (int k = 0, first = !cols->n_data; k < t->n_pk; k++) {
    if (in_data[t->pk[k]]) continue;
    if (!first) sqlite3_str_appendchar(sql, 1, ','), sqlite3_str_appendchar(vals, 1, ',');
    first = 0;
    pgsql_ident(sql, t->cols[t->pk[k]].name);
    value(vals, t, t->pk[k], "k", k);
  }
  sqlite3_free(in_data);
  char *v = sqlite3_str_finish(vals);
  sqlite3_str_appendf(sql,
                      ") SELECT %s FROM s, g, (SELECT set_config('syncd.own', $3, true)) _syncd_own"
                      " WHERE g.ok ORDER BY s.n RETURNING ",
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
  sqlite3_str_appendall(sql, ") SELECT i.*, g.ok FROM s CROSS JOIN g LEFT JOIN i ON ");
  for (int k = 0; k < t->n_pk; k++) {
    sqlite3_str_appendf(sql, "%si._syncd_k%d = ", k ? " AND " : "", k);
    value(sql, t, t->pk[k], "k", k);
  }
  sqlite3_str_appendall(sql, " ORDER BY s.n");
  return sqlite3_str_finish(sql);
}
