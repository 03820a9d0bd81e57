/*
** push_keys.c: the keys a mutation names, checked against its table
** (push_keys.h), for push.c and push_batch.c.
*/
#include "push_keys.h"

#include <string.h>

/* What check_keys gathers from the keys of pk, then of data. */
typedef struct key_scan {
  const catalog *cat;
  const catalog_table *t;
  int in_data;
  int seen_pk;
  dialect_cols *cols;
  int *used;
  const unsigned char *server; /* the rules' server-owned columns; NULL: none */
  int unknown;                 /* a key named no column of t */
  char *reason;
} key_scan;

static int key_seen(void *arg, const char *key) {
  key_scan *k = arg;
  const catalog_table *t = k->t;
  int c = catalog_column_find(k->cat, t, key);
  if (c < 0) {
    k->unknown = 1;
    k->reason = wire_errf("table %s has no column named %s", t->name, key);
    return k->reason ? DIALECT_REJECTED : DIALECT_FATAL;
  }
  if (!k->in_data && !catalog_is_pk(t, c)) {
    k->reason = wire_errf("pk: %s is not a primary key column of table %s", key, t->name);
    return k->reason ? DIALECT_REJECTED : DIALECT_FATAL;
  }
  if (!k->in_data) {
    k->seen_pk++;
    return DIALECT_OK;
  }
  if (k->server && k->server[c]) return DIALECT_OK; /* the server's value, whatever is sent */
  if (!k->used[c]) k->cols->data[k->cols->n_data++] = c;
  if (!k->used[c] && !catalog_is_pk(t, c)) k->cols->set[k->cols->n_set++] = c;
  k->used[c] = 1;
  return DIALECT_OK;
}

/* Check the keys of the mutation's pk and data objects against t: pk
** exactly the key columns, data only t's columns; fills cols. used: one
** zeroed int per column of t, for data's columns seen. *unknown: a key
** named no column of t. */
dialect_result check_keys(const catalog *cat, const catalog_table *t, const store_mutation *m,
                          dialect_cols *cols, int *used, const unsigned char *server, int *unknown,
                          char **reason) {
  key_scan k = {cat, t, 0, 0, cols, used, server, 0, 0};
  int result = jscan_object_keys(m->pk, key_seen, &k);
  k.in_data = 1;
  if (result == DIALECT_OK && m->data) result = jscan_object_keys(m->data, key_seen, &k);
  if (result != DIALECT_OK && result != DIALECT_REJECTED) result = DIALECT_FATAL;
  if (result == DIALECT_OK && k.seen_pk != t->n_pk) {
    k.reason = wire_errf("pk must hold exactly the primary key columns of table %s", t->name);
    result = k.reason ? DIALECT_REJECTED : DIALECT_FATAL;
  }
  *reason = k.reason;
  *unknown = k.unknown;
  return result;
}

/* The value of each column of t that the JSON object obj names (its first
** member naming it, as check_keys counts), into vals[0..t->n_cols); -1
** when out of memory. */
int column_values(const catalog *cat, const catalog_table *t, const char *obj, jspan *vals) {
  const char *e = obj + strlen(obj), *z = jscan_ws(obj, e);
  jspan key, val;
  memset(vals, 0, sizeof *vals * t->n_cols);
  while (jscan_member(&z, e, &key, &val)) {
    int nul = 0;
    char *name = jscan_text((jspan){key.z - 1, key.n + 2}, &nul);
    if (!name) return -1;
    int c = catalog_column_find(cat, t, name);
    sqlite3_free(name);
    if (c >= 0 && !vals[c].z) vals[c] = val;
  }
  return 0;
}
