/*
** verify.c: divergence detection and repair, the engine's side of
** sync_verify (the network side is ext/net/verify_net.c; POST /verify in
** docs/PROTOCOL.md).
**
** What is compared is what the client believes the server has at its
** cursor: a tracked table's rows where the key has nothing pending, and the
** server image (sync_shadow) of a key with pending mutations, absent when
** that image is. Local pending edits never count as divergence: they are
** the client's, not a claim about the server. Each row is hashed from its
** values as the server hashes its own from the wire values
** (common/fphash.h), over the local table's columns.
**
** The comparison is a walk down the key-hash space: the whole table split
** in 256 buckets (count and sum of row hashes), each differing bucket split
** again, until a bucket holds few rows: those are asked for and compared key
** by key. A differing bucket most likely holds one changed key, so below the
** top it is split by one hex digit (16 buckets), by two only while that
** still leaves more than ROWS_AT rows a bucket: on a 1M-row table, 256
** buckets of about 15 rows cost 16 times the bytes of 16 buckets of about
** 244, and the 16 of about 15 under the one that differs are one more
** round (and local scan) away. Keys only the client has are deleted, keys only the server has
** and rows that differ take the server's row. The walk runs as a sequence
** of request bodies (verify_next) and answers (verify_take), so any
** transport can carry it; each answer must be for the client's cursor.
**
** The repair is held in a temporary table, not in memory: as the walk
** takes each answer of rows, the changes it finds (change objects of a
** pull page) go into the spool (temp.sync_verify_spool), under the id of
** the walk they belong to (one sync_verify call's tables share one),
** rather than one string that grew with every differing row. Once every
** table is walked, verify_repair applies them from there in pages of at
** most PAGE_ROWS changes or PAGE_BYTES, as the pages of one pull without a
** cursor (apply.c: each but the last says has_more, so that a page that
** cannot apply alone waits in sync_inbox for the last, as in a pull),
** pending mutations rebased on the server's rows, all in one transaction
** with the record of the verification. Memory stays bounded by an answer
** and a page however many rows differ (the temporary database is a file
** beyond its page cache unless temp_store is MEMORY). The spool rows of a
** walk are deleted once its repair is committed or rolled back, or the
** walk given up; a new walk first deletes any other walk's rows still
** there (the connection's bring-your-own-transport walk under way aside),
** so nothing stale is ever applied.
*/
#include "verify.h"
#include "apply.h"
#include "fphash.h"
#include "jscan.h"
#include "table.h"
#include "value.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SPLIT 2    /* hex digits the whole table's request splits it by */
#define ROWS_AT 64 /* a bucket this small is compared row by row */
#define MAX_BUCKET_ASK 256
#define MAX_ROWS_ASK 128     /* 128 * ROWS_AT stays under syncd's 10000 rows */
#define PAGE_ROWS 1000       /* a page of the repair: at most this many changes */
#define PAGE_BYTES (1 << 20) /* or about this much text (a larger change alone) */

typedef struct Item {
  int depth; /* hex digits of prefix */
  int split; /* hex digits its bucket request splits it by */
  uint64_t prefix;
} Item;

typedef struct Queue {
  Item *a;
  int n, cap;
} Queue;

struct Verify {
  SyncCtx *c;
  char *table, *client, *cursor;
  char **cols;
  int nCol;
  Queue buckets, rows; /* prefixes to split further, to compare row by row */
  Item *asked;         /* the last request's prefixes, sorted */
  int nAsked, askedRows, depth, split;
  int answered;
  sqlite3_int64 checked, diverged;
  sqlite3_int64 walk;  /* the spool id its changes go under */
  sqlite3_stmt *spool; /* inserts one change into the spool, while an answer is taken */
  sqlite3_str *change; /* the change being written */
};

/* One row of either side. */
typedef struct Row {
  uint64_t kh, rh;
  char *pk;        /* local: its key as wire JSON (owned) */
  jspan spk, srow; /* server: in the answer */
} Row;

typedef struct Scan {
  const uint64_t *prefixes;
  int n, depth, split, rows;
  uint64_t *cnt, *sum;
  Row *row;
  int nRow, capRow;
} Scan;

static int push(Queue *q, int depth, int split, uint64_t prefix) {
  if (ctx_room(&q->a, &q->cap, q->n, sizeof *q->a)) return SQLITE_NOMEM;
  q->a[q->n++] = (Item){depth, split, prefix};
  return SQLITE_OK;
}

static int cmp_item(const void *a, const void *b) {
  uint64_t x = ((const Item *)a)->prefix, y = ((const Item *)b)->prefix;
  return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int cmp_row(const void *a, const void *b) {
  return cmp_u64(&((const Row *)a)->kh, &((const Row *)b)->kh);
}

void verify_free(Verify *v) {
  if (!v) return;
  sqlite3_free(v->table);
  sqlite3_free(v->client);
  sqlite3_free(v->cursor);
  for (int i = 0; i < v->nCol; i++)
    sqlite3_free(v->cols[i]);
  sqlite3_free(v->cols);
  sqlite3_free(v->buckets.a);
  sqlite3_free(v->rows.a);
  sqlite3_free(v->asked);
  sqlite3_free(sqlite3_str_finish(v->change));
  sqlite3_free(v);
}

/* Deletes the spool rows of every walk but keep's (0: of every walk). */
static int spool_clear(SyncCtx *c, sqlite3_int64 keep) {
  sqlite3_stmt *s;
  int rc =
      sqlite3_prepare_v2(c->db, "DELETE FROM temp.sync_verify_spool WHERE walk<>?1", -1, &s, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(s, 1, keep);
  sqlite3_step(s);
  return sqlite3_finalize(s);
}

int verify_spool_open(SyncCtx *c, sqlite3_int64 *pWalk, char **pzErr) {
  *pWalk = 0;
  int rc = ctx_exec(c, "CREATE TEMP TABLE IF NOT EXISTS sync_verify_spool("
                       "id INTEGER PRIMARY KEY, walk INTEGER NOT NULL, change TEXT NOT NULL)");
  /* the connection's own bring-your-own-transport walk under way stays */
  if (rc == SQLITE_OK) rc = spool_clear(c, c->verify ? c->verify->walk : 0);
  sqlite3_stmt *s = 0;
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(c->db, "SELECT coalesce(max(walk), 0) + 1 FROM temp.sync_verify_spool",
                            -1, &s, 0);
  if (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) *pWalk = sqlite3_column_int64(s, 0);
  int rc2 = sqlite3_finalize(s);
  if (rc == SQLITE_OK) rc = rc2;
  if (rc != SQLITE_OK) *pzErr = sqlite3_mprintf("the repair's spool: %s", sqlite3_errmsg(c->db));
  return rc;
}

void verify_spool_drop(SyncCtx *c, sqlite3_int64 walk) {
  sqlite3_stmt *s;
  if (sqlite3_prepare_v2(c->db, "DELETE FROM temp.sync_verify_spool WHERE walk=?1", -1, &s, 0) !=
      SQLITE_OK)
    return; /* what is left goes with the next walk (verify_spool_open) */
  sqlite3_bind_int64(s, 1, walk);
  sqlite3_step(s);
  sqlite3_finalize(s);
}

int verify_begin(SyncCtx *c, const char *table, const char *client, const char *cursor,
                 sqlite3_int64 walk, Verify **pOut, char **pzErr) {
  *pOut = 0;
  SyncTable *t;
  int rc = table_get(c, table, 1, &t, pzErr);
  if (rc != SQLITE_OK) return rc;
  Verify *v = sqlite3_malloc64(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  v->c = c;
  v->table = sqlite3_mprintf("%s", t->name);
  v->client = sqlite3_mprintf("%s", client);
  v->cursor = sqlite3_mprintf("%s", cursor);
  v->cols = sqlite3_malloc64(sizeof *v->cols * (size_t)t->nCol);
  v->walk = walk;
  v->change = sqlite3_str_new(c->db);
  rc = v->table && v->client && v->cursor && v->cols && v->change ? SQLITE_OK : SQLITE_NOMEM;
  for (int i = 0; rc == SQLITE_OK && i < t->nCol; i++) {
    v->cols[i] = sqlite3_mprintf("%s", t->cols[i]);
    if (!v->cols[i]) rc = SQLITE_NOMEM;
    v->nCol++;
  }
  if (rc == SQLITE_OK) rc = push(&v->buckets, 0, SPLIT, 0);
  if (rc != SQLITE_OK) {
    verify_free(v);
    return rc;
  }
  *pOut = v;
  return SQLITE_OK;
}

/* Moves up to max items of q with the depth and split of its first into
** v->asked (one request has one of each). */
static int take(Verify *v, Queue *q, int max) {
  sqlite3_free(v->asked);
  v->asked = sqlite3_malloc64(sizeof *v->asked * (size_t)max);
  if (!v->asked) return SQLITE_NOMEM;
  v->nAsked = 0;
  v->depth = q->a[0].depth;
  v->split = q->a[0].split;
  int keep = 0;
  for (int i = 0; i < q->n; i++) {
    if (q->a[i].depth == v->depth && q->a[i].split == v->split && v->nAsked < max)
      v->asked[v->nAsked++] = q->a[i];
    else
      q->a[keep++] = q->a[i];
  }
  q->n = keep;
  qsort(v->asked, (size_t)v->nAsked, sizeof *v->asked, cmp_item);
  return SQLITE_OK;
}

int verify_next(Verify *v, char **pBody, char **pzErr) {
  (void)pzErr;
  *pBody = 0;
  int rc;
  if (v->rows.n) {
    rc = take(v, &v->rows, MAX_ROWS_ASK);
    v->askedRows = 1;
    v->split = 0;
  } else if (v->buckets.n) {
    rc = take(v, &v->buckets, MAX_BUCKET_ASK);
    v->askedRows = 0;
  } else {
    return SQLITE_OK;
  }
  if (rc != SQLITE_OK) return rc;
  sqlite3_str *s = sqlite3_str_new(v->c->db);
  sqlite3_str_appendall(s, "{\"client_id\":");
  value_append_string(s, v->client, -1);
  sqlite3_str_appendall(s, ",\"table\":");
  value_append_string(s, v->table, -1);
  sqlite3_str_appendall(s, ",\"columns\":[");
  for (int i = 0; i < v->nCol; i++) {
    if (i) sqlite3_str_appendchar(s, 1, ',');
    value_append_string(s, v->cols[i], -1);
  }
  sqlite3_str_appendall(s, "],\"prefixes\":[");
  for (int i = 0; i < v->nAsked; i++) {
    sqlite3_str_appendf(s, "%s\"", i ? "," : "");
    if (v->depth)
      sqlite3_str_appendf(s, "%0*llx", v->depth, (unsigned long long)v->asked[i].prefix);
    sqlite3_str_appendchar(s, 1, '"');
  }
  sqlite3_str_appendf(s, "],\"split\":%d,\"rows\":%s}", v->split, v->askedRows ? "true" : "false");
  rc = sqlite3_str_errcode(s);
  *pBody = sqlite3_str_finish(s);
  if (rc != SQLITE_OK) {
    sqlite3_free(*pBody);
    *pBody = 0;
  }
  return rc;
}

/* The index in sc->prefixes of the asked prefix key hash kh falls under,
** or -1. Looked up before a row is hashed or its key built: past the first
** request, a request asks for a small part of the table. */
static int asked_at(const Scan *sc, uint64_t kh) {
  uint64_t top = sc->depth ? kh >> (64 - 4 * sc->depth) : 0;
  const uint64_t *hit = bsearch(&top, sc->prefixes, (size_t)sc->n, sizeof top, cmp_u64);
  return hit ? (int)(hit - sc->prefixes) : -1;
}

/* Counts one row (key hash kh under asked prefix at, row hash rh) into sc;
** in rows mode the row is kept with its key *pk (taken). */
static int account(Scan *sc, int at, uint64_t kh, uint64_t rh, char **pk) {
  if (!sc->rows) {
    uint64_t b = sc->split
                     ? (kh >> (64 - 4 * (sc->depth + sc->split))) & ((1ULL << (4 * sc->split)) - 1)
                     : 0;
    size_t i = (size_t)at << (4 * sc->split) | b;
    sc->cnt[i]++;
    sc->sum[i] += rh;
    return SQLITE_OK;
  }
  if (sc->nRow == sc->capRow) {
    int cap = sc->capRow ? sc->capRow * 2 : 64;
    Row *r = sqlite3_realloc64(sc->row, sizeof *r * (size_t)cap);
    if (!r) return SQLITE_NOMEM;
    sc->row = r, sc->capRow = cap;
  }
  memset(&sc->row[sc->nRow], 0, sizeof *sc->row);
  sc->row[sc->nRow].kh = kh;
  sc->row[sc->nRow].rh = rh;
  sc->row[sc->nRow++].pk = *pk;
  *pk = 0;
  return SQLITE_OK;
}

static void scan_free(Scan *sc) {
  for (int i = 0; i < sc->nRow; i++)
    sqlite3_free(sc->row[i].pk);
  sqlite3_free(sc->row);
  sqlite3_free(sc->cnt);
  sqlite3_free(sc->sum);
}

/* The key hashes of the keys of v's table with pending mutations, sorted,
** into *pOut (*pN of them). */
static int pending_keys(Verify *v, uint64_t **pOut, int *pN) {
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(v->c->db, "SELECT DISTINCT pk FROM main.sync_outbox WHERE tbl=?1", -1,
                              &s, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(s, 1, v->table, -1, SQLITE_STATIC);
  uint64_t *a = 0;
  int n = 0, cap = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *pk = (const char *)sqlite3_column_text(s, 0);
    uint64_t sum = 0;
    if (!pk || fphash_object(pk, sqlite3_column_bytes(s, 0), 0, 0, &sum)) {
      rc = SQLITE_NOMEM;
      break;
    }
    if ((rc = ctx_room(&a, &cap, n, sizeof *a)) != SQLITE_OK) break;
    a[n++] = fphash_key(sum);
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) {
    sqlite3_free(a);
    return rc;
  }
  if (n) qsort(a, (size_t)n, sizeof *a, cmp_u64);
  *pOut = a;
  *pN = n;
  return SQLITE_OK;
}

/* The table's rows whose keys have nothing pending. */
static int scan_table(Verify *v, Scan *sc, const uint64_t *pend, int nPend) {
  SyncTable *t;
  char *err = 0;
  int rc = table_get(v->c, v->table, 1, &t, &err);
  sqlite3_free(err);
  if (rc != SQLITE_OK) return rc;
  sqlite3_str *q = sqlite3_str_new(v->c->db);
  sqlite3_str_appendall(q, "SELECT ");
  for (int i = 0; i < t->nCol; i++)
    sqlite3_str_appendf(q, "%s\"%w\"", i ? "," : "", t->cols[i]);
  sqlite3_str_appendf(q, " FROM main.\"%w\"", t->name);
  char *sql = sqlite3_str_finish(q);
  if (!sql) return SQLITE_NOMEM;
  sqlite3_stmt *s;
  rc = sqlite3_prepare_v2(v->c->db, sql, -1, &s, 0);
  sqlite3_free(sql);
  if (rc != SQLITE_OK) return rc;
  while (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
    uint64_t ks = 0, rs = 0;
    for (int i = 0; i < t->nPk; i++) {
      const char *name = t->cols[t->pk[i]];
      ks += fphash_value(name, (int)strlen(name), sqlite3_column_value(s, t->pk[i]));
    }
    uint64_t kh = fphash_key(ks);
    int at = asked_at(sc, kh);
    if (at < 0 || (nPend && bsearch(&kh, pend, (size_t)nPend, sizeof kh, cmp_u64))) continue;
    for (int i = 0; i < t->nCol; i++)
      rs += fphash_value(t->cols[i], (int)strlen(t->cols[i]), sqlite3_column_value(s, i));
    char *pk = 0;
    if (sc->rows) {
      sqlite3_str *o = sqlite3_str_new(v->c->db);
      sqlite3_str_appendchar(o, 1, '{');
      for (int i = 0; i < t->nPk; i++) {
        if (i) sqlite3_str_appendchar(o, 1, ',');
        value_append_string(o, t->cols[t->pk[i]], -1);
        sqlite3_str_appendchar(o, 1, ':');
        value_append_column(o, s, t->pk[i]);
      }
      sqlite3_str_appendchar(o, 1, '}');
      pk = sqlite3_str_finish(o);
      if (!pk) rc = SQLITE_NOMEM;
    }
    if (rc == SQLITE_OK) rc = account(sc, at, kh, fphash_row(kh, rs), &pk);
    sqlite3_free(pk);
  }
  int rc2 = sqlite3_finalize(s);
  return rc != SQLITE_OK ? rc : rc2;
}

/* The server images of the keys with pending mutations (none when the
** image says the server has no such row). */
static int scan_images(Verify *v, Scan *sc) {
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(v->c->db,
                              "SELECT s.pk, s.row FROM main.sync_shadow s WHERE s.tbl=?1"
                              " AND s.row IS NOT NULL AND EXISTS (SELECT 1 FROM main.sync_outbox o"
                              " WHERE o.tbl=s.tbl AND o.pk=s.pk)",
                              -1, &s, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(s, 1, v->table, -1, SQLITE_STATIC);
  while (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
    const char *pk = (const char *)sqlite3_column_text(s, 0);
    int npk = sqlite3_column_bytes(s, 0);
    const char *row = (const char *)sqlite3_column_text(s, 1);
    int nrow = sqlite3_column_bytes(s, 1);
    uint64_t ks, rs;
    if (!pk || !row || fphash_object(pk, npk, 0, 0, &ks)) {
      rc = SQLITE_NOMEM;
      break;
    }
    uint64_t kh = fphash_key(ks);
    int at = asked_at(sc, kh);
    if (at < 0) continue;
    if (fphash_object(row, nrow, (const char *const *)v->cols, v->nCol, &rs)) {
      rc = SQLITE_NOMEM;
      break;
    }
    char *wire = 0;
    if (sc->rows) {
      sqlite3_str *o = sqlite3_str_new(v->c->db);
      value_append_wire(o, pk, npk);
      wire = sqlite3_str_finish(o);
      if (!wire) rc = SQLITE_NOMEM;
    }
    if (rc == SQLITE_OK) rc = account(sc, at, kh, fphash_row(kh, rs), &wire);
    sqlite3_free(wire);
  }
  int rc2 = sqlite3_finalize(s);
  return rc != SQLITE_OK ? rc : rc2;
}

/* The local side of the last request, in the shape of its answer. */
static int scan_local(Verify *v, Scan *sc, uint64_t *prefixes) {
  memset(sc, 0, sizeof *sc);
  for (int i = 0; i < v->nAsked; i++)
    prefixes[i] = v->asked[i].prefix;
  sc->prefixes = prefixes;
  sc->n = v->nAsked;
  sc->depth = v->depth;
  sc->split = v->split;
  sc->rows = v->askedRows;
  if (!sc->rows) {
    size_t nb = (size_t)sc->n << (4 * sc->split);
    sc->cnt = sqlite3_malloc64(sizeof *sc->cnt * nb);
    sc->sum = sqlite3_malloc64(sizeof *sc->sum * nb);
    if (!sc->cnt || !sc->sum) return SQLITE_NOMEM;
    memset(sc->cnt, 0, sizeof *sc->cnt * nb);
    memset(sc->sum, 0, sizeof *sc->sum * nb);
  }
  uint64_t *pend = 0;
  int nPend = 0;
  int rc = pending_keys(v, &pend, &nPend);
  if (rc == SQLITE_OK) rc = scan_table(v, sc, pend, nPend);
  if (rc == SQLITE_OK && nPend) rc = scan_images(v, sc);
  sqlite3_free(pend);
  if (rc == SQLITE_OK && sc->rows && sc->nRow)
    qsort(sc->row, (size_t)sc->nRow, sizeof *sc->row, cmp_row);
  return rc;
}

static int is_type(jspan v, const char *type) {
  return strcmp(jscan_type(v), type) == 0;
}

static int malformed(char **pzErr, const char *what) {
  *pzErr = sqlite3_mprintf("malformed answer from the server: %s", what);
  return SQLITE_ERROR;
}

/* The buckets of the answer against the local ones: a differing bucket is
** split further, or compared row by row when small. */
static int take_buckets(Verify *v, jspan ranges, char **pzErr) {
  Scan sc = {0};
  uint64_t *prefixes = sqlite3_malloc64(sizeof *prefixes * (size_t)v->nAsked);
  int rc = prefixes ? scan_local(v, &sc, prefixes) : SQLITE_NOMEM;
  const char *p = ranges.z, *e = ranges.z + ranges.n;
  jspan range;
  int i = 0, nb = 1 << (4 * v->split);
  while (rc == SQLITE_OK && jscan_element(&p, e, &range)) {
    jspan buckets = jscan_field(range, "buckets");
    if (i >= v->nAsked || !is_type(buckets, "array")) {
      rc = malformed(pzErr, "ranges");
      break;
    }
    const char *q = buckets.z, *qe = buckets.z + buckets.n;
    jspan b;
    int k = 0;
    while (rc == SQLITE_OK && jscan_element(&q, qe, &b)) {
      const char *r = b.z, *re = b.z + b.n;
      jspan n, h;
      sqlite3_int64 cnt;
      if (k >= nb || !is_type(b, "array") || !jscan_element(&r, re, &n) ||
          !jscan_element(&r, re, &h) || !jscan_int64(n, &cnt) || cnt < 0 || !is_type(h, "text") ||
          h.n != 18) {
        rc = malformed(pzErr, "buckets");
        break;
      }
      uint64_t sum = strtoull(h.z + 1, 0, 16);
      size_t at = (size_t)i * (size_t)nb + (size_t)k;
      if ((uint64_t)cnt != sc.cnt[at] || sum != sc.sum[at]) {
        uint64_t most = (uint64_t)cnt > sc.cnt[at] ? (uint64_t)cnt : sc.cnt[at];
        int depth = v->depth + v->split;
        uint64_t prefix = v->asked[i].prefix << (4 * v->split) | (uint64_t)k;
        int split = most > (uint64_t)ROWS_AT << 8 && depth <= 14 ? 2 : 1;
        if (most <= ROWS_AT || depth >= 16)
          rc = push(&v->rows, depth, 0, prefix);
        else
          rc = push(&v->buckets, depth, split, prefix);
      }
      k++;
    }
    if (rc == SQLITE_OK && k != nb) rc = malformed(pzErr, "buckets");
    i++;
  }
  if (rc == SQLITE_OK && i != v->nAsked) rc = malformed(pzErr, "ranges");
  scan_free(&sc);
  sqlite3_free(prefixes);
  return rc;
}

/* Spools one change of the repair. */
static int spool_change(Verify *v, const char *op, const char *pk, int npk, jspan row) {
  sqlite3_str *s = v->change;
  sqlite3_str_reset(s);
  sqlite3_str_appendall(s, "{\"table\":");
  value_append_string(s, v->table, -1);
  sqlite3_str_appendf(s, ",\"op\":\"%s\",\"pk\":%.*s", op, npk, pk);
  if (row.z) sqlite3_str_appendf(s, ",\"row\":%.*s", row.n, row.z);
  sqlite3_str_appendchar(s, 1, '}');
  int rc = sqlite3_str_errcode(s);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(v->spool, 1, v->walk);
  sqlite3_bind_text(v->spool, 2, sqlite3_str_value(s), sqlite3_str_length(s), SQLITE_STATIC);
  sqlite3_step(v->spool);
  rc = sqlite3_reset(v->spool);
  if (rc == SQLITE_OK) v->diverged++;
  return rc;
}

/* The rows of the answer against the local ones, key by key. */
static int take_rows(Verify *v, jspan rows, char **pzErr) {
  Scan sc = {0};
  uint64_t *prefixes = sqlite3_malloc64(sizeof *prefixes * (size_t)v->nAsked);
  int rc = prefixes ? scan_local(v, &sc, prefixes) : SQLITE_NOMEM;
  Row *srv = 0;
  int n = 0, cap = 0;
  const char *p = rows.z, *e = rows.z + rows.n;
  jspan r;
  while (rc == SQLITE_OK && jscan_element(&p, e, &r)) {
    jspan pk = jscan_field(r, "pk"), row = jscan_field(r, "row");
    uint64_t ks, rs;
    if (!is_type(pk, "object") || !is_type(row, "object")) {
      rc = malformed(pzErr, "rows");
      break;
    }
    if (fphash_object(pk.z, pk.n, 0, 0, &ks) ||
        fphash_object(row.z, row.n, (const char *const *)v->cols, v->nCol, &rs)) {
      rc = SQLITE_NOMEM;
      break;
    }
    if ((rc = ctx_room(&srv, &cap, n, sizeof *srv)) != SQLITE_OK) break;
    uint64_t kh = fphash_key(ks);
    srv[n++] = (Row){kh, fphash_row(kh, rs), 0, pk, row};
  }
  if (rc == SQLITE_OK && n) qsort(srv, (size_t)n, sizeof *srv, cmp_row);
  /* One answer's changes are spooled together or not at all. The statement
  ** lives no longer than the answer: a walk under way between two calls
  ** of sync_verify_answer must hold none (sqlite3_close() would fail). */
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(v->c->db,
                            "INSERT INTO temp.sync_verify_spool(walk, change) VALUES(?1, ?2)", -1,
                            &v->spool, 0);
  int spooling =
      rc == SQLITE_OK && (rc = ctx_exec(v->c, "SAVEPOINT sync_verify_spool")) == SQLITE_OK;
  for (int a = 0, b = 0; rc == SQLITE_OK && (a < n || b < sc.nRow);) {
    if (b == sc.nRow || (a < n && srv[a].kh < sc.row[b].kh)) {
      rc = spool_change(v, "upsert", srv[a].spk.z, srv[a].spk.n, srv[a].srow);
      a++;
    } else if (a == n || sc.row[b].kh < srv[a].kh) {
      jspan none = {0, 0};
      rc = spool_change(v, "delete", sc.row[b].pk, (int)strlen(sc.row[b].pk), none);
      b++;
    } else {
      if (srv[a].rh != sc.row[b].rh)
        rc = spool_change(v, "upsert", srv[a].spk.z, srv[a].spk.n, srv[a].srow);
      a++, b++;
    }
  }
  if (spooling && rc != SQLITE_OK) ctx_exec(v->c, "ROLLBACK TO sync_verify_spool");
  if (spooling) {
    int rc2 = ctx_exec(v->c, "RELEASE sync_verify_spool");
    if (rc == SQLITE_OK) rc = rc2;
  }
  if (rc != SQLITE_OK && rc != SQLITE_NOMEM && !*pzErr)
    *pzErr = sqlite3_mprintf("the repair's spool: %s", sqlite3_errmsg(v->c->db));
  sqlite3_finalize(v->spool);
  v->spool = 0;
  sqlite3_free(srv);
  scan_free(&sc);
  sqlite3_free(prefixes);
  return rc;
}

int verify_take(Verify *v, const char *answer, char **pzErr) {
  const char *e = answer + strlen(answer);
  const char *z = jscan_ws(answer, e);
  if (!v->nAsked) return malformed(pzErr, "no request is waiting for an answer");
  if (!jscan_document(answer, e) || *z != '{') return malformed(pzErr, "not a JSON object");
  jspan obj = {z, (int)(jscan_skip(z, e) - z)};
  static const char *const names[] = {"cursor", "count", "ranges", "rows"};
  jspan f[4];
  jscan_fields(obj, names, 4, f);
  sqlite3_int64 count;
  if (!is_type(f[0], "text") || !jscan_int64(f[1], &count))
    return malformed(pzErr, "no cursor or count");
  int nul = 0;
  char *cursor = jscan_text(f[0], &nul);
  if (!cursor) return SQLITE_NOMEM;
  int same = strcmp(cursor, v->cursor) == 0;
  if (!same)
    *pzErr =
        sqlite3_mprintf("the server answered at cursor %s, the client is at %s", cursor, v->cursor);
  sqlite3_free(cursor);
  if (!same) return SQLITE_ABORT;
  if (!v->answered++) v->checked = count;
  int rc;
  if (v->askedRows)
    rc = is_type(f[3], "array") ? take_rows(v, f[3], pzErr) : malformed(pzErr, "no rows");
  else
    rc = is_type(f[2], "array") ? take_buckets(v, f[2], pzErr) : malformed(pzErr, "no ranges");
  v->nAsked = 0;
  return rc;
}

sqlite3_int64 verify_checked(const Verify *v) {
  return v->checked;
}
sqlite3_int64 verify_diverged(const Verify *v) {
  return v->diverged;
}
/* Adds the tables of one page's result to *res (the repair's). */
static int add_tables(ApplyResult *res, ApplyResult *page) {
  for (int i = 0; i < page->nTables; i++) {
    int k = 0;
    while (k < res->nTables && strcmp(res->tables[k], page->tables[i]) != 0)
      k++;
    if (k < res->nTables) continue;
    char **a = sqlite3_realloc64(res->tables, sizeof *a * (size_t)(res->nTables + 1));
    if (!a) return SQLITE_NOMEM;
    res->tables = a;
    res->tables[res->nTables++] = page->tables[i];
    page->tables[i] = 0;
  }
  return SQLITE_OK;
}

/* Applies walk's spooled changes in id order, page by page, in the
** caller's transaction; the tables they wrote go into *res, their number
** into *pN. */
static int apply_spool(SyncCtx *c, sqlite3_int64 walk, ApplyResult *res, sqlite3_int64 *pN,
                       char **pzErr) {
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT id, change FROM temp.sync_verify_spool"
                              " WHERE walk=?1 AND id>?2 ORDER BY id",
                              -1, &s, 0);
  if (rc != SQLITE_OK) {
    *pzErr = sqlite3_mprintf("the repair's spool: %s", sqlite3_errmsg(c->db));
    return rc;
  }
  sqlite3_str *page = sqlite3_str_new(c->db);
  sqlite3_int64 after = 0;
  int more = 1;
  while (rc == SQLITE_OK && more) {
    sqlite3_str_reset(page);
    sqlite3_str_appendall(page, "{\"changes\":[");
    int n = 0, step;
    const char *z = "";
    sqlite3_bind_int64(s, 1, walk);
    sqlite3_bind_int64(s, 2, after);
    while ((step = sqlite3_step(s)) == SQLITE_ROW &&
           (n == 0 || (n < PAGE_ROWS && sqlite3_str_length(page) < PAGE_BYTES))) {
      if (!(z = (const char *)sqlite3_column_text(s, 1))) break;
      if (n++) sqlite3_str_appendchar(page, 1, ',');
      sqlite3_str_append(page, z, sqlite3_column_bytes(s, 1));
      after = sqlite3_column_int64(s, 0);
    }
    /* a row past the page: it is not the last; the statement is reset
    ** before the page is applied, which writes */
    more = step == SQLITE_ROW;
    rc = sqlite3_reset(s);
    if (rc == SQLITE_OK && !z) rc = SQLITE_NOMEM;
    if (rc != SQLITE_OK || !n) break;
    *pN += n;
    sqlite3_str_appendall(page, more ? "],\"has_more\":true}" : "]}");
    rc = sqlite3_str_errcode(page);
    ApplyResult one;
    memset(&one, 0, sizeof one);
    if (rc == SQLITE_OK) rc = apply_page(c, sqlite3_str_value(page), APPLY_SQL, &one, pzErr);
    if (rc == SQLITE_OK) rc = add_tables(res, &one);
    apply_result_clear(&one);
  }
  if (rc != SQLITE_OK && rc != SQLITE_NOMEM && !*pzErr)
    *pzErr = sqlite3_mprintf("the repair's spool: %s", sqlite3_errmsg(c->db));
  sqlite3_free(sqlite3_str_finish(page));
  sqlite3_finalize(s);
  return rc;
}

int verify_repair(SyncCtx *c, sqlite3_int64 walk, sqlite3_int64 diverged, const char *report,
                  ApplyResult *res, char **pzErr) {
  memset(res, 0, sizeof *res);
  int began = ctx_tx_begin(c);
  /* inside the caller's transaction, a savepoint undoes the pages applied
  ** before one that fails (each apply_page undoes only its own) */
  if (began == 0 && ctx_exec(c, "SAVEPOINT sync_verify_repair") != SQLITE_OK) began = -1;
  if (began < 0) {
    *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(c->db));
    verify_spool_drop(c, walk);
    return SQLITE_ERROR;
  }
  sqlite3_int64 n = 0;
  int rc = apply_spool(c, walk, res, &n, pzErr);
  /* An app's transaction that held some of them rolled back during the
  ** walk (sync_verify_answer may run in one): a part of a repair is none. */
  if (rc == SQLITE_OK && n != diverged) {
    *pzErr = sqlite3_mprintf("the repair's spool holds %lld changes where the walk found %lld"
                             " (a transaction that held them rolled back): verify again",
                             n, diverged);
    rc = SQLITE_ERROR;
  }
  if (rc == SQLITE_OK) {
    sqlite3_stmt *s;
    rc = sqlite3_prepare_v2(
        c->db,
        "INSERT INTO main.sync_meta(key, value) VALUES"
        " ('last_verified_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),"
        " ('diverged_total', ?1), ('last_verify', ?2)"
        " ON CONFLICT(key) DO UPDATE SET value = CASE key WHEN 'diverged_total'"
        " THEN coalesce(CAST(value AS INTEGER), 0) + excluded.value ELSE excluded.value END",
        -1, &s, 0);
    if (rc == SQLITE_OK) {
      sqlite3_bind_int64(s, 1, diverged);
      sqlite3_bind_text(s, 2, report, -1, SQLITE_STATIC);
      sqlite3_step(s);
      rc = sqlite3_finalize(s);
    }
  }
  if (began == 0) {
    if (rc != SQLITE_OK) ctx_exec(c, "ROLLBACK TO sync_verify_repair");
    int rc2 = ctx_exec(c, "RELEASE sync_verify_repair");
    if (rc == SQLITE_OK) rc = rc2;
  }
  rc = ctx_tx_end(c, began, rc, pzErr);
  /* after the transaction: a rollback would bring spooled rows back */
  verify_spool_drop(c, walk);
  if (rc != SQLITE_OK) apply_result_clear(res);
  return rc;
}

/* The report of a walk whose repair was applied, as sync_verify's. */
static char *byo_report(const Verify *v) {
  sqlite3_str *s = sqlite3_str_new(v->c->db);
  sqlite3_str_appendall(s, "{\"tables\":[{\"table\":");
  value_append_string(s, v->table, -1);
  sqlite3_str_appendf(s,
                      ",\"checked\":%lld,\"diverged\":%lld,\"repaired\":%lld}],\"diverged\":%lld,"
                      "\"repaired\":%lld}",
                      v->checked, v->diverged, v->diverged, v->diverged, v->diverged);
  return sqlite3_str_finish(s);
}

void verify_fn_request(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!ctx_require_init(ctx, c, "sync_verify_request")) return;
  verify_free(c->verify);
  c->verify = 0;
  const char *table = (const char *)sqlite3_value_text(argv[0]);
  char *client = ctx_meta_get(c, "client_id"), *cursor = ctx_meta_get(c, "cursor");
  char *err = 0, *body = 0;
  Verify *v = 0;
  sqlite3_int64 walk = 0;
  int rc = SQLITE_ERROR;
  if (!table)
    err = sqlite3_mprintf("table must be a tracked table's name");
  else if (!cursor)
    err = sqlite3_mprintf("no cursor yet: apply the server's pages first");
  else if ((rc = verify_spool_open(c, &walk, &err)) == SQLITE_OK &&
           (rc = verify_begin(c, table, client ? client : "", cursor, walk, &v, &err)) == SQLITE_OK)
    rc = verify_next(v, &body, &err);
  if (rc == SQLITE_OK) {
    c->verify = v;
    sqlite3_result_text(ctx, body, -1, sqlite3_free);
  } else {
    if (walk) verify_spool_drop(c, walk);
    verify_free(v);
    ctx_error_msg(ctx, c, "sync_verify_request", rc, err);
  }
  sqlite3_free(client);
  sqlite3_free(cursor);
}

void verify_fn_answer(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!ctx_require_init(ctx, c, "sync_verify_answer")) return;
  Verify *v = c->verify;
  const char *answer = (const char *)sqlite3_value_text(argv[0]);
  if (!v) {
    ctx_error(ctx, "sync_verify_answer", "no verification under way (sync_verify_request first)");
    return;
  }
  char *err = 0, *body = 0;
  int rc = answer ? verify_take(v, answer, &err) : SQLITE_ERROR;
  if (!answer) err = sqlite3_mprintf("the answer must be the server's JSON text");
  if (rc == SQLITE_OK) rc = verify_next(v, &body, &err);
  if (rc == SQLITE_OK && body) {
    sqlite3_result_text(ctx, body, -1, sqlite3_free);
    return;
  }
  if (rc == SQLITE_OK) {
    char *report = byo_report(v);
    ApplyResult res;
    rc = report ? verify_repair(c, v->walk, v->diverged, report, &res, &err) : SQLITE_NOMEM;
    if (rc == SQLITE_OK) {
      apply_result_clear(&res);
      sqlite3_result_text(ctx, report, -1, sqlite3_free);
      report = 0;
    }
    sqlite3_free(report);
  }
  if (rc != SQLITE_OK) ctx_error_msg(ctx, c, "sync_verify_answer", rc, err);
  /* a walk given up leaves nothing spooled (a repair drops its own) */
  verify_spool_drop(c, v->walk);
  verify_free(v);
  c->verify = 0;
}
