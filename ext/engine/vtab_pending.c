/*
** vtab_pending.c: the sync_pending eponymous virtual table.
**
**   SELECT * FROM sync_pending;
**   -- id | table_name | op | pk | data | created_at | attempts | last_error
**
** One row per mutation waiting to be sent, in the order they will be sent.
** pk and data are JSON objects in wire form (BLOBs as {"$base64":...});
** data is NULL for a delete. Read-only; it reads the sync_outbox table and
** fails with "sync_pending: sync_init() has not been called on this
** database" before sync_init. Its connection also anchors the statement
** caches (see ctx_anchor in ctx.c).
*/
#include "vtab_pending.h"
#include "table.h"

#include <string.h>

static const char pending_schema[] = "CREATE TABLE x(id INTEGER, table_name TEXT, op TEXT,"
                                     " pk TEXT, data TEXT, created_at TEXT, attempts INTEGER,"
                                     " last_error TEXT)";
#define PENDING_ID 0

typedef struct pending_vtab {
  sqlite3_vtab base;
  SyncCtx *c;
} pending_vtab;

typedef struct pending_cursor {
  sqlite3_vtab_cursor base;
  sqlite3_stmt *stmt;
  int eof;
} pending_cursor;

static int pendingConnect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                          sqlite3_vtab **ppVtab, char **pzErr) {
  (void)argc, (void)argv, (void)pzErr;
  int rc = sqlite3_declare_vtab(db, pending_schema);
  if (rc != SQLITE_OK) return rc;
  pending_vtab *v = sqlite3_malloc64(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  v->c = aux;
  v->c->anchored = 1;
  *ppVtab = &v->base;
  return SQLITE_OK;
}

/* Runs at close before SQLite checks for unfinalized statements (see
** ctx_anchor): the extension's cached statements go with it. */
static int pendingDisconnect(sqlite3_vtab *vtab) {
  pending_vtab *v = (pending_vtab *)vtab;
  v->c->anchored = 0;
  table_cache_clear(v->c);
  ctx_stmt_clear(v->c);
  sqlite3_free(vtab);
  return SQLITE_OK;
}

static int pendingBestIndex(sqlite3_vtab *vtab, sqlite3_index_info *info) {
  (void)vtab;
  /* Rows come out in id order: an ORDER BY id needs no sort. */
  if (info->nOrderBy == 1 && info->aOrderBy[0].iColumn == PENDING_ID && !info->aOrderBy[0].desc)
    info->orderByConsumed = 1;
  info->estimatedCost = 1000;
  return SQLITE_OK;
}

static int pendingOpen(sqlite3_vtab *vtab, sqlite3_vtab_cursor **ppCur) {
  (void)vtab;
  pending_cursor *cur = sqlite3_malloc64(sizeof *cur);
  if (!cur) return SQLITE_NOMEM;
  memset(cur, 0, sizeof *cur);
  *ppCur = &cur->base;
  return SQLITE_OK;
}

static int pendingClose(sqlite3_vtab_cursor *p) {
  pending_cursor *cur = (pending_cursor *)p;
  sqlite3_finalize(cur->stmt);
  sqlite3_free(cur);
  return SQLITE_OK;
}

static int pendingNext(sqlite3_vtab_cursor *p) {
  pending_cursor *cur = (pending_cursor *)p;
  int rc = sqlite3_step(cur->stmt);
  cur->eof = rc != SQLITE_ROW;
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int pendingFilter(sqlite3_vtab_cursor *p, int idxNum, const char *idxStr, int argc,
                         sqlite3_value **argv) {
  (void)idxNum, (void)idxStr, (void)argc, (void)argv;
  pending_cursor *cur = (pending_cursor *)p;
  pending_vtab *v = (pending_vtab *)p->pVtab;
  if (!cur->stmt) {
    int rc = sqlite3_prepare_v2(v->c->db,
                                "SELECT id, tbl, op, sync_wire(pk), sync_wire(data),"
                                " strftime('%Y-%m-%dT%H:%M:%fZ', created_at), attempts, last_error"
                                " FROM main.sync_outbox ORDER BY id",
                                -1, &cur->stmt, 0);
    if (rc != SQLITE_OK) {
      /* Only a missing outbox means sync_init is owed; anything else (a
      ** locked schema, out of memory) is reported as it is. */
      const char *why = ctx_errmsg(v->c, rc);
      sqlite3_free(v->base.zErrMsg);
      v->base.zErrMsg =
          strstr(why, "no such table")
              ? sqlite3_mprintf("sync_pending: sync_init() has not been called on this database")
              : sqlite3_mprintf("sync_pending: %s", why);
      return rc;
    }
  }
  sqlite3_reset(cur->stmt);
  return pendingNext(p);
}

static int pendingEof(sqlite3_vtab_cursor *p) {
  return ((pending_cursor *)p)->eof;
}

static int pendingColumn(sqlite3_vtab_cursor *p, sqlite3_context *ctx, int i) {
  sqlite3_result_value(ctx, sqlite3_column_value(((pending_cursor *)p)->stmt, i));
  return SQLITE_OK;
}

static int pendingRowid(sqlite3_vtab_cursor *p, sqlite_int64 *pRowid) {
  *pRowid = sqlite3_column_int64(((pending_cursor *)p)->stmt, PENDING_ID);
  return SQLITE_OK;
}

sqlite3_module vtab_pending_module = {
    /* iVersion    */ 0,
    /* xCreate     */ 0,
    /* xConnect    */ pendingConnect,
    /* xBestIndex  */ pendingBestIndex,
    /* xDisconnect */ pendingDisconnect,
    /* xDestroy    */ 0,
    /* xOpen       */ pendingOpen,
    /* xClose      */ pendingClose,
    /* xFilter     */ pendingFilter,
    /* xNext       */ pendingNext,
    /* xEof        */ pendingEof,
    /* xColumn     */ pendingColumn,
    /* xRowid      */ pendingRowid,
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
