/*
** sqlite_walk.h: the page query of an initial sync's walk under rules on
** SQLite (sqlite_walk.c), for dialect_sqlite.c's read_page (dialect.h).
*/
#ifndef SYNCD_SQLITE_WALK_H
#define SYNCD_SQLITE_WALK_H

#include "dialect.h"

/* Read the tables w[0..n) of a walk into p in turn (the page query
** of each, its rows through wire_page_walk) until p is full, inside
** the caller's read transaction. 0, or -1 with *err. */
int sqlite_walk_page(sqlite3 *db, const dialect_walk *w, int n, wire_page *p, char **err);

/* dialect.h's walk_key on db. */
int sqlite_walk_key(sqlite3 *db, const char *table, long long version, long long after,
                    const char *hash, char **pk, char **err);

#endif
