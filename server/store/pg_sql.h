/*
** pg_sql.h: the SQL and JSON texts of the PostgreSQL dialect (pg_sql.c),
** for dialect_pg.c.
*/
#ifndef SYNCD_PG_SQL_H
#define SYNCD_PG_SQL_H

#include <libpq-fe.h>
#include <sqlite3.h>

#include "catalog.h"
#include "dialect.h"

/* catalog_col.kind of a PostgreSQL column: text, varchar and char; the
** integer types; float4, float8; numeric; bool; bytea; any other type
** (date, uuid, json, an enum...), which takes its input syntax as text */
enum {
  K_TEXT,
  K_INT2,
  K_INT4,
  K_INT8,
  K_OID,
  K_FLOAT4,
  K_FLOAT8,
  K_NUMERIC,
  K_BOOL,
  K_BYTEA,
  K_OTHER
};

/* The value of column col of t in the row or key JSON that the SQL
** expression src gives, as the store prints it: a bytea's
** {"$base64": ...} is decoded (jsonb_populate_record takes bytea only as
** the text of its bytes). */
void pgsql_key_value(sqlite3_str *sql, const catalog_table *t, int col, const char *src);

/* The kind of a column whose type (or domain's base type) is typname. */
int pgsql_kind(const char *typname);

/* Append a quoted identifier. */
void pgsql_ident(sqlite3_str *sql, const char *name);

/* Append the value of key $keyParam of the json in $jsonParam (as
** pgval_rewrite wrote it), cast to col's type; for a type that could store
** it as another text (a modifier such as numeric(6,2) or char(3), or a
** type other than text), refused unless it reads back as sent. */
void pgsql_value(sqlite3_str *sql, const catalog_col *col, int jsonParam, int keyParam);
/* pgsql_value of the value's text x, an expression, named in refusals by
** name, another (a text parameter or literal). */
void pgsql_value_of(sqlite3_str *sql, const catalog_col *col, const char *x, const char *name);

/* Append the select list printing every column, or (pkOnly) the key's. */
void pgsql_columns(sqlite3_str *sql, const catalog_table *t, int pkOnly);

/* Append " WHERE "p1" = <$pkParam's p1> AND ...", key names bound from
** $firstKey on. */
void pgsql_pk_where(sqlite3_str *sql, const catalog_table *t, int pkParam, int firstKey);

/* The write of a mutation op on t naming cols: $1 the data object, $2 the
** pk object, $3 the own row (pgsql_set_own); the column names it binds
** are stored from p[3] on, *np the parameters in all. An insert or update
** returns the row as read_sql prints it then whether its key is pk's; a
** delete returns the key. NULL when out of memory. */
char *pgsql_write(const catalog_table *t, int op, const dialect_cols *cols, const char **p,
                  int *np);

/* Build t's column keys and its row read (catalog_finish's prepare);
** nonzero when out of memory. */
int pgsql_table(catalog_table *t);

/* The internal tables (dialect.h), made when missing. */
extern const char pgsql_internal_ddl[];

/* The row trigger function that records rows a push changes besides its
** own, and (appended) its trigger on t. */
extern const char pgsql_touch_function[];
int pgsql_touch_trigger(sqlite3_str *sql, const catalog_table *t); /* -1: out of memory */

/* A write statement of syncd names its table in $3 of pgsql_set_own, a
** FROM item that sets syncd.own for the statement's triggers, as
** pgsql_own writes it (NULL when out of memory): the rows of that table it
** writes itself are its own (pgsql_touch_function). */
extern const char pgsql_set_own[];
char *pgsql_own(const catalog_table *t);

/* Append the select of t's key columns (as pgsql_columns prints them) out
** of the row in $1 (to_jsonb of a row of t). */
void pgsql_key_of_row(sqlite3_str *sql, const catalog_table *t);

/* {"col":value,...} of result row `row`, fields from f0 in the order of
** pgsql_columns(pkOnly); NULL when out of memory. */
char *pgsql_row(const catalog_table *t, const PGresult *r, int row, int f0, int pkOnly);

/* The query of one table of an initial sync's walk under rules (dialect.h,
** read_page with a walk): the key columns then every column (as
** pgsql_columns prints them) of the rows of w->t after $1's key (when
** after; else $1 is NULL) that pass w->cond ($2 on), in key order, $N+2
** rows at most. An index on the
** rule's columns then the key serves both the filter and the order
** (docs/RULES.md shows the plan). NULL when out of memory. */
char *pgsql_walk(const dialect_walk *w, int after);

/* Whether the failed r fails the whole batch: connection, resource and
** internal failures (refusals by the data -- constraints, types, names --
** are the mutation's). */
int pgsql_fatal(const PGresult *r);

/* Whether the failed r lost a conflict with a concurrent transaction
** (deadlock_detected, serialization_failure): running the whole
** transaction again can succeed. */
int pgsql_conflict(const PGresult *r);

#endif
