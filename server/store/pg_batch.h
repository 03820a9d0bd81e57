/*
** pg_batch.h: the PostgreSQL dialect's write_batch (dialect.h), in
** pg_batch.c, for dialect_pg.c.
*/
#ifndef SYNCD_PG_BATCH_H
#define SYNCD_PG_BATCH_H

#include "pg_conn.h"

dialect_result pg_write_batch(dialect_conn *c, dialect_write *w, int n, char **err);

#endif
