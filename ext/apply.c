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
** last_mutation_id says the server has processed this client's mutations up
** to that id (their push response was lost): they leave the outbox, the ones
** listed in "rejected":[{"id":..,"reason":..}] into sync_rejected (a server
** gives that list when the pull names the lowest pending id). It is taken
** from the last page only (has_more absent or false), because only then have
** the pages delivered every change those mutations made; before that the
** image would lack them and the row would flicker back.
**
** A page is applied set-based where it can be (see apply_fast below: one
** INSERT ... SELECT ... FROM json_each per table for the keys without
** pending mutations) and change by change otherwise, with the same result
** and the same errors.
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
**   sync_apply: last_mutation_id 9 is above the highest mutation id this
**               client has sent (4)
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

/* The server has processed this client's mutations up to upto (their push
** answer was lost). Those the page lists under "rejected" move to
** sync_rejected with the server's reason; the others were applied and leave
** the outbox. Their keys are rebased. The ids are read first: resolving
** writes the outbox. */
static int confirm_upto(SyncCtx *c, const char *json, sqlite3_int64 upto, char **pzErr) {
  sqlite3_stmt *r = 0;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT value->>'$.id', value->>'$.reason' FROM json_each(?1,"
                              "'$.rejected') WHERE json_type(value,'$.id') = 'integer'"
                              " AND value->>'$.id' <= ?2 ORDER BY value->>'$.id'",
                              -1, &r, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(r, 1, json, -1, SQLITE_STATIC);
  sqlite3_bind_int64(r, 2, upto);
  int done = 0;
  while (rc == SQLITE_OK && sqlite3_step(r) == SQLITE_ROW) {
    const char *reason = (const char *)sqlite3_column_text(r, 1);
    rc = outbox_resolve(c, sqlite3_column_int64(r, 0), 0, 0, 0,
                        reason ? reason : "rejected by the server", 0, 0, &done, pzErr);
  }
  sqlite3_finalize(r);
  if (rc != SQLITE_OK) return rc;

  sqlite3_stmt *s = sync_stmt(c, STMT_OUTBOX_UPTO);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_int64(s, 1, upto);
  sqlite3_int64 *ids = 0;
  int n = 0, cap = 0;
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
  for (int i = 0; rc == SQLITE_OK && i < n; i++)
    rc = outbox_resolve(c, ids[i], 1, 0, 0, 0, 0, 0, &done, pzErr);
  sqlite3_free(ids);
  return rc;
}

/* last_mutation_id may confirm only mutations sync_push_batch has handed
** out (sync_control.sent_id): a larger one, from a server's bug or another
** client's numbering, would drop pending mutations the server never got.
** Checked before anything is written, so a refused page changes nothing. */
static int check_sent(SyncCtx *c, sqlite3_int64 upto, char **pzErr) {
  sqlite3_int64 sent = 0;
  int rc = outbox_sent_id(c, &sent);
  if (rc == SQLITE_OK && upto > sent) {
    *pzErr = sqlite3_mprintf("last_mutation_id %lld is above the highest mutation id this"
                             " client has sent (%lld)",
                             upto, sent);
    rc = SQLITE_ERROR;
  }
  return rc;
}

/* ---- the set-based path ----
**
** Most of a page is changes to keys without pending mutations, with whole
** rows: those need no rebase, and one INSERT ... SELECT ... FROM json_each
** ... ON CONFLICT DO UPDATE per table (and one DELETE) writes them all, at
** about the cost of a plain SQL load of the page. What is left (keys with
** pending mutations, rows missing a column) goes through apply_change in
** page order. The fast path runs in its own savepoint: when anything about
** the page is unusual (a malformed change, a key twice, an error of any
** statement), it is rolled back and the whole page is applied change by
** change, so errors and their messages are exactly those of that path. */

/* The key object at src (an SQL expression) as the canonical key text the
** capture triggers write, NULL when a part is missing or null. Must build
** the same text as the canon statement of table.c. */
static void canon_expr(sqlite3_str *s, SyncTable *t, const char *src) {
  sqlite3_str_appendall(s, "(CASE WHEN ");
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(s, "%scoalesce(%s -> '$.\"%q\"', 'null') = 'null'", i ? " OR " : "", src,
                        t->cols[t->pk[i]]);
  sqlite3_str_appendall(s, " THEN NULL ELSE json_object(");
  for (int i = 0; i < t->nPk; i++) {
    const char *col = t->cols[t->pk[i]];
    char *v = sqlite3_mprintf("sync_val(%s -> '$.\"%q\"')", src, col);
    sqlite3_str_appendf(s, "%s'%q',", i ? "," : "", col);
    if (v) capture_value_expr(s, v);
    sqlite3_free(v);
  }
  sqlite3_str_appendall(s, ") END)");
}

/* The condition, on a json_each row of the changes, that the change is to t
** and the set-based statements write it; op: "upsert" or "delete" for the
** part that one statement writes, NULL for both. */
static void fast_cond(sqlite3_str *s, SyncTable *t, int pending, const char *op) {
  sqlite3_str_appendf(s, "(value->>'$.table' = %Q", t->name);
  if (pending) {
    sqlite3_str_appendf(
        s, " AND NOT EXISTS (SELECT 1 FROM sync_outbox WHERE tbl = %Q AND pk = ", t->name);
    canon_expr(s, t, "(value->'$.pk')");
    sqlite3_str_appendall(s, ")");
  }
  if (op && strcmp(op, "delete") == 0) {
    sqlite3_str_appendall(s, " AND value->>'$.op' = 'delete')");
    return;
  }
  sqlite3_str_appendall(s, op ? " AND ((value->>'$.op' = 'upsert'"
                              : " AND (value->>'$.op' = 'delete' OR (value->>'$.op' = 'upsert'");
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(s, " AND coalesce(value -> '$.pk.\"%q\"', 'null') <> 'null'",
                        t->cols[t->pk[i]]);
  for (int i = 0; i < t->nCol; i++)
    sqlite3_str_appendf(s, " AND json_type(value, '$.row.\"%q\"') IS NOT NULL", t->cols[i]);
  sqlite3_str_appendall(s, ")))");
}

/* Runs sql (NULL: out of memory) with ?1 = json; returns its first column
** as an integer in *pOut when pOut is not NULL. */
static int fast_run(SyncCtx *c, char *sql, const char *json, sqlite3_int64 *pOut) {
  /* pOut NULL: nothing; otherwise the first column of the first row, or
  ** for a statement without rows the number of rows it changed. */
  if (!sql) return SQLITE_NOMEM;
  sqlite3_stmt *p = 0;
  int rc = sqlite3_prepare_v2(c->db, sql, -1, &p, 0);
  sqlite3_free(sql);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(p, 1, json, -1, SQLITE_STATIC);
  rc = sqlite3_step(p);
  if (pOut) *pOut = rc == SQLITE_ROW ? sqlite3_column_int64(p, 0) : sqlite3_changes(c->db);
  rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
  if (rc == SQLITE_OK)
    rc = sqlite3_finalize(p);
  else
    sqlite3_finalize(p);
  return rc;
}

/* Prepares t->fast[pending], the upserts of a page to t that fast_cond
** selects, written by one INSERT ... SELECT. Kept with t (it is dropped
** when the schema changes): preparing it compiles t's capture triggers into
** it, which cost as much as writing a few rows. */
static int fast_prepare(SyncCtx *c, SyncTable *t, int pending) {
  sqlite3_str *s = sqlite3_str_new(c->db);
  /* Each reference to json_each's value renders the change as text again:
  ** a materialized copy renders it once. */
  sqlite3_str_appendf(s,
                      "WITH c(value) AS MATERIALIZED (SELECT value FROM json_each(?1, "
                      "'$.changes')) INSERT INTO main.\"%w\"(",
                      t->name);
  for (int i = 0; i < t->nCol; i++)
    sqlite3_str_appendf(s, "%s\"%w\"", i ? "," : "", t->cols[i]);
  sqlite3_str_appendall(s, ") SELECT ");
  for (int i = 0; i < t->nCol; i++)
    sqlite3_str_appendf(s, "%ssync_val(value -> '$.row.\"%q\"')", i ? "," : "", t->cols[i]);
  sqlite3_str_appendall(s, " FROM c WHERE ");
  fast_cond(s, t, pending, "upsert");
  sqlite3_str_appendall(s, " ON CONFLICT(");
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(s, "%s\"%w\"", i ? "," : "", t->cols[t->pk[i]]);
  if (t->nCol == t->nPk) {
    sqlite3_str_appendall(s, ") DO NOTHING");
  } else {
    sqlite3_str_appendall(s, ") DO UPDATE SET ");
    for (int i = 0, n = 0; i < t->nCol; i++) {
      int key = 0;
      for (int j = 0; j < t->nPk; j++)
        key |= t->pk[j] == i;
      if (!key)
        sqlite3_str_appendf(s, "%s\"%w\" = excluded.\"%w\"", n++ ? "," : "", t->cols[i],
                            t->cols[i]);
    }
  }
  char *sql = sqlite3_str_finish(s);
  if (!sql) return SQLITE_NOMEM;
  int rc = sqlite3_prepare_v2(c->db, sql, -1, &t->fast[pending], 0);
  sqlite3_free(sql);
  return rc;
}

/* Writes the changes of table t that fast_cond selects; *pWritten gets the
** number of upserts written. */
static int fast_table(SyncCtx *c, SyncTable *t, const char *json, int pending, int deletes,
                      sqlite3_int64 *pWritten) {
  /* A delete whose key lacks a part: apply_change names the change. (An
  ** upsert like that fails fast_cond and goes there by itself.) */
  sqlite3_int64 bad = 0;
  sqlite3_str *s = sqlite3_str_new(c->db);
  sqlite3_str_appendf(
      s, "SELECT count(*) FROM json_each(?1, '$.changes') WHERE value->>'$.table' = %Q AND (",
      t->name);
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(s, "%scoalesce(value -> '$.pk.\"%q\"', 'null') = 'null'", i ? " OR " : "",
                        t->cols[t->pk[i]]);
  sqlite3_str_appendall(s, ")");
  char *sql = sqlite3_str_finish(s);
  int rc = SQLITE_OK;
  if (deletes)
    rc = fast_run(c, sql, json, &bad);
  else
    sqlite3_free(sql);
  if (rc == SQLITE_OK && bad != 0) rc = SQLITE_ABORT;
  if (rc == SQLITE_OK && !t->fast[pending]) rc = fast_prepare(c, t, pending);
  if (rc == SQLITE_OK) {
    sqlite3_stmt *p = t->fast[pending];
    sqlite3_bind_text(p, 1, json, -1, SQLITE_STATIC);
    rc = sqlite3_step(p);
    *pWritten = sqlite3_changes(c->db);
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    sqlite3_reset(p);
    sqlite3_clear_bindings(p);
  }

  if (rc == SQLITE_OK && deletes) {
    s = sqlite3_str_new(c->db);
    sqlite3_str_appendf(s, "DELETE FROM main.\"%w\" WHERE (", t->name);
    for (int i = 0; i < t->nPk; i++)
      sqlite3_str_appendf(s, "%s\"%w\"", i ? "," : "", t->cols[t->pk[i]]);
    sqlite3_str_appendall(s, ") IN (SELECT ");
    for (int i = 0; i < t->nPk; i++)
      sqlite3_str_appendf(s, "%ssync_val(value -> '$.pk.\"%q\"')", i ? "," : "", t->cols[t->pk[i]]);
    sqlite3_str_appendall(s, " FROM json_each(?1, '$.changes') WHERE ");
    fast_cond(s, t, pending, "delete");
    sqlite3_str_appendall(s, ")");
    rc = fast_run(c, sqlite3_str_finish(s), json, 0);
  }
  return rc;
}

/* Applies the page's changes: the set-based statements per table, then the
** rest change by change; *pN gets the number of changes. Returns SQLITE_OK,
** or any other code (SQLITE_ABORT: the page is unusual) after which the
** caller rolls back to the fast savepoint and takes the slow path, which
** reports the error itself. */
static int apply_fast(SyncCtx *c, const char *json, sqlite3_int64 *pN) {
  sqlite3_stmt *p = 0;
  /* Anything pending at all? Without, no change needs a rebase. The
  ** statements write a table's upserts before its deletes, so a table with
  ** both goes change by change: one key can be spelt two ways ({"id":1} and
  ** {"id":"1"} for an INTEGER key, or a row whose key is not its pk), which
  ** the duplicate check by pk text misses, and a delete before an upsert of
  ** that key would win. And with foreign keys on, a delete may cascade to a
  ** row an upsert of the page writes in another table: such pages go change
  ** by change too. */
  int rc = sqlite3_prepare_v2(
      c->db, "SELECT EXISTS (SELECT 1 FROM sync_outbox), (SELECT * FROM pragma_foreign_keys)", -1,
      &p, 0);
  if (rc != SQLITE_OK) return rc;
  int pending = 1, fk = 1;
  if (sqlite3_step(p) == SQLITE_ROW) {
    pending = sqlite3_column_int(p, 0) != 0;
    fk = sqlite3_column_int(p, 1) != 0;
  }
  sqlite3_finalize(p);
  /* Per table: the upserts, the deletes, the keys that appear twice (by
  ** their text) and the other ops. A change that is malformed otherwise
  ** fails fast_cond (or the key check of fast_table) and goes to
  ** apply_change, whose error sends the page down the slow path. */
  rc = sqlite3_prepare_v2(
      c->db,
      "WITH c(value) AS MATERIALIZED (SELECT value FROM json_each(?1, '$.changes'))"
      " SELECT tb, count(*) FILTER (WHERE op = 'upsert'), count(*) FILTER (WHERE op = 'delete'),"
      " count(*) - count(DISTINCT pk) + count(*) FILTER (WHERE op IS NOT 'upsert' AND op IS NOT"
      " 'delete'), count(*) FROM (SELECT value->>'$.table' AS tb, value->>'$.op' AS op,"
      " value->'$.pk' AS pk FROM c) GROUP BY 1",
      -1, &p, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(p, 1, json, -1, SQLITE_STATIC);
  sqlite3_str *rest = sqlite3_str_new(c->db);
  sqlite3_str_appendall(rest, "SELECT value->>'$.table', value->>'$.op', json_type(value,'$.pk'),"
                              " value->'$.pk', json_type(value,'$.row'), value->'$.row',"
                              " json_type(value,'$.version'), value->>'$.version', key"
                              " FROM json_each(?1,'$.changes') WHERE true");
  int restNeeded = pending;
  *pN = 0;
  while (rc == SQLITE_OK && sqlite3_step(p) == SQLITE_ROW) {
    *pN += sqlite3_column_int64(p, 4);
    sqlite3_int64 upserts = sqlite3_column_int64(p, 1), deletes = sqlite3_column_int64(p, 2);
    if (sqlite3_column_type(p, 0) != SQLITE_TEXT || sqlite3_column_int64(p, 3) != 0 ||
        (deletes != 0 && (fk || upserts != 0))) {
      rc = SQLITE_ABORT;
      break;
    }
    SyncTable *t = 0;
    char *zErr = 0;
    sqlite3_int64 written = 0;
    rc = table_get(c, (const char *)sqlite3_column_text(p, 0), 1, &t, &zErr);
    sqlite3_free(zErr);
    if (rc == SQLITE_OK) rc = fast_table(c, t, json, pending, deletes > 0, &written);
    if (rc == SQLITE_OK) {
      /* Each upsert written counts one change (DO NOTHING, for a table that
      ** is all key, counts none): fewer means some rows lacked a column. */
      if (written != upserts) restNeeded = 1;
      sqlite3_str_appendall(rest, " AND NOT ");
      fast_cond(rest, t, pending, 0);
    }
  }
  sqlite3_finalize(p);
  sqlite3_str_appendall(rest, " ORDER BY key");
  char *sql = sqlite3_str_finish(rest);
  if (rc != SQLITE_OK || !restNeeded) {
    sqlite3_free(sql);
    return rc;
  }
  if (!sql) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(c->db, sql, -1, &p, 0);
  sqlite3_free(sql);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(p, 1, json, -1, SQLITE_STATIC);
  while (rc == SQLITE_OK && sqlite3_step(p) == SQLITE_ROW) {
    char *zErr = 0;
    rc = apply_change(c, sqlite3_column_int(p, 8) + 1, p, &zErr);
    sqlite3_free(zErr);
  }
  int frc = sqlite3_finalize(p);
  return rc == SQLITE_OK ? frc : rc;
}

void apply_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!sync_require_init(ctx, c, "sync_apply")) return;
  const char *json = (const char *)sqlite3_value_text(argv[0]);
  sqlite3_stmt *h = 0, *s = 0;
  /* One statement reads the page's header: within it every JSON function
  ** shares one parse of the page (a page of 1000 changes costs as much to
  ** parse as a few of its rows to write). */
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT json_type(?1,'$.changes'), json_type(?1,'$.cursor'),"
                              " ?1->>'$.cursor', json_type(?1,'$.last_mutation_id'),"
                              " ?1->>'$.last_mutation_id', json_type(?1,'$.has_more'),"
                              " json_type(?1,'$.rejected')"
                              " WHERE CASE WHEN json_valid(?1) THEN json_type(?1) = 'object' END",
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
  if (sqlite3_step(h) != SQLITE_ROW) {
    sqlite3_finalize(h);
    sqlite3_finalize(s);
    sync_error(ctx, "sync_apply", "changes must be a JSON object");
    return;
  }
  const char *changesType = (const char *)sqlite3_column_text(h, 0);
  const char *cursorType = (const char *)sqlite3_column_text(h, 1);
  const char *lastType = (const char *)sqlite3_column_text(h, 3);
  const char *moreType = (const char *)sqlite3_column_text(h, 5);
  const char *rejType = (const char *)sqlite3_column_text(h, 6);
  char *zErr = 0;
  if (changesType && strcmp(changesType, "array") != 0)
    zErr = sqlite3_mprintf("\"changes\" must be an array");
  else if (cursorType && strcmp(cursorType, "text") != 0 && strcmp(cursorType, "null") != 0)
    zErr = sqlite3_mprintf("cursor must be a string");
  else if (lastType && strcmp(lastType, "integer") != 0 && strcmp(lastType, "null") != 0)
    zErr = sqlite3_mprintf("last_mutation_id must be an integer");
  else if (rejType && strcmp(rejType, "array") != 0)
    zErr = sqlite3_mprintf("\"rejected\" must be an array");
  if (zErr) {
    sqlite3_finalize(h);
    sqlite3_finalize(s);
    sync_error_msg(ctx, c, "sync_apply", SQLITE_ERROR, zErr);
    return;
  }
  if (lastType && strcmp(lastType, "integer") == 0)
    rc = check_sent(c, sqlite3_column_int64(h, 4), &zErr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(h);
    sqlite3_finalize(s);
    sync_error_msg(ctx, c, "sync_apply", rc, zErr);
    return;
  }
  int lastPage = !moreType || strcmp(moreType, "true") != 0;

  sqlite3_int64 n = 0;
  rc = sync_engine_begin(c);
  int fast = 0;
  if (rc == SQLITE_OK && sync_exec(c, "SAVEPOINT sync_apply_fast") == SQLITE_OK) {
    int frc = apply_fast(c, json, &n);
    if (frc == SQLITE_OK) {
      fast = sync_exec(c, "RELEASE sync_apply_fast") == SQLITE_OK;
    }
    if (!fast) {
      sync_exec(c, "ROLLBACK TO sync_apply_fast");
      sync_exec(c, "RELEASE sync_apply_fast");
    }
  }
  if (!fast) n = 0;
  while (!fast && rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
    rc = apply_change(c, (int)n + 1, s, &zErr);
    n++;
  }
  if (rc == SQLITE_OK && lastPage && lastType && strcmp(lastType, "integer") == 0)
    rc = confirm_upto(c, json, sqlite3_column_int64(h, 4), &zErr);
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
