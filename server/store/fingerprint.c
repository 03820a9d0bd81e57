/*
** fingerprint.c: POST /verify (docs/PROTOCOL.md, "POST /verify").
**
** Each row of a synced table has a key hash and a row hash (common/fphash.h)
** computed from the exact wire values the dialect prints, so SQLite and
** PostgreSQL storage agree. A request names hash prefixes (the top hex
** digits of key hashes, all of one length) and either splits each into
** 16^split buckets -- a count and the sum of the row hashes of each -- or
** asks for the rows themselves. The client compares the buckets with its
** own, splits the ones that differ further, and asks for the rows of the
** small ones: only what differs crosses the wire. The answer carries the
** head cursor of the snapshot it was computed in, so the client compares
** only at the cursor it has.
**
** store_cursor_reset tells a pull's 410 for a server that went back in
** time (another database, or a head below the cursor) from one for a
** cursor below the compaction horizon.
**
** Answered from the table's fingerprint cache (fp_cache.c), kept up to
** date from keys recorded by triggers that every writer fires, syncd or
** not; by a scan of the table in one read snapshot when the request names
** fewer columns than the table has (or with --verify-scan). Under --rules,
** by a scan of the rows the user may read (the read rule in its query):
** what that user's client holds, once caught up.
*/
#include "fingerprint.h"
#include "jscan.h"
#include "store_impl.h"
#include "value.h"

#include <stdlib.h>
#include <string.h>

void fp_request_free(fp_request *r) {
  sqlite3_free(r->client_id);
  sqlite3_free(r->table);
  for (int i = 0; i < r->n_columns; i++)
    sqlite3_free(r->columns[i]);
  sqlite3_free(r->columns);
  sqlite3_free(r->prefixes);
  memset(r, 0, sizeof *r);
}

static int is_type(jspan v, const char *type) {
  return strcmp(jscan_type(v), type) == 0;
}

static int hexdigit(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int cmp_u64(const void *a, const void *b) {
  unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
  return x < y ? -1 : x > y;
}

static char *parse_prefixes(jspan arr, fp_request *r) {
  const char *p = arr.z, *e = arr.z + arr.n;
  jspan v;
  r->depth = -1;
  r->prefixes = sqlite3_malloc64(sizeof *r->prefixes * FP_MAX_PREFIXES);
  if (!r->prefixes) return sqlite3_mprintf("out of memory");
  while (jscan_element(&p, e, &v)) {
    if (r->n_prefixes == FP_MAX_PREFIXES)
      return sqlite3_mprintf("prefixes: at most %d", FP_MAX_PREFIXES);
    int d = v.n - 2;
    if (!is_type(v, "text") || d > 16 || (r->depth >= 0 && d != r->depth))
      return sqlite3_mprintf("prefixes must be strings of 0 to 16 lowercase hex digits, all "
                             "of one length");
    unsigned long long x = 0;
    for (int i = 0; i < d; i++) {
      int h = hexdigit(v.z[1 + i]);
      if (h < 0)
        return sqlite3_mprintf("prefixes must be strings of 0 to 16 lowercase hex digits, all "
                               "of one length");
      x = x << 4 | (unsigned)h;
    }
    r->depth = d;
    r->prefixes[r->n_prefixes++] = x;
  }
  if (!r->n_prefixes) return sqlite3_mprintf("prefixes must not be empty");
  qsort(r->prefixes, (size_t)r->n_prefixes, sizeof *r->prefixes, cmp_u64);
  return 0;
}

char *fp_request_parse(const char *body, size_t n, fp_request *r) {
  memset(r, 0, sizeof *r);
  const char *e = body + n;
  const char *z = jscan_ws(body, e);
  if (!jscan_utf8_valid((const unsigned char *)body, n) || !jscan_document(body, e) || *z != '{')
    return sqlite3_mprintf("body must be a JSON object");
  static const char *const names[] = {"client_id", "table", "columns", "prefixes", "split", "rows"};
  jspan f[6];
  jscan_fields((jspan){z, (int)(jscan_skip(z, e) - z)}, names, 6, f);
  int nul = 0;
  if (!is_type(f[0], "text") || f[0].n < 3 || f[0].n > 258)
    return sqlite3_mprintf("client_id must be a string of 1 to 256 bytes");
  if (!is_type(f[1], "text")) return sqlite3_mprintf("table must be a string");
  r->client_id = jscan_text(f[0], &nul);
  r->table = jscan_text(f[1], &nul);
  if (!r->client_id || !r->table) return sqlite3_mprintf("out of memory");
  if (f[2].z) {
    if (!is_type(f[2], "array")) return sqlite3_mprintf("columns must be an array of strings");
    const char *p = f[2].z;
    jspan v;
    while (jscan_element(&p, f[2].z + f[2].n, &v)) {
      if (!is_type(v, "text")) return sqlite3_mprintf("columns must be an array of strings");
      if (r->n_columns % 16 == 0) {
        char **m = sqlite3_realloc64(r->columns, sizeof *m * (size_t)(r->n_columns + 16));
        if (!m) return sqlite3_mprintf("out of memory");
        r->columns = m;
      }
      /* the name as written in a row's JSON, escapes and all */
      char *c = sqlite3_mprintf("%.*s", v.n - 2, v.z + 1);
      if (!c) return sqlite3_mprintf("out of memory");
      r->columns[r->n_columns++] = c;
    }
  }
  if (f[3].z) {
    if (!is_type(f[3], "array")) return sqlite3_mprintf("prefixes must be an array");
    char *msg = parse_prefixes(f[3], r);
    if (msg) return msg;
  } else {
    r->prefixes = sqlite3_malloc64(sizeof *r->prefixes);
    if (!r->prefixes) return sqlite3_mprintf("out of memory");
    r->prefixes[0] = 0;
    r->n_prefixes = 1;
  }
  sqlite3_int64 split = 0;
  if (f[4].z && (!jscan_int64(f[4], &split) || split < 0 || split > FP_MAX_SPLIT))
    return sqlite3_mprintf("split must be an integer from 0 to %d", FP_MAX_SPLIT);
  if (r->depth + split > 16) return sqlite3_mprintf("a prefix and its split exceed 16 digits");
  r->split = (int)split;
  if (f[5].z && !is_type(f[5], "true") && !is_type(f[5], "false"))
    return sqlite3_mprintf("rows must be true or false");
  r->rows = f[5].z && is_type(f[5], "true");
  return 0;
}

static int each_row(void *arg, const char *pk, const char *row, char **err) {
  fp_answer *a = arg;
  uint64_t kh, h;
  if (fp_answer_hash(a->r, pk, row, &kh, &h)) {
    *err = wire_errf("out of memory");
    return -1;
  }
  a->count++;
  if (a->r->rows)
    fp_answer_row(a, kh, pk, row);
  else
    fp_answer_add(a, kh, 1, h);
  return 0;
}

static void append_answer(sqlite3_str *out, const fp_answer *a, const char *cursor,
                          const char *table) {
  const fp_request *r = a->r;
  sqlite3_str_appendall(out, "{\"cursor\":");
  value_append_string(out, cursor, -1);
  sqlite3_str_appendall(out, ",\"table\":");
  value_append_string(out, table, -1);
  sqlite3_str_appendf(out, ",\"count\":%lld,", a->count);
  if (r->rows) {
    sqlite3_str_appendall(out, "\"rows\":[");
    sqlite3_str_appendall(out, sqlite3_str_value(a->rows) ? sqlite3_str_value(a->rows) : "");
    sqlite3_str_appendall(out, "]}");
    return;
  }
  sqlite3_str_appendall(out, "\"ranges\":[");
  size_t nb = (size_t)1 << (4 * r->split);
  for (int p = 0; p < r->n_prefixes; p++) {
    sqlite3_str_appendf(out, "%s{\"prefix\":\"", p ? "," : "");
    if (r->depth) sqlite3_str_appendf(out, "%0*llx", r->depth, r->prefixes[p]);
    sqlite3_str_appendall(out, "\",\"buckets\":[");
    for (size_t b = 0; b < nb; b++) {
      size_t i = (size_t)p * nb + b;
      sqlite3_str_appendf(out, "%s[%llu,\"%016llx\"]", b ? "," : "", a->cnt[i], a->sum[i]);
    }
    sqlite3_str_appendall(out, "]}");
  }
  sqlite3_str_appendall(out, "]}");
}

/* The answer by a scan of t in one read snapshot (the cache's fallback),
** under rules (rt) of the rows u may read, the rule in the scan's query. */
static int scan(store *s, dialect_conn *c, const catalog_table *t, const rules_table *rt,
                const store_user *u, fp_answer *a, long long *head, char **err) {
  char *vals[RULES_MAX_PARAMS + 1];
  int n = rt ? rt->read_params.n : 0;
  if (rt && rules_values(&rt->read_params, u ? u->sub : 0, u ? u->claims : 0, vals))
    return *err = wire_errf("out of memory"), -1;
  int rc = s->d->snapshot(c, 0, err) || s->d->head(c, head, err) ||
                   s->d->scan(c, t, rt ? rt->read : 0, vals, n, each_row, a, err) ||
                   s->d->snapshot(c, 1, err)
               ? -1
               : 0;
  for (int i = 0; i < n; i++)
    sqlite3_free(vals[i]);
  return rc;
}

/* store_fingerprint on c, the schema lock held. */
static int fingerprint(store *s, dialect_conn *c, const store_user *u, const fp_request *r,
                       char **json, char **bad, int *unknown, char **err) {
  const catalog_table *t = catalog_table_find(&s->cat, r->table);
  /* under rules a table without one is not synced at all */
  const rules_table *rt = t && s->rules ? rules_find(s->rules, t) : 0;
  if (!t || (s->rules && !rt)) {
    *bad = sqlite3_mprintf("no such table: %s", r->table);
    *unknown = *bad != 0; /* out of memory: a 500 */
    return STORE_OK;
  }
  fp_answer a;
  if (fp_answer_init(&a, r)) {
    fp_answer_free(&a);
    *err = wire_errf("out of memory");
    return STORE_ERROR;
  }
  long long head = 0;
  /* the cache holds whole tables: a rule's rows are scanned */
  int rc = (!rt && fp_cache_serves(s, t, r) ? fp_cache_answer(s, c, t, &a, &head, err)
                                            : scan(s, c, t, rt, u, &a, &head, err))
               ? STORE_ERROR
               : STORE_OK;
  if (rc == STORE_OK && a.n_rows > FP_MAX_ROWS) {
    *bad = sqlite3_mprintf("more than %d rows under these prefixes: ask for buckets", FP_MAX_ROWS);
  } else if (rc == STORE_OK) {
    char *cursor = wire_cursor(s->db_id, head);
    sqlite3_str *out = sqlite3_str_new(0);
    if (cursor) append_answer(out, &a, cursor, t->name);
    *json = sqlite3_str_finish(out);
    sqlite3_free(cursor);
    if (!cursor || !*json || (a.rows && sqlite3_str_errcode(a.rows) != SQLITE_OK)) {
      sqlite3_free(*json);
      *json = 0;
      *err = wire_errf("out of memory");
      rc = STORE_ERROR;
    }
  }
  fp_answer_free(&a);
  return rc;
}

int store_fingerprint(store *s, const store_user *u, const fp_request *r, char **json, char **bad,
                      int *unknown, char **err) {
  *json = *bad = 0;
  *unknown = 0;
  dialect_conn *c = store_schema_enter(s, 1, err);
  if (!c) return STORE_ERROR;
  int rc = fingerprint(s, c, u, r, json, bad, unknown, err);
  store_schema_leave(s, c);
  return rc;
}

int store_cursor_reset(store *s, const char *cursor) {
  long long version = 0, snap = 0, head = 0;
  int rc = wire_cursor_parse(cursor, s->db_id, &version, &snap);
  if (rc == STORE_EXPIRED) return 1;
  if (rc != STORE_OK) return 0;
  char *err = 0;
  dialect_conn *c = pool_get(&s->pool, &err);
  int ok = c && !s->d->head(c, &head, &err);
  if (c) pool_put(&s->pool, c);
  sqlite3_free(err);
  return ok && (version > head || snap > head);
}
