/*
** fp_dialect.h: what a storage engine provides to the fingerprint cache of
** POST /verify (fp_cache.c): fp_sqlite.c and fp_pg.c each define one
** table. Its functions take the dialect's native handle of a connection
** (dialect.h's native), return 0 or -1 with *err (sqlite3_malloc'd).
**
** The cache's tables, next to the dialect's internal ones:
**   _syncd_fp_tables(tbl, sig)          a table whose cache is built, and the
**                                       columns it was built for
**   _syncd_fp_rows(tbl, pk, kh, h)      each row's key hash and row hash
**   _syncd_fp_buckets(tbl, b, n, s)     per top FP_LEVEL hex digits of kh:
**                                       the count and the sum of h
**   _syncd_fp_dirty(tbl, key...)        keys written since the cache last
**                                       read them, recorded by triggers
** Hashes are stored as signed 64-bit integers; kh with its top bit flipped,
** so that its signed order is the unsigned hash's.
*/
#ifndef SYNCD_FP_DIALECT_H
#define SYNCD_FP_DIALECT_H

#include "catalog.h"

/* begin's modes. */
enum {
  FP_READ,  /* a read-only snapshot */
  FP_DRAIN, /* one that writes the cache; writers of the cache serialize */
  FP_BUILD  /* that, and t's writers held off until commit, so a scan and the
            ** triggers made with it miss no write */
};

typedef struct fp_dialect {
  /* Key columns a table may have for the cache to serve it. */
  int max_keys;
  /* Insert the rows ($2: a JSON array of [pk, kh, h]) and upsert the buckets
  ** ($2: a JSON array of [b, n, s]) of table $1. */
  const char *put_rows_sql, *put_buckets_sql;
  /* Read (pk, kh, h) and delete the rows of table $1 cached under the keys
  ** in $2 (a JSON array of pk texts). */
  const char *get_rows_sql, *del_rows_sql;
  /* The condition "tbl is one of the names in $1" (a JSON array). */
  const char *in_names;
  /* Make the cache's tables (inside the store's setup transaction). */
  int (*setup)(void *h, char **err);
  /* Open the cache's transaction in mode (t: FP_BUILD's table); the
  ** snapshot begins after its locks. commit ends it. */
  int (*begin)(void *h, int mode, const catalog_table *t, char **err);
  int (*commit)(void *h, char **err);
  /* Run one statement (parameters $1.. first used in order, text; NULL: SQL
  ** NULL), handing each result row's columns as text (NULL: SQL NULL) to
  ** each (NULL: none read), which returns 0 or -1 with *err. */
  int (*query)(void *h, const char *sql, int n, const char *const *params,
               int (*each)(void *arg, const char *const *cols, char **err), void *arg, char **err);
  /* Whether t's triggers recording written keys in _syncd_fp_dirty are in
  ** place and enabled (*yes); make: drop and make them first. Plain SQL
  ** triggers, so that every writer fires them, syncd or not. */
  int (*watch)(void *h, const catalog_table *t, int make, int *yes, char **err);
  /* Hand each key of t in _syncd_fp_dirty to each -- key: its pk JSON as
  ** recorded; pk and row: the row under that key now, NULL when none --
  ** then delete them. */
  int (*dirty)(void *h, const catalog_table *t,
               int (*each)(void *arg, const char *key, const char *pk, const char *row, char **err),
               void *arg, char **err);
} fp_dialect;

extern const fp_dialect fp_sqlite;
extern const fp_dialect fp_pg;

#endif
