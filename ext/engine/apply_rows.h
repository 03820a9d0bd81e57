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

extern sqlite3_module apply_rows_module;

#endif
