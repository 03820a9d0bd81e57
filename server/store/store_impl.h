/*
** store_impl.h: the store as store.c, push.c and pull.c share it (not
** seen by server/http/): a dialect and its database, the pool of its
** connections, the catalog of synced tables and the database's identity.
**
** The catalog (and the rules compiled against it) follow the database's
** schema while syncd runs (schema.c): every request that reads them holds
** the schema lock shared (store_schema_enter .. store_schema_leave), and a
** reload, when the schema changed, swaps them holding it exclusively.
*/
#ifndef SYNCD_STORE_IMPL_H
#define SYNCD_STORE_IMPL_H

#include <pthread.h>

#include "catalog.h"
#include "dialect.h"
#include "pool.h"
#include "rules.h"

/* Outcomes of a recorded mutation beyond this many per client are purged,
** when the client's last id crosses a multiple of STORE_PRUNE_EVERY. A
** prune costs a walk of STORE_KEEP_OUTCOMES entries to find its cutoff
** besides the rows it deletes: at every 1000, a drain at batch 1000 paid
** that walk per batch (on PostgreSQL 2 to 5 ms of a batch's 22, a seq scan
** of the client's outcomes where they are most of the table), at every
** 10000 once per ten, for at most 10000 + a batch more rows kept. */
#define STORE_KEEP_OUTCOMES 10000
#define STORE_PRUNE_EVERY 10000

/* Tries of a batch that keeps losing conflicts with concurrent pushes. */
#define STORE_PUSH_TRIES 6

struct store {
  const dialect *d;
  dialect_db *db;
  pool pool;
  catalog cat; /* under schema_lock: read shared, replaced exclusive */
  char db_id[16];
  long long max_tombstones; /* <= 0: never purge */
  rules *rules;             /* --rules; NULL: every table shared (like cat) */
  char *rules_json;         /* the rules file's text, compiled again at a reload */
  int has_rules;            /* set once at startup: a reload replaces rules, never
                            ** turns them on or off, so this is read without the
                            ** schema lock (rules itself is not) */
  int verify_scan;          /* POST /verify by a scan, never the cache (fp_cache.c) */
  pthread_rwlock_t schema_lock;
  char *stamp; /* the dialect's schema_stamp when cat was read */
};

/* A connection for a request that reads the catalog or the rules, with
** the schema lock held shared until store_schema_leave; when check, the
** catalog is read again first if the database's schema changed since
** (schema.c). NULL with *err. */
dialect_conn *store_schema_enter(store *s, int check, char **err);
void store_schema_leave(store *s, dialect_conn *c);

/* Inside a request (shared lock held, c in its transaction): *stale 1 when
** the schema changed since the catalog was read. 0, or -1 with *err. */
int store_schema_stale(store *s, dialect_conn *c, int *stale, char **err);

/* Read the catalog again (holding the schema lock exclusively; no request
** may hold it shared from this thread) when the schema changed: 1 when it
** was, else 0. A failure is logged and the old catalog kept. */
int store_schema_reload(store *s);

#endif
