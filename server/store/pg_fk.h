/*
** pg_fk.h: a push batch's deferred foreign keys checked at its end on
** PostgreSQL, and the rows it wrote that refer to rows that do not exist
** found (pg_fk.c): dialect_pg.c's fk_dangling (dialect.h).
*/
#ifndef SYNCD_PG_FK_H
#define SYNCD_PG_FK_H

#include "pg_conn.h"

/* dialect.h's fk_dangling. */
int pg_fk_dangling(dialect_conn *c, dialect_written *w, int n, char **err);

#endif
