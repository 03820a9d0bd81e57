/*
** pg_values.h: the protocol's values as PostgreSQL column types take them
** (pg_values.c), for dialect_pg.c.
*/
#ifndef SYNCD_PG_VALUES_H
#define SYNCD_PG_VALUES_H

#include <sqlite3.h>

#include "catalog.h"
#include "dialect.h"

/* Rewrite the JSON object json (a mutation's pk or data) for t into the
** object pgsql_value reads: each of t's columns it names (its first member
** naming it) mapped to a JSON string of the text the column's type reads
** as exactly that value, or null; other names are dropped. probe is
** "SELECT ?1" on a SQLite connection where sync_val's rules read the
** values. DIALECT_OK with *out (sqlite3_malloc'd), DIALECT_REJECTED with
** *reason naming the column and its type (or sync_val's message for a
** malformed blob), or DIALECT_FATAL with *err. */
dialect_result pgval_rewrite(sqlite3_stmt *probe, const catalog_table *t, const char *json,
                             char **out, char **reason, char **err);

#endif
