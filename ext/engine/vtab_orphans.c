/*
** vtab_orphans.c: the sync_orphans eponymous virtual table.
**
**   SELECT * FROM sync_orphans;
**   -- table_name | pk | row | state | noted_at
**   DELETE FROM sync_orphans WHERE state = 'removed';   -- acknowledge
**
** Rows of tracked tables the server has not confirmed and nothing queues
** (existing.c), in table and key order, from sync_local:
**   kept     local-only: sync_track's "keep", a resync kept it, or a
**            refused insert other rows refer to ended its guard (guard.c,
**            the server has no such row for this client). row is
**            the row as it stands now; listed while it exists. Its edits
**            stay local (existing.c's sync_hold: the server has no such
**            row) and a delete ends the listing; push them with
**            sync_track(table, '{"existing":"push"}'), or let the server's
**            rows replace them with '{"existing":"server"}'.
**   replace  sync_track's "server": the next pull (a full resync) writes
**            the server's rows over them and removes the others
**   removed  what that removed: row is the row as it was. A row wanted
**            back is inserted again (and so queued).
**   server_reset  a confirmed row the server lost (it was restored from an
**            older copy or replaced) that the resync removed, with
**            sync_config('on_server_reset') 'orphans' (the default): row
**            is the row as it was; insert it again to push it back.
** pk and row are JSON in wire form. Only a removed or server_reset row can
** be deleted (acknowledged):
**   sync_orphans: a kept row stays listed until it is pushed or replaced
**   (sync_track(table, options))
*/
#include "vtab_orphans.h"
#include "table.h"

#include <string.h>

static const char orphans_schema[] =
    "CREATE TABLE x(table_name TEXT, pk TEXT, row TEXT, state TEXT, noted_at TEXT)";
#define ORPHANS_ROW 2

typedef struct orphans_vtab {
  sqlite3_vtab base;
  SyncCtx *c;
} orphans_vtab;

typedef struct orphans_cursor {
  sqlite3_vtab_cursor base;
  sqlite3_stmt *stmt; /* id, tbl, wire pk, row, state, noted_at, raw pk */
  char *row;          /* the current row of a kept or replaced key (wire JSON) */
  int eof;
} orphans_cursor;

static int orphansConnect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                          sqlite3_vtab **ppVtab, char **pzErr) {
  (void)argc, (void)argv, (void)pzErr;
  int rc = sqlite3_declare_vtab(db, orphans_schema);
  if (rc != SQLITE_OK) return rc;
  orphans_vtab *v = sqlite3_malloc64(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  v->c = aux;
  *ppVtab = &v->base;
  return SQLITE_OK;
}

static int orphansDisconnect(sqlite3_vtab *vtab) {
  sqlite3_free(vtab);
  return SQLITE_OK;
}

static int orphansBestIndex(sqlite3_vtab *vtab, sqlite3_index_info *info) {
  (void)vtab;
  info->estimatedCost = 1000;
  return SQLITE_OK;
}

static int orphansOpen(sqlite3_vtab *vtab, sqlite3_vtab_cursor **ppCur) {
  (void)vtab;
  orphans_cursor *cur = sqlite3_malloc64(sizeof *cur);
  if (!cur) return SQLITE_NOMEM;
  memset(cur, 0, sizeof *cur);
  *ppCur = &cur->base;
  return SQLITE_OK;
}

static int orphansClose(sqlite3_vtab_cursor *p) {
  orphans_cursor *cur = (orphans_cursor *)p;
  sqlite3_finalize(cur->stmt);
  sqlite3_free(cur->row);
  sqlite3_free(cur);
  return SQLITE_OK;
}

/* Whether the entry under the statement is listed: a removed or
** server_reset row always; a kept or replaced one while its row exists
** (cur->row gets the row as it stands now). */
static int orphansListed(orphans_cursor *cur, int *pListed) {
  SyncCtx *c = ((orphans_vtab *)cur->base.pVtab)->c;
  sqlite3_stmt *s = cur->stmt;
  sqlite3_free(cur->row);
  cur->row = 0;
  const char *state = (const char *)sqlite3_column_text(s, 4);
  *pListed = strcmp(state, "removed") == 0 || strcmp(state, "server_reset") == 0;
  if (*pListed) return SQLITE_OK;
  SyncTable *t = 0;
  char *why = 0;
  int rc = table_get(c, (const char *)sqlite3_column_text(s, 1), 1, &t, &why);
  sqlite3_free(why);
  if (rc != SQLITE_OK) return rc == SQLITE_NOMEM ? rc : SQLITE_OK; /* dropped since */
  rc = table_row_json(c, t, (const char *)sqlite3_column_text(s, 6), &cur->row);
  *pListed = rc == SQLITE_OK && cur->row;
  return rc;
}

static int orphansNext(sqlite3_vtab_cursor *p) {
  orphans_cursor *cur = (orphans_cursor *)p;
  for (;;) {
    int rc = sqlite3_step(cur->stmt);
    cur->eof = rc != SQLITE_ROW;
    if (rc != SQLITE_ROW) return rc == SQLITE_DONE ? SQLITE_OK : rc;
    int listed = 0;
    rc = orphansListed(cur, &listed);
    if (rc != SQLITE_OK || listed) return rc;
  }
}

static int orphansFilter(sqlite3_vtab_cursor *p, int idxNum, const char *idxStr, int argc,
                         sqlite3_value **argv) {
  (void)idxNum, (void)idxStr, (void)argc, (void)argv;
  orphans_cursor *cur = (orphans_cursor *)p;
  orphans_vtab *v = (orphans_vtab *)p->pVtab;
  if (!cur->stmt) {
    int rc = sqlite3_prepare_v2(v->c->db,
                                "SELECT id, tbl, sync_wire(pk), sync_wire(row), state, noted_at, pk"
                                " FROM main.sync_local ORDER BY tbl, pk",
                                -1, &cur->stmt, 0);
    if (rc != SQLITE_OK) {
      const char *why = ctx_errmsg(v->c, rc);
      sqlite3_free(v->base.zErrMsg);
      /* No sync_local: nothing was ever kept (sync_init or sync_track of
      ** this build creates it), unless sync_init is owed. */
      if (strstr(why, "no such table: main.sync_local")) {
        sqlite3_stmt *t = 0;
        int init =
            sqlite3_prepare_v2(v->c->db, "SELECT 1 FROM main.sync_tracked", -1, &t, 0) == SQLITE_OK;
        sqlite3_finalize(t);
        if (init) {
          cur->eof = 1;
          return SQLITE_OK;
        }
        v->base.zErrMsg =
            sqlite3_mprintf("sync_orphans: sync_init() has not been called on this database");
      } else {
        v->base.zErrMsg = sqlite3_mprintf("sync_orphans: %s", why);
      }
      return rc;
    }
  }
  sqlite3_reset(cur->stmt);
  return orphansNext(p);
}

static int orphansEof(sqlite3_vtab_cursor *p) {
  return ((orphans_cursor *)p)->eof;
}

static int orphansColumn(sqlite3_vtab_cursor *p, sqlite3_context *ctx, int i) {
  orphans_cursor *cur = (orphans_cursor *)p;
  if (i == ORPHANS_ROW && cur->row)
    sqlite3_result_text(ctx, cur->row, -1, SQLITE_TRANSIENT);
  else
    sqlite3_result_value(ctx, sqlite3_column_value(cur->stmt, i + 1));
  return SQLITE_OK;
}

static int orphansRowid(sqlite3_vtab_cursor *p, sqlite_int64 *pRowid) {
  *pRowid = sqlite3_column_int64(((orphans_cursor *)p)->stmt, 0);
  return SQLITE_OK;
}

/* DELETE of a removed row forgets it; nothing else is written here. */
static int orphansUpdate(sqlite3_vtab *vtab, int argc, sqlite3_value **argv, sqlite_int64 *pRowid) {
  (void)pRowid;
  orphans_vtab *v = (orphans_vtab *)vtab;
  const char *why = "rows are added by sync_track and a full resync; only a removed or "
                    "server_reset row can be deleted";
  if (argc == 1) {
    sqlite3_stmt *s = 0;
    int rc = sqlite3_prepare_v2(
        v->c->db,
        "DELETE FROM main.sync_local WHERE id = ?1 AND state IN ('removed', 'server_reset')", -1,
        &s, 0);
    if (rc == SQLITE_OK) {
      sqlite3_bind_value(s, 1, argv[0]);
      rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(v->c->db);
      if (rc == SQLITE_OK && sqlite3_changes(v->c->db) == 1) {
        sqlite3_finalize(s);
        return SQLITE_OK;
      }
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_OK)
      why = ctx_errmsg(v->c, rc);
    else
      why = "a kept row stays listed until it is pushed or replaced (sync_track(table, options))";
  }
  sqlite3_free(vtab->zErrMsg);
  vtab->zErrMsg = sqlite3_mprintf("sync_orphans: %s", why);
  return SQLITE_ERROR;
}

sqlite3_module vtab_orphans_module = {
    /* iVersion    */ 0,
    /* xCreate     */ 0,
    /* xConnect    */ orphansConnect,
    /* xBestIndex  */ orphansBestIndex,
    /* xDisconnect */ orphansDisconnect,
    /* xDestroy    */ 0,
    /* xOpen       */ orphansOpen,
    /* xClose      */ orphansClose,
    /* xFilter     */ orphansFilter,
    /* xNext       */ orphansNext,
    /* xEof        */ orphansEof,
    /* xColumn     */ orphansColumn,
    /* xRowid      */ orphansRowid,
    /* xUpdate     */ orphansUpdate,
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
