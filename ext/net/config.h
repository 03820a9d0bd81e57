/*
** config.h: the worker's settings (config.c), which sync_config and
** sync_init store in sync_meta as config.<key>, read with the defaults of
** the engine's table of settings (options.h).
*/
#ifndef SYNC_CONFIG_H
#define SYNC_CONFIG_H

#include "ctx.h"

#include <stdint.h>

typedef struct sync_conf {
  int64_t batch_size, pull_limit, backoff_min_ms, backoff_max_ms, timeout_ms;
  int64_t max_body, sse_stall_ms, verify_interval_s;
  int sse, compress;
  char *ca_file, *header; /* sqlite3_malloc'd or NULL */
} sync_conf;

/* Reads the config.* rows of c's sync_meta into *cfg (defaults for what is
** missing or unreadable). Free with config_clear. */
void config_load(SyncCtx *c, sync_conf *cfg);
void config_clear(sync_conf *cfg);

void config_fn(sqlite3_context *, int, sqlite3_value **);

#endif
