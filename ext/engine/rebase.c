/*
** rebase.c: the visible row = the server's row + this client's pending
** mutations replayed in order.
**
** For a key with pending mutations, sync_shadow holds the server's last known
** row (row NULL, or no entry at all, means the server has no such row). When
** the server's row changes (sync_apply), when the server confirms a mutation
** (sync_ack applied, last_mutation_id) or refuses one (sync_ack rejected), the
** engine updates the image or the outbox and calls rebase_key, which writes
** the image into the table and replays what is still pending on top. Replays
** are idempotent (mutations carry values, not deltas), so replaying a mutation
** the image already contains changes nothing. When nothing is pending any
** more, the image is dropped: the visible row is then the server's.
**
** Callers run inside ctx_engine_begin, so nothing here is captured.
*/
#include "rebase.h"
#include "table.h"

#include <string.h>

/* Records row (NULL = absent) as the server's image of key pk, unless the
** image held already carries a newer server version (a push response can
** arrive after the change stream has delivered a later version of the row). */
int rebase_set_image(SyncCtx *c, const char *tbl, const char *pk, const char *row,
                     sqlite3_int64 version, int hasVersion) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_SHADOW_GET);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, tbl, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
  int newer = sqlite3_step(s) == SQLITE_ROW && hasVersion &&
              sqlite3_column_type(s, 1) == SQLITE_INTEGER && sqlite3_column_int64(s, 1) > version;
  sqlite3_reset(s);
  if (newer) return SQLITE_OK;
  s = ctx_stmt(c, STMT_SHADOW_PUT);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, tbl, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
  if (row) sqlite3_bind_text(s, 3, row, -1, SQLITE_STATIC);
  if (hasVersion) sqlite3_bind_int64(s, 4, version);
  return ctx_run(c, s);
}

/* Writes image (the server's row as JSON; NULL = absent) as the row of key
** pk of table t and replays the key's pending mutations on top; *pPending
** gets how many there were. On failure *pzErr names the key. */
int rebase_write(SyncCtx *c, SyncTable *t, const char *pk, const char *image, int *pPending,
                 char **pzErr) {
  /* Most acks confirm a row exactly as it stands: reading it is much cheaper
  ** than the upsert (json per column, the capture triggers' frames), and
  ** writing an identical image changes nothing. */
  char *cur = 0;
  int rc = image ? table_row_json(c, t, pk, &cur) : SQLITE_OK;
  if (rc == SQLITE_OK && !(cur && strcmp(cur, image) == 0))
    rc = image ? table_write(t->upsert, image, 0) : table_write(t->del, pk, 0);
  sqlite3_free(cur);
  int pending = 0;
  if (rc == SQLITE_OK) {
    /* Replays write t only, never the outbox, so the scan is not disturbed. */
    sqlite3_stmt *s = ctx_stmt(c, STMT_KEY_PENDING);
    if (!s) return sqlite3_errcode(c->db);
    sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
    while (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
      const char *op = (const char *)sqlite3_column_text(s, 0);
      const char *data = (const char *)sqlite3_column_text(s, 1);
      pending++;
      if (strcmp(op, "insert") == 0)
        rc = table_write(t->upsert, data, 0);
      else if (strcmp(op, "update") == 0)
        rc = table_write(t->update, data, pk);
      else
        rc = table_write(t->del, pk, 0);
    }
    sqlite3_reset(s);
  }
  *pPending = pending;
  if (rc != SQLITE_OK && rc != SQLITE_NOMEM && !*pzErr)
    *pzErr = sqlite3_mprintf("cannot rebase %s %s: %s", t->name, pk, sqlite3_errmsg(c->db));
  return rc;
}

/* Re-derives the visible row of key pk (the canonical key text) of table t
** from its image, and drops the image once nothing is pending. Returns an
** SQLite code; on failure *pzErr names the key. */
int rebase_key(SyncCtx *c, SyncTable *t, const char *pk, char **pzErr) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_SHADOW_GET);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
  char *image = 0;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
    image = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
    if (!image) rc = SQLITE_NOMEM;
  }
  sqlite3_reset(s);
  if (rc == SQLITE_NOMEM) return rc;

  int pending = 0;
  rc = rebase_write(c, t, pk, image, &pending, pzErr);
  sqlite3_free(image);
  if (rc == SQLITE_OK && !pending) {
    s = ctx_stmt(c, STMT_SHADOW_DROP);
    if (!s) return sqlite3_errcode(c->db);
    sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
    rc = ctx_run(c, s);
    if (rc != SQLITE_OK && rc != SQLITE_NOMEM && !*pzErr)
      *pzErr = sqlite3_mprintf("cannot rebase %s %s: %s", t->name, pk, sqlite3_errmsg(c->db));
  }
  return rc;
}
