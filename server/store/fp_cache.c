/*
** fp_cache.c: POST /verify answered without a scan (fp_cache.h).
**
** Per synced table the database keeps each row's key hash and row hash
** (_syncd_fp_rows) and, per bucket of the top FP_LEVEL hex digits of the
** key hash, the count and the sum of its rows' hashes (_syncd_fp_buckets).
** The first request for a table builds them by a scan and makes the
** table's triggers (fp_dialect.h), which from then on record in
** _syncd_fp_dirty every key any writer changes -- syncd's pushes and a
** person's sqlite3 shell or psql alike, which is what verify is there to
** catch. Each request then rehashes only the keys recorded (read as the
** rows stand in its snapshot, with common/fphash.c), adjusts their
** buckets, forgets the keys, and answers from the buckets: a whole-table
** answer reads 16^FP_LEVEL bucket rows, a narrower one the rows' hashes of
** its key-hash ranges (an index), a rows answer those rows by key. All of
** it happens in the snapshot whose head the answer reports, so the
** answer is the table's state at that cursor, as a scan's would be.
**
** A request with no key recorded runs in a read-only snapshot; one with
** keys takes the cache's write transaction (fp_dialect.h's begin). The
** cache is built again when its table's columns changed (the signature
** stored with it: an added column changes every row's hash without firing
** a trigger), when its triggers are gone (the table was dropped and made
** again) or after a TRUNCATE (PostgreSQL).
*/
#include "fp_cache.h"
#include "fp_dialect.h"
#include "fphash.h"
#include "store_impl.h"
#include "value.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FP_LEVEL 3
#define NB (1 << (4 * FP_LEVEL))
#define BATCH 5000
#define FLIP 0x8000000000000000ULL
/* Tries of a request that keeps losing conflicts with concurrent writers
** of the cache (PostgreSQL), or finds the cache changed under it. */
#define TRIES 6

static int cmp_u64(const void *a, const void *b) {
  unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
  return x < y ? -1 : x > y;
}

int fp_answer_init(fp_answer *a, const fp_request *r) {
  memset(a, 0, sizeof *a);
  a->r = r;
  if (r->rows) {
    a->rows = sqlite3_str_new(0);
    return sqlite3_str_errcode(a->rows) == SQLITE_OK ? 0 : -1;
  }
  size_t nb = (size_t)r->n_prefixes << (4 * r->split);
  a->cnt = sqlite3_malloc64(sizeof *a->cnt * nb);
  a->sum = sqlite3_malloc64(sizeof *a->sum * nb);
  if (!a->cnt || !a->sum) return -1;
  memset(a->cnt, 0, sizeof *a->cnt * nb);
  memset(a->sum, 0, sizeof *a->sum * nb);
  return 0;
}

void fp_answer_free(fp_answer *a) {
  sqlite3_free(a->cnt);
  sqlite3_free(a->sum);
  sqlite3_free(sqlite3_str_finish(a->rows));
  memset(a, 0, sizeof *a);
}

/* Back to nothing summed, for another try. */
static void answer_reset(fp_answer *a) {
  const fp_request *r = a->r;
  a->count = a->n_rows = 0;
  if (a->rows) sqlite3_str_reset(a->rows);
  size_t nb = r->rows ? 0 : (size_t)r->n_prefixes << (4 * r->split);
  if (nb) memset(a->cnt, 0, sizeof *a->cnt * nb), memset(a->sum, 0, sizeof *a->sum * nb);
}

int fp_answer_hash(const fp_request *r, const char *pk, const char *row, uint64_t *kh,
                   uint64_t *h) {
  uint64_t ks, rs;
  if (fphash_object(pk, (int)strlen(pk), 0, 0, &ks) ||
      fphash_object(row, (int)strlen(row), r ? (const char *const *)r->columns : 0,
                    r ? r->n_columns : 0, &rs))
    return -1;
  *kh = fphash_key(ks);
  *h = fphash_row(*kh, rs);
  return 0;
}

static unsigned long long *prefix_of(const fp_request *r, uint64_t kh) {
  unsigned long long top = r->depth ? kh >> (64 - 4 * r->depth) : 0;
  return bsearch(&top, r->prefixes, (size_t)r->n_prefixes, sizeof top, cmp_u64);
}

void fp_answer_add(fp_answer *a, uint64_t kh, unsigned long long n, uint64_t sum) {
  const fp_request *r = a->r;
  unsigned long long *hit = prefix_of(r, kh);
  if (!hit) return;
  int shift = 64 - 4 * (r->depth + r->split);
  unsigned long long b = r->split ? (kh >> shift) & ((1ULL << (4 * r->split)) - 1) : 0;
  size_t i = (size_t)(hit - r->prefixes) << (4 * r->split) | b;
  a->cnt[i] += n;
  a->sum[i] += sum;
}

void fp_answer_row(fp_answer *a, uint64_t kh, const char *pk, const char *row) {
  if (!prefix_of(a->r, kh) || ++a->n_rows > FP_MAX_ROWS) return;
  if (a->n_rows > 1) sqlite3_str_appendchar(a->rows, 1, ',');
  sqlite3_str_appendf(a->rows, "{\"pk\":%s,\"row\":%s}", pk, row);
}

static const fp_dialect *fp_of(const store *s) {
  return s->d == &dialect_pg ? &fp_pg : &fp_sqlite;
}

int fp_cache_serves(store *s, const catalog_table *t, const fp_request *r) {
  if (s->verify_scan || t->n_pk > fp_of(s)->max_keys) return 0;
  for (int c = 0; r->columns && c < t->n_cols; c++) {
    /* the request names columns as a row's JSON writes them */
    sqlite3_str *name = sqlite3_str_new(0);
    value_append_string(name, t->cols[c].name, -1);
    const char *z = sqlite3_str_value(name);
    int n = sqlite3_str_length(name) - 2, found = 0;
    for (int i = 0; z && !found && i < r->n_columns; i++)
      found = (int)strlen(r->columns[i]) == n && memcmp(r->columns[i], z + 1, (size_t)n) == 0;
    sqlite3_free(sqlite3_str_finish(name));
    if (!found) return 0;
  }
  return 1;
}

int fp_cache_setup(store *s, dialect_conn *c, char **err) {
  return fp_of(s)->setup(s->d->native(c), err);
}

/* One request's work on the cache of t. */
typedef struct cache {
  store *s;
  dialect_conn *c;
  const fp_dialect *fd;
  void *h; /* c's native handle */
  const catalog_table *t;
  long long *n; /* the NB buckets' counts and sums, as read and adjusted */
  uint64_t *sum;
  unsigned char *moved; /* buckets to write back */
  sqlite3_str *batch;   /* a JSON array of rows or buckets to write */
  int n_batch;
  struct drained *drained; /* the keys read from _syncd_fp_dirty, not yet applied */
  int n_drained;
} cache;

static long long num(const char *z) {
  return z ? strtoll(z, 0, 10) : 0;
}

static int query(cache *k, const char *sql, int n, const char *const *p,
                 int (*each)(void *, const char *const *, char **), void *arg, char **err) {
  return k->fd->query(k->h, sql, n, p, each, arg, err);
}

static int oom(char **err) {
  *err = wire_errf("out of memory");
  return -1;
}

/* What the cache of t was built for: its columns (names, types, keys). */
static char *signature(const catalog_table *t) {
  sqlite3_str *out = sqlite3_str_new(0);
  sqlite3_str_appendall(out, "fp1");
  for (int i = 0; i < t->n_cols; i++) {
    const catalog_col *col = &t->cols[i];
    sqlite3_str_appendchar(out, 1, ' ');
    value_append_string(out, col->name, -1);
    sqlite3_str_appendf(out, ":%s:%s:%d:%d", col->type ? col->type : "", col->decl ? col->decl : "",
                        col->kind, col->pk_pos);
  }
  return sqlite3_str_finish(out);
}

typedef struct state {
  const char *sig;
  int built, dirty;
} state;

static int state_row(void *arg, const char *const *cols, char **err) {
  (void)err;
  state *st = arg;
  st->built = cols[0] && strcmp(cols[0], st->sig) == 0;
  st->dirty = cols[1] && (cols[1][0] == '1' || cols[1][0] == 't');
  return 0;
}

/* Whether t's cache is built for its columns with its triggers in place
** (*built), and whether keys are recorded (*dirty). */
static int read_state(cache *k, const char *sig, int *built, int *dirty, char **err) {
  state st = {sig, 0, 0};
  const char *p[1] = {k->t->name};
  int watched = 0;
  if (query(k,
            "SELECT sig, EXISTS(SELECT 1 FROM _syncd_fp_dirty WHERE tbl = $1)"
            " FROM _syncd_fp_tables WHERE tbl = $1",
            1, p, state_row, &st, err) ||
      (st.built && k->fd->watch(k->h, k->t, 0, &watched, err)))
    return -1;
  *built = st.built && watched;
  *dirty = st.dirty;
  return 0;
}

static int bucket_row(void *arg, const char *const *cols, char **err) {
  cache *k = arg;
  long long b = num(cols[0]);
  if (b < 0 || b >= NB) return *err = wire_errf("_syncd_fp_buckets: bucket %lld", b), -1;
  k->n[b] = num(cols[1]);
  k->sum[b] = (uint64_t)num(cols[2]);
  return 0;
}

static int load_buckets(cache *k, char **err) {
  const char *p[1] = {k->t->name};
  return query(k, "SELECT b, n, s FROM _syncd_fp_buckets WHERE tbl = $1", 1, p, bucket_row, k, err);
}

/* Write the batch with sql ($1 the table, $2 the batch). */
static int flush(cache *k, const char *sql, char **err) {
  if (!k->n_batch) return 0;
  sqlite3_str_appendchar(k->batch, 1, ']');
  if (sqlite3_str_errcode(k->batch) != SQLITE_OK) return oom(err);
  const char *p[2] = {k->t->name, sqlite3_str_value(k->batch)};
  int rc = query(k, sql, 2, p, 0, 0, err);
  sqlite3_str_reset(k->batch);
  k->n_batch = 0;
  return rc;
}

static void count_in(cache *k, uint64_t kh, long long n, uint64_t h) {
  size_t b = (size_t)(kh >> (64 - 4 * FP_LEVEL));
  k->n[b] += n;
  k->sum[b] += h;
  k->moved[b] = 1;
}

static int write_buckets(cache *k, char **err) {
  for (int b = 0; b < NB; b++) {
    if (!k->moved[b]) continue;
    sqlite3_str_appendchar(k->batch, 1, k->n_batch++ ? ',' : '[');
    sqlite3_str_appendf(k->batch, "[%d,%lld,%lld]", b, k->n[b], (long long)k->sum[b]);
  }
  return flush(k, k->fd->put_buckets_sql, err);
}

static int build_row(void *arg, const char *pk, const char *row, char **err) {
  cache *k = arg;
  uint64_t kh, h;
  if (fp_answer_hash(0, pk, row, &kh, &h)) return oom(err);
  count_in(k, kh, 1, h);
  sqlite3_str_appendchar(k->batch, 1, k->n_batch++ ? ',' : '[');
  sqlite3_str_appendchar(k->batch, 1, '[');
  value_append_string(k->batch, pk, -1);
  sqlite3_str_appendf(k->batch, ",%lld,%lld]", (long long)(kh ^ FLIP), (long long)h);
  return k->n_batch >= BATCH ? flush(k, k->fd->put_rows_sql, err) : 0;
}

static const char *const cache_tables[] = {"_syncd_fp_rows", "_syncd_fp_buckets", "_syncd_fp_dirty",
                                           "_syncd_fp_tables"};

/* Delete from each of the cache's tables the rows where (the condition
** on tbl, naming $1), with p as its parameters. */
static int clear(cache *k, const char *where, const char *const *p, char **err) {
  for (int i = 0; i < 4; i++) {
    char *sql = sqlite3_mprintf("DELETE FROM %s WHERE %s", cache_tables[i], where);
    int rc = sql ? query(k, sql, 1, p, 0, 0, err) : oom(err);
    sqlite3_free(sql);
    if (rc) return -1;
  }
  return 0;
}

typedef struct gone {
  const catalog *cat;
  sqlite3_str *names; /* a JSON array of the tables cached but no longer synced */
  int n;
} gone;

static int gone_row(void *arg, const char *const *cols, char **err) {
  (void)err;
  gone *g = arg;
  if (!cols[0] || catalog_table_find(g->cat, cols[0])) return 0;
  sqlite3_str_appendchar(g->names, 1, g->n++ ? ',' : '[');
  value_append_string(g->names, cols[0], -1);
  return 0;
}

/* Forget the caches of tables that are synced no more (dropped, or
** without a key now): nothing would ever read or rebuild them. Their
** triggers went with a dropped table; a table that lost its key keeps
** them (its recorded keys are forgotten at each build). */
static int forget_gone(cache *k, char **err) {
  gone g = {&k->s->cat, sqlite3_str_new(0), 0};
  int rc = query(k, "SELECT tbl FROM _syncd_fp_tables", 0, 0, gone_row, &g, err);
  sqlite3_str_appendchar(g.names, 1, ']');
  if (!rc && sqlite3_str_errcode(g.names) != SQLITE_OK) rc = oom(err);
  const char *p[1] = {sqlite3_str_value(g.names)};
  if (!rc && g.n) rc = clear(k, k->fd->in_names, p, err);
  sqlite3_free(sqlite3_str_finish(g.names));
  return rc ? -1 : 0;
}

/* Forget what the cache held of t (and of tables gone), make t's
** triggers, and scan it. */
static int rebuild(cache *k, const char *sig, char **err) {
  const char *p[2] = {k->t->name, sig};
  int yes = 0;
  if (clear(k, "tbl = $1", p, err) || forget_gone(k, err) ||
      k->fd->watch(k->h, k->t, 1, &yes, err) ||
      k->s->d->scan(k->c, k->t, 0, 0, 0, build_row, k, err) || flush(k, k->fd->put_rows_sql, err) ||
      write_buckets(k, err))
    return -1;
  return query(k, "INSERT INTO _syncd_fp_tables(tbl, sig) VALUES($1, $2)", 2, p, 0, 0, err);
}

/* The recorded keys are taken DRAIN at a time: the cached rows of the
** keys (and of the keys their rows stand under now) are read and deleted
** in one statement each, the rows now inserted in one. */
#define DRAIN 1000

typedef struct drained {
  char *pk, *row; /* row NULL: a key whose cached row only goes */
} drained;

static int cmp_drained(const void *a, const void *b) {
  const drained *x = a, *y = b;
  int c = strcmp(x->pk, y->pk);
  /* for one key, the row first: it is the one kept */
  return c ? c : (!x->row) - (!y->row);
}

static void drained_free(cache *k) {
  for (int i = 0; i < k->n_drained; i++)
    sqlite3_free(k->drained[i].pk), sqlite3_free(k->drained[i].row);
  k->n_drained = 0;
}

static int cached_row(void *arg, const char *const *cols, char **err) {
  (void)err;
  cache *k = arg;
  uint64_t h = (uint64_t)num(cols[2]);
  count_in(k, (uint64_t)num(cols[1]) ^ FLIP, -1, (uint64_t)0 - h);
  return 0;
}

/* The batch drained: every key's cached row out of the cache and its
** bucket, every row now in. */
static int drain_flush(cache *k, char **err) {
  if (!k->n_drained) return 0;
  qsort(k->drained, (size_t)k->n_drained, sizeof *k->drained, cmp_drained);
  sqlite3_str *keys = sqlite3_str_new(0);
  for (int i = 0, n = 0; i < k->n_drained; i++) {
    if (i && strcmp(k->drained[i].pk, k->drained[i - 1].pk) == 0) continue;
    sqlite3_str_appendchar(keys, 1, n++ ? ',' : '[');
    value_append_string(keys, k->drained[i].pk, -1);
  }
  sqlite3_str_appendchar(keys, 1, ']');
  int rc = sqlite3_str_errcode(keys) != SQLITE_OK ? oom(err) : 0;
  const char *p[2] = {k->t->name, sqlite3_str_value(keys)};
  if (!rc) rc = query(k, k->fd->get_rows_sql, 2, p, cached_row, k, err);
  if (!rc) rc = query(k, k->fd->del_rows_sql, 2, p, 0, 0, err);
  sqlite3_free(sqlite3_str_finish(keys));
  for (int i = 0; !rc && i < k->n_drained; i++) {
    const drained *d = &k->drained[i];
    if (!d->row || (i && strcmp(d->pk, k->drained[i - 1].pk) == 0)) continue;
    uint64_t kh, h;
    if (fp_answer_hash(0, d->pk, d->row, &kh, &h)) return drained_free(k), oom(err);
    count_in(k, kh, 1, h);
    sqlite3_str_appendchar(k->batch, 1, k->n_batch++ ? ',' : '[');
    sqlite3_str_appendchar(k->batch, 1, '[');
    value_append_string(k->batch, d->pk, -1);
    sqlite3_str_appendf(k->batch, ",%lld,%lld]", (long long)(kh ^ FLIP), (long long)h);
  }
  drained_free(k);
  return rc ? -1 : flush(k, k->fd->put_rows_sql, err);
}

static int drain_add(cache *k, const char *pk, const char *row, char **err) {
  drained *d = &k->drained[k->n_drained];
  d->pk = sqlite3_mprintf("%s", pk);
  d->row = row ? sqlite3_mprintf("%s", row) : 0;
  k->n_drained++;
  return !d->pk || (row && !d->row) ? oom(err) : 0;
}

/* A recorded key: its cached row goes, the row under it now comes. key and
** pk differ when the table compares keys loosely (a NOCASE key found the
** row under another spelling): both spellings' cached rows go. */
static int drain_key(void *arg, const char *key, const char *pk, const char *row, char **err) {
  cache *k = arg;
  if (k->n_drained + 2 > DRAIN && drain_flush(k, err)) return -1;
  if (drain_add(k, key, 0, err) || (row && drain_add(k, pk, row, err))) return -1;
  return 0;
}

static int drain(cache *k, char **err) {
  k->drained = sqlite3_malloc64(sizeof *k->drained * DRAIN);
  if (!k->drained) return oom(err);
  int rc = load_buckets(k, err) || k->fd->dirty(k->h, k->t, drain_key, k, err) ||
           drain_flush(k, err) || write_buckets(k, err);
  drained_free(k);
  sqlite3_free(k->drained);
  k->drained = 0;
  return rc ? -1 : 0;
}

typedef struct ranged {
  cache *k;
  fp_answer *a;
} ranged;

static int range_row(void *arg, const char *const *cols, char **err) {
  ranged *g = arg;
  uint64_t kh = (uint64_t)num(cols[1]) ^ FLIP, h = (uint64_t)num(cols[2]);
  if (!g->a->r->rows) {
    fp_answer_add(g->a, kh, 1, h);
    return 0;
  }
  char *row = 0, *pk = 0, *reason = 0;
  dialect_result r = g->k->s->d->read_row(g->k->c, g->k->t, cols[0], &row, &pk, &reason, err);
  if (r == DIALECT_REJECTED) *err = wire_errf("%s: %s", g->k->t->name, reason);
  if (r == DIALECT_OK && row) fp_answer_row(g->a, kh, pk, row);
  sqlite3_free(row);
  sqlite3_free(pk);
  sqlite3_free(reason);
  return r == DIALECT_OK ? 0 : -1;
}

/* Sum a from the buckets (k->n, k->sum as now), or from the rows' hashes
** of the key-hash range of each prefix when it asks for finer buckets or
** for rows. */
static int answer(cache *k, fp_answer *a, char **err) {
  const fp_request *r = a->r;
  for (int b = 0; b < NB; b++)
    a->count += k->n[b];
  if (!r->rows && r->depth + r->split <= FP_LEVEL) {
    for (int b = 0; b < NB; b++)
      if (k->n[b])
        fp_answer_add(a, (uint64_t)b << (64 - 4 * FP_LEVEL), (unsigned long long)k->n[b],
                      k->sum[b]);
    return 0;
  }
  ranged g = {k, a};
  for (int i = 0; i < r->n_prefixes && a->n_rows <= FP_MAX_ROWS; i++) {
    uint64_t lo = 0, hi = ~0ULL;
    if (r->depth == 16) {
      lo = hi = r->prefixes[i];
    } else if (r->depth) {
      lo = r->prefixes[i] << (64 - 4 * r->depth);
      hi = lo | (~0ULL >> (4 * r->depth));
    }
    char slo[24], shi[24], lim[24];
    snprintf(slo, sizeof slo, "%lld", (long long)(lo ^ FLIP));
    snprintf(shi, sizeof shi, "%lld", (long long)(hi ^ FLIP));
    snprintf(lim, sizeof lim, "%lld", FP_MAX_ROWS + 1 - a->n_rows);
    const char *p[4] = {k->t->name, slo, shi, lim};
    if (query(k,
              r->rows ? "SELECT pk, kh, h FROM _syncd_fp_rows WHERE tbl = $1"
                        " AND kh BETWEEN $2 AND $3 LIMIT $4"
                      : "SELECT pk, kh, h FROM _syncd_fp_rows WHERE tbl = $1"
                        " AND kh BETWEEN $2 AND $3",
              r->rows ? 4 : 3, p, range_row, &g, err))
      return -1;
  }
  return 0;
}

/* One try in mode: 0 answered, 1 to try again in *mode, -1 failed. */
static int attempt(cache *k, int *mode, const char *sig, fp_answer *a, long long *head,
                   char **err) {
  int built = 0, dirty = 0;
  if (k->fd->begin(k->h, *mode, k->t, err) || read_state(k, sig, &built, &dirty, err)) return -1;
  if ((*mode == FP_READ && (!built || dirty)) || (*mode == FP_DRAIN && !built)) {
    *mode = built ? FP_DRAIN : FP_BUILD;
    return k->fd->commit(k->h, err) ? -1 : 1;
  }
  memset(k->n, 0, sizeof *k->n * NB);
  memset(k->sum, 0, sizeof *k->sum * NB);
  memset(k->moved, 0, NB);
  int rc = !built ? rebuild(k, sig, err) : dirty ? drain(k, err) : load_buckets(k, err);
  if (rc || k->s->d->head(k->c, head, err) || answer(k, a, err) || k->fd->commit(k->h, err))
    return -1;
  return 0;
}

int fp_cache_answer(store *s, dialect_conn *c, const catalog_table *t, fp_answer *a,
                    long long *head, char **err) {
  cache k = {s, c, fp_of(s), s->d->native(c), t, 0, 0, 0, 0, 0, 0, 0};
  k.n = sqlite3_malloc64(sizeof *k.n * NB);
  k.sum = sqlite3_malloc64(sizeof *k.sum * NB);
  k.moved = sqlite3_malloc64(NB);
  k.batch = sqlite3_str_new(0);
  char *sig = signature(t);
  int rc = -1, mode = FP_READ;
  if (!k.n || !k.sum || !k.moved || !sig) {
    oom(err);
  } else {
    for (int tries = 0; tries < TRIES; tries++) {
      answer_reset(a);
      rc = attempt(&k, &mode, sig, a, head, err);
      if (rc == 0) break;
      if (rc < 0 && !(s->d->conflicted && s->d->conflicted(c))) break;
      /* a conflict with another writer of the cache: roll back, again */
      if (rc < 0) {
        s->d->reusable(c);
        sqlite3_free(*err);
        *err = 0;
      }
      rc = -1;
    }
    if (rc && !*err) *err = wire_errf("verify: the cache of %s kept changing", t->name);
  }
  sqlite3_free(k.n);
  sqlite3_free(k.sum);
  sqlite3_free(k.moved);
  sqlite3_free(sqlite3_str_finish(k.batch));
  sqlite3_free(sig);
  return rc;
}
