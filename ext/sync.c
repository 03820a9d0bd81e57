/*
** sync.c: entry point of the offline-first sync extension.
**
**   .load ./ext/sync
**   SELECT sync_init('http://127.0.0.1:8080');   -- client id
**   SELECT sync_track('todos');                  -- 1
**   INSERT INTO todos VALUES('a', 'milk', 0);    -- queued in the outbox
**   SELECT * FROM sync_pending;
**
** Every SQL function and module is listed in one table below and registered
** in one loop; the first failure names itself in the load error. All
** functions share one SyncCtx per connection, freed by the destructor of the
** first registration when the connection closes. This file also holds what
** every module needs: the statement cache, error reporting, the sync_meta
** key-value store and the engine-write bracket.
*/
#include "sqlite_api.h"
SQLITE_EXTENSION_INIT1

#include "sync.h"
#include "value.h"

#include <stdarg.h>
#include <string.h>

static const char *const stmt_sql[STMT_COUNT] = {
    [STMT_META_GET] = "SELECT value FROM sync_meta WHERE key=?1",
    [STMT_META_SET] = "INSERT INTO sync_meta(key,value) VALUES(?1,?2) "
                      "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
    [STMT_SCHEMA_VER] = "PRAGMA schema_version",
    [STMT_TRACKED] = "SELECT 1 FROM sync_tracked WHERE name=?1",
    [STMT_PENDING_COUNT] = "SELECT count(*) FROM sync_outbox",
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
int sync_anchor(SyncCtx *c) {
  if (c->anchored) return SQLITE_OK;
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db, "SELECT 1 FROM sync_pending", -1, &s, 0);
  sqlite3_finalize(s);
  return rc == SQLITE_OK && c->anchored ? SQLITE_OK : SQLITE_ERROR;
}

void sync_cache_clear(SyncCtx *c) {
  table_cache_clear(c);
  for (int i = 0; i < STMT_COUNT; i++) {
    sqlite3_finalize(c->stmt[i]);
    c->stmt[i] = 0;
  }
}

/* Returns the cached statement, reset and unbound, or NULL (the error is
** then in sqlite3_errmsg). */
sqlite3_stmt *sync_stmt(SyncCtx *c, int id) {
  sqlite3_stmt *s = c->stmt[id];
  if (s) {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
  }
  if (sync_anchor(c) != SQLITE_OK) return 0;
  if (sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s, 0) != SQLITE_OK) {
    sqlite3_finalize(s);
    return 0;
  }
  c->stmt[id] = s;
  return s;
}

int sync_exec(SyncCtx *c, const char *sql) {
  return sqlite3_exec(c->db, sql, 0, 0, 0);
}

/* Every write of the extension runs inside a savepoint, so that an error
** leaves the database as it was, inside or outside the caller's transaction. */
int sync_begin(SyncCtx *c) {
  return sync_exec(c, "SAVEPOINT sync_write");
}

/* Releases the savepoint when rc is SQLITE_OK, otherwise rolls everything
** back. When it fails and *pzErr is still NULL, *pzErr gets the database's
** message from before the rollback (which would replace it). Returns the
** final code. */
int sync_end(SyncCtx *c, int rc, char **pzErr) {
  if (rc == SQLITE_OK) rc = sync_exec(c, "RELEASE sync_write");
  if (rc == SQLITE_OK) return rc;
  if (!*pzErr) *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(c->db));
  sync_exec(c, "ROLLBACK TO sync_write");
  sync_exec(c, "RELEASE sync_write");
  return rc;
}

/* Runs a bound statement that returns no rows, then resets it. Returns
** SQLITE_OK or the error code (message in sqlite3_errmsg). */
int sync_run(SyncCtx *c, sqlite3_stmt *s) {
  int rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(c->db);
  sqlite3_reset(s);
  return rc;
}

/* Finishes out and makes its text the function's result (out-of-memory
** when building it failed). */
void sync_result_str(sqlite3_context *ctx, sqlite3_str *out) {
  int len = sqlite3_str_length(out);
  char *z = sqlite3_str_finish(out);
  if (z)
    sqlite3_result_text(ctx, z, len, sqlite3_free);
  else
    sqlite3_result_error_nomem(ctx);
}

static int set_applying(SyncCtx *c, int on) {
  sqlite3_stmt *s = sync_stmt(c, STMT_CONTROL);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_int(s, 1, on);
  return sync_run(c, s);
}

/* The engine's own writes (server rows, replays) also set
** sync_control.applying: the capture triggers check it and stay silent. No
** other connection can see the flag set, because it is only ever set inside
** this write transaction, and the savepoint's rollback clears it too. */
int sync_engine_begin(SyncCtx *c) {
  int rc = sync_begin(c);
  /* A page holds the latest change of each row in server order, so a child
  ** row can come before its parent: foreign keys are checked at commit.
  ** Only when they are enforced at all: the pragma expires every prepared
  ** statement of the connection, and recompiling them (capture triggers
  ** included) on their next step cost more than the rest of a small batch. */
  int fk = 0;
  if (rc == SQLITE_OK &&
      sqlite3_db_config(c->db, SQLITE_DBCONFIG_ENABLE_FKEY, -1, &fk) == SQLITE_OK && fk)
    rc = sync_exec(c, "PRAGMA defer_foreign_keys=ON");
  if (rc == SQLITE_OK) {
    rc = set_applying(c, 1);
    if (rc != SQLITE_OK) {
      char *zErr = 0;
      sync_end(c, rc, &zErr);
      sqlite3_free(zErr);
    }
  }
  return rc;
}

int sync_engine_end(SyncCtx *c, int rc, char **pzErr) {
  if (rc == SQLITE_OK) rc = set_applying(c, 0);
  return sync_end(c, rc, pzErr);
}

void sync_error(sqlite3_context *ctx, const char *fn, const char *fmt, ...) {
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

void sync_error_db(sqlite3_context *ctx, SyncCtx *c, const char *fn, int rc) {
  if (rc == SQLITE_NOMEM)
    sqlite3_result_error_nomem(ctx);
  else
    sync_error(ctx, fn, "%s", sqlite3_errmsg(c->db));
}

/* Reports a failure of an internal step as "fn: zErr" (zErr is freed here),
** or "fn: <the database's message>" when zErr is NULL. */
void sync_error_msg(sqlite3_context *ctx, SyncCtx *c, const char *fn, int rc, char *zErr) {
  if (rc == SQLITE_NOMEM)
    sqlite3_result_error_nomem(ctx);
  else
    sync_error(ctx, fn, "%s", zErr ? zErr : sqlite3_errmsg(c->db));
  sqlite3_free(zErr);
}

/* 1 when json is valid JSON whose value at path has the given json_type. */
int sync_json_is(SyncCtx *c, const char *json, const char *path, const char *type) {
  sqlite3_stmt *s = sync_stmt(c, STMT_JSON_IS);
  if (!s || !json) return 0;
  sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, path, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 3, type, -1, SQLITE_STATIC);
  int yes = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 1;
  sqlite3_reset(s);
  return yes;
}

char *sync_meta_get(SyncCtx *c, const char *key) {
  sqlite3_stmt *s = sync_stmt(c, STMT_META_GET);
  if (!s) return 0;
  sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
  char *v = 0;
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
    v = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
  sqlite3_reset(s);
  return v;
}

int sync_meta_set(SyncCtx *c, const char *key, const char *value) {
  sqlite3_stmt *s = sync_stmt(c, STMT_META_SET);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
  return sync_run(c, s);
}

/* Every function but sync_init needs the extension's tables. Returns 1 when
** they are there; otherwise sets the error on ctx and returns 0. */
int sync_require_init(sqlite3_context *ctx, SyncCtx *c, const char *fn) {
  char *id = sync_meta_get(c, "client_id");
  if (id) {
    sqlite3_free(id);
    return 1;
  }
  sync_error(ctx, fn, "sync_init() has not been called on this database");
  return 0;
}

void sync_apply_tables_clear(SyncCtx *c) {
  for (int i = 0; i < c->nApplyTables; i++)
    sqlite3_free(c->applyTables[i]);
  sqlite3_free(c->applyTables);
  c->applyTables = 0;
  c->nApplyTables = 0;
}

static void ctx_free(void *p) {
  SyncCtx *c = p;
  sync_cache_clear(c);
  sync_apply_tables_clear(c);
  sqlite3_free(c);
}

#define DIRECT (SQLITE_UTF8 | SQLITE_DIRECTONLY)
#define PURE (SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS)

static const struct {
  const char *name;
  int nArg;
  int flags;
  sync_fn fn;
} funcs[] = {
    {"sync_init", 1, DIRECT, schema_fn_init},
    {"sync_init", 2, DIRECT, schema_fn_init},
    {"sync_cursor", 0, DIRECT, schema_fn_cursor},
    {"sync_track", 1, DIRECT, track_fn_track},
    {"sync_untrack", 1, DIRECT, track_fn_untrack},
    {"sync_mutate", 3, DIRECT, mutate_fn},
    {"sync_pending", 0, SQLITE_UTF8, outbox_fn_pending},
    {"sync_push_batch", 0, DIRECT, outbox_fn_push_batch},
    {"sync_push_batch", 1, DIRECT, outbox_fn_push_batch},
    {"sync_push_batch", 2, DIRECT, outbox_fn_push_batch},
    {"sync_ack", 1, DIRECT, outbox_fn_ack},
    {"sync_ack", 2, DIRECT, outbox_fn_ack},
    {"sync_apply", 1, DIRECT, apply_fn},
    {"sync_wire", 1, PURE, outbox_fn_wire},
    {"sync_start", 0, DIRECT, worker_fn_start},
    {"sync_stop", 0, DIRECT, worker_fn_stop},
    {"sync_push", 0, DIRECT, worker_fn_push},
    {"sync_pull", 0, DIRECT, worker_fn_pull},
    {"sync_online", 0, DIRECT, worker_fn_online},
    {"sync_online", 1, DIRECT, worker_fn_online},
    {"sync_config", 1, DIRECT, config_fn},
    {"sync_config", 2, DIRECT, config_fn},
    {"sync_wait", 1, DIRECT, worker_fn_wait},
};

/* Registers every function and module on db with a fresh SyncCtx. Used by
** the entry point and by anything in the extension that opens its own
** connection. On failure *pzErr (sqlite3_malloc'd) names what failed; else
** *pc (if given) gets the connection's context, which lives until it closes. */
int sync_register(sqlite3 *db, SyncCtx **pc, char **pzErr) {
  SyncCtx *c = sqlite3_malloc64(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  c->db = db;
  c->schemaVersion = -1;
  int rc = SQLITE_OK;
  for (size_t i = 0; rc == SQLITE_OK && i < sizeof funcs / sizeof funcs[0]; i++) {
    /* The first registration owns the context: SQLite runs its destructor at
    ** close (or at once if the registration fails). */
    rc = sqlite3_create_function_v2(db, funcs[i].name, funcs[i].nArg, funcs[i].flags, c,
                                    funcs[i].fn, 0, 0, i == 0 ? ctx_free : 0);
    if (rc != SQLITE_OK) {
      *pzErr = sqlite3_mprintf("sync: cannot register %s(): %s", funcs[i].name, sqlite3_errmsg(db));
      return rc;
    }
  }
  rc = value_register(db);
  if (rc == SQLITE_OK)
    rc = sqlite3_create_module_v2(db, "sync_pending", &vtab_pending_module, c, 0);
  if (rc == SQLITE_OK)
    rc = sqlite3_create_module_v2(db, "sync_apply_rows", &apply_rows_module, 0, 0);
  if (rc == SQLITE_OK) rc = worker_conn_register(db, c); /* and the sync_status module */
  if (rc != SQLITE_OK)
    *pzErr = sqlite3_mprintf("sync: cannot register modules: %s", sqlite3_errmsg(db));
  if (rc == SQLITE_OK && pc) *pc = c;
  return rc;
}

#ifdef _WIN32
__declspec(dllexport)
#else
__attribute__((visibility("default")))
#endif
    int sqlite3_sync_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi) {
  /* Each load into another connection hands over the same table, while
  ** running workers read sqlite3_api: store it only the first time (a
  ** compare-and-swap, even a failing one, counts as a write), by
  ** compare-and-swap so that two first loads on two threads do not race. */
  const sqlite3_api_routines *none = 0;
  if (!__atomic_load_n(&sqlite3_api, __ATOMIC_ACQUIRE))
    __atomic_compare_exchange_n(&sqlite3_api, &none, pApi, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
  if (sqlite3_libversion_number() < 3038000) {
    *pzErrMsg =
        sqlite3_mprintf("sync: needs SQLite 3.38 or later, this is %s", sqlite3_libversion());
    return SQLITE_ERROR;
  }
  return sync_register(db, 0, pzErrMsg);
}
