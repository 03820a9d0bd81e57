/*
** pg_set.h: a run of inserts in one statement (pg_set.c), for pg_batch.c.
*/
#ifndef SYNCD_PG_SET_H
#define SYNCD_PG_SET_H

#include "dialect.h"

/* The insert of rows of t that each name the columns cols names: $1 a
** JSON array of [data, pk] per row (as pgval_rewrite wrote them), $2 t's
** name (syncd.own); the column names it binds are stored from p[2] on,
** *np the parameters in all (p has room for 2 * t->n_cols + 2). It answers
** one row per element, in their order: the row as read_sql prints it, its
** key, then the key's columns as stored, NULL when the element wrote no
** row under pk's key. NULL when out of memory. */
char *pgset_insert(const catalog_table *t, const dialect_cols *cols, const char **p, int *np);

#endif
