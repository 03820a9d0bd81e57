/*
** sqlite_sql.h: the SQL texts the SQLite dialect builds for a synced table
** (sqlite_sql.c).
*/
#ifndef SYNCD_SQLITE_SQL_H
#define SYNCD_SQLITE_SQL_H

#include <sqlite3.h>

#include "catalog.h"

/* Append the SQL value of the JSON value at path ?pathParam of ?jsonParam
** (sync_val keeps integers exact, rounds reals correctly, decodes BLOBs). */
void sqlite_sql_val(sqlite3_str *sql, int jsonParam, int pathParam);

/* Append "SELECT "c1","c2",... FROM "t"" to sql. */
void sqlite_sql_select(sqlite3_str *sql, const catalog_table *t);

/* Append " WHERE "p1" = <value of ?pkParam at ?n> AND ..." binding the JSON
** paths from parameter firstPath on. */
void sqlite_sql_pk_where(sqlite3_str *sql, const catalog_table *t, int pkParam, int firstPath);

/* What every push needs of t, built once: the column paths ($."name"), the
** read of a row by key, the insert naming every column in table order.
** 0, or -1 when out of memory. */
int sqlite_sql_table(catalog_table *t);

#endif
