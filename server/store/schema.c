/*
** schema.c: the catalog follows the database's schema while syncd runs
** (store_impl.h). The owner adds a table or a column with SQL, syncd
** running; every push and verify (and a pull asking for a table the
** catalog lacks) compares the dialect's schema stamp with the one the
** catalog was read at and, when it moved, reads the catalog again before
** going on: a push naming the new column is applied, and the rows it and
** later pushes send back carry it.
**
** A reload holds the schema lock exclusively: requests hold it shared from
** their start to their end, so none sees a catalog freed under it, and the
** rules (whose tables point into the catalog) are compiled again with it.
** A reload that fails keeps the old catalog and rules: a database error
** is tried again at the next request; rules that no longer compile (a
** column they name was dropped) are logged once per schema change, as
** syncd would refuse them at its next start.
*/
#include "store_impl.h"

#include <stdio.h>
#include <string.h>

/* Whether the database's stamp differs from the catalog's: *stale, and
** *now the stamp read (the caller's). */
static int stamp_moved(store *s, dialect_conn *c, int *stale, char **now, char **err) {
  *now = 0;
  if (s->d->schema_stamp(c, now, err)) return -1;
  *stale = !s->stamp || strcmp(*now, s->stamp) != 0;
  return 0;
}

int store_schema_stale(store *s, dialect_conn *c, int *stale, char **err) {
  char *now = 0;
  int rc = stamp_moved(s, c, stale, &now, err);
  sqlite3_free(now);
  return rc;
}

/* The catalog and rules read again on c, in one transaction: *fresh and
** *r (NULL: no rules); 0, or -1 with *err (nothing to keep). */
static int load(store *s, dialect_conn *c, catalog *fresh, rules **r, char **err) {
  const dialect *d = s->d;
  *r = 0;
  if (d->begin(c, DIALECT_SETUP, err) || d->load_catalog(c, fresh, err) || d->commit(c, err))
    return -1;
  if (s->rules_json && !(*r = rules_load(fresh, s->rules_json, d == &dialect_pg, err))) return -1;
  return 0;
}

int store_schema_reload(store *s) {
  pthread_rwlock_wrlock(&s->schema_lock);
  char *err = 0, *now = 0;
  dialect_conn *c = pool_get(&s->pool, &err);
  int stale = 0, read = 0;
  if (c && !stamp_moved(s, c, &stale, &now, &err) && stale) {
    catalog fresh = {0, 0, s->cat.fold_case};
    rules *r = 0;
    if (load(s, c, &fresh, &r, &err)) {
      /* load_catalog may have pointed the dialect at the fresh one */
      s->d->use_catalog(s->db, &s->cat);
      catalog_free(&fresh);
      int misfit = err && strncmp(err, "rules:", 6) == 0;
      fprintf(stderr,
              "syncd: the database's schema changed; %s, the tables and columns as they were "
              "before stay in use: %s\n",
              misfit ? "the rules no longer fit it (restart syncd with rules that do)"
                     : "reading it failed (tried again at the next request)",
              err ? err : "out of memory");
      /* rules that do not fit stay so until the schema changes again */
      if (misfit) sqlite3_free(s->stamp), s->stamp = now, now = 0;
    } else {
      catalog old = s->cat;
      rules *old_rules = s->rules;
      s->cat = fresh;
      s->rules = r;
      s->d->use_catalog(s->db, &s->cat);
      rules_free(old_rules);
      catalog_free(&old);
      sqlite3_free(s->stamp);
      s->stamp = now;
      now = 0;
      read = 1;
      fprintf(stderr, "syncd: the database's schema changed: %d synced tables now\n",
              s->cat.n_tables);
    }
  } else if (!c || err) {
    fprintf(stderr, "syncd: checking the database's schema failed: %s\n",
            err ? err : "out of memory");
  }
  sqlite3_free(now);
  sqlite3_free(err);
  if (c) pool_put(&s->pool, c);
  pthread_rwlock_unlock(&s->schema_lock);
  return read;
}

dialect_conn *store_schema_enter(store *s, int check, char **err) {
  /* a second pass follows a reload; a reload that failed leaves the stamp
  ** moved, and the request then goes on with the catalog kept */
  for (int pass = 0;; pass++) {
    pthread_rwlock_rdlock(&s->schema_lock);
    dialect_conn *c = pool_get(&s->pool, err);
    int stale = 0;
    if (!c || (check && pass < 1 && store_schema_stale(s, c, &stale, err))) {
      if (c) pool_put(&s->pool, c);
      pthread_rwlock_unlock(&s->schema_lock);
      return 0;
    }
    if (!stale) return c;
    pool_put(&s->pool, c);
    pthread_rwlock_unlock(&s->schema_lock);
    store_schema_reload(s);
  }
}

void store_schema_leave(store *s, dialect_conn *c) {
  pool_put(&s->pool, c);
  pthread_rwlock_unlock(&s->schema_lock);
}
