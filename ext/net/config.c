/*
** config.c: sync_config, the worker's settings.
**
**   SELECT sync_config('batch_size');              -- 1000 (the default)
**   SELECT sync_config('batch_size', 50);          -- 50, kept in sync_meta
**   SELECT sync_config('batch_size', NULL);        -- back to the default
**   SELECT sync_config('token', 'secret');         -- memory only: '********'
**   SELECT sync_config('sse', 'off');              -- 'off'
**
** Keys: token, batch_size, pull_limit, backoff_min_ms, backoff_max_ms,
** timeout_ms, sse (on/off), ca_file, header ("Name: value"), max_body
** (response cap in bytes), sse_stall_ms (a silent event stream is dropped
** after this long). Everything but the token lives in sync_meta as
** config.<key> (where sync_init's options go too); the token never touches
** the database: it is kept per database file in this process and reads back
** as '********' (NULL when unset). A running worker picks changes up at
** once. Errors:
**   sync_config: unknown key "x"
**   sync_config: "batch_size" must be a positive integer
**   sync_config: "sse" must be 'on' or 'off'
**   sync_config: "header" must be one "Name: value" line
**   sync_config: "token" must be printable text on one line
*/
#include "config.h"
#include "site.h"

#include <stdlib.h>
#include <string.h>

enum { K_TOKEN, K_COUNT, K_BOOL, K_TEXT, K_HEADER };

static const struct {
  const char *key;
  int kind;
  int64_t dflt;
} keys[] = {
    {"token", K_TOKEN, 0},
    {"batch_size", K_COUNT, 1000},
    {"pull_limit", K_COUNT, 1000},
    {"backoff_min_ms", K_COUNT, 250},
    {"backoff_max_ms", K_COUNT, 60000},
    {"timeout_ms", K_COUNT, 30000},
    {"sse", K_BOOL, 1},
    {"ca_file", K_TEXT, 0},
    {"header", K_HEADER, 0},
    {"max_body", K_COUNT, 16 << 20},
    {"sse_stall_ms", K_COUNT, 45000},
};
#define NKEYS (int)(sizeof keys / sizeof keys[0])

static int key_index(const char *k) {
  for (int i = 0; k && i < NKEYS; i++)
    if (strcmp(keys[i].key, k) == 0) return i;
  return -1;
}

/* A positive integer from text, or 0. */
static int64_t count_of(const char *z) {
  if (!z || !*z) return 0;
  char *end;
  long long v = strtoll(z, &end, 10);
  return *end || v <= 0 ? 0 : v;
}

static int bool_of(const char *z) {
  if (!z) return -1;
  if (!strcmp(z, "on") || !strcmp(z, "1") || !strcmp(z, "true")) return 1;
  if (!strcmp(z, "off") || !strcmp(z, "0") || !strcmp(z, "false")) return 0;
  return -1;
}

/* 1 when z holds no control character (CR, LF, TAB, DEL, ...). */
static int printable(const char *z) {
  for (; *z; z++)
    if ((unsigned char)*z < 0x20 || *z == 0x7f) return 0;
  return 1;
}

static int header_ok(const char *z) {
  const char *colon = strchr(z, ':');
  return colon && colon != z && !strpbrk(z, "\r\n");
}

static void set_field(sync_conf *cfg, int i, const char *v) {
  int64_t *counts[] = {0,
                       &cfg->batch_size,
                       &cfg->pull_limit,
                       &cfg->backoff_min_ms,
                       &cfg->backoff_max_ms,
                       &cfg->timeout_ms,
                       0,
                       0,
                       0,
                       &cfg->max_body,
                       &cfg->sse_stall_ms};
  if (keys[i].kind == K_COUNT) {
    int64_t n = count_of(v);
    if (n > 0) *counts[i] = n;
  } else if (keys[i].kind == K_BOOL) {
    int b = bool_of(v);
    if (b >= 0) cfg->sse = b;
  } else if (!strcmp(keys[i].key, "ca_file") && v && *v) {
    sqlite3_free(cfg->ca_file);
    cfg->ca_file = sqlite3_mprintf("%s", v);
  } else if (!strcmp(keys[i].key, "header") && v && header_ok(v)) {
    sqlite3_free(cfg->header);
    cfg->header = sqlite3_mprintf("%s", v);
  }
}

void config_load(SyncCtx *c, sync_conf *cfg) {
  sync_conf d = {.batch_size = 1000,
                 .pull_limit = 1000,
                 .backoff_min_ms = 250,
                 .backoff_max_ms = 60000,
                 .timeout_ms = 30000,
                 .max_body = 16 << 20,
                 .sse_stall_ms = 45000,
                 .sse = 1};
  *cfg = d;
  for (int i = 0; i < NKEYS; i++) {
    if (keys[i].kind == K_TOKEN) continue;
    char *name = sqlite3_mprintf("config.%s", keys[i].key);
    char *v = name ? ctx_meta_get(c, name) : 0;
    if (v) set_field(cfg, i, v);
    sqlite3_free(v);
    sqlite3_free(name);
  }
  if (cfg->backoff_max_ms < cfg->backoff_min_ms) cfg->backoff_max_ms = cfg->backoff_min_ms;
}

void config_clear(sync_conf *cfg) {
  sqlite3_free(cfg->ca_file);
  sqlite3_free(cfg->header);
  memset(cfg, 0, sizeof *cfg);
}

/* The current value of key i as the function's result. */
static void result_of(sqlite3_context *ctx, NetConn *nc, int i) {
  SyncCtx *c = nc->c;
  if (keys[i].kind == K_TOKEN) {
    if (site_token_is_set(nc)) sqlite3_result_text(ctx, "********", -1, SQLITE_STATIC);
    return;
  }
  char *name = sqlite3_mprintf("config.%s", keys[i].key);
  char *v = name ? ctx_meta_get(c, name) : 0;
  sqlite3_free(name);
  if (keys[i].kind == K_COUNT) {
    int64_t n = count_of(v);
    sqlite3_result_int64(ctx, n > 0 ? n : keys[i].dflt);
  } else if (keys[i].kind == K_BOOL) {
    int b = bool_of(v);
    sqlite3_result_text(ctx, (b < 0 ? keys[i].dflt : b) ? "on" : "off", -1, SQLITE_STATIC);
  } else if (v) {
    sqlite3_result_text(ctx, v, -1, SQLITE_TRANSIENT);
  }
  sqlite3_free(v);
}

void config_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  NetConn *nc = sqlite3_user_data(ctx);
  SyncCtx *c = nc->c;
  const char *key = (const char *)sqlite3_value_text(argv[0]);
  int i = key_index(key);
  if (i < 0) {
    ctx_error(ctx, "sync_config", "unknown key \"%s\"", key ? key : "");
    return;
  }
  if (keys[i].kind != K_TOKEN && !ctx_require_init(ctx, c, "sync_config")) return;
  if (argc == 1) {
    result_of(ctx, nc, i);
    return;
  }
  sqlite3_value *v = argv[1];
  int isNull = sqlite3_value_type(v) == SQLITE_NULL;
  const char *z = (const char *)sqlite3_value_text(v);
  if (keys[i].kind == K_TOKEN) {
    if (!isNull && (!z || !printable(z))) {
      /* It becomes a header line: a CR or LF would add headers of its own. */
      ctx_error(ctx, "sync_config", "\"token\" must be printable text on one line");
      return;
    }
    site_token_set(nc, isNull ? 0 : z);
    result_of(ctx, nc, i);
    return;
  }
  char *stored = 0;
  if (!isNull) {
    if (keys[i].kind == K_COUNT) {
      int64_t n = sqlite3_value_type(v) == SQLITE_INTEGER ? sqlite3_value_int64(v)
                  : sqlite3_value_type(v) == SQLITE_TEXT  ? count_of(z)
                                                          : 0;
      if (n <= 0) {
        ctx_error(ctx, "sync_config", "\"%s\" must be a positive integer", keys[i].key);
        return;
      }
      stored = sqlite3_mprintf("%lld", (long long)n);
    } else if (keys[i].kind == K_BOOL) {
      int b = sqlite3_value_type(v) == SQLITE_INTEGER ? (int)sqlite3_value_int64(v) : bool_of(z);
      if (b != 0 && b != 1) {
        ctx_error(ctx, "sync_config", "\"%s\" must be 'on' or 'off'", keys[i].key);
        return;
      }
      stored = sqlite3_mprintf("%s", b ? "on" : "off");
    } else {
      if (keys[i].kind == K_HEADER && (!z || !header_ok(z))) {
        ctx_error(ctx, "sync_config", "\"header\" must be one \"Name: value\" line");
        return;
      }
      stored = sqlite3_mprintf("%s", z ? z : "");
    }
    if (!stored) {
      sqlite3_result_error_nomem(ctx);
      return;
    }
  }
  char *name = sqlite3_mprintf("config.%s", keys[i].key);
  int rc = name ? SQLITE_OK : SQLITE_NOMEM;
  if (rc == SQLITE_OK && stored) rc = ctx_meta_set(c, name, stored);
  if (rc == SQLITE_OK && !stored) rc = ctx_meta_del(c, name);
  sqlite3_free(name);
  sqlite3_free(stored);
  if (rc != SQLITE_OK) {
    ctx_error_db(ctx, c, "sync_config", rc);
    return;
  }
  if (nc->site) site_nudge(nc->site, N_CONFIG);
  result_of(ctx, nc, i);
}
