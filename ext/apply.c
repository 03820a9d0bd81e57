/*
** apply.c: sync_apply, the server's changes into the local tables.
**
**   SELECT sync_apply('{"changes":[
**            {"table":"todos","op":"upsert","pk":{"id":"a"},"row":{...},"version":12},
**            {"table":"todos","op":"delete","pk":{"id":"b"},"version":13}],
**          "cursor":"s1-13","last_mutation_id":17,"has_more":false}');   -- 2
**
** The shape of a pull page and of an SSE event. Everything, cursor included,
** commits in one savepoint or not at all; the engine's writes are not queued.
** A change to a key without pending mutations is written as is. For a key
** with pending mutations the server's row becomes the key's image and the
** row is rebased, so local edits stay visible until confirmed or refused.
** last_mutation_id says the server has applied this client's mutations up to
** that id (their push response was lost): they leave the outbox. It is taken
** from the last page only (has_more absent or false), because only then have
** the pages delivered every change those mutations made; before that the
** image would lack them and the row would flicker back.
**
** Names are checked against the tracked tables and their columns; values go
** through sync_val. Columns the local table does not have are ignored (a
** newer server may add columns). Errors, with nothing changed:
**   sync_apply: changes must be a JSON object
**   sync_apply: table "x" is not tracked
**   sync_apply: change 3 has unknown op "x"
**   sync_apply: change 3: primary key of "todos" is missing or null
**   sync_apply: change 3 has no "row" object
**   sync_apply: cursor must be a string
*/
#include "sync.h"

#include <string.h>

/* One change. Returns an SQLite code, *pzErr set on refusal. */
static int apply_change(SyncCtx *c, int i, sqlite3_stmt *s, char **pzErr) {
  const char *tbl = (const char *)sqlite3_column_text(s, 0);
  const char *op = (const char *)sqlite3_column_text(s, 1);
  const char *pkType = (const char *)sqlite3_column_text(s, 2);
  const char *rowType = (const char *)sqlite3_column_text(s, 4);
  const char *verType = (const char *)sqlite3_column_text(s, 6);
  if (!tbl) {
    *pzErr = sqlite3_mprintf("change %d has no \"table\"", i);
    return SQLITE_ERROR;
  }
  SyncTable *t = 0;
  int rc = table_get(c, tbl, 1, &t, pzErr);
  if (rc != SQLITE_OK) return rc;
  int upsert = op && strcmp(op, "upsert") == 0;
  if (!upsert && !(op && strcmp(op, "delete") == 0)) {
    *pzErr = sqlite3_mprintf("change %d has unknown op \"%s\"", i, op ? op : "");
    return SQLITE_ERROR;
  }
  if (!pkType || strcmp(pkType, "object") != 0) {
    *pzErr = sqlite3_mprintf("change %d has no \"pk\" object", i);
    return SQLITE_ERROR;
  }
  const char *row = upsert ? (const char *)sqlite3_column_text(s, 5) : 0;
  if (upsert && (!rowType || strcmp(rowType, "object") != 0)) {
    *pzErr = sqlite3_mprintf("change %d has no \"row\" object", i);
    return SQLITE_ERROR;
  }
  char *pk = 0, *why = 0;
  rc = table_canon_pk(c, t, (const char *)sqlite3_column_text(s, 3), &pk, &why);
  if (rc != SQLITE_OK) {
    if (why) *pzErr = sqlite3_mprintf("change %d: %s", i, why);
    sqlite3_free(why);
    return rc;
  }
  sqlite3_stmt *p = sync_stmt(c, STMT_HAS_PENDING);
  if (!p) {
    sqlite3_free(pk);
    return sqlite3_errcode(c->db);
  }
  sqlite3_bind_text(p, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(p, 2, pk, -1, SQLITE_STATIC);
  int pending = sqlite3_step(p) == SQLITE_ROW;
  sqlite3_reset(p);
  if (pending) {
    int hasVersion = verType && strcmp(verType, "integer") == 0;
    rc = rebase_set_image(c, t->name, pk, row, sqlite3_column_int64(s, 7), hasVersion);
    if (rc == SQLITE_OK) rc = rebase_key(c, t, pk, pzErr);
  } else {
    rc = upsert ? table_write(t->upsert, row, 0) : table_write(t->del, pk, 0);
    if (rc != SQLITE_OK)
      *pzErr = sqlite3_mprintf("change %d (%s %s): %s", i, t->name, pk, sqlite3_errmsg(c->db));
  }
  sqlite3_free(pk);
  return rc;
}

/* Drops the mutations with id <= upto from the outbox and rebases their
** keys. The ids are read first: rebasing writes the outbox's neighbours. */
static int confirm_upto(SyncCtx *c, sqlite3_int64 upto, char **pzErr) {
  sqlite3_stmt *s = sync_stmt(c, STMT_OUTBOX_UPTO);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_int64(s, 1, upto);
  sqlite3_int64 *ids = 0;
  int n = 0, cap = 0, rc = SQLITE_OK;
  while (sqlite3_step(s) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      sqlite3_int64 *more = sqlite3_realloc64(ids, sizeof *ids * (sqlite3_uint64)cap);
      if (!more) {
        rc = SQLITE_NOMEM;
        break;
      }
      ids = more;
    }
    ids[n++] = sqlite3_column_int64(s, 0);
  }
  sqlite3_reset(s);
  for (int i = 0; rc == SQLITE_OK && i < n; i++) {
    s = sync_stmt(c, STMT_OUTBOX_GET);
    if (!s) {
      rc = sqlite3_errcode(c->db);
      break;
    }
    sqlite3_bind_int64(s, 1, ids[i]);
    char *tbl = 0, *pk = 0;
    if (sqlite3_step(s) == SQLITE_ROW) {
      tbl = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
      pk = sqlite3_mprintf("%s", sqlite3_column_text(s, 2));
      if (!tbl || !pk) rc = SQLITE_NOMEM;
    }
    sqlite3_reset(s);
    if (rc == SQLITE_OK && tbl) {
      s = sync_stmt(c, STMT_OUTBOX_DEL);
      if (!s) rc = sqlite3_errcode(c->db);
      if (s) {
        sqlite3_bind_int64(s, 1, ids[i]);
        rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(c->db);
        sqlite3_reset(s);
      }
      SyncTable *t = 0;
      if (rc == SQLITE_OK) rc = table_get(c, tbl, 1, &t, pzErr);
      if (rc == SQLITE_OK) rc = rebase_key(c, t, pk, pzErr);
    }
    sqlite3_free(tbl);
    sqlite3_free(pk);
  }
  sqlite3_free(ids);
  return rc;
}

void apply_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!sync_require_init(ctx, c, "sync_apply")) return;
  const char *json = (const char *)sqlite3_value_text(argv[0]);
  if (!sync_json_is(c, json, "$", "object")) {
    sync_error(ctx, "sync_apply", "changes must be a JSON object");
    return;
  }
  sqlite3_stmt *h = 0, *s = 0;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT json_type(?1,'$.changes'), json_type(?1,'$.cursor'),"
                              " ?1->>'$.cursor', json_type(?1,'$.last_mutation_id'),"
                              " ?1->>'$.last_mutation_id', json_type(?1,'$.has_more')",
                              -1, &h, 0);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(c->db,
                            "SELECT value->>'$.table', value->>'$.op', json_type(value,'$.pk'),"
                            " value->'$.pk', json_type(value,'$.row'), value->'$.row',"
                            " json_type(value,'$.version'), value->>'$.version'"
                            " FROM json_each(?1,'$.changes')",
                            -1, &s, 0);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(h);
    sync_error_db(ctx, c, "sync_apply", rc);
    return;
  }
  sqlite3_bind_text(h, 1, json, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
  sqlite3_step(h);
  const char *changesType = (const char *)sqlite3_column_text(h, 0);
  const char *cursorType = (const char *)sqlite3_column_text(h, 1);
  const char *lastType = (const char *)sqlite3_column_text(h, 3);
  const char *moreType = (const char *)sqlite3_column_text(h, 5);
  char *zErr = 0;
  if (changesType && strcmp(changesType, "array") != 0)
    zErr = sqlite3_mprintf("\"changes\" must be an array");
  else if (cursorType && strcmp(cursorType, "text") != 0 && strcmp(cursorType, "null") != 0)
    zErr = sqlite3_mprintf("cursor must be a string");
  else if (lastType && strcmp(lastType, "integer") != 0 && strcmp(lastType, "null") != 0)
    zErr = sqlite3_mprintf("last_mutation_id must be an integer");
  if (zErr) {
    sqlite3_finalize(h);
    sqlite3_finalize(s);
    sync_error_msg(ctx, c, "sync_apply", SQLITE_ERROR, zErr);
    return;
  }
  int lastPage = !moreType || strcmp(moreType, "true") != 0;

  sqlite3_int64 n = 0;
  rc = sync_engine_begin(c);
  while (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
    rc = apply_change(c, (int)n + 1, s, &zErr);
    n++;
  }
  if (rc == SQLITE_OK && lastPage && lastType && strcmp(lastType, "integer") == 0)
    rc = confirm_upto(c, sqlite3_column_int64(h, 4), &zErr);
  if (rc == SQLITE_OK && cursorType && strcmp(cursorType, "text") == 0)
    rc = sync_meta_set(c, "cursor", (const char *)sqlite3_column_text(h, 2));
  sqlite3_finalize(s);
  sqlite3_finalize(h);
  rc = sync_engine_end(c, rc, &zErr);
  if (rc != SQLITE_OK) {
    sync_error_msg(ctx, c, "sync_apply", rc, zErr);
    return;
  }
  sqlite3_result_int64(ctx, n);
}
