/*
** pool.h: the connections of one store, whatever the dialect: at most
** d->pool_max handed out at once, idle ones kept for the next request.
*/
#ifndef SYNCD_POOL_H
#define SYNCD_POOL_H

#include <pthread.h>

#include "dialect.h"

typedef struct pool {
  const dialect *d;
  dialect_db *db;
  pthread_mutex_t mu; /* guards the fields below */
  dialect_conn **idle;
  int n_idle;
  int n_busy;           /* connections handed out: at most d->pool_max */
  pthread_cond_t freed; /* signalled when one comes back */
} pool;

/* 0, or -1 when out of memory. */
int pool_init(pool *p, const dialect *d, dialect_db *db);

/* A connection, opening one while fewer than pool_max are out, else
** waiting for one to come back; NULL with *err when it cannot be opened. */
dialect_conn *pool_get(pool *p, char **err);

/* Give c back; what an error path left open is rolled back, and a
** connection that cannot serve again is closed. */
void pool_put(pool *p, dialect_conn *c);

/* Close the idle connections (none may be out) and free p's memory. */
void pool_close(pool *p);

#endif
