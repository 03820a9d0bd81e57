/*
** sqlite_row.h: a SQLite row as the protocol's JSON (sqlite_row.c), for the
** SQLite dialect and its fingerprint cache, which print rows alike.
*/
#ifndef SYNCD_SQLITE_ROW_H
#define SYNCD_SQLITE_ROW_H

#include <sqlite3.h>

#include "catalog.h"

/* The row st stands on as a JSON object of all its result columns, by
** name; NULL when out of memory. */
char *sqlite_row_json(sqlite3_stmt *st);

/* The pk object of t's row st stands on: key column k is result column
** first + k, or (first < 0) the table position of that key column; NULL
** when out of memory. */
char *sqlite_pk_json(const catalog_table *t, sqlite3_stmt *st, int first);

/* The same appended to out (its error code says when out of memory). */
void sqlite_pk_append(sqlite3_str *out, const catalog_table *t, sqlite3_stmt *st, int first);

#endif
