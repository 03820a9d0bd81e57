/*
** apply_rows.c: sync_apply_rows, a batch of whole rows as a table.
**
**   INSERT INTO t(a, b) SELECT c0, c1 FROM sync_apply_rows(?1) ...
**
** ?1 is a Batch (apply_rows.h), bound with sqlite3_bind_pointer (SQL cannot
** make one): column cJ is column J of the batch's table, read by the rules
** of sync_val when the statement asks for it, in place from the page.
** Without a batch the table is empty. apply.c writes its rows through one
** statement execution per batch, not one per row: every execution of a
** statement that fires the capture triggers allocates and clears their
** register frames, which would cost more than the rest of the row.
**
** Columns c0.. are declared up to ROWS_COLS (fewer if SQLITE_LIMIT_COLUMN
** says so): declaring them costs each connection about 4k instructions a
** column, once; a wider table's rows go one by one.
**
** apply.c builds a batch with batch_add (the values found in place in the
** page, by column) and writes it with batch_run, through the statement
** batch_prepare keeps with the table.
*/
#include "apply_rows.h"
#include "value.h"

#include <string.h>

int apply_rows_ncols(sqlite3 *db) {
  int lim = sqlite3_limit(db, SQLITE_LIMIT_COLUMN, -1) - 1;
  return lim < ROWS_COLS ? lim : ROWS_COLS;
}

/* ---- building and writing a batch (apply.c) ---- */

int batch_prepare(SyncCtx *c, SyncTable *t) {
  sqlite3_str *s = sqlite3_str_new(c->db);
  sqlite3_str_appendf(s, "INSERT INTO main.\"%w\"(", t->name);
  for (int i = 0; i < t->nCol; i++)
    sqlite3_str_appendf(s, "%s\"%w\"", i ? "," : "", t->cols[i]);
  sqlite3_str_appendall(s, ") SELECT ");
  for (int i = 0; i < t->nCol; i++)
    sqlite3_str_appendf(s, "%sc%d", i ? "," : "", i);
  /* WHERE true: an upsert after a SELECT needs it to parse. */
  sqlite3_str_appendall(s, " FROM sync_apply_rows(?1) WHERE true");
  table_upsert_tail(s, t, 1);
  char *sql = sqlite3_str_finish(s);
  if (!sql) return SQLITE_NOMEM;
  int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &t->bound[0], 0);
  sqlite3_free(sql);
  return rc;
}

/* The column of t named by key (a member name as written), or -1. hint:
** the member's position, the usual column. */
static int column_of(SyncTable *t, jspan key, int hint) {
  if (hint < t->nCol && strncmp(t->cols[hint], key.z, (size_t)key.n) == 0 &&
      t->cols[hint][key.n] == 0)
    return hint;
  for (int i = 0; i < t->nCol; i++)
    if (t->cols[i][0] == key.z[0] && strncmp(t->cols[i], key.z, (size_t)key.n) == 0 &&
        t->cols[i][key.n] == 0)
      return i;
  return -1;
}

int batch_run(sqlite3 *db, Batch *b, int lo, int hi, char **pzMsg, int *pUnique) {
  sqlite3_stmt *s = b->t->bound[0];
  b->lo = lo, b->hi = hi;
  sqlite3_bind_pointer(s, 1, b, "sync_apply_rows", 0);
  int rc = sqlite3_step(s);
  rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
  *pUnique = sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_UNIQUE;
  if (rc != SQLITE_OK && rc != SQLITE_NOMEM) *pzMsg = sqlite3_mprintf("%s", sqlite3_errmsg(db));
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return rc;
}

int batch_add(Batch *b, SyncTable *t, int i, jspan pk, jspan row) {
  int n = t->nCol;
  if (b->nRow >= b->capRow) {
    int cap = b->capRow ? b->capRow * 2 : 64;
    int *chg = sqlite3_realloc64(b->chg, sizeof *chg * (sqlite3_uint64)cap);
    if (chg) b->chg = chg;
    jspan *pks = sqlite3_realloc64(b->pks, sizeof *pks * (sqlite3_uint64)cap);
    if (pks) b->pks = pks;
    jspan *rows = sqlite3_realloc64(b->rows, sizeof *rows * (sqlite3_uint64)cap);
    if (rows) b->rows = rows;
    if (!chg || !pks || !rows) return -1;
    b->capRow = cap;
  }
  if ((b->nRow + 1) * n > b->capVal) {
    int cap = (b->nRow + 1) * n * 2;
    jspan *vals = sqlite3_realloc64(b->vals, sizeof *vals * (sqlite3_uint64)cap);
    if (!vals) return -1;
    b->vals = vals, b->capVal = cap;
  }
  jspan *slot = b->vals + b->nRow * n, key, val;
  for (int k = 0; k < n; k++)
    slot[k].z = 0;
  const char *z = row.z;
  int found = 0;
  for (int m = 0; jscan_member(&z, row.z + row.n, &key, &val); m++) {
    int col = column_of(t, key, m);
    if (col >= 0 && !slot[col].z) slot[col] = val, found++;
  }
  if (found < n) return 0;
  b->t = t;
  b->chg[b->nRow] = i;
  b->pks[b->nRow] = pk;
  b->rows[b->nRow] = row;
  b->nRow++;
  return 1;
}

/* ---- the table function ---- */

typedef struct RowsCursor {
  sqlite3_vtab_cursor base;
  Batch *b;
  int i;
} RowsCursor;

static int rowsConnect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                       sqlite3_vtab **ppVtab, char **pzErr) {
  (void)aux, (void)argc, (void)argv, (void)pzErr;
  sqlite3_str *s = sqlite3_str_new(db);
  sqlite3_str_appendall(s, "CREATE TABLE x(batch HIDDEN");
  for (int i = 0, n = apply_rows_ncols(db); i < n; i++)
    sqlite3_str_appendf(s, ",c%d", i);
  sqlite3_str_appendall(s, ")");
  char *sql = sqlite3_str_finish(s);
  if (!sql) return SQLITE_NOMEM;
  int rc = sqlite3_declare_vtab(db, sql);
  sqlite3_free(sql);
  if (rc != SQLITE_OK) return rc;
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  sqlite3_vtab *v = sqlite3_malloc64(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  *ppVtab = v;
  return SQLITE_OK;
}

static int rowsDisconnect(sqlite3_vtab *vtab) {
  sqlite3_free(vtab);
  return SQLITE_OK;
}

static int rowsBestIndex(sqlite3_vtab *vtab, sqlite3_index_info *info) {
  (void)vtab;
  info->idxNum = 0;
  info->estimatedCost = 1e12;
  for (int i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *k = &info->aConstraint[i];
    if (k->iColumn == 0 && k->op == SQLITE_INDEX_CONSTRAINT_EQ && k->usable) {
      info->aConstraintUsage[i].argvIndex = 1;
      info->aConstraintUsage[i].omit = 1;
      info->idxNum = 1;
      info->estimatedCost = 1;
      break;
    }
  }
  return SQLITE_OK;
}

static int rowsOpen(sqlite3_vtab *vtab, sqlite3_vtab_cursor **ppCur) {
  (void)vtab;
  RowsCursor *cur = sqlite3_malloc64(sizeof *cur);
  if (!cur) return SQLITE_NOMEM;
  memset(cur, 0, sizeof *cur);
  *ppCur = &cur->base;
  return SQLITE_OK;
}

static int rowsClose(sqlite3_vtab_cursor *cur) {
  sqlite3_free(cur);
  return SQLITE_OK;
}

static int rowsFilter(sqlite3_vtab_cursor *vcur, int idxNum, const char *idxStr, int argc,
                      sqlite3_value **argv) {
  (void)idxStr;
  RowsCursor *cur = (RowsCursor *)vcur;
  cur->b = idxNum && argc > 0 ? sqlite3_value_pointer(argv[0], "sync_apply_rows") : 0;
  cur->i = cur->b ? cur->b->lo : 0;
  return SQLITE_OK;
}

static int rowsNext(sqlite3_vtab_cursor *vcur) {
  ((RowsCursor *)vcur)->i++;
  return SQLITE_OK;
}

static int rowsEof(sqlite3_vtab_cursor *vcur) {
  RowsCursor *cur = (RowsCursor *)vcur;
  return !cur->b || cur->i >= cur->b->hi;
}

static int rowsColumn(sqlite3_vtab_cursor *vcur, sqlite3_context *ctx, int col) {
  RowsCursor *cur = (RowsCursor *)vcur;
  Batch *b = cur->b;
  if (!b || col < 1 || col > b->t->nCol) return SQLITE_OK;
  jspan v = b->vals[cur->i * b->t->nCol + col - 1];
  if (v.z[0] == '{' || v.z[0] == '[') {
    /* Nested JSON is stored as -> renders it. */
    char *compact = jscan_compact(v);
    if (!compact) return SQLITE_NOMEM;
    value_result(ctx, compact, (int)strlen(compact));
    sqlite3_free(compact);
  } else {
    value_result(ctx, v.z, v.n);
  }
  return SQLITE_OK;
}

static int rowsRowid(sqlite3_vtab_cursor *vcur, sqlite3_int64 *pRowid) {
  *pRowid = ((RowsCursor *)vcur)->i;
  return SQLITE_OK;
}

sqlite3_module apply_rows_module = {
    /* iVersion    */ 0,
    /* xCreate     */ 0,
    /* xConnect    */ rowsConnect,
    /* xBestIndex  */ rowsBestIndex,
    /* xDisconnect */ rowsDisconnect,
    /* xDestroy    */ 0,
    /* xOpen       */ rowsOpen,
    /* xClose      */ rowsClose,
    /* xFilter     */ rowsFilter,
    /* xNext       */ rowsNext,
    /* xEof        */ rowsEof,
    /* xColumn     */ rowsColumn,
    /* xRowid      */ rowsRowid,
    /* xUpdate     */ 0,
    /* xBegin      */ 0,
    /* xSync       */ 0,
    /* xCommit     */ 0,
    /* xRollback   */ 0,
    /* xFindMethod */ 0,
    /* xRename     */ 0,
    /* xSavepoint  */ 0,
    /* xRelease    */ 0,
    /* xRollbackTo */ 0,
    /* xShadowName */ 0,
};
