/*
** mutate.c: sync_mutate, a write by JSON.
**
**   SELECT sync_mutate('todos', 'insert', '{"id":"a","title":"milk"}');   -- mutation id
**   SELECT sync_mutate('todos', 'update', '{"id":"a","done":1}');
**   SELECT sync_mutate('todos', 'upsert', '{"id":"a","title":"eggs"}');
**   SELECT sync_mutate('todos', 'delete', '{"id":"a"}');
**
** The write goes to the table at once (the optimistic update) through the
** same capture triggers as any SQL write, so it queues exactly what the
** equivalent statement would. Returns the id of the last mutation it queued,
** or NULL when the write changed nothing (an update to the same values).
** Errors, each with no change at all:
**   sync_mutate: table name must be text
**   sync_mutate: op must be text
**   sync_mutate: table "x" is not tracked
**   sync_mutate: unknown op "x" (expected insert, update, upsert or delete)
**   sync_mutate: json must be a JSON object
**   sync_mutate: primary key column "id" is missing
**   sync_mutate: no such column "titel" in table "todos"
**   sync_mutate: a row with this primary key already exists in "todos"
**   sync_mutate: no row with this primary key in "todos"
*/
#include "jscan.h"
#include "mutate.h"
#include "rebase.h"
#include "table.h"

#include <string.h>

/* ---- a scan of the object's top-level keys, for check_columns ----
** Preparing a json_each query and running four json_type lookups per key
** column cost as much as the write itself, so the usual object (keys without
** escapes) is scanned here with the shared scanner (common/jscan.h). json is
** already known to be a valid JSON object; anything the scan does not expect
** sends the call to the SQL path. */

/* 1 when it could judge json: *pErr is then the refusal or NULL. 0 when the
** SQL path must. */
static int scan_columns(SyncTable *t, const char *json, char **pErr) {
  char *unknown = 0;
  int pkSeen = 0, pkOk = 0; /* bit i: key column t->pk[i] seen first / with a key value */
  const char *e = json + strlen(json), *p = jscan_ws(json, e);
  if (*p != '{' || t->nPk > 31) return 0;
  jspan key, val;
  while (jscan_member(&p, e, &key, &val)) {
    const char *k = key.z;
    int n = key.n;
    char first = val.n > 0 ? val.z[0] : 0;
    int col = 0, judge = !memchr(k, '\\', (size_t)n);
    while (col < t->nCol && !((int)strlen(t->cols[col]) == n && memcmp(t->cols[col], k, n) == 0))
      col++;
    if (judge && col == t->nCol && !unknown && !(unknown = sqlite3_mprintf("%.*s", n, k)))
      judge = 0;
    for (int i = 0; judge && i < t->nPk; i++) {
      if (t->pk[i] != col || (pkSeen >> i & 1)) continue;
      pkSeen |= 1 << i;
      if (first == '"' || first == '{' || first == '-' || (first >= '0' && first <= '9'))
        pkOk |= 1 << i;
      else if (first != 'n' && first != 't' && first != 'f' && first != '[')
        judge = 0; /* something else: let SQL judge */
    }
    if (!judge) {
      sqlite3_free(unknown);
      return 0;
    }
  }
  if (*p != '}') {
    sqlite3_free(unknown);
    return 0;
  }
  *pErr = 0;
  if (unknown) {
    *pErr = sqlite3_mprintf("no such column \"%s\" in table \"%s\"", unknown, t->name);
    sqlite3_free(unknown);
    return 1;
  }
  for (int i = 0; i < t->nPk; i++)
    if (!(pkOk >> i & 1)) {
      *pErr = sqlite3_mprintf("primary key column \"%s\" is missing", t->cols[t->pk[i]]);
      break;
    }
  return 1;
}

/* Names the first key of json that is not a column of t, or the first key
** column json lacks; NULL when the object fits the table. */
static char *check_columns(SyncCtx *c, SyncTable *t, const char *json, int *rc) {
  char *scanned = 0;
  if (scan_columns(t, json, &scanned)) {
    *rc = scanned ? SQLITE_ERROR : SQLITE_OK;
    return scanned;
  }
  sqlite3_stmt *s = 0;
  char *err = 0;
  *rc = sqlite3_prepare_v2(c->db, "SELECT key FROM json_each(?1)", -1, &s, 0);
  if (*rc != SQLITE_OK) return 0;
  sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
  while (!err && sqlite3_step(s) == SQLITE_ROW) {
    const char *key = (const char *)sqlite3_column_text(s, 0);
    int i = 0;
    while (i < t->nCol && strcmp(t->cols[i], key) != 0)
      i++;
    if (i == t->nCol) err = sqlite3_mprintf("no such column \"%s\" in table \"%s\"", key, t->name);
  }
  sqlite3_finalize(s);
  for (int i = 0; !err && i < t->nPk; i++) {
    char *path = sqlite3_mprintf("$.\"%s\"", t->cols[t->pk[i]]);
    if (path && !ctx_json_is(c, json, path, "integer") && !ctx_json_is(c, json, path, "text") &&
        !ctx_json_is(c, json, path, "real") && !ctx_json_is(c, json, path, "object"))
      err = sqlite3_mprintf("primary key column \"%s\" is missing", t->cols[t->pk[i]]);
    sqlite3_free(path);
  }
  if (err) *rc = SQLITE_ERROR;
  return err;
}

static sqlite3_int64 last_id(SyncCtx *c) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_LAST_ID);
  sqlite3_int64 v = s && sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
  if (s) sqlite3_reset(s);
  return v;
}

void mutate_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!ctx_require_init(ctx, c, "sync_mutate")) return;
  const char *name = (const char *)sqlite3_value_text(argv[0]);
  const char *op = (const char *)sqlite3_value_text(argv[1]);
  const char *json = (const char *)sqlite3_value_text(argv[2]);
  if (!name || !op) {
    ctx_error(ctx, "sync_mutate", "%s must be text", !name ? "table name" : "op");
    return;
  }
  SyncTable *t = 0;
  char *zErr = 0;
  int rc = table_get(c, name, 1, &t, &zErr);
  if (rc != SQLITE_OK) {
    ctx_error_msg(ctx, c, "sync_mutate", rc, zErr);
    return;
  }
  static const char *const ops[] = {"insert", "update", "upsert", "delete"};
  int k = 0;
  while (k < 4 && strcmp(op, ops[k]) != 0)
    k++;
  if (k == 4) {
    ctx_error(ctx, "sync_mutate", "unknown op \"%s\" (expected insert, update, upsert or delete)",
              op);
    return;
  }
  if (!ctx_json_is(c, json, "$", "object")) {
    ctx_error(ctx, "sync_mutate", "json must be a JSON object");
    return;
  }
  zErr = check_columns(c, t, json, &rc);
  if (rc != SQLITE_OK) {
    ctx_error_msg(ctx, c, "sync_mutate", rc, zErr);
    return;
  }
  sqlite3_int64 before = last_id(c);
  rc = ctx_begin(c);
  if (rc == SQLITE_OK) {
    int exists = 0;
    sqlite3_stmt *e = t->exists;
    sqlite3_bind_text(e, 1, json, -1, SQLITE_STATIC);
    exists = sqlite3_step(e) == SQLITE_ROW;
    sqlite3_reset(e);
    if (k == 0 && exists) {
      zErr = sqlite3_mprintf("a row with this primary key already exists in \"%s\"", t->name);
      rc = SQLITE_ERROR;
    } else if ((k == 1 || k == 3) && !exists) {
      zErr = sqlite3_mprintf("no row with this primary key in \"%s\"", t->name);
      rc = SQLITE_ERROR;
    } else if (k == 1) {
      rc = table_write(t->update, json, json);
    } else if (k == 3) {
      rc = table_write(t->del, json, 0);
    } else {
      rc = table_write(t->upsert, json, 0);
    }
    rc = ctx_end(c, rc, &zErr);
  }
  if (rc != SQLITE_OK) {
    ctx_error_msg(ctx, c, "sync_mutate", rc, zErr);
    return;
  }
  sqlite3_int64 after = last_id(c);
  if (after != before) sqlite3_result_int64(ctx, after);
}
