/*
** outbox.c: the queue of pending mutations, on its way out and back.
**
**   SELECT sync_pending();            -- how many mutations wait
**   SELECT sync_push_batch();         -- next push request body, or NULL
**   SELECT sync_push_batch(10);       -- at most 10 mutations
**   SELECT sync_ack('{"results":[{"id":1,"status":"applied","row":{...},"version":7}]}');
**
** sync_push_batch returns {"client_id":"...","mutations":[{"id":1,"table":"t",
** "op":"insert","pk":{...},"data":{...}},...]} in id order. sync_ack takes the
** server's answer: an applied mutation leaves the outbox and the server's row
** (with server-made values) becomes the row's image; a rejected one moves to
** sync_rejected; either way the row is rebased so that it shows the server's
** row plus what is still pending. Ids not in the outbox are ignored; a
** pending one above the highest id sync_push_batch has handed out
** (sync_control.sent_id) is refused: the server cannot have received it. It
** returns how many mutations it resolved, and changes nothing on error:
**   sync_ack: response must be a JSON object with a "results" array
**   sync_ack: result 2 has no integer "id"
**   sync_ack: result 2 has unknown status "x"
**   sync_ack: "row" of result 2 must be an object or null
**   sync_ack: result 2: mutation 7 is above the highest mutation id this
**             client has sent (5)
*/
#include "sync.h"
#include "value.h"

#include <stdlib.h>
#include <string.h>

void outbox_fn_pending(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc, (void)argv;
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!sync_require_init(ctx, c, "sync_pending")) return;
  sqlite3_stmt *s = sync_stmt(c, STMT_PENDING_COUNT);
  if (!s || sqlite3_step(s) != SQLITE_ROW) {
    sync_error_db(ctx, c, "sync_pending", sqlite3_errcode(c->db));
  } else {
    sqlite3_result_int64(ctx, sqlite3_column_int64(s, 0));
  }
  if (s) sqlite3_reset(s);
}

/* sync_wire(json): the JSON with {"$hex":..} blobs in wire form. */
void outbox_fn_wire(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
  const char *z = (const char *)sqlite3_value_text(argv[0]);
  int n = sqlite3_value_bytes(argv[0]);
  sqlite3_str *out = sqlite3_str_new(0);
  value_append_wire(out, z, n);
  sync_result_str(ctx, out);
}

void outbox_fn_push_batch(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!sync_require_init(ctx, c, "sync_push_batch")) return;
  sqlite3_int64 limit = 100;
  char *conf = sync_meta_get(c, "config.batch_size");
  if (conf) limit = strtoll(conf, 0, 10);
  sqlite3_free(conf);
  if (argc > 0) {
    if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER || sqlite3_value_int64(argv[0]) <= 0) {
      sync_error(ctx, "sync_push_batch", "limit must be a positive integer");
      return;
    }
    limit = sqlite3_value_int64(argv[0]);
  }
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(
      c->db, "SELECT id, tbl, op, pk, data FROM sync_outbox ORDER BY id LIMIT ?1", -1, &s, 0);
  char *client = sync_meta_get(c, "client_id");
  if (rc != SQLITE_OK || !client) {
    sqlite3_finalize(s);
    sqlite3_free(client);
    sync_error_db(ctx, c, "sync_push_batch", rc ? rc : SQLITE_NOMEM);
    return;
  }
  sqlite3_bind_int64(s, 1, limit);
  sqlite3_str *out = sqlite3_str_new(c->db);
  sqlite3_str_appendall(out, "{\"client_id\":");
  value_append_string(out, client, -1);
  sqlite3_str_appendall(out, ",\"mutations\":[");
  int n = 0;
  sqlite3_int64 top = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    top = sqlite3_column_int64(s, 0);
    sqlite3_str_appendf(out, "%s{\"id\":%lld,\"table\":", n++ ? "," : "", top);
    value_append_string(out, (const char *)sqlite3_column_text(s, 1), -1);
    sqlite3_str_appendall(out, ",\"op\":");
    value_append_string(out, (const char *)sqlite3_column_text(s, 2), -1);
    sqlite3_str_appendall(out, ",\"pk\":");
    value_append_wire(out, (const char *)sqlite3_column_text(s, 3), sqlite3_column_bytes(s, 3));
    sqlite3_str_appendall(out, ",\"data\":");
    if (sqlite3_column_type(s, 4) == SQLITE_NULL)
      sqlite3_str_appendall(out, "null");
    else
      value_append_wire(out, (const char *)sqlite3_column_text(s, 4), sqlite3_column_bytes(s, 4));
    sqlite3_str_appendchar(out, 1, '}');
  }
  sqlite3_str_appendall(out, "]}");
  sqlite3_free(client);
  sqlite3_finalize(s);
  s = 0;
  /* Recorded before the body leaves, in the caller's transaction: a
  ** last_mutation_id may then confirm only what a server could have got. */
  if (rc == SQLITE_DONE && n > 0) {
    rc = sqlite3_prepare_v2(c->db, "UPDATE main.sync_control SET sent_id = ?1 WHERE sent_id < ?1",
                            -1, &s, 0);
    if (rc == SQLITE_OK) {
      sqlite3_bind_int64(s, 1, top);
      rc = sqlite3_step(s);
    }
  }
  if (rc != SQLITE_DONE) {
    sync_error_db(ctx, c, "sync_push_batch", rc);
    sqlite3_free(sqlite3_str_finish(out));
  } else if (n == 0) {
    sqlite3_free(sqlite3_str_finish(out));
  } else {
    sync_result_str(ctx, out);
  }
  sqlite3_finalize(s);
}

/* Resolves mutation id as the server decided: applied (with the server's row
** when hasRow; row NULL = no such row now) or rejected (moved to
** sync_rejected with reason); then rebases its key. Returns an SQLite code;
** *pDone is set when the id was in the outbox (other ids are ignored). */
int outbox_resolve(SyncCtx *c, sqlite3_int64 id, int applied, const char *row, int hasRow,
                   const char *reason, sqlite3_int64 version, int hasVersion, int *pDone,
                   char **pzErr) {
  sqlite3_stmt *s = sync_stmt(c, STMT_OUTBOX_GET);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_int64(s, 1, id);
  char *tbl = 0, *pk = 0;
  if (sqlite3_step(s) == SQLITE_ROW) {
    tbl = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
    pk = sqlite3_mprintf("%s", sqlite3_column_text(s, 2));
  }
  sqlite3_reset(s);
  if (!tbl || !pk) {
    sqlite3_free(tbl);
    sqlite3_free(pk);
    return SQLITE_OK;
  }
  *pDone = 1;
  SyncTable *t = 0;
  int rc = table_get(c, tbl, 1, &t, pzErr);
  if (rc == SQLITE_OK && applied && hasRow)
    rc = rebase_set_image(c, t->name, pk, row, version, hasVersion);
  if (rc == SQLITE_OK && !applied) {
    s = sync_stmt(c, STMT_REJECT);
    if (!s) rc = sqlite3_errcode(c->db);
    if (s) {
      sqlite3_bind_int64(s, 1, id);
      sqlite3_bind_text(s, 2, reason ? reason : "rejected by the server", -1, SQLITE_STATIC);
      rc = sync_run(c, s);
    }
  }
  if (rc == SQLITE_OK) {
    s = sync_stmt(c, STMT_OUTBOX_DEL);
    if (!s) rc = sqlite3_errcode(c->db);
    if (s) {
      sqlite3_bind_int64(s, 1, id);
      rc = sync_run(c, s);
    }
  }
  if (rc == SQLITE_OK) rc = rebase_key(c, t, pk, pzErr);
  sqlite3_free(tbl);
  sqlite3_free(pk);
  return rc;
}

/* sync_control.sent_id: the highest id sync_push_batch has handed out. */
int outbox_sent_id(SyncCtx *c, sqlite3_int64 *pSent) {
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db, "SELECT sent_id FROM main.sync_control", -1, &s, 0);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *pSent = sqlite3_column_int64(s, 0);
    rc = rc == SQLITE_ROW ? SQLITE_OK : rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;
  }
  sqlite3_finalize(s);
  return rc;
}

static int is_pending(SyncCtx *c, sqlite3_int64 id, int *pFound) {
  sqlite3_stmt *s = sync_stmt(c, STMT_OUTBOX_GET);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_int64(s, 1, id);
  int rc = sqlite3_step(s);
  *pFound = rc == SQLITE_ROW;
  sqlite3_reset(s);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

void outbox_fn_ack(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!sync_require_init(ctx, c, "sync_ack")) return;
  const char *json = (const char *)sqlite3_value_text(argv[0]);
  if (!sync_json_is(c, json, "$.results", "array")) {
    sync_error(ctx, "sync_ack", "response must be a JSON object with a \"results\" array");
    return;
  }
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT json_type(value,'$.id'), value->>'$.id', value->>'$.status',"
                              " json_type(value,'$.row'), value->'$.row', value->>'$.reason',"
                              " json_type(value,'$.version'), value->>'$.version'"
                              " FROM json_each(?1,'$.results')",
                              -1, &s, 0);
  if (rc != SQLITE_OK) {
    sync_error_db(ctx, c, "sync_ack", rc);
    return;
  }
  sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
  char *zErr = 0;
  sqlite3_int64 done = 0;
  rc = sync_engine_begin(c);
  sqlite3_int64 sent = 0;
  if (rc == SQLITE_OK) rc = outbox_sent_id(c, &sent);
  for (int i = 1; rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW; i++) {
    const char *idType = (const char *)sqlite3_column_text(s, 0);
    const char *status = (const char *)sqlite3_column_text(s, 2);
    const char *rowType = (const char *)sqlite3_column_text(s, 3);
    const char *verType = (const char *)sqlite3_column_text(s, 6);
    if (!idType || strcmp(idType, "integer") != 0) {
      zErr = sqlite3_mprintf("result %d has no integer \"id\"", i);
      rc = SQLITE_ERROR;
      break;
    }
    int applied = status && strcmp(status, "applied") == 0;
    if (!applied && !(status && strcmp(status, "rejected") == 0)) {
      zErr = sqlite3_mprintf("result %d has unknown status \"%s\"", i, status ? status : "");
      rc = SQLITE_ERROR;
      break;
    }
    if (rowType && strcmp(rowType, "object") != 0 && strcmp(rowType, "null") != 0) {
      zErr = sqlite3_mprintf("\"row\" of result %d must be an object or null", i);
      rc = SQLITE_ERROR;
      break;
    }
    int unsent = 0;
    if (sqlite3_column_int64(s, 1) > sent) rc = is_pending(c, sqlite3_column_int64(s, 1), &unsent);
    if (rc != SQLITE_OK) break;
    if (unsent) {
      zErr = sqlite3_mprintf("result %d: mutation %lld is above the highest mutation id this"
                             " client has sent (%lld)",
                             i, sqlite3_column_int64(s, 1), sent);
      rc = SQLITE_ERROR;
      break;
    }
    int hasVersion = verType && strcmp(verType, "integer") == 0;
    int isDone = 0;
    rc = outbox_resolve(
        c, sqlite3_column_int64(s, 1), applied,
        rowType && strcmp(rowType, "object") == 0 ? (const char *)sqlite3_column_text(s, 4) : 0,
        rowType != 0, (const char *)sqlite3_column_text(s, 5), sqlite3_column_int64(s, 7),
        hasVersion, &isDone, &zErr);
    done += isDone;
  }
  sqlite3_finalize(s);
  rc = sync_engine_end(c, rc, &zErr);
  if (rc != SQLITE_OK) {
    sync_error_msg(ctx, c, "sync_ack", rc, zErr);
    return;
  }
  sqlite3_result_int64(ctx, done);
}
