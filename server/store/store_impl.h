/*
** store_impl.h: the store as store.c, push.c and pull.c share it (not
** seen by server/http/): a dialect and its database, the pool of its
** connections, the catalog of synced tables and the database's identity.
*/
#ifndef SYNCD_STORE_IMPL_H
#define SYNCD_STORE_IMPL_H

#include "catalog.h"
#include "dialect.h"
#include "pool.h"
#include "rules.h"

/* Outcomes of a recorded mutation beyond this many per client are purged,
** when the client's last id crosses a multiple of STORE_PRUNE_EVERY. */
#define STORE_KEEP_OUTCOMES 10000
#define STORE_PRUNE_EVERY 1000

/* Tries of a batch that keeps losing conflicts with concurrent pushes. */
#define STORE_PUSH_TRIES 6

struct store {
  const dialect *d;
  dialect_db *db;
  pool pool;
  catalog cat; /* fixed after open */
  char db_id[16];
  long long max_tombstones; /* <= 0: never purge */
  rules *rules;             /* --rules; NULL: every table shared (fixed after startup) */
};

#endif
