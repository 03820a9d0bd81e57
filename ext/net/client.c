/*
** client.c: the protocol's client side, one copy for every path.
**
** The worker's curl_multi loop (loop.c) and the synchronous sync_push() and
** sync_pull() (oneshot.c) both run requests with http.c and hand what
** comes back to this file: client_classify says what a response calls for
** (ok, offline, halve, resync, auth, retry), client_halve and
** client_resync are the only places that shrink a batch or start a full
** resync, client_pull_url the only one that builds a pull, and
** client_apply and client_answer the only ones that hand a page or an
** answer to the engine (apply.h, resync.h, outbox.h) and count it in the
** site's figures (site.c). What each path then does (back off, go offline,
** fail the SQL call) stays with the path. Every failure ends in one of
** three classes: transient (offline, halve, resync, retry: the path tries
** again, with a backoff), terminal for one mutation (CL_REFUSED: a 413 to
** a batch of one, client_refuse moves it to sync_rejected), or terminal
** for the client (CL_AUTH, CL_STUCK, and a resync that keeps meeting 410:
** the worker stops until someone acts, sync_status says how).
*/
#include "client.h"
#include "jscan.h"
#include "resync.h"
#include "track.h"
#include "value.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEALTH_TIMEOUT_MS 5000

client_class client_classify(const http_req *r, client_kind kind, int64_t size) {
  if (!r->msg[0]) return CL_OK;
  if (r->net) return CL_OFFLINE;
  if (kind == CLIENT_PUSH || kind == CLIENT_PULL) {
    /* A 413 is answered before the body is read: the server has not seen
    ** the batch, so refusing its only mutation here loses nothing it holds. */
    int refused = kind == CLIENT_PUSH && r->status == 413 && !r->too_big;
    if (r->too_big || refused) return size > 1 ? CL_HALVE : refused ? CL_REFUSED : CL_STUCK;
  }
  if (kind == CLIENT_PULL &&
      (r->status == 410 || (r->status == 400 && strstr(r->msg, "cursor") != 0)))
    return CL_RESYNC;
  if (r->status == 401 || r->status == 403) return CL_AUTH;
  return CL_RETRY;
}

char *client_stuck_reason(const http_req *r, client_kind kind, int64_t id, int resyncs) {
  if (resyncs > 0)
    /* The server expires the cursors a resync is given before it ends: a
    ** pull_limit that takes everything in one page needs none. */
    return sqlite3_mprintf("pull: %s during %d full resyncs in a row: the server drops its"
                           " change log faster than this client resyncs; raise pull_limit"
                           " (sync_config('pull_limit', ...)) or the server's tombstone limit",
                           r->msg, resyncs);
  if (kind == CLIENT_PUSH)
    return sqlite3_mprintf("push: %s to mutation %lld alone (the server may have applied it):"
                           " raise max_body (sync_config('max_body', ...)) to read the answer",
                           r->msg, (long long)id);
  return sqlite3_mprintf("pull: %s with a page limit of 1 (one change is larger): raise"
                         " max_body (sync_config('max_body', ...))",
                         r->msg);
}

int client_lasting(int rc) {
  switch (rc & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
  case SQLITE_FULL:
  case SQLITE_IOERR:
  case SQLITE_NOMEM:
  case SQLITE_CANTOPEN:
  case SQLITE_PROTOCOL:
    return 0;
  default:
    return 1;
  }
}

void client_halve(int64_t *size) {
  if (*size > 1) *size /= 2;
}

int64_t client_batch_size(const OutboxBatch *b, int64_t batchSize) {
  return b->first == b->top ? 1 : batchSize;
}

int client_refuse(SyncCtx *c, Site *s, const OutboxBatch *b, const char *why, char **pzErr) {
  /* The answer the server would give to a refusal: the one path that
  ** records it and rolls the row back (outbox_answer). */
  char *reason = sqlite3_mprintf("too large for the server: %s", why);
  sqlite3_str *a = sqlite3_str_new(0);
  sqlite3_str_appendf(
      a, "{\"results\":[{\"id\":%lld,\"status\":\"rejected\",\"reason\":", (long long)b->first);
  value_append_string(a, reason ? reason : "too large for the server", -1);
  sqlite3_str_appendall(a, "}]}");
  sqlite3_free(reason);
  char *answer = sqlite3_str_finish(a);
  if (!answer) {
    *pzErr = sqlite3_mprintf("out of memory");
    return SQLITE_NOMEM;
  }
  int64_t n = 0;
  int rc = client_answer(c, s, answer, b, &n, pzErr);
  sqlite3_free(answer);
  return rc;
}

int client_outside_tx(sqlite3_context *ctx, sqlite3 *db, const char *fn) {
  if (sqlite3_get_autocommit(db)) return 1;
  ctx_error(ctx, fn, "cannot run inside a transaction (COMMIT or ROLLBACK first)");
  return 0;
}

char *client_tables(SyncCtx *c) {
  char **names = 0;
  int n = 0;
  if (track_names(c, 0, &names, &n) != SQLITE_OK || n == 0) {
    track_names_free(names, n);
    return 0;
  }
  sqlite3_str *s = sqlite3_str_new(0);
  for (int i = 0; i < n; i++) {
    /* Each name percent-encoded for '%' and ',' (PROTOCOL.md, /pull), so a
    ** name holding either stays one name; http_url encodes the whole list
    ** once more as a query value. */
    if (i) sqlite3_str_appendchar(s, 1, ',');
    for (const char *p = names[i]; *p; p++)
      if (*p == '%' || *p == ',')
        sqlite3_str_appendf(s, "%%%02X", (unsigned char)*p);
      else
        sqlite3_str_appendchar(s, 1, *p);
  }
  track_names_free(names, n);
  return sqlite3_str_finish(s);
}

int client_resync(SyncCtx *c, const http_req *r, int *pResync, char **pzErr) {
  int rc = SQLITE_OK, moved = 0;
  if (r && r->status == 410 && r->buf) {
    jspan obj = {r->buf, (int)r->n};
    int doc = jscan_document(r->buf, r->buf + r->n) && *r->buf == '{';
    if (doc && jscan_is(jscan_field(obj, "reset"), "true"))
      rc = ctx_meta_set(c, "server_reset", "1");
    /* The user's memberships changed across the cursor (docs/RULES.md):
    ** the server lost nothing, and a resync that meets one starts over
    ** as a new one, not as one cut short. */
    moved = doc && jscan_is(jscan_field(obj, "moved"), "true");
  }
  if (rc == SQLITE_OK) rc = resync_start(c);
  if (rc != SQLITE_OK) {
    const char *msg = sqlite3_errmsg(c->db);
    /* Read after a reset or a rollback, the message says "not an error". */
    if (strcmp(msg, "not an error") == 0) msg = sqlite3_errstr(rc);
    *pzErr = sqlite3_mprintf("full resync: %s", msg);
    return -1;
  }
  int again = *pResync != 0 && !moved;
  *pResync = 1;
  return again;
}

/* Whether the tables list cur (client_tables; NULL: every table) names one
** that prev (the same, "*" for every table) does not. */
static int tables_grew(const char *prev, const char *cur) {
  if (strcmp(prev, "*") == 0) return 0;
  if (!cur) return 1;
  for (const char *p = cur; *p;) {
    size_t n = strcspn(p, ",");
    int found = 0;
    for (const char *q = prev; *q && !found;) {
      size_t m = strcspn(q, ",");
      found = m == n && memcmp(p, q, n) == 0;
      q += m + (q[m] != 0);
    }
    if (!found) return 1;
    p += n + (p[n] != 0);
  }
  return 0;
}

char *client_pull_url(SyncCtx *c, const char *base, const char *client, int *pResync,
                      int64_t limit) {
  char *why = 0; /* not started: this pull goes from the cursor, the next tries again */
  if (!*pResync && resync_owed(c)) client_resync(c, 0, pResync, &why);
  sqlite3_free(why);
  why = 0;
  char *cursor = *pResync == 1 ? 0 : ctx_meta_get(c, "cursor");
  /* sync_meta "pulled_tables": the tables the cursor was pulled for. A
  ** table tracked since then never got its rows from before the cursor
  ** (not asked for, or skipped): a full resync brings them. */
  char *tables = client_tables(c), *was = ctx_meta_get(c, "pulled_tables");
  const char *now = tables ? tables : "*";
  int grew = cursor && was && tables_grew(was, tables);
  if (grew && client_resync(c, 0, pResync, &why) >= 0) {
    sqlite3_free(cursor);
    cursor = 0;
    grew = 0;
  }
  sqlite3_free(why);
  if (!grew && (!was || strcmp(was, now) != 0)) ctx_meta_set(c, "pulled_tables", now);
  sqlite3_free(was);
  /* The lowest pending id: a page whose last_mutation_id covers mutations
  ** whose push answer was lost then also lists those the server rejected. */
  sqlite3_int64 first = outbox_first(c);
  char from[24], lim[24];
  snprintf(from, sizeof from, "%lld", (long long)first);
  snprintf(lim, sizeof lim, "%lld", (long long)limit);
  const char *q[] = {"client_id", client,         "cursor",         cursor,   "limit",
                     lim,         "pending_from", first ? from : 0, "tables", tables};
  char *url = http_url(base, "/pull", q, 5);
  sqlite3_free(cursor);
  sqlite3_free(tables);
  return url;
}

char *client_events_url(SyncCtx *c, const char *base, const char *client, const char *cursor) {
  char *tables = client_tables(c);
  const char *q[] = {"client_id", client, "cursor", cursor, "tables", tables};
  char *url = http_url(base, "/events", q, 3);
  sqlite3_free(tables);
  return url;
}

void client_opts(http_opts *o, const sync_conf *cfg, const char *token, client_kind kind) {
  memset(o, 0, sizeof *o);
  o->token = token;
  o->ca_file = cfg->ca_file;
  o->header = cfg->header;
  o->max_body = (size_t)cfg->max_body;
  o->identity = !cfg->compress;
  o->timeout_ms = (long)cfg->timeout_ms;
  if (kind == CLIENT_HEALTH && o->timeout_ms > HEALTH_TIMEOUT_MS) o->timeout_ms = HEALTH_TIMEOUT_MS;
  if (kind == CLIENT_EVENTS) o->timeout_ms = 0; /* a stream: the stall timer instead */
  o->stall_ms = kind == CLIENT_EVENTS ? (long)cfg->sse_stall_ms : 0;
}

int client_apply(SyncCtx *c, Site *s, const char *page, int flags, int resync, int64_t *pN,
                 int *pMore, char **pzErr) {
  client_trace("apply", page);
  ApplyResult res;
  memset(&res, 0, sizeof res);
  char *why = 0;
  int began = ctx_tx_begin(c);
  int rc = SQLITE_OK;
  if (began < 0) {
    rc = sqlite3_errcode(c->db);
    why = sqlite3_mprintf("%s", sqlite3_errmsg(c->db));
  } else {
    rc = resync ? resync_page(c, page, &res, &why) : apply_page(c, page, flags, &res, &why);
    /* A pull's last page: this client has had the server's whole state
    ** once (sync_status.first_sync_done), in the page's transaction. */
    char *done = 0;
    if (rc == SQLITE_OK && !(flags & APPLY_EVENT) && !res.more && !res.staged &&
        (done = ctx_meta_get(c, "first_sync_done")) == 0)
      rc = ctx_meta_set(c, "first_sync_done", "1");
    sqlite3_free(done);
  }
  rc = ctx_tx_end(c, began, rc, &why);
  if (rc != SQLITE_OK) {
    /* A message read after a reset or a rollback says "not an error". */
    if (why && strcmp(why, "not an error") == 0) {
      sqlite3_free(why);
      why = 0;
    }
    *pzErr = sqlite3_mprintf("sync_apply: %s", why ? why : sqlite3_errstr(rc));
  } else {
    *pN = res.n;
    if (pMore) *pMore = res.more;
    /* Announced once committed (inside a caller's transaction: at once). */
    site_publish(s, &res);
    site_count(s, 0, res.n);
  }
  sqlite3_free(why);
  apply_result_clear(&res);
  return rc;
}

int client_answer(SyncCtx *c, Site *s, const char *answer, const OutboxBatch *b, int64_t *pN,
                  char **pzErr) {
  sqlite3_int64 n = 0;
  int rc = outbox_answer(c, answer, b, &n, pzErr);
  *pN = n;
  if (rc == SQLITE_OK) site_count(s, 1, n);
  return rc;
}

static int trace_enabled;
static void trace_init(void) {
  trace_enabled = getenv("SYNC_TRACE") != 0;
}

void client_trace(const char *what, const char *body) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, trace_init);
  if (trace_enabled) fprintf(stderr, "sync: %s %.300s\n", what, body ? body : "(null)");
}
