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
** fail the SQL call) stays with the path.
*/
#include "client.h"
#include "resync.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEALTH_TIMEOUT_MS 5000

client_class client_classify(const http_req *r, client_kind kind, int64_t size) {
  if (!r->msg[0]) return CL_OK;
  if (r->net) return CL_OFFLINE;
  if ((r->too_big || (kind == CLIENT_PUSH && r->status == 413)) && size > 1) return CL_HALVE;
  if (kind == CLIENT_PULL &&
      (r->status == 410 || (r->status == 400 && strstr(r->msg, "cursor") != 0)))
    return CL_RESYNC;
  if (r->status == 401 || r->status == 403) return CL_AUTH;
  return CL_RETRY;
}

void client_halve(int64_t *size) {
  if (*size > 1) *size /= 2;
}

int client_resync(SyncCtx *c, int *pResync, char **pzErr) {
  if (resync_start(c) != SQLITE_OK) {
    *pzErr = sqlite3_mprintf("full resync: %s", sqlite3_errmsg(c->db));
    return -1;
  }
  int again = *pResync != 0;
  *pResync = 1;
  return again;
}

char *client_pull_url(SyncCtx *c, const char *base, const char *client, int *pResync,
                      int64_t limit) {
  char *why = 0; /* not started: this pull goes from the cursor, the next tries again */
  if (!*pResync && resync_owed(c)) client_resync(c, pResync, &why);
  sqlite3_free(why);
  char *cursor = *pResync == 1 ? 0 : ctx_meta_get(c, "cursor");
  /* The lowest pending id: a page whose last_mutation_id covers mutations
  ** whose push answer was lost then also lists those the server rejected. */
  sqlite3_int64 first = outbox_first(c);
  char from[24], lim[24];
  snprintf(from, sizeof from, "%lld", (long long)first);
  snprintf(lim, sizeof lim, "%lld", (long long)limit);
  const char *q[] = {"client_id", client, "cursor",       cursor,
                     "limit",     lim,    "pending_from", first ? from : 0};
  char *url = http_url(base, "/pull", q, 4);
  sqlite3_free(cursor);
  return url;
}

void client_opts(http_opts *o, const sync_conf *cfg, const char *token, client_kind kind) {
  memset(o, 0, sizeof *o);
  o->token = token;
  o->ca_file = cfg->ca_file;
  o->header = cfg->header;
  o->max_body = (size_t)cfg->max_body;
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
  int rc = began < 0 ? sqlite3_errcode(c->db)
           : resync  ? resync_page(c, page, &res, &why)
                     : apply_page(c, page, flags, &res, &why);
  rc = ctx_tx_end(c, began, rc, &why);
  if (rc != SQLITE_OK) {
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
