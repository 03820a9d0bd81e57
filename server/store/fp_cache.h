/*
** fp_cache.h: POST /verify's answer as it is summed up (buckets or rows),
** and the cache that sums a table's buckets without scanning it
** (fp_cache.c): per-row hashes and per-bucket sums kept in the database,
** brought up to date at each request from the keys that triggers recorded
** as written.
*/
#ifndef SYNCD_FP_CACHE_H
#define SYNCD_FP_CACHE_H

#include <sqlite3.h>
#include <stdint.h>

#include "catalog.h"

typedef struct store store;
typedef struct dialect_conn dialect_conn;

#define FP_MAX_PREFIXES 256
#define FP_MAX_SPLIT 3
#define FP_MAX_ROWS 10000

/* One parsed request; strings sqlite3_malloc'd (fp_request_free). */
typedef struct fp_request {
  char *client_id;
  char *table;
  char **columns; /* NULL: every column */
  int n_columns;
  unsigned long long *prefixes; /* each the top 4*depth bits of a key hash */
  int n_prefixes;
  int depth; /* hex digits of each prefix, 0..16 */
  int split; /* hex digits each prefix is split by (buckets: 16^split), 0..3 */
  int rows;  /* answer the rows under the prefixes instead of buckets */
} fp_request;

/* An answer being summed: the table's row count, and either the buckets
** (n_prefixes * 16^split counts and sums) or the rows listed (rows mode:
** n_rows, beyond FP_MAX_ROWS only counted). */
typedef struct fp_answer {
  const fp_request *r;
  long long count;
  long long n_rows;
  unsigned long long *cnt, *sum;
  sqlite3_str *rows;
} fp_answer;

/* 0, or -1 when out of memory; fp_answer_free either way. */
int fp_answer_init(fp_answer *a, const fp_request *r);
void fp_answer_free(fp_answer *a);

/* The key hash and row hash of a row as the wire prints it, over the
** request's columns (NULL r: every column). 0, or -1 when out of memory. */
int fp_answer_hash(const fp_request *r, const char *pk, const char *row, uint64_t *kh, uint64_t *h);

/* Buckets: add n rows whose key hashes start as kh (at least depth+split
** digits of it mean something) and whose row hashes sum to sum; nothing
** when kh is under no prefix asked. */
void fp_answer_add(fp_answer *a, uint64_t kh, unsigned long long n, uint64_t sum);

/* Rows: list the row when kh is under a prefix asked. */
void fp_answer_row(fp_answer *a, uint64_t kh, const char *pk, const char *row);

/* Whether the cache can answer r for t: a request over every column of t
** (no columns, or all of t's among them; fewer is answered by a scan) of
** a table with few enough key columns. */
int fp_cache_serves(store *s, const catalog_table *t, const fp_request *r);

/* Make the cache's tables (the store's setup, c in its transaction). */
int fp_cache_setup(store *s, dialect_conn *c, char **err);

/* Sum a (fp_answer_init'ed) for t in one snapshot of c, its head in
** *head: the cache brought up to date first (built by a scan the first
** time, or when t's columns or its triggers changed). 0, or -1 with *err. */
int fp_cache_answer(store *s, dialect_conn *c, const catalog_table *t, fp_answer *a,
                    long long *head, char **err);

#endif
