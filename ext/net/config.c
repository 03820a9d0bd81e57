/*
** config.c: sync_config, the worker's settings.
**
**   SELECT sync_config('batch_size');              -- 1000 (the default)
**   SELECT sync_config('batch_size', 50);          -- 50, kept in sync_meta
**   SELECT sync_config('batch_size', NULL);        -- back to the default
**   SELECT sync_config('token', 'secret');         -- memory only: '********'
**   SELECT sync_config('sse', false);              -- 'off'
**
** Keys: token, batch_size, pull_limit, backoff_min_ms, backoff_max_ms,
** timeout_ms, sse (on/off), compress (on/off: offer gzip), ca_file,
** header ("Name: value"), max_body (response cap in bytes), sse_stall_ms
** (a silent event stream is dropped after this long), verify_interval_s
** (the worker's sync_verify period in seconds when idle, 0: never but after
** a resync), on_server_reset (orphans or republish, see
** ext/engine/existing.c): the table and the checks are the engine's
** (ext/engine/options.c), shared with sync_init's options. Everything but
** the token lives in sync_meta as config.<key>; the token never touches the
** database: it is kept per database file in this process and reads back as
** '********' (NULL when unset). A running worker picks changes up at once.
** A refused value changes nothing. Errors (more in options.c):
**   sync_config: unknown key "x"
**   sync_config: "batch_size" must be a positive integer
**   sync_config: "sse" must be on or off (or 1/0, true/false)
**   sync_config: "header" must be one "Name: value" line
**   sync_config: "token" must be printable text on one line
**   sync_config: "backoff_min_ms" (5000) must not be above "backoff_max_ms" (1000)
*/
#include "config.h"
#include "options.h"
#include "site.h"

#include <stddef.h>
#include <string.h>

/* Where each count goes in sync_conf. */
static const struct {
  const char *key;
  size_t off;
} count_fields[] = {
    {"batch_size", offsetof(sync_conf, batch_size)},
    {"pull_limit", offsetof(sync_conf, pull_limit)},
    {"backoff_min_ms", offsetof(sync_conf, backoff_min_ms)},
    {"backoff_max_ms", offsetof(sync_conf, backoff_max_ms)},
    {"timeout_ms", offsetof(sync_conf, timeout_ms)},
    {"max_body", offsetof(sync_conf, max_body)},
    {"sse_stall_ms", offsetof(sync_conf, sse_stall_ms)},
    {"verify_interval_s", offsetof(sync_conf, verify_interval_s)},
};

static int64_t *count_field(sync_conf *cfg, const char *key) {
  for (size_t i = 0; i < sizeof count_fields / sizeof count_fields[0]; i++)
    if (strcmp(count_fields[i].key, key) == 0)
      return (int64_t *)(void *)((char *)cfg + count_fields[i].off);
  return 0;
}

/* Stored text v of o into cfg. What sync_config and sync_init store has
** passed opt_check; a value that no longer reads (an older version's) leaves
** the default. */
static void set_field(sync_conf *cfg, const SyncOpt *o, const char *v) {
  if (o->kind == OPT_COUNT) {
    int64_t *f = count_field(cfg, o->key), n = opt_count_of(o, v);
    if (f) *f = n >= 0 ? n : o->dflt;
  } else if (o->kind == OPT_BOOL) {
    int b = opt_bool_of(v);
    *(strcmp(o->key, "sse") == 0 ? &cfg->sse : &cfg->compress) = b >= 0 ? b : (int)o->dflt;
  } else if (o->kind == OPT_FILE && v && *v) {
    sqlite3_free(cfg->ca_file);
    cfg->ca_file = sqlite3_mprintf("%s", v);
  } else if (o->kind == OPT_HEADER && opt_header_ok(v)) {
    sqlite3_free(cfg->header);
    cfg->header = sqlite3_mprintf("%s", v);
  }
}

void config_load(SyncCtx *c, sync_conf *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (int i = 0; i < opt_count; i++) {
    const SyncOpt *o = &opt_table[i];
    if (o->kind == OPT_TOKEN) continue;
    char *v = opt_get(c, o);
    set_field(cfg, o, v);
    sqlite3_free(v);
  }
  if (cfg->backoff_max_ms < cfg->backoff_min_ms) cfg->backoff_max_ms = cfg->backoff_min_ms;
}

void config_clear(sync_conf *cfg) {
  sqlite3_free(cfg->ca_file);
  sqlite3_free(cfg->header);
  memset(cfg, 0, sizeof *cfg);
}

/* The current value of o as the function's result. */
static void result_of(sqlite3_context *ctx, NetConn *nc, const SyncOpt *o) {
  if (o->kind == OPT_TOKEN) {
    if (site_token_is_set(nc)) sqlite3_result_text(ctx, "********", -1, SQLITE_STATIC);
    return;
  }
  char *v = opt_get(nc->c, o);
  if (o->kind == OPT_COUNT) {
    int64_t n = opt_count_of(o, v);
    sqlite3_result_int64(ctx, n >= 0 ? n : o->dflt);
  } else if (o->kind == OPT_BOOL) {
    int b = opt_bool_of(v);
    sqlite3_result_text(ctx, (b < 0 ? o->dflt : b) ? "on" : "off", -1, SQLITE_STATIC);
  } else if (v || o->kind == OPT_RESET) {
    sqlite3_result_text(ctx, v ? v : "orphans", -1, SQLITE_TRANSIENT);
  }
  sqlite3_free(v);
}

void config_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  NetConn *nc = sqlite3_user_data(ctx);
  SyncCtx *c = nc->c;
  const char *key = (const char *)sqlite3_value_text(argv[0]);
  const SyncOpt *o = opt_find(key);
  if (!o) {
    ctx_error(ctx, "sync_config", "unknown key \"%s\"", key ? key : "");
    return;
  }
  if (o->kind != OPT_TOKEN && !ctx_require_init(ctx, c, "sync_config")) return;
  if (argc == 1) {
    result_of(ctx, nc, o);
    return;
  }
  char *text = 0, *zErr = 0;
  int rc = sqlite3_value_type(argv[1]) == SQLITE_NULL ? SQLITE_OK
                                                      : opt_check(o, argv[1], 0, &text, &zErr);
  if (rc == SQLITE_OK && o->kind == OPT_TOKEN) {
    site_token_set(nc, text);
  } else if (rc == SQLITE_OK) {
    rc = ctx_begin(c);
    if (rc == SQLITE_OK) {
      rc = opt_store(c, o, text);
      if (rc == SQLITE_OK && opt_paired(o)) rc = opt_agree(c, &zErr);
      rc = ctx_end(c, rc, &zErr);
    }
  }
  /* The token's only copy is the site's (site_token_free wipes it). */
  if (text && o->kind == OPT_TOKEN) memset(text, 0, strlen(text));
  sqlite3_free(text);
  if (rc != SQLITE_OK) {
    ctx_error_msg(ctx, c, "sync_config", rc, zErr);
    return;
  }
  sqlite3_free(zErr);
  if (nc->site && o->kind != OPT_TOKEN) site_nudge(nc->site, N_CONFIG);
  result_of(ctx, nc, o);
}
