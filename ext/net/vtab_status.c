/*
** vtab_status.c: the sync_status eponymous virtual table.
**
**   SELECT * FROM sync_status;
**   -- state | online | pending | rejected | cursor | sse_connected |
**   -- last_push_at | last_pull_at | last_error | next_retry_at |
**   -- pushed_total | pulled_total | client_id | url | skipped_changes |
**   -- first_sync_done | needs_token | last_verified_at | diverged_total |
**   -- last_verify | role | schema_change | schema_changed_at |
**   -- server_reset | server_reset_at
**
** One row. state is 'stopped', 'idle', 'pushing', 'pulling', 'offline' or
** 'error'; times are UTC ISO-8601 text ('2026-01-02T03:04:05.678Z') or
** NULL. The worker's side (state, connectivity, errors, totals) is read
** from this process's worker for the database file; pending, rejected,
** cursor, client_id and url from the database, and skipped_changes (the
** changes a server sent for tables this client does not track, counted by
** the apply side in sync_meta's "skipped_changes"; 0 when none).
** first_sync_done is 1 once a pull of this client (worker or sync_pull) has
** applied its last page, the server's whole state at the time (sync_meta
** "first_sync_done", set by client_apply; it stays 1 through a later full
** resync); needs_token is 1 after the worker, sync_push or sync_pull met
** 401/403, until a new token is set (sync_config('token', ...)). The token
** never appears. last_verified_at, diverged_total (keys repaired so far; 0
** before any) and last_verify (the last report, sync_verify's JSON) are what
** sync_verify or the worker's verification last recorded in sync_meta.
** role is 'worker' while this process's worker holds the file's lock (it
** is the one syncing the file), 'standby' while it waits because another
** process holds it, and NULL when no worker runs here or it has not tried
** the lock yet. schema_change and schema_changed_at say which tracked
** tables were altered without sync_migrate, and when the engine noticed and
** rebuilt their capture triggers (migrate.c); NULL before any.
** server_reset and server_reset_at say what the last resync after the
** server went back in time did with the rows it had lost, and when
** (existing.c); NULL before any.
** Fails with "sync_status: sync_init() has not been called on this
** database" before sync_init.
*/
#include "vtab_status.h"
#include "outbox.h"
#include "site.h"

#include <string.h>

static const char status_schema[] =
    "CREATE TABLE x(state TEXT, online INTEGER, pending INTEGER, rejected INTEGER, cursor TEXT,"
    " sse_connected INTEGER, last_push_at TEXT, last_pull_at TEXT, last_error TEXT,"
    " next_retry_at TEXT, pushed_total INTEGER, pulled_total INTEGER, client_id TEXT, url TEXT,"
    " skipped_changes INTEGER, first_sync_done INTEGER, needs_token INTEGER,"
    " last_verified_at TEXT, diverged_total INTEGER, last_verify TEXT, role TEXT,"
    " schema_change TEXT, schema_changed_at TEXT, server_reset TEXT, server_reset_at TEXT)";

/* One statement lays the row out (times as text); the worker's values and
** the engine's (outbox_counts, ctx_meta_get) are bound. */
static const char status_sql[] =
    "SELECT ?1, ?2, ?10, ?11, ?12, ?3,"
    " CASE WHEN ?4 > 0 THEN strftime('%Y-%m-%dT%H:%M:%fZ', ?4 / 1000.0, 'unixepoch') END,"
    " CASE WHEN ?5 > 0 THEN strftime('%Y-%m-%dT%H:%M:%fZ', ?5 / 1000.0, 'unixepoch') END,"
    " ?6,"
    " CASE WHEN ?7 > 0 THEN strftime('%Y-%m-%dT%H:%M:%fZ', ?7 / 1000.0, 'unixepoch') END,"
    " ?8, ?9, ?13, ?14, coalesce(CAST(?15 AS INTEGER), 0), ?16 IS NOT NULL, ?17,"
    " ?18, coalesce(CAST(?19 AS INTEGER), 0), ?20, ?21, ?22, ?23, ?24, ?25";

typedef struct status_vtab {
  sqlite3_vtab base;
  NetConn *nc;
} status_vtab;

typedef struct status_cursor {
  sqlite3_vtab_cursor base;
  sqlite3_stmt *stmt;
  int eof;
} status_cursor;

static int statusConnect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                         sqlite3_vtab **ppVtab, char **pzErr) {
  (void)argc, (void)argv, (void)pzErr;
  int rc = sqlite3_declare_vtab(db, status_schema);
  if (rc != SQLITE_OK) return rc;
  status_vtab *v = sqlite3_malloc64(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  v->nc = aux;
  *ppVtab = &v->base;
  return SQLITE_OK;
}

static int statusDisconnect(sqlite3_vtab *vtab) {
  sqlite3_free(vtab);
  return SQLITE_OK;
}

/* idxNum 1: pending or rejected is read, which counts both tables (a scan
** of each): a poll of the other columns (sync-agent's, every 200 ms) skips it. */
#define COUNTS_USED ((sqlite3_uint64)3 << 2)

static int statusBestIndex(sqlite3_vtab *vtab, sqlite3_index_info *info) {
  (void)vtab;
  info->idxNum = (info->colUsed & COUNTS_USED) != 0;
  info->estimatedCost = 1;
  info->estimatedRows = 1;
  return SQLITE_OK;
}

static int statusOpen(sqlite3_vtab *vtab, sqlite3_vtab_cursor **ppCur) {
  (void)vtab;
  status_cursor *cur = sqlite3_malloc64(sizeof *cur);
  if (!cur) return SQLITE_NOMEM;
  memset(cur, 0, sizeof *cur);
  *ppCur = &cur->base;
  return SQLITE_OK;
}

static int statusClose(sqlite3_vtab_cursor *p) {
  status_cursor *cur = (status_cursor *)p;
  sqlite3_finalize(cur->stmt);
  sqlite3_free(cur);
  return SQLITE_OK;
}

static int statusFilter(sqlite3_vtab_cursor *p, int idxNum, const char *idxStr, int argc,
                        sqlite3_value **argv) {
  (void)idxStr, (void)argc, (void)argv;
  status_cursor *cur = (status_cursor *)p;
  status_vtab *v = (status_vtab *)p->pVtab;
  sqlite3_finalize(cur->stmt);
  cur->stmt = 0;
  NetConn *nc = v->nc;
  sqlite3_int64 pending = 0, rejected = 0;
  /* Either read fails before sync_init: the outbox, or the client id. */
  char *id = idxNum ? 0 : ctx_meta_get(nc->c, "client_id");
  int rc = idxNum ? outbox_counts(nc->c, &pending, &rejected) : id ? SQLITE_OK : SQLITE_ERROR;
  sqlite3_free(id);
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(nc->db, status_sql, -1, &cur->stmt, 0);
  if (rc != SQLITE_OK) {
    sqlite3_free(v->base.zErrMsg);
    v->base.zErrMsg =
        sqlite3_mprintf("sync_status: sync_init() has not been called on this database");
    return SQLITE_ERROR;
  }
  site_snapshot w;
  site_snapshot_get(nc, &w);
  sqlite3_stmt *s = cur->stmt;
  sqlite3_bind_text(s, 1, w.state, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 2, w.online);
  sqlite3_bind_int(s, 3, w.sse_connected);
  sqlite3_bind_int64(s, 4, w.last_push_at);
  sqlite3_bind_int64(s, 5, w.last_pull_at);
  if (w.last_error[0]) sqlite3_bind_text(s, 6, w.last_error, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 7, w.next_retry_at);
  sqlite3_bind_int64(s, 8, w.pushed_total);
  sqlite3_bind_int64(s, 9, w.pulled_total);
  sqlite3_bind_int64(s, 10, pending);
  sqlite3_bind_int64(s, 11, rejected);
  sqlite3_bind_int(s, 17, w.needs_token);
  sqlite3_bind_text(s, 21, w.role, -1, SQLITE_STATIC);
  const char *meta[] = {"cursor",
                        "client_id",
                        "url",
                        "skipped_changes",
                        "first_sync_done",
                        "",
                        "last_verified_at",
                        "diverged_total",
                        "last_verify",
                        "",
                        "schema_change",
                        "schema_changed_at",
                        "server_reset_note",
                        "server_reset_at"};
  for (int i = 0; i < (int)(sizeof meta / sizeof meta[0]); i++) {
    if (!*meta[i]) continue; /* ?17 and ?21 are the worker's */
    char *m = ctx_meta_get(nc->c, meta[i]);
    if (m) sqlite3_bind_text(s, 12 + i, m, -1, sqlite3_free);
  }
  rc = sqlite3_step(s);
  cur->eof = rc != SQLITE_ROW;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    sqlite3_free(v->base.zErrMsg);
    v->base.zErrMsg = sqlite3_mprintf("sync_status: %s", sqlite3_errmsg(nc->db));
    return rc;
  }
  return SQLITE_OK;
}

static int statusNext(sqlite3_vtab_cursor *p) {
  ((status_cursor *)p)->eof = 1;
  return SQLITE_OK;
}

static int statusEof(sqlite3_vtab_cursor *p) {
  return ((status_cursor *)p)->eof;
}

static int statusColumn(sqlite3_vtab_cursor *p, sqlite3_context *ctx, int i) {
  sqlite3_result_value(ctx, sqlite3_column_value(((status_cursor *)p)->stmt, i));
  return SQLITE_OK;
}

static int statusRowid(sqlite3_vtab_cursor *p, sqlite_int64 *pRowid) {
  (void)p;
  *pRowid = 1;
  return SQLITE_OK;
}

sqlite3_module vtab_status_module = {
    /* iVersion    */ 0,
    /* xCreate     */ 0,
    /* xConnect    */ statusConnect,
    /* xBestIndex  */ statusBestIndex,
    /* xDisconnect */ statusDisconnect,
    /* xDestroy    */ 0,
    /* xOpen       */ statusOpen,
    /* xClose      */ statusClose,
    /* xFilter     */ statusFilter,
    /* xNext       */ statusNext,
    /* xEof        */ statusEof,
    /* xColumn     */ statusColumn,
    /* xRowid      */ statusRowid,
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
