/*
** worker.h: what worker.c shares with vtab_status.c and sync.c.
**
** Every connection that registers the extension gets a WorkerConn (freed by
** the destructor of the sync_status module, which SQLite runs at close).
** It links the connection to the process-wide state of its database file
** (one per path: the token, connectivity, the worker thread and its status,
** the change counter behind sync_wait).
*/
#ifndef SYNC_WORKER_H
#define SYNC_WORKER_H

#include "sync.h"

#include <stdint.h>

typedef struct WorkerConn WorkerConn;

/* Creates this connection's WorkerConn, stores it in c->wc and registers
** the sync_status module with it (the module's destructor frees it and
** stops the worker if this connection started it). Returns an SQLite code. */
int worker_conn_register(sqlite3 *db, SyncCtx *c);

/* One consistent copy of the worker's status for sync_status. */
typedef struct worker_snapshot {
  const char *state; /* stopped, idle, pushing, pulling, offline, error */
  int online;
  int sse_connected;
  char last_error[512];                              /* "" for none */
  int64_t last_push_at, last_pull_at, next_retry_at; /* unix ms, 0 for none */
  int64_t pushed_total, pulled_total;
} worker_snapshot;

void worker_snapshot_get(WorkerConn *, worker_snapshot *);
sqlite3 *worker_conn_db(WorkerConn *);

/* The token (memory only) of this connection's database file. */
void worker_token_set(WorkerConn *, const char *token);
int worker_token_is_set(WorkerConn *);
/* Tell a running worker that config.* rows changed. */
void worker_config_changed(WorkerConn *);

/* config.c: the settings sync_config and sync_init store in sync_meta as
** config.<key>, with their defaults. */
typedef struct sync_conf {
  int64_t batch_size, pull_limit, backoff_min_ms, backoff_max_ms, timeout_ms;
  int64_t max_body, sse_stall_ms;
  int sse;
  char *ca_file, *header; /* sqlite3_malloc'd or NULL */
} sync_conf;

/* Reads the config.* rows of db's sync_meta into *cfg (defaults for what
** is missing or unreadable). Free with config_clear. */
void config_load(sqlite3 *db, sync_conf *cfg);
void config_clear(sync_conf *cfg);

#endif
