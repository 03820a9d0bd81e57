/*
** apply_rows.h: sync_apply_rows (apply_rows.c), the table function through
** which apply.c writes a batch of whole rows with one statement.
*/
#ifndef SYNC_APPLY_ROWS_H
#define SYNC_APPLY_ROWS_H

#include "table.h"
#include "jscan.h"

#define ROWS_COLS 256
#define BATCH_SPANS 65536 /* values a batch holds before it is written */

typedef struct Batch {
  SyncTable *t;
  int nRow, capRow, capVal;
  jspan *vals; /* row r, column j: vals[r * t->nCol + j] */
  int *chg;    /* per row: its change (from 1) */
  jspan *pks;  /* per row: its key object */
  jspan *rows; /* per row: its row object */
  int lo, hi;  /* the rows sync_apply_rows gives: lo to hi - 1 */
} Batch;

/* The columns sync_apply_rows declares on db (a wider table's rows go one
** by one). */
int apply_rows_ncols(sqlite3 *db);

/* Prepares t->bound[0]: ?1 a Batch, insert its rows or set their columns
** on their keys. Kept with t (dropped when the schema changes): preparing
** compiles t's capture triggers into it. */
int batch_prepare(SyncCtx *, SyncTable *t);

/* Reads row (change chg, key pk) into b's next slot. Returns 1 when row has
** every column of t (the slot is kept; the batch's table is t), 0 when not
** (the JSON upsert writes it), or -1 without memory. */
int batch_add(Batch *b, SyncTable *t, int chg, jspan pk, jspan row);

/* Runs the batch table's bound[0] over rows lo to hi - 1 of b. On failure
** *pzMsg gets SQLite's message and *pUnique whether a UNIQUE index refused
** a row. */
int batch_run(sqlite3 *db, Batch *b, int lo, int hi, char **pzMsg, int *pUnique);

extern sqlite3_module apply_rows_module;

#endif
