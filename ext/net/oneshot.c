/*
** oneshot.c: a push or a pull now, on the caller's connection and thread.
**
**   SELECT sync_push();           -- drain now: the number of mutations confirmed
**   SELECT sync_pull();           -- pull now: the number of changes applied
**
** Same protocol, same client.c as the worker's loop, without the loop: a
** response is classified by client_classify, and what the worker would
** retry later is this call's error. sync_push halves its batch on 413 or
** an answer over max_body, as the worker does; sync_pull starts one full
** resync when the cursor is gone and fails on a second 410, and fails on a
** page over max_body (the worker halves its page limit instead: a call
** does not keep state for its next call). While a call runs, this
** process's worker starts no push or pull and holds events (see loop.c).
** Neither runs inside the caller's transaction: its ROLLBACK (or a crash
** before its COMMIT) would undo the record of what the server already has,
** and a later write would reuse a mutation id the server has answered. A
** mutation alone in a batch that the server answers 413 moves to
** sync_rejected ("too large for the server: HTTP 413: ...") and the push
** goes on with the next one.
** Errors (all "fn: cause"):
**   sync_push: cannot run inside a transaction (COMMIT or ROLLBACK first)
**   sync_push: cannot reach http://...: Couldn't connect to server
**   sync_push: HTTP 401: unauthorized
**   sync_push: offline (sync_online(0) is in effect)
**   sync_pull: response body over 16777216 bytes
**   sync_pull: sync_apply: change 3 ...
*/
#include "oneshot.h"
#include "client.h"

#include <errno.h>
#include <string.h>

/* oneshot_open's work; -1 leaves x for oneshot_close. */
static int open_checked(Oneshot *x, sqlite3_context *ctx, const char *fn) {
  memset(x, 0, sizeof *x);
  http_req_init(&x->r);
  x->ctx = ctx;
  x->nc = sqlite3_user_data(ctx);
  x->c = x->nc->c;
  x->fn = fn;
  if (!client_outside_tx(ctx, x->nc->db, fn) || !ctx_require_init(ctx, x->c, fn)) return -1;
  Site *s = x->nc->site;
  if (s) {
    x->token = site_token(s, &x->tokenGen);
    if (site_forced_offline(s)) {
      ctx_error(ctx, fn, "offline (sync_online(0) is in effect)");
      return -1;
    }
  }
  x->url = ctx_meta_get(x->c, "url");
  if (!x->url) {
    ctx_error(ctx, fn, "no server url (give one with sync_init(url))");
    return -1;
  }
  if (http_global_init() != 0) {
    ctx_error(ctx, fn, "curl_global_init failed");
    return -1;
  }
  config_load(x->c, &x->cfg);
  if (s) {
    /* Let this process's worker finish the push or pull it has out (up to
    ** timeout_ms) and start none while this call runs. */
    struct timespec ts;
    site_deadline(&ts, x->cfg.timeout_ms);
    pthread_mutex_lock(&s->mu);
    s->hostXfer++;
    x->site = s;
    if (s->multi) curl_multi_wakeup(s->multi);
    while (s->busy && pthread_cond_timedwait(&s->cond, &s->mu, &ts) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&s->mu);
  }
  return 0;
}

void oneshot_close(Oneshot *x) {
  if (x->site) {
    pthread_mutex_lock(&x->site->mu);
    x->site->hostXfer--;
    if (x->site->multi) curl_multi_wakeup(x->site->multi);
    pthread_mutex_unlock(&x->site->mu);
  }
  http_req_free(&x->r);
  config_clear(&x->cfg);
  sqlite3_free(x->url);
  site_token_free(x->token);
}

int oneshot_open(Oneshot *x, sqlite3_context *ctx, const char *fn) {
  if (open_checked(x, ctx, fn) == 0) return 0;
  oneshot_close(x);
  return -1;
}

int oneshot_request(Oneshot *x, const char *url, const char *post, client_kind kind) {
  http_opts o;
  client_opts(&o, &x->cfg, x->token, kind);
  if (!url || http_prepare(&x->r, url, post, &o) != 0) {
    snprintf(x->r.msg, sizeof x->r.msg, "out of memory");
    return -1;
  }
  CURLcode cc = curl_easy_perform(x->r.easy);
  http_finish(&x->r, cc);
  return x->r.msg[0] ? -1 : 0;
}

void oneshot_fail(Oneshot *x) {
  if (x->nc->site && (x->r.status == 401 || x->r.status == 403))
    site_token_refused(x->nc->site, x->tokenGen);
  if (x->r.net)
    ctx_error(x->ctx, x->fn, "cannot reach %s: %s", x->url, x->r.msg);
  else
    ctx_error(x->ctx, x->fn, "%s", x->r.msg);
}

/* One push request, run on its own thread so that the caller's thread can
** meanwhile acknowledge the previous answer and build the next batch: the
** server's work and the client's then overlap. Requests stay one at a time
** and in id order (the next is sent once this one is answered), as syncd
** requires of one client. */
typedef struct PushXfer {
  Oneshot *x;
  const char *url, *body;
  int rc;
} PushXfer;

static void *push_xfer_main(void *arg) {
  PushXfer *p = arg;
  p->rc = oneshot_request(p->x, p->url, p->body, CLIENT_PUSH);
  return 0;
}

/* Acknowledges the answer *pResp to batch *pb, adds what it resolved to
** *pTotal, and frees both. */
static int push_ack(Oneshot *x, char **pResp, OutboxBatch *pb, int64_t *pTotal, char **pzErr) {
  int64_t n = 0;
  int rc = client_answer(x->c, x->nc->site, *pResp, pb, &n, pzErr);
  if (rc == SQLITE_OK) *pTotal += n;
  sqlite3_free(*pResp);
  sqlite3_free(pb->body);
  *pResp = 0;
  memset(pb, 0, sizeof *pb);
  return rc;
}

void oneshot_fn_push(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc, (void)argv;
  Oneshot x;
  if (oneshot_open(&x, ctx, "sync_push") != 0) return;
  SyncCtx *c = x.c;
  int64_t total = 0, size = x.cfg.batch_size;
  char *url = http_url(x.url, "/push", 0, 0);
  OutboxBatch cur = {0}, next = {0}, prev = {0};
  char *prevResp = 0, *err = 0;
  int rc = SQLITE_OK, sent = 1;
  for (;;) {
    /* Out of batches after the last one sent: its answer, then from the
    ** outbox's head again (what that answer left unresolved, what was
    ** written meanwhile), until nothing is left. */
    if (!cur.body && prevResp) rc = push_ack(&x, &prevResp, &prev, &total, &err);
    if (rc == SQLITE_OK && !cur.body) rc = outbox_batch(c, size, 0, &cur, &err);
    if (rc != SQLITE_OK || !cur.body) break;
    PushXfer p = {&x, url, cur.body, 0};
    pthread_t tid;
    int threaded = pthread_create(&tid, 0, push_xfer_main, &p) == 0;
    if (!threaded) push_xfer_main(&p);
    /* While the server works on cur: the previous answer, the next batch. */
    if (prevResp) rc = push_ack(&x, &prevResp, &prev, &total, &err);
    if (rc == SQLITE_OK) rc = outbox_batch(c, size, cur.top, &next, &err);
    if (threaded) pthread_join(tid, 0);
    if (rc != SQLITE_OK) break; /* cur's answer is dropped: it stays pending */
    if (p.rc != 0) {
      outbox_record_attempt(c, cur.first, cur.top, x.r.msg);
      OutboxBatch failed = {0, cur.first, cur.top};
      sqlite3_free(cur.body);
      sqlite3_free(next.body);
      memset(&cur, 0, sizeof cur);
      memset(&next, 0, sizeof next);
      client_class cl = client_classify(&x.r, CLIENT_PUSH, client_batch_size(&failed, size));
      if (cl == CL_HALVE) {
        client_halve(&size);
        continue;
      }
      if (cl == CL_REFUSED) {
        /* Too large for the server even alone: refused for good, so that
        ** the rest of the outbox goes on. */
        rc = client_refuse(c, x.nc->site, &failed, x.r.msg, &err);
        if (rc != SQLITE_OK) break;
        total++;
        continue;
      }
      sent = 0;
      break;
    }
    prevResp = sqlite3_mprintf("%s", x.r.buf ? x.r.buf : "");
    prev = cur;
    cur = next;
    memset(&next, 0, sizeof next);
    if (!prevResp) rc = SQLITE_NOMEM;
    if (rc != SQLITE_OK) break;
  }
  if (!sent)
    oneshot_fail(&x);
  else if (rc != SQLITE_OK)
    ctx_error(ctx, "sync_push", "%s", err ? err : sqlite3_errstr(rc));
  else
    sqlite3_result_int64(ctx, total);
  sqlite3_free(err);
  sqlite3_free(cur.body);
  sqlite3_free(next.body);
  sqlite3_free(prevResp);
  sqlite3_free(prev.body);
  sqlite3_free(url);
  oneshot_close(&x);
}

int oneshot_pull_all(Oneshot *x, int64_t *pTotal) {
  SyncCtx *c = x->c;
  Site *s = x->nc->site;
  char *client = ctx_meta_get(c, "client_id");
  int64_t total = 0;
  int resync = 0, rc = -1;
  for (;;) {
    char *url = client_pull_url(c, x->url, client, &resync, x->cfg.pull_limit);
    int bad = oneshot_request(x, url, 0, CLIENT_PULL);
    sqlite3_free(url);
    if (bad) {
      char *err = 0;
      int stop = client_classify(&x->r, CLIENT_PULL, x->cfg.pull_limit) == CL_RESYNC
                     ? client_resync(c, &x->r, &resync, &err)
                     : 1;
      if (!stop) continue;
      if (stop < 0)
        ctx_error(x->ctx, x->fn, "%s", err ? err : "out of memory");
      else
        oneshot_fail(x);
      sqlite3_free(err);
      break;
    }
    int64_t n = 0;
    int more = 0;
    char *err = 0;
    if (client_apply(c, s, x->r.buf ? x->r.buf : "", 0, resync, &n, &more, &err) != SQLITE_OK) {
      ctx_error(x->ctx, x->fn, "%s", err);
      sqlite3_free(err);
      break;
    }
    total += n;
    if (resync) resync = 2;
    if (!more) {
      *pTotal = total;
      rc = 0;
      break;
    }
  }
  sqlite3_free(client);
  return rc;
}

void oneshot_fn_pull(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc, (void)argv;
  Oneshot x;
  if (oneshot_open(&x, ctx, "sync_pull") != 0) return;
  int64_t total = 0;
  if (oneshot_pull_all(&x, &total) == 0) sqlite3_result_int64(ctx, total);
  oneshot_close(&x);
}
