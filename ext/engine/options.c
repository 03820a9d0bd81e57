/*
** options.c: the settings, checked the same way whether they come as
** sync_init options or sync_config keys.
**
**   SELECT sync_init(NULL, '{"batch_size":50,"sse":false}');
**   SELECT sync_config('batch_size', 50);  SELECT sync_config('sse', 'off');
**
** One table below names every setting with its kind, range and default;
** opt_check is the one validator. What it accepts:
**   counts     an integer (or a whole REAL, or decimal digits as text) from
**              the key's minimum to 2147483647; max_body at least 4096,
**              verify_interval_s at least 0 (0: off)
**   booleans   on/off, 1/0, true/false (text, any case), the integers 1 and
**              0, JSON true and false; stored as 'on' or 'off'
**   ca_file    the path of a readable PEM file (one "-----BEGIN " line, no
**              NUL byte before it), relative to the process's directory
**   header     one "Name: value" line: a token name, a value, no control
**              character, and not Authorization (the token's job)
**   token      printable text on one line, not empty (never stored)
**   on_server_reset  orphans (the default) or republish: what a resync
**              after the server was restored or replaced does with the
**              confirmed rows the server no longer has (existing.c)
** and, between settings, backoff_min_ms not above backoff_max_ms (checked
** whichever is set first: opt_agree). The messages (sync_init prefixes
** them with "option "):
**   "batch_size" must be a positive integer
**   "max_body" must be an integer of at least 4096
**   "verify_interval_s" must be an integer of at least 0
**   "timeout_ms" must be at most 2147483647
**   "sse" must be on or off (or 1/0, true/false) (so must "compress")
**   "ca_file" cannot be read: PATH: No such file or directory
**   "ca_file" PATH is not a PEM file (no "-----BEGIN" line)
**   "header" must be one "Name: value" line
**   "on_server_reset" must be orphans or republish
**   "header" must not set Authorization (set the token: sync_config('token', ...))
**   "token" must not be empty (NULL removes it)
**   "token" must be printable text on one line
**   "backoff_min_ms" (5000) must not be above "backoff_max_ms" (1000)
*/
#include "options.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const SyncOpt opt_table[] = {
    {"token", OPT_TOKEN, 0, 0},
    {"batch_size", OPT_COUNT, 1000, 1},
    {"pull_limit", OPT_COUNT, 1000, 1},
    {"backoff_min_ms", OPT_COUNT, 250, 1},
    {"backoff_max_ms", OPT_COUNT, 60000, 1},
    {"timeout_ms", OPT_COUNT, 30000, 1},
    {"sse", OPT_BOOL, 1, 0},
    {"compress", OPT_BOOL, 1, 0},
    {"ca_file", OPT_FILE, 0, 0},
    {"header", OPT_HEADER, 0, 0},
    {"max_body", OPT_COUNT, 16 << 20, OPT_MAX_BODY_MIN},
    {"sse_stall_ms", OPT_COUNT, 45000, 1},
    {"verify_interval_s", OPT_COUNT, 300, 0},
    {"on_server_reset", OPT_RESET, 0, 0},
};
const int opt_count = (int)(sizeof opt_table / sizeof opt_table[0]);

const SyncOpt *opt_find(const char *key) {
  for (int i = 0; key && i < opt_count; i++)
    if (strcmp(opt_table[i].key, key) == 0) return &opt_table[i];
  return 0;
}

/* Decimal digits only (no sign, no space), at most 18 of them. */
static int digits_of(const char *z, int64_t *pv) {
  int64_t v = 0;
  int n = 0;
  for (; z && *z; z++, n++) {
    if (*z < '0' || *z > '9' || n == 18) return 0;
    v = v * 10 + (*z - '0');
  }
  *pv = v;
  return n > 0;
}

int64_t opt_count_of(const SyncOpt *o, const char *z) {
  int64_t v;
  return digits_of(z, &v) && v >= o->min && v <= OPT_COUNT_MAX ? v : -1;
}

int opt_bool_of(const char *z) {
  static const char *const yes[] = {"on", "1", "true"}, *const no[] = {"off", "0", "false"};
  for (int i = 0; z && i < 3; i++) {
    if (sqlite3_stricmp(z, yes[i]) == 0) return 1;
    if (sqlite3_stricmp(z, no[i]) == 0) return 0;
  }
  return -1;
}

/* 1 when z holds no control character (CR, LF, TAB, DEL, ...): the token and
** the header become header lines, where a CR or LF would start another. */
static int printable(const char *z) {
  for (; *z; z++)
    if ((unsigned char)*z < 0x20 || *z == 0x7f) return 0;
  return 1;
}

/* The length of the header name at z (RFC 9110 token characters). */
static size_t name_len(const char *z) {
  size_t n = 0;
  while (z[n] && ((z[n] >= 'a' && z[n] <= 'z') || (z[n] >= 'A' && z[n] <= 'Z') ||
                  (z[n] >= '0' && z[n] <= '9') || strchr("!#$%&'*+-.^_`|~", z[n])))
    n++;
  return n;
}

/* A value is required: curl takes "Name:" as "remove that header". */
int opt_header_ok(const char *z) {
  if (!z || !printable(z)) return 0;
  size_t n = name_len(z);
  if (n == 0 || z[n] != ':') return 0;
  const char *v = z + n + 1;
  while (*v == ' ')
    v++;
  return *v != 0;
}

static int is_authorization(const char *z) {
  return name_len(z) == 13 && sqlite3_strnicmp(z, "Authorization", 13) == 0;
}

/* A refusal with message msg (NULL: out of memory). */
static int refuse(char **pzErr, char *msg) {
  *pzErr = msg;
  return msg ? SQLITE_ERROR : SQLITE_NOMEM;
}

/* SQLITE_OK when path names a readable file holding a PEM block. */
static int pem_check(const char *path, char **pzErr) {
  static const char mark[] = "-----BEGIN ";
  enum { M = sizeof mark - 1, CHUNK = 8192 };
  FILE *f = fopen(path, "rb");
  if (!f)
    return refuse(pzErr,
                  sqlite3_mprintf("\"ca_file\" cannot be read: %s: %s", path, strerror(errno)));
  char buf[CHUNK + M];
  size_t have = 0;
  int found = 0, nul = 0;
  while (!found && !nul) {
    size_t n = fread(buf + have, 1, CHUNK, f);
    if (n == 0) break;
    nul = memchr(buf + have, 0, n) != 0;
    have += n;
    found = !nul && memmem(buf, have, mark, M) != 0;
    /* A mark may straddle two chunks: keep the tail that could start one. */
    size_t keep = have < M - 1 ? have : M - 1;
    memmove(buf, buf + have - keep, keep);
    have = keep;
  }
  int e = ferror(f) ? errno : 0;
  fclose(f);
  if (e)
    return refuse(pzErr, sqlite3_mprintf("\"ca_file\" cannot be read: %s: %s", path, strerror(e)));
  if (!found)
    return refuse(
        pzErr, sqlite3_mprintf("\"ca_file\" %s is not a PEM file (no \"-----BEGIN\" line)", path));
  return SQLITE_OK;
}

static int check_count(const SyncOpt *o, sqlite3_value *v, int jsonBool, char **pOut,
                       char **pzErr) {
  int64_t n = 0;
  int ok = 0;
  switch (sqlite3_value_type(v)) {
  case SQLITE_INTEGER:
    ok = !jsonBool;
    n = sqlite3_value_int64(v);
    break;
  case SQLITE_FLOAT: {
    double r = sqlite3_value_double(v);
    ok = r >= -1e18 && r <= 1e18 && (double)(int64_t)r == r;
    n = ok ? (int64_t)r : 0;
    break;
  }
  case SQLITE_TEXT:
    ok = digits_of((const char *)sqlite3_value_text(v), &n);
    break;
  }
  if (!ok || n < o->min)
    return refuse(pzErr, o->min == 1 ? sqlite3_mprintf("\"%s\" must be a positive integer", o->key)
                                     : sqlite3_mprintf("\"%s\" must be an integer of at least %lld",
                                                       o->key, (long long)o->min));
  if (n > OPT_COUNT_MAX)
    return refuse(pzErr, sqlite3_mprintf("\"%s\" must be at most %d", o->key, OPT_COUNT_MAX));
  *pOut = sqlite3_mprintf("%lld", (long long)n);
  return *pOut ? SQLITE_OK : SQLITE_NOMEM;
}

int opt_check(const SyncOpt *o, sqlite3_value *v, int jsonBool, char **pOut, char **pzErr) {
  *pOut = 0;
  *pzErr = 0;
  if (o->kind == OPT_COUNT) return check_count(o, v, jsonBool, pOut, pzErr);
  int type = sqlite3_value_type(v);
  const char *z = (const char *)sqlite3_value_text(v);
  if (!z) return SQLITE_NOMEM; /* v is not NULL: only memory can fail */
  int rc = SQLITE_OK;
  switch (o->kind) {
  case OPT_BOOL: {
    int b = type == SQLITE_TEXT ? opt_bool_of(z) : -1;
    if (type == SQLITE_INTEGER && sqlite3_value_int64(v) >= 0 && sqlite3_value_int64(v) <= 1)
      b = (int)sqlite3_value_int64(v);
    if (b < 0)
      return refuse(pzErr,
                    sqlite3_mprintf("\"%s\" must be on or off (or 1/0, true/false)", o->key));
    z = b ? "on" : "off";
    break;
  }
  case OPT_FILE:
    if (type != SQLITE_TEXT || !*z)
      return refuse(
          pzErr, sqlite3_mprintf("\"%s\" must be the path of a PEM file (NULL: the system's CAs)",
                                 o->key));
    rc = pem_check(z, pzErr);
    break;
  case OPT_RESET:
    if (type != SQLITE_TEXT || (strcmp(z, "orphans") != 0 && strcmp(z, "republish") != 0))
      return refuse(pzErr, sqlite3_mprintf("\"%s\" must be orphans or republish", o->key));
    break;
  case OPT_HEADER:
    if (type != SQLITE_TEXT || !opt_header_ok(z))
      return refuse(pzErr, sqlite3_mprintf("\"%s\" must be one \"Name: value\" line", o->key));
    if (is_authorization(z))
      return refuse(pzErr, sqlite3_mprintf("\"%s\" must not set Authorization (set the token: "
                                           "sync_config('token', ...))",
                                           o->key));
    break;
  default: /* OPT_TOKEN */
    if (!*z)
      return refuse(pzErr, sqlite3_mprintf("\"%s\" must not be empty (NULL removes it)", o->key));
    if (!printable(z))
      return refuse(pzErr, sqlite3_mprintf("\"%s\" must be printable text on one line", o->key));
  }
  if (rc != SQLITE_OK) return rc;
  *pOut = sqlite3_mprintf("%s", z);
  return *pOut ? SQLITE_OK : SQLITE_NOMEM;
}

static char *meta_name(const SyncOpt *o) {
  return sqlite3_mprintf("config.%s", o->key);
}

int opt_store(SyncCtx *c, const SyncOpt *o, const char *text) {
  char *name = meta_name(o);
  if (!name) return SQLITE_NOMEM;
  int rc = text ? ctx_meta_set(c, name, text) : ctx_meta_del(c, name);
  sqlite3_free(name);
  return rc;
}

char *opt_get(SyncCtx *c, const SyncOpt *o) {
  char *name = meta_name(o);
  char *v = name ? ctx_meta_get(c, name) : 0;
  sqlite3_free(name);
  return v;
}

int opt_paired(const SyncOpt *o) {
  return strcmp(o->key, "backoff_min_ms") == 0 || strcmp(o->key, "backoff_max_ms") == 0;
}

/* The value of count o in effect: the stored one, else the default. */
static int64_t count_in_effect(SyncCtx *c, const SyncOpt *o) {
  char *v = opt_get(c, o);
  int64_t n = opt_count_of(o, v);
  sqlite3_free(v);
  return n >= 0 ? n : o->dflt;
}

int opt_agree(SyncCtx *c, char **pzErr) {
  int64_t lo = count_in_effect(c, opt_find("backoff_min_ms"));
  int64_t hi = count_in_effect(c, opt_find("backoff_max_ms"));
  if (lo <= hi) return SQLITE_OK;
  return refuse(pzErr, sqlite3_mprintf(
                           "\"backoff_min_ms\" (%lld) must not be above \"backoff_max_ms\" (%lld)",
                           (long long)lo, (long long)hi));
}
