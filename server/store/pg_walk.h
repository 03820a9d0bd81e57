/*
** pg_walk.h: the rows of an initial sync's walk under rules on PostgreSQL
** (pg_walk.c), for dialect_pg.c's read_page and walk_rows (dialect.h).
*/
#ifndef SYNCD_PG_WALK_H
#define SYNCD_PG_WALK_H

#include "dialect.h"

/* Read the tables w[0..n) of a walk into p in turn (each one's readable
** keys, then their changes, through wire_page_walk) until p is full, on c
** as it stands. 0, or -1 with *err. */
int pg_walk_rows(dialect_conn *c, const dialect_walk *w, int n, wire_page *p, char **err);

/* dialect.h's walk_key on c. */
int pg_walk_key(dialect_conn *c, const char *table, long long version, long long after,
                const char *hash, char **pk, char **err);

#endif
