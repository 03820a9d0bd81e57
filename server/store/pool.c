/*
** pool.c: a bounded pool of dialect connections (pool.h). The number of
** connections stays bounded however many event streams wake at once; the
** dialect says how many and whether one can serve again.
*/
#include "pool.h"

#include <sqlite3.h>

int pool_init(pool *p, const dialect *d, dialect_db *db) {
  p->d = d;
  p->db = db;
  p->n_idle = p->n_busy = 0;
  p->idle = sqlite3_malloc64(sizeof *p->idle * d->pool_max);
  pthread_mutex_init(&p->mu, 0);
  pthread_cond_init(&p->freed, 0);
  return p->idle ? 0 : -1;
}

dialect_conn *pool_get(pool *p, char **err) {
  dialect_conn *c = 0;
  pthread_mutex_lock(&p->mu);
  while (p->n_idle == 0 && p->n_busy >= p->d->pool_max)
    pthread_cond_wait(&p->freed, &p->mu);
  if (p->n_idle > 0) c = p->idle[--p->n_idle];
  p->n_busy++;
  pthread_mutex_unlock(&p->mu);
  /* an idle connection was found reusable when it came back (pool_put) */
  if (!c && !(c = p->d->connect(p->db, err))) pool_put(p, 0);
  return c;
}

void pool_put(pool *p, dialect_conn *c) {
  if (c && !p->d->reusable(c)) {
    p->d->disconnect(c);
    c = 0;
  }
  pthread_mutex_lock(&p->mu);
  if (c) p->idle[p->n_idle++] = c;
  p->n_busy--;
  pthread_cond_signal(&p->freed);
  pthread_mutex_unlock(&p->mu);
}

void pool_close(pool *p) {
  for (int i = 0; i < p->n_idle; i++)
    p->d->disconnect(p->idle[i]);
  sqlite3_free(p->idle);
  p->idle = 0;
  p->n_idle = 0;
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->freed);
}
