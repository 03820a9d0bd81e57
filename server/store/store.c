/*
** store.c: opening and closing a store (store.h) over a dialect: the
** schema, the catalog of synced tables, the database id, the rows the
** schema inserted logged as changes, and the pool. push.c and pull.c serve
** the requests; schema.c reads the catalog again when the schema changes.
*/
#include "fp_cache.h"
#include "store_impl.h"

#include <string.h>

typedef struct backfill {
  const dialect *d;
  dialect_conn *c;
  const char *table;
} backfill;

/* Log one row the schema inserted (a dialect's scan calls it). */
static int backfill_row(void *arg, const char *pk, const char *row, char **err) {
  backfill *b = arg;
  return b->d->log_change(b->c, b->table, pk, row, 0, 0, err);
}

/* In one transaction, so a failed start leaves nothing behind: the schema
** and the internal tables, the catalog, the db id, and on first creation
** the rows the schema inserted (they must reach clients' initial sync). */
static int setup(store *s, dialect_conn *c, const char *schema_sql, char **err) {
  const dialect *d = s->d;
  int found = 0;
  if (d->begin(c, DIALECT_SETUP, err) || d->setup(c, schema_sql, err) ||
      fp_cache_setup(s, c, err) || d->load_catalog(c, &s->cat, err) ||
      d->schema_stamp(c, &s->stamp, err) ||
      d->read_db_id(c, s->db_id, sizeof s->db_id, &found, err))
    return -1;
  if (!found) {
    wire_new_db_id(s->db_id);
    if (d->write_db_id(c, s->db_id, err)) return -1;
    for (int i = 0; i < s->cat.n_tables; i++) {
      backfill b = {d, c, s->cat.tables[i].name};
      if (d->scan(c, &s->cat.tables[i], 0, 0, 0, backfill_row, &b, err)) return -1;
    }
  }
  /* the rules are not loaded yet: a deleted key's former values outlive
  ** the tombstones this purges, which only costs their room */
  if (s->max_tombstones > 0 && d->compact(c, s->max_tombstones, 0, 0, err)) return -1;
  return d->commit(c, err);
}

static store *store_open(const dialect *d, const char *target, const store_config *cfg,
                         char **err) {
  *err = 0;
  store *s = sqlite3_malloc64(sizeof *s);
  if (!s) return *err = wire_errf("out of memory"), (store *)0;
  memset(s, 0, sizeof *s);
  s->d = d;
  s->cat.fold_case = d->fold_case;
  s->max_tombstones = cfg->max_tombstones;
  s->verify_scan = cfg->verify_scan;
  /* a reload waits for the requests holding it to end; new ones queue
  ** behind it rather than starve it */
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&s->schema_lock, &attr);
  pthread_rwlockattr_destroy(&attr);
  if (d->open(target, cfg, &s->db, err)) {
    pthread_rwlock_destroy(&s->schema_lock);
    sqlite3_free(s);
    return 0;
  }
  if (pool_init(&s->pool, d, s->db)) {
    *err = wire_errf("out of memory");
    store_close(s);
    return 0;
  }
  dialect_conn *c = pool_get(&s->pool, err);
  int bad = !c || setup(s, c, cfg->schema_sql, err);
  if (c) pool_put(&s->pool, c);
  if (!bad && cfg->on_change && d->listen)
    bad = d->listen(s->db, cfg->on_change, cfg->on_change_arg, err);
  if (bad) {
    if (!*err) *err = wire_errf("out of memory");
    store_close(s);
    return 0;
  }
  return s;
}

store *store_sqlite_open(const char *path, const store_config *cfg, char **err) {
  return store_open(&dialect_sqlite, path, cfg, err);
}

store *store_pg_open(const char *url, const store_config *cfg, char **err) {
  return store_open(&dialect_pg, url, cfg, err);
}

/* PostgreSQL folds an unquoted name's A-Z to a-z (and, in UTF-8, nothing
** else): a name with an upper-case letter was created quoted, and a client
** writing it as SQLite users do may send it in another case. */
static int has_upper(const char *z) {
  for (; *z; z++)
    if (*z >= 'A' && *z <= 'Z') return 1;
  return 0;
}

char *store_name_warning(const store *s) {
  if (s->cat.fold_case) return 0;
  sqlite3_str *out = sqlite3_str_new(0);
  int n = 0;
  for (int i = 0; i < s->cat.n_tables; i++) {
    const catalog_table *t = &s->cat.tables[i];
    int cols = 0;
    for (int c = 0; c < t->n_cols; c++)
      cols += has_upper(t->cols[c].name);
    if (!cols && !has_upper(t->name)) continue;
    sqlite3_str_appendf(out, "%stable %s", n++ ? "; " : "", t->name);
    for (int c = 0, k = 0; c < t->n_cols; c++) {
      if (has_upper(t->cols[c].name))
        sqlite3_str_appendf(out, "%s%s", k++ ? ", " : " (columns ", t->cols[c].name);
    }
    if (cols) sqlite3_str_appendchar(out, 1, ')');
  }
  if (n == 0) return sqlite3_free(sqlite3_str_finish(out)), (char *)0;
  char *names = sqlite3_str_finish(out);
  char *msg =
      names
          ? sqlite3_mprintf("these names have upper-case letters (they were created quoted): %s. "
                            "PostgreSQL compares names exactly, so clients must send them exactly "
                            "as written here (an unquoted name in the schema is stored in lower "
                            "case; quote it, as in CREATE TABLE \"Todos\"(\"Id\" ...), to keep "
                            "its case)",
                            names)
          : 0;
  sqlite3_free(names);
  return msg;
}

/* Whether the word z[0..n) has both lower- and upper-case letters: a name
** written that way means its case (an all-caps word is likely a keyword). */
static int mixed_case(const char *z, int n) {
  int lower = 0, upper = 0;
  for (int i = 0; i < n; i++)
    lower |= z[i] >= 'a' && z[i] <= 'z', upper |= z[i] >= 'A' && z[i] <= 'Z';
  return lower && upper;
}

/* What a synced table or column is named as the word z[0..n) folded to
** lower case, as "table T" or "column T.C" (NULL: none). */
static char *folded_match(const catalog *cat, const char *z, int n) {
  for (int i = 0; i < cat->n_tables; i++) {
    const catalog_table *t = &cat->tables[i];
    if ((int)strlen(t->name) == n && sqlite3_strnicmp(t->name, z, n) == 0 && !has_upper(t->name))
      return sqlite3_mprintf("table %s", t->name);
    for (int c = 0; c < t->n_cols; c++) {
      const char *col = t->cols[c].name;
      if ((int)strlen(col) == n && sqlite3_strnicmp(col, z, n) == 0 && !has_upper(col))
        return sqlite3_mprintf("column %s.%s", t->name, col);
    }
  }
  return 0;
}

/* Past the end of a string, quoted identifier, comment or dollar-quoted
** body starting at z (z itself when none starts there). */
static const char *skip_quoted(const char *z) {
  if (*z == '\'' || *z == '"') {
    char q = *z++;
    while (*z && !(*z == q && z[1] != q))
      z += *z == q ? 2 : 1;
    return *z ? z + 1 : z;
  }
  if (z[0] == '-' && z[1] == '-') return z + strcspn(z, "\n");
  if (z[0] == '/' && z[1] == '*') {
    const char *e = strstr(z + 2, "*/");
    return e ? e + 2 : z + strlen(z);
  }
  if (*z == '$') {
    size_t n = 1 + strspn(z + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789");
    if (z[n] != '$') return z;
    char tag[72];
    if (n + 1 >= sizeof tag) return z;
    memcpy(tag, z, n + 1);
    tag[n + 1] = 0;
    const char *e = strstr(z + n + 1, tag);
    return e ? e + n + 1 : z + strlen(z);
  }
  return z;
}

char *store_folded_warning(const store *s, const char *schema_sql) {
  if (s->cat.fold_case || !schema_sql) return 0;
  sqlite3_str *out = sqlite3_str_new(0);
  int n = 0;
  for (const char *z = schema_sql; *z;) {
    const char *after = skip_quoted(z);
    if (after != z) {
      z = after;
      continue;
    }
    if (!((*z >= 'a' && *z <= 'z') || (*z >= 'A' && *z <= 'Z') || *z == '_')) {
      z++;
      continue;
    }
    int len = (int)strspn(z, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789$");
    char *what = mixed_case(z, len) ? folded_match(&s->cat, z, len) : 0;
    /* each word once: the list holds it as " Word (" */
    char *key = what ? sqlite3_mprintf(" %.*s (", len, z) : 0;
    const char *sofar = sqlite3_str_value(out);
    if (key && !(sofar && strstr(sofar, key)))
      sqlite3_str_appendf(out, "%s%s%s)", n++ ? "," : "", key, what);
    sqlite3_free(key);
    sqlite3_free(what);
    z += len;
  }
  char *names = sqlite3_str_finish(out);
  char *msg =
      n && names ? sqlite3_mprintf("the schema writes these names unquoted in mixed case, which "
                                   "PostgreSQL keeps in lower case:%s. Clients must send the "
                                   "lower-case names; to keep the case as written, quote the names "
                                   "in the schema",
                                   names)
                 : 0;
  sqlite3_free(names);
  return msg;
}

void store_close(store *s) {
  if (s->pool.idle) pool_close(&s->pool);
  rules_free(s->rules);
  sqlite3_free(s->rules_json);
  catalog_free(&s->cat);
  sqlite3_free(s->stamp);
  pthread_rwlock_destroy(&s->schema_lock);
  s->d->close(s->db);
  sqlite3_free(s);
}
