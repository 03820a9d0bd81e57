/*
** engine.c: the engine's SQL functions and modules, registered in one loop.
**
**   SELECT sync_init('http://127.0.0.1:8080');   -- client id
**   SELECT sync_track('todos');                  -- 1
**   SELECT sync_migrate('ALTER TABLE ...');      -- tables re-captured
**   SELECT sync_push_batch();                    -- a push body, or NULL
**   SELECT sync_ack('{"results":[...]}');        -- mutations resolved
**   SELECT sync_apply('{"changes":[...]}');      -- changes applied
**   SELECT sync_verify_request('todos');         -- a POST /verify body
**   SELECT sync_verify_answer('{"cursor":...}'); -- the next body, or the report
**   SELECT * FROM sync_pending;
**   SELECT * FROM sync_orphans;
**
** Everything a bring-your-own-transport app needs, and all the network
** layer uses (it registers the engine on its own connection too). The
** first registration owns the connection's SyncCtx: SQLite runs its
** destructor at close, after the sync_pending vtab (the anchor, see
** ctx_anchor) has emptied the caches. The first failure names itself in
** the error.
*/
#include "engine.h"
#include "apply.h"
#include "migrate.h"
#include "mutate.h"
#include "outbox.h"
#include "schema.h"
#include "table.h"
#include "track.h"
#include "value.h"
#include "verify.h"
#include "vtab_orphans.h"
#include "vtab_pending.h"

#include <string.h>

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
    {"sync_track", 2, DIRECT, track_fn_track},
    {"sync_untrack", 1, DIRECT, track_fn_untrack},
    {"sync_migrate", 1, DIRECT, migrate_fn},
    {"sync_mutate", 3, DIRECT, mutate_fn},
    {"sync_pending", 0, SQLITE_UTF8, outbox_fn_pending},
    {"sync_push_batch", 0, DIRECT, outbox_fn_push_batch},
    {"sync_push_batch", 1, DIRECT, outbox_fn_push_batch},
    {"sync_push_batch", 2, DIRECT, outbox_fn_push_batch},
    {"sync_ack", 1, DIRECT, outbox_fn_ack},
    {"sync_ack", 2, DIRECT, outbox_fn_ack},
    {"sync_apply", 1, DIRECT, apply_fn},
    {"sync_wire", 1, PURE, outbox_fn_wire},
    {"sync_verify_request", 1, DIRECT, verify_fn_request},
    {"sync_verify_answer", 1, DIRECT, verify_fn_answer},
};

static const struct {
  const char *name;
  const sqlite3_module *module;
  int withCtx; /* the module's aux data is the SyncCtx */
} modules[] = {
    {"sync_pending", &vtab_pending_module, 1},
    {"sync_apply_rows", &apply_rows_module, 0},
    {"sync_orphans", &vtab_orphans_module, 1},
};

static void ctx_free(void *p) {
  SyncCtx *c = p;
  verify_free(c->verify);
  table_cache_clear(c);
  ctx_stmt_clear(c);
  sqlite3_free(c);
}

int engine_register(sqlite3 *db, SyncCtx **pc, char **pzErr) {
  SyncCtx *c = sqlite3_malloc64(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  c->db = db;
  c->schemaVersion = -1;
  c->sweptVersion = -1;
  c->schemaHook = migrate_check;
  for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++) {
    /* SQLite runs the first one's destructor at close (or at once if the
    ** registration fails). */
    int rc = sqlite3_create_function_v2(db, funcs[i].name, funcs[i].nArg, funcs[i].flags, c,
                                        funcs[i].fn, 0, 0, i == 0 ? ctx_free : 0);
    if (rc != SQLITE_OK) {
      *pzErr = sqlite3_mprintf("sync: cannot register %s(): %s", funcs[i].name, sqlite3_errmsg(db));
      return rc;
    }
  }
  int rc = value_register(db);
  if (rc != SQLITE_OK) {
    *pzErr = sqlite3_mprintf("sync: cannot register sync_val(): %s", sqlite3_errmsg(db));
    return rc;
  }
  for (size_t i = 0; i < sizeof modules / sizeof modules[0]; i++) {
    rc = sqlite3_create_module_v2(db, modules[i].name, modules[i].module,
                                  modules[i].withCtx ? c : 0, 0);
    if (rc != SQLITE_OK) {
      *pzErr = sqlite3_mprintf("sync: cannot register module %s: %s", modules[i].name,
                               sqlite3_errmsg(db));
      return rc;
    }
  }
  if (pc) *pc = c;
  return SQLITE_OK;
}
