/*
** ctx.c: the per-connection state every engine module shares.
**
** One SyncCtx per connection (created and freed by engine.c): the catalog
** of cached statements (stmt_sql below, prepared on first use), the
** bracket every SQL function writes in (ctx_begin/ctx_end: a savepoint, or
** BEGIN IMMEDIATE outside any transaction) and
** the engine-write bracket that keeps the capture triggers silent
** (ctx_engine_begin/ctx_engine_end, with the deferred foreign-key guard),
** the write transaction a caller outside any transaction takes first
** (ctx_tx_begin/ctx_tx_end), error reporting ("fn: cause"), and the
** sync_meta key-value store. It calls no other module: everything in
** ext/engine/ and ext/net/ builds on it.
*/
#include "ctx.h"
#include "value.h"

#include <stdarg.h>
#include <string.h>

static const char *const stmt_sql[STMT_COUNT] = {
    [STMT_META_GET] = "SELECT value FROM sync_meta WHERE key=?1",
    [STMT_META_DEL] = "DELETE FROM sync_meta WHERE key=?1",
    [STMT_META_MAX] =
        "INSERT INTO sync_meta(key,value) VALUES(?1,?2) "
        "ON CONFLICT(key) DO UPDATE SET value=max(CAST(value AS INTEGER),excluded.value)",
    [STMT_META_SET] = "INSERT INTO sync_meta(key,value) VALUES(?1,?2) "
                      "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
    [STMT_SCHEMA_VER] = "PRAGMA schema_version",
    [STMT_TRACKED] = "SELECT 1 FROM sync_tracked WHERE name=?1",
    [STMT_PENDING_COUNT] = "SELECT count(*) FROM sync_outbox",
    [STMT_ANY_IMAGE] =
        "SELECT EXISTS (SELECT 1 FROM sync_outbox) OR EXISTS (SELECT 1 FROM sync_shadow)",
    [STMT_HAS_PENDING] = "SELECT 1 FROM sync_outbox WHERE tbl=?1 AND pk=?2 LIMIT 1",
    [STMT_KEY_PENDING] = "SELECT op, data FROM sync_outbox WHERE tbl=?1 AND pk=?2 ORDER BY id",
    [STMT_SHADOW_GET] = "SELECT row, version FROM sync_shadow WHERE tbl=?1 AND pk=?2",
    [STMT_SHADOW_PUT] =
        "INSERT OR REPLACE INTO sync_shadow(tbl,pk,row,version) VALUES(?1,?2,?3,?4)",
    [STMT_SHADOW_DROP] = "DELETE FROM sync_shadow WHERE tbl=?1 AND pk=?2",
    [STMT_OUTBOX_GET] = "SELECT tbl, op, pk, data FROM sync_outbox WHERE id=?1",
    [STMT_OUTBOX_DEL] = "DELETE FROM sync_outbox WHERE id=?1",
    [STMT_OUTBOX_UPTO] = "SELECT id, tbl, pk FROM sync_outbox WHERE id<=?1 ORDER BY id",
    [STMT_REJECT] = "INSERT OR REPLACE INTO sync_rejected"
                    "(id,table_name,op,pk,data,reason,rejected_at) "
                    "SELECT id, tbl, op, sync_wire(pk), sync_wire(data), ?2, "
                    "strftime('%Y-%m-%dT%H:%M:%fZ','now') FROM sync_outbox WHERE id=?1",
    [STMT_CONTROL] = "UPDATE sync_control SET applying=?1",
    [STMT_JSON_IS] = "SELECT CASE WHEN json_valid(?1) THEN json_type(?1,?2)=?3 ELSE 0 END",
    [STMT_LAST_ID] = "SELECT max(coalesce((SELECT max(id) FROM sync_outbox),0),last_id) "
                     "FROM sync_control",
};

/* Cached statements would make sqlite3_close() (not _v2) fail with "unable
** to close due to unfinalized statements": function destructors run only
** after that check. Virtual tables are disconnected before it, so the
** eponymous sync_pending table, once connected, empties the caches from its
** xDisconnect. Anything that caches a statement first makes sure it is. */
int ctx_anchor(SyncCtx *c) {
  if (c->anchored) return SQLITE_OK;
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db, "SELECT 1 FROM sync_pending", -1, &s, 0);
  sqlite3_finalize(s);
  return rc == SQLITE_OK && c->anchored ? SQLITE_OK : SQLITE_ERROR;
}

/* Finalizes the cached statements of the catalog and rebase.c's checks
** (they are prepared again on their next use). */
void ctx_stmt_clear(SyncCtx *c) {
  for (int i = 0; i < STMT_COUNT; i++) {
    sqlite3_finalize(c->stmt[i]);
    c->stmt[i] = 0;
  }
  while (c->fks) {
    CtxFk *f = c->fks;
    c->fks = f->next;
    sqlite3_finalize(f->check[0]);
    sqlite3_finalize(f->check[1]);
    sqlite3_free(f->tbl);
    sqlite3_free(f);
  }
}

/* Returns the cached statement, reset and unbound, or NULL (the error is
** then in sqlite3_errmsg). */
sqlite3_stmt *ctx_stmt(SyncCtx *c, int id) {
  sqlite3_stmt *s = c->stmt[id];
  if (s) {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
  }
  if (ctx_anchor(c) != SQLITE_OK) return 0;
  if (sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s, 0) != SQLITE_OK) {
    sqlite3_finalize(s);
    return 0;
  }
  c->stmt[id] = s;
  return s;
}

int ctx_exec(SyncCtx *c, const char *sql) {
  return sqlite3_exec(c->db, sql, 0, 0, 0);
}

/* Adds column col (declared decl) to main.table unless it has one by that
** name: the schema of an older version gets what a newer one needs.
** *pAdded (may be NULL) is 1 when it was added. */
int ctx_add_column(SyncCtx *c, const char *table, const char *col, const char *decl, int *pAdded) {
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db, "SELECT 1 FROM pragma_table_info(?1, 'main') WHERE name=?2",
                              -1, &s, 0);
  int has = 0;
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, col, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    has = rc == SQLITE_ROW;
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
  }
  sqlite3_finalize(s);
  if (pAdded) *pAdded = 0;
  if (rc != SQLITE_OK || has) return rc;
  char *sql = sqlite3_mprintf("ALTER TABLE main.\"%w\" ADD COLUMN \"%w\" %s", table, col, decl);
  rc = sql ? ctx_exec(c, sql) : SQLITE_NOMEM;
  sqlite3_free(sql);
  if (pAdded) *pAdded = rc == SQLITE_OK;
  return rc;
}

/* The database's message for a failure with code rc, read before anything
** else runs on the connection. A reset or a successful statement run since
** the failure leaves "not an error" there: the code's own text is better. */
const char *ctx_errmsg(SyncCtx *c, int rc) {
  if (sqlite3_errcode(c->db) == SQLITE_OK)
    return sqlite3_errstr(rc == SQLITE_OK ? SQLITE_ERROR : rc);
  return sqlite3_errmsg(c->db);
}

/* Every write of the extension runs inside a savepoint, so that an error
** leaves the database as it was, inside or outside the caller's transaction.
** Called outside any transaction (a plain SELECT sync_init(...)), the
** bracket is BEGIN IMMEDIATE instead: a savepoint there begins a deferred
** transaction, which reads first, and its first write fails at once with
** SQLITE_BUSY_SNAPSHOT ("database is locked", the busy timeout never
** consulted) when another connection committed in between, as a worker in
** another process does after each pull. A bracket opened inside that
** transaction (user SQL that calls the extension again) is a savepoint;
** txDepth counts them, so that only the outermost ctx_end commits. */
int ctx_begin(SyncCtx *c) {
  if (c->txDepth > 0) c->txDepth++;
  if (c->txDepth > 0 || !sqlite3_get_autocommit(c->db) ||
      sqlite3_txn_state(c->db, 0) != SQLITE_TXN_NONE) {
    int rc = ctx_exec(c, "SAVEPOINT sync_write");
    if (rc != SQLITE_OK && c->txDepth > 0) c->txDepth--;
    return rc;
  }
  int rc = ctx_exec(c, "BEGIN IMMEDIATE");
  if (rc == SQLITE_OK) c->txDepth = 1;
  return rc;
}

/* Releases the savepoint (commits the transaction ctx_begin began) when rc
** is SQLITE_OK, otherwise rolls everything back. When it fails and *pzErr is
** still NULL, *pzErr gets the database's message from before the rollback
** (which would replace it). Returns the final code. */
int ctx_end(SyncCtx *c, int rc, char **pzErr) {
  if (c->txDepth == 1) {
    c->txDepth = 0;
    return ctx_tx_end(c, 1, rc, pzErr);
  }
  if (c->txDepth > 1) c->txDepth--;
  if (rc == SQLITE_OK) rc = ctx_exec(c, "RELEASE sync_write");
  if (rc == SQLITE_OK) return rc;
  if (!*pzErr) *pzErr = sqlite3_mprintf("%s", ctx_errmsg(c, rc));
  ctx_exec(c, "ROLLBACK TO sync_write");
  ctx_exec(c, "RELEASE sync_write");
  return rc;
}

/* Runs a bound statement that returns no rows, then resets it. Returns
** SQLITE_OK or the error code (message in sqlite3_errmsg). */
int ctx_run(SyncCtx *c, sqlite3_stmt *s) {
  int rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(c->db);
  sqlite3_reset(s);
  return rc;
}

/* Finishes out and makes its text the function's result (out-of-memory
** when building it failed). */
void ctx_result_str(sqlite3_context *ctx, sqlite3_str *out) {
  int len = sqlite3_str_length(out);
  char *z = sqlite3_str_finish(out);
  if (z)
    sqlite3_result_text(ctx, z, len, sqlite3_free);
  else
    sqlite3_result_error_nomem(ctx);
}

static int set_applying(SyncCtx *c, int on) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_CONTROL);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_int(s, 1, on);
  return ctx_run(c, s);
}

/* The engine's own writes (server rows, replays) also set
** sync_control.applying: the capture triggers check it and stay silent. No
** other connection can see the flag set, because it is only ever set inside
** this write transaction, and the savepoint's rollback clears it too. */
/* A tracked table dropped without sync_untrack leaves its one-row
** "sync_req_T" (replace.c) behind, with triggers that name T: SQLite then
** refuses every ALTER TABLE ... RENAME in the database ("error in trigger
** sync_rp_T: no such table"). Dropping it drops them. T's own triggers
** (sync_bi_T) go with T and keep their names when T is renamed, so their
** absence tells a dropped table from a renamed one. Then the schema hook
** (migrate.c) rebuilds the capture triggers of a table altered without
** sync_migrate. Run once per schema change, so an engine write pays one
** PRAGMA otherwise. */
static int sweep_orphans(SyncCtx *c) {
  sqlite3_stmt *v = ctx_stmt(c, STMT_SCHEMA_VER);
  if (!v) return sqlite3_errcode(c->db);
  int ver = sqlite3_step(v) == SQLITE_ROW ? sqlite3_column_int(v, 0) : -1;
  int rc = sqlite3_reset(v);
  if (rc != SQLITE_OK || ver == c->sweptVersion) return rc;
  sqlite3_stmt *s = 0;
  rc = sqlite3_prepare_v2(c->db,
                          "SELECT r.name FROM main.sqlite_schema r WHERE r.type = 'table' AND "
                          "r.name GLOB 'sync_req_?*' AND NOT EXISTS (SELECT 1 FROM "
                          "main.sqlite_schema t WHERE t.type = 'trigger' AND t.name = "
                          "'sync_bi_' || substr(r.name, 10))",
                          -1, &s, 0);
  sqlite3_str *drops = sqlite3_str_new(c->db);
  while (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
    sqlite3_str_appendf(drops, "DROP TABLE main.\"%w\";", sqlite3_column_text(s, 0));
  if (rc == SQLITE_OK)
    rc = sqlite3_finalize(s);
  else
    sqlite3_finalize(s);
  char *sql = sqlite3_str_finish(drops);
  if (rc == SQLITE_OK && sql) rc = ctx_exec(c, sql);
  sqlite3_free(sql);
  if (rc == SQLITE_OK && c->schemaHook) rc = c->schemaHook(c);
  /* Our own DROPs (and the hook's triggers) moved the version: the one to
  ** compare with is after them. */
  if (rc == SQLITE_OK && sqlite3_step(v) == SQLITE_ROW) c->sweptVersion = sqlite3_column_int(v, 0);
  if (rc == SQLITE_OK) rc = sqlite3_reset(v);
  return rc;
}

int ctx_engine_begin(SyncCtx *c) {
  int rc = ctx_begin(c);
  if (rc != SQLITE_OK) return rc;
  rc = sweep_orphans(c);
  /* A page holds the latest change of each row in server order, so a child
  ** row can come before its parent: foreign keys are deferred (the pragma
  ** resets at COMMIT), and apply.c checks at its own end whether one is
  ** left dangling (SQLITE_DBSTATUS_DEFERRED_FKS) to stage the page instead.
  ** Only when they are enforced at all: the pragma expires every prepared
  ** statement of the connection, and recompiling them (capture triggers
  ** included) on their next step cost more than the rest of a small batch. */
  int fk = 0;
  if (rc == SQLITE_OK &&
      sqlite3_db_config(c->db, SQLITE_DBCONFIG_ENABLE_FKEY, -1, &fk) == SQLITE_OK && fk)
    rc = ctx_exec(c, "PRAGMA defer_foreign_keys=ON");
  if (rc == SQLITE_OK) rc = set_applying(c, 1);
  if (rc != SQLITE_OK) {
    char *zErr = 0;
    ctx_end(c, rc, &zErr);
    sqlite3_free(zErr);
  }
  return rc;
}

int ctx_engine_end(SyncCtx *c, int rc, char **pzErr) {
  if (rc == SQLITE_OK) rc = set_applying(c, 0);
  return ctx_end(c, rc, pzErr);
}

void ctx_error(sqlite3_context *ctx, const char *fn, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *detail = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  char *msg = detail ? sqlite3_mprintf("%s: %s", fn, detail) : 0;
  if (msg)
    sqlite3_result_error(ctx, msg, -1);
  else
    sqlite3_result_error_nomem(ctx);
  sqlite3_free(msg);
  sqlite3_free(detail);
}

/* A lock another connection holds keeps its code (SQLITE_BUSY, _LOCKED)
** under the message, so that a caller can tell "try again" from a failure. */
static void keep_busy(sqlite3_context *ctx, int rc) {
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
    sqlite3_result_error_code(ctx, rc);
}

void ctx_error_db(sqlite3_context *ctx, SyncCtx *c, const char *fn, int rc) {
  if (rc == SQLITE_NOMEM) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  ctx_error(ctx, fn, "%s", ctx_errmsg(c, rc));
  keep_busy(ctx, rc);
}

/* Reports a failure of an internal step as "fn: zErr" (zErr is freed here),
** or "fn: <the database's message>" when zErr is NULL. */
void ctx_error_msg(sqlite3_context *ctx, SyncCtx *c, const char *fn, int rc, char *zErr) {
  if (rc == SQLITE_NOMEM) {
    sqlite3_result_error_nomem(ctx);
  } else {
    ctx_error(ctx, fn, "%s", zErr ? zErr : ctx_errmsg(c, rc));
    keep_busy(ctx, rc);
  }
  sqlite3_free(zErr);
}

/* 1 when json is valid JSON whose value at path has the given json_type. */
int ctx_json_is(SyncCtx *c, const char *json, const char *path, const char *type) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_JSON_IS);
  if (!s || !json) return 0;
  sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, path, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 3, type, -1, SQLITE_STATIC);
  int yes = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 1;
  sqlite3_reset(s);
  return yes;
}

char *ctx_meta_get(SyncCtx *c, const char *key) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_META_GET);
  if (!s) return 0;
  sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
  char *v = 0;
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
    v = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
  sqlite3_reset(s);
  return v;
}

int ctx_meta_set(SyncCtx *c, const char *key, const char *value) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_META_SET);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
  return ctx_run(c, s);
}

/* Every function but sync_init needs the extension's tables. Returns 1 when
** they are there; otherwise sets the error on ctx and returns 0. */
int ctx_require_init(sqlite3_context *ctx, SyncCtx *c, const char *fn) {
  char *id = ctx_meta_get(c, "client_id");
  if (id) {
    sqlite3_free(id);
    return 1;
  }
  ctx_error(ctx, fn, "sync_init() has not been called on this database");
  return 0;
}

/* Deletes key from sync_meta (a missing key is no error). */
int ctx_meta_del(SyncCtx *c, const char *key) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_META_DEL);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
  return ctx_run(c, s);
}

int ctx_room(void *pArray, int *pCap, int n, size_t size) {
  if (n < *pCap) return SQLITE_OK;
  void *a;
  memcpy(&a, pArray, sizeof a);
  int cap = *pCap ? *pCap * 2 : 8;
  a = sqlite3_realloc64(a, size * (sqlite3_uint64)cap);
  if (!a) return SQLITE_NOMEM;
  memcpy(pArray, &a, sizeof a);
  *pCap = cap;
  return SQLITE_OK;
}

/* A write by a caller outside any transaction (the worker, sync_push,
** sync_pull) takes the write lock first with BEGIN IMMEDIATE, which the
** busy handler waits for: a deferred transaction that read first could fail
** with SQLITE_BUSY_SNAPSHOT at its first write when another connection
** committed in between, and the busy handler cannot help then. Returns 1
** when it began a transaction (autocommit mode), 0 when the caller's
** transaction is used, -1 when BEGIN failed (message in sqlite3_errmsg). */
int ctx_tx_begin(SyncCtx *c) {
  if (!sqlite3_get_autocommit(c->db)) return 0;
  return ctx_exec(c, "BEGIN IMMEDIATE") == SQLITE_OK ? 1 : -1;
}

/* Commits (rc SQLITE_OK) or rolls back what ctx_tx_begin began; returns the
** final code. When it fails and *pzErr is still NULL, *pzErr gets the
** database's message. */
int ctx_tx_end(SyncCtx *c, int began, int rc, char **pzErr) {
  if (began == 1) {
    if (rc == SQLITE_OK) rc = ctx_exec(c, "COMMIT");
    if (rc != SQLITE_OK) {
      if (!*pzErr) *pzErr = sqlite3_mprintf("%s", ctx_errmsg(c, rc));
      ctx_exec(c, "ROLLBACK");
    }
  }
  return rc;
}
