/*
** sync.c: entry point of the offline-first sync extension.
**
**   .load ./ext/sync
**   SELECT sync_init('http://127.0.0.1:8080');   -- client id
**   SELECT sync_track('todos');                  -- 1
**   INSERT INTO todos VALUES('a', 'milk', 0);    -- queued in the outbox
**   SELECT * FROM sync_pending;
**   SELECT sync_start();                         -- the worker syncs it
**
** Registers the engine (ext/engine/, engine_register: the tables, capture,
** the outbox, apply and rebase), then the network layer (ext/net/,
** net_register: the worker, sync_push/sync_pull, sync_config, sync_wait,
** sync_status). A build without the network layer (make NET=0, which
** defines SYNC_NO_NET and does not link libcurl) registers the network
** layer's names anyway, each answering an error, so that the set of
** functions and modules is the same in both builds:
**
**   SELECT sync_start();
**   -- sync_start: this build has no network layer (built with make NET=0)
**   SELECT * FROM sync_status;
**   -- sync_status: this build has no network layer (built with make NET=0)
*/
#include "engine.h"
#ifndef SYNC_NO_NET
#include "net.h"
#endif

#include <string.h>

#ifdef SYNC_NO_NET
#define NO_NET "this build has no network layer (built with make NET=0)"

/* The network layer's functions, each answering "name: " NO_NET. */
static const struct {
  const char *name;
  int nArg;
} net_funcs[] = {
    {"sync_start", 0},  {"sync_stop", 0},   {"sync_push", 0},   {"sync_pull", 0},
    {"sync_online", 0}, {"sync_online", 1}, {"sync_config", 1}, {"sync_config", 2},
    {"sync_wait", 1},   {"sync_wait", 2},   {"sync_verify", 0}, {"sync_verify", 1},
};

static void no_net_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc, (void)argv;
  ctx_error(ctx, sqlite3_user_data(ctx), "%s", NO_NET);
}

static int no_net_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                          sqlite3_vtab **ppVtab, char **pzErr) {
  (void)db, (void)aux, (void)argc, (void)argv, (void)ppVtab;
  *pzErr = sqlite3_mprintf("sync_status: %s", NO_NET);
  return SQLITE_ERROR;
}

/* sync_status as an eponymous table that cannot be connected. */
static sqlite3_module no_net_status = {.xConnect = no_net_connect};

static int no_net_register(sqlite3 *db, char **pzErr) {
  for (size_t i = 0; i < sizeof net_funcs / sizeof net_funcs[0]; i++) {
    int rc = sqlite3_create_function_v2(db, net_funcs[i].name, net_funcs[i].nArg,
                                        SQLITE_UTF8 | SQLITE_DIRECTONLY, (void *)net_funcs[i].name,
                                        no_net_fn, 0, 0, 0);
    if (rc != SQLITE_OK) {
      *pzErr =
          sqlite3_mprintf("sync: cannot register %s(): %s", net_funcs[i].name, sqlite3_errmsg(db));
      return rc;
    }
  }
  int rc = sqlite3_create_module_v2(db, "sync_status", &no_net_status, 0, 0);
  if (rc != SQLITE_OK)
    *pzErr = sqlite3_mprintf("sync: cannot register module sync_status: %s", sqlite3_errmsg(db));
  return rc;
}
#endif

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
  SyncCtx *c = 0;
  int rc = engine_register(db, &c, pzErrMsg);
#ifdef SYNC_NO_NET
  if (rc == SQLITE_OK) rc = no_net_register(db, pzErrMsg);
#else
  if (rc == SQLITE_OK) rc = net_register(db, c, pzErrMsg);
#endif
  return rc;
}
