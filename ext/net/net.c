/*
** net.c: the network layer's SQL functions and module, registered in one
** loop on top of the engine (engine_register must have run on db first).
**
**   SELECT sync_start();  SELECT sync_stop();        -- worker.c
**   SELECT sync_push();   SELECT sync_pull();        -- oneshot.c
**   SELECT sync_online(); SELECT sync_wait(5000);    -- site.c
**   SELECT sync_wait(5000, 'all');                   -- site.c
**   SELECT sync_config('batch_size', 50);            -- config.c
**   SELECT sync_verify();                            -- verify_net.c
**   SELECT * FROM sync_status;                       -- vtab_status.c
**
** Every function gets the connection's NetConn (site.c) as user data. The
** NetConn hangs on the sync_status module, registered first: SQLite runs
** its destructor at close, after every function's, and it stops the worker
** this connection started. Left out of a `make NET=0` build (sync.c).
*/
#include "net.h"
#include "config.h"
#include "worker.h"
#include "oneshot.h"
#include "site.h"
#include "verify_net.h"
#include "vtab_status.h"

#define DIRECT (SQLITE_UTF8 | SQLITE_DIRECTONLY)

static const struct {
  const char *name;
  int nArg;
  sync_fn fn;
} funcs[] = {
    {"sync_start", 0, worker_fn_start}, {"sync_stop", 0, worker_fn_stop},
    {"sync_push", 0, oneshot_fn_push},  {"sync_pull", 0, oneshot_fn_pull},
    {"sync_online", 0, site_fn_online}, {"sync_online", 1, site_fn_online},
    {"sync_config", 1, config_fn},      {"sync_config", 2, config_fn},
    {"sync_wait", 1, site_fn_wait},     {"sync_wait", 2, site_fn_wait},
    {"sync_verify", 0, verify_net_fn},  {"sync_verify", 1, verify_net_fn},
};

int net_register(sqlite3 *db, SyncCtx *c, char **pzErr) {
  NetConn *nc = site_conn_new(db, c);
  if (!nc) return SQLITE_NOMEM;
  /* The module's destructor frees nc at close (or at once on failure). */
  int rc = sqlite3_create_module_v2(db, "sync_status", &vtab_status_module, nc, site_conn_free);
  if (rc != SQLITE_OK) {
    *pzErr = sqlite3_mprintf("sync: cannot register module sync_status: %s", sqlite3_errmsg(db));
    return rc;
  }
  for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++) {
    rc = sqlite3_create_function_v2(db, funcs[i].name, funcs[i].nArg, DIRECT, nc, funcs[i].fn, 0, 0,
                                    0);
    if (rc != SQLITE_OK) {
      *pzErr = sqlite3_mprintf("sync: cannot register %s(): %s", funcs[i].name, sqlite3_errmsg(db));
      return rc;
    }
  }
  return SQLITE_OK;
}
