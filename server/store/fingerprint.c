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
** Computed by a scan of the table in one read snapshot per request, not
** kept up incrementally: what it must catch (writes that bypassed syncd)
** would bypass any bookkeeping done at push time too.
*/
#include "fingerprint.h"
#include "fphash.h"
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

/* The scan's state. */
typedef struct fp_scan {
  const fp_request *r;
  long long count;               /* rows of the table */
  long long n_rows;              /* rows listed (rows mode) */
  unsigned long long *cnt, *sum; /* n_prefixes * 16^split buckets */
  sqlite3_str *rows;             /* rows mode: the "rows" entries */
} fp_scan;

static int each_row(void *arg, const char *pk, const char *row, char **err) {
  fp_scan *sc = arg;
  const fp_request *r = sc->r;
  uint64_t ks, rs;
  if (fphash_object(pk, (int)strlen(pk), 0, 0, &ks) ||
      fphash_object(row, (int)strlen(row), (const char *const *)r->columns, r->n_columns, &rs)) {
    *err = wire_errf("out of memory");
    return -1;
  }
  uint64_t kh = fphash_key(ks);
  sc->count++;
  unsigned long long top = r->depth ? kh >> (64 - 4 * r->depth) : 0;
  unsigned long long *hit = bsearch(&top, r->prefixes, (size_t)r->n_prefixes, sizeof top, cmp_u64);
  if (!hit) return 0;
  if (r->rows) {
    if (++sc->n_rows > FP_MAX_ROWS) return 0;
    if (sc->n_rows > 1) sqlite3_str_appendchar(sc->rows, 1, ',');
    sqlite3_str_appendf(sc->rows, "{\"pk\":%s,\"row\":%s}", pk, row);
    return 0;
  }
  int shift = 64 - 4 * (r->depth + r->split);
  unsigned long long b = r->split ? (kh >> shift) & ((1ULL << (4 * r->split)) - 1) : 0;
  size_t i = (size_t)(hit - r->prefixes) << (4 * r->split) | b;
  sc->cnt[i]++;
  sc->sum[i] += fphash_row(kh, rs);
  return 0;
}

static void append_answer(sqlite3_str *out, const fp_scan *sc, const char *cursor,
                          const char *table) {
  const fp_request *r = sc->r;
  sqlite3_str_appendall(out, "{\"cursor\":");
  value_append_string(out, cursor, -1);
  sqlite3_str_appendall(out, ",\"table\":");
  value_append_string(out, table, -1);
  sqlite3_str_appendf(out, ",\"count\":%lld,", sc->count);
  if (r->rows) {
    sqlite3_str_appendall(out, "\"rows\":[");
    sqlite3_str_appendall(out, sqlite3_str_value(sc->rows) ? sqlite3_str_value(sc->rows) : "");
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
      sqlite3_str_appendf(out, "%s[%llu,\"%016llx\"]", b ? "," : "", sc->cnt[i], sc->sum[i]);
    }
    sqlite3_str_appendall(out, "]}");
  }
  sqlite3_str_appendall(out, "]}");
}

/* store_fingerprint on c, the schema lock held. */
static int fingerprint(store *s, dialect_conn *c, const fp_request *r, char **json, char **bad,
                       char **err) {
  const catalog_table *t = catalog_table_find(&s->cat, r->table);
  if (!t) {
    *bad = sqlite3_mprintf("no such table: %s", r->table);
    return STORE_OK;
  }
  fp_scan sc = {r, 0, 0, 0, 0, 0};
  size_t nb = r->rows ? 0 : (size_t)r->n_prefixes << (4 * r->split);
  if (nb) {
    sc.cnt = sqlite3_malloc64(sizeof *sc.cnt * nb);
    sc.sum = sqlite3_malloc64(sizeof *sc.sum * nb);
    if (sc.cnt) memset(sc.cnt, 0, sizeof *sc.cnt * nb);
    if (sc.sum) memset(sc.sum, 0, sizeof *sc.sum * nb);
  } else {
    sc.rows = sqlite3_str_new(0);
  }
  if ((nb && (!sc.cnt || !sc.sum)) || (!nb && !sc.rows)) {
    sqlite3_free(sc.cnt);
    sqlite3_free(sc.sum);
    sqlite3_free(sqlite3_str_finish(sc.rows));
    *err = wire_errf("out of memory");
    return STORE_ERROR;
  }
  int rc = STORE_ERROR;
  long long head = 0;
  if (!(s->d->snapshot(c, 0, err) || s->d->head(c, &head, err) ||
        s->d->scan(c, t, each_row, &sc, err) || s->d->snapshot(c, 1, err)))
    rc = STORE_OK;
  if (rc == STORE_OK && sc.n_rows > FP_MAX_ROWS) {
    *bad = sqlite3_mprintf("more than %d rows under these prefixes: ask for buckets", FP_MAX_ROWS);
  } else if (rc == STORE_OK) {
    char *cursor = wire_cursor(s->db_id, head);
    sqlite3_str *out = sqlite3_str_new(0);
    if (cursor) append_answer(out, &sc, cursor, t->name);
    *json = sqlite3_str_finish(out);
    sqlite3_free(cursor);
    if (!cursor || !*json || (sc.rows && sqlite3_str_errcode(sc.rows) != SQLITE_OK)) {
      sqlite3_free(*json);
      *json = 0;
      *err = wire_errf("out of memory");
      rc = STORE_ERROR;
    }
  }
  sqlite3_free(sc.cnt);
  sqlite3_free(sc.sum);
  sqlite3_free(sqlite3_str_finish(sc.rows));
  return rc;
}

int store_fingerprint(store *s, const fp_request *r, char **json, char **bad, char **err) {
  *json = *bad = 0;
  dialect_conn *c = store_schema_enter(s, 1, err);
  if (!c) return STORE_ERROR;
  int rc = fingerprint(s, c, r, json, bad, err);
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
