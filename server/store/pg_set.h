/*
** pg_set.h: a run of inserts in one statement (pg_set.c), for pg_batch.c.
*/
#ifndef SYNCD_PG_SET_H
#define SYNCD_PG_SET_H

#include "dialect.h"

/* The insert of rows of t that each name the columns cols names: $1 the
** JSON array of their data objects, $2 of their pk objects (as
** pgval_rewrite wrote them, in the same order), $3 pgsql_own(t).
** It answers one row per row given, in their order: the row as read_sql
** prints it, its key, then the key's columns as stored, NULL when the row
** given wrote no row under pk's key; last, whether t may take its rows in
** one statement (when not, it wrote none). NULL when out of memory. */
char *pgset_insert(const catalog_table *t, const dialect_cols *cols);

#endif
