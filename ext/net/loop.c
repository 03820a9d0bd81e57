/*
** loop.c: the worker's scheduler, one curl_multi loop per worker thread.
**
** The worker thread (worker.c) holds the cross-process lock and its own
** connection with the engine registered; this loop runs on it until the
** site says stop. It reaches the data only through the engine's C API:
** outbox_batch and outbox_record_attempt (outbox.h), outbox_answer
** (client_answer), apply_page and resync_page (client_apply),
** ctx_meta_get. Its network side runs the event stream beside the push or
** the pull and, while offline, a /health probe; it sleeps in
** curl_multi_poll until a socket is ready, the next deadline (retry,
** data_version poll) or curl_multi_wakeup from another thread (sync_stop,
** sync_online, sync_config, ...). What a response means is
** client_classify's call (client.c), shared with sync_push()/sync_pull()
** (oneshot.c); what to do about it (back off, go offline, wait for a
** token) is decided here.
**
** Order rules that keep rejections from getting lost: a push and a pull
** never overlap (nor a pull and the event stream, start_pull), and events
** arriving while a push is out are held (the transfer is paused) until its
** answer is acked. Otherwise a page whose last_mutation_id covers the batch
** could drop it from the outbox before the answer that says which of its
** mutations were rejected. sync_push and sync_pull calls of the same process
** count as transfers too (the worker waits for them, they wait for its
** transfer under way); across processes only one side runs a worker, but a
** sync_push in another process is not ordered with it. Events never confirm
** mutations (APPLY_EVENT: their last_mutation_id is ignored): they carry no
** "rejected" list, so after a lost push answer only the retried push or a
** pull (with pending_from) resolves the batch. A drain keeps a push out all
** along: the next batch goes before the previous answer is acked
** (done_push), which is acked with its own batch's last id so that it cannot
** resolve the batch sent after it.
**
** Each retry loop has its own backoff (backoff.h): network errors make the
** worker offline until /health answers; 5xx, 429 and other 4xx retry after
** a delay (Retry-After honoured; a pull's 5xx twice in a row halves its
** page limit too); 413, or an answer over max_body, halves the batch (or
** the page limit, back in full once a pull catches up); 401/403 wait for a
** new token; 410 (or a malformed cursor) starts one full resync, and a
** resync that meets 410 again backs off. Nothing is retried unchanged for
** ever: a 413 to one mutation alone refuses it (client_refuse); an answer
** over max_body to one, RESYNC_MAX resyncs cut short or LOCAL_MAX failed
** applies in a row stop the worker (go_stuck) until someone acts.
**
** Local writes are noticed without taking the host's commit or update hooks:
** the worker reads PRAGMA data_version on its own connection every
** DV_POLL_MS, which changes when any other connection (in any process)
** commits. Each batch read from the outbox is also published to
** sync_wait(.., 'all') (site_scan_local): its rows go once confirmed.
*/
#include "loop.h"
#include "backoff.h"
#include "client.h"
#include "dataver.h"
#include "sse.h"
#include "verify_net.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DV_POLL_MS 50      /* how often the worker looks for local commits */
#define POLL_PULL_MS 10000 /* with sse off: pull this often */
#define RETRY_AFTER_CAP_MS (3600 * 1000)
#define SSE_MAX ((size_t)16 << 20) /* cap of one event-stream line and event */
#define RESYNC_MAX 3               /* resyncs in a row cut short by 410 before giving up */
#define PULL_5XX_HALVE 2           /* 5xx answers in a row to a pull that halve its limit */
#define LOCAL_MAX 5                /* pages or answers in a row that fail to apply: give up */

enum { CH_PUSH, CH_PULL, CH_SSE, CH_HEALTH, CH_N };
static const char *const ch_name[CH_N] = {"push", "pull", "events", "health"};

typedef struct Chan {
  http_req r;
  int active;
  int failing;  /* last attempt failed: retry at `at` */
  int64_t at;   /* monotonic ms before which it does not start */
  unsigned gen; /* the tokenGen it was sent with */
  backoff bo;
} Chan;

/* One worker's loop. Only its thread touches it; what other threads see
** goes through the Site (publish_status). */
struct Loop {
  Site *site;
  sqlite3 *db;                /* the worker's own connection */
  SyncCtx *c;                 /* db's engine context */
  CURLM *multi;               /* also site->multi while the loop exists */
  char *url, *client, *token; /* server, client id, the token taken at tokenGen */
  unsigned tokenGen;
  sync_conf cfg; /* reloaded on N_CONFIG */
  /* The push out (its answer is dropped unacknowledged when outStale: an
  ** earlier batch's ack failed once it was out), and the batch after it,
  ** built while it is out (next.body NULL: none): the id it follows and the
  ** data_version it was built at. */
  OutboxBatch out, next;
  sqlite3_int64 nextAfter;
  int outStale, nextVersion;
  Chan ch[CH_N];
  int wantPush, wantPull;   /* work to do when the channel may start */
  int resync;               /* 0; 1: a full resync's first pull (no cursor); 2: its later pages */
  int authBlocked;          /* 401/403: nothing starts until a new token */
  int stuck;                /* terminal for the client: nothing starts until someone acts */
  int resyncFails;          /* resyncs cut short by 410 since a pull last caught up */
  int pull5xx;              /* 5xx answers to pulls in a row */
  int localFails;           /* pages or answers in a row that failed to apply (client_lasting) */
  int online, forced;       /* learned from transfers; sync_online(0) in effect */
  int pushedLast;           /* the last transfer started was a push: a due pull goes next */
  int64_t batch, pullLimit; /* current sizes: halved after 413 / a page over max_body */
  /* the event stream */
  sse_parser *sse;
  size_t sseCap; /* the parser's line and event cap */
  int sseUp, ssePaused;
  char *sseErr;    /* why the stream was aborted (an event failed to apply) */
  int64_t sseLast; /* when the stream last ended a line (or connected) */
  char *err;       /* set_error's message until publish_status shows it */
  /* local commits: PRAGMA data_version every DV_POLL_MS; with sse off, a
  ** pull every POLL_PULL_MS */
  int dataVersion;
  sqlite3_stmt *dvStmt;
  int64_t nextDv, nextPoll;
  VerifySched verify; /* due after a first sync or resync (done_pull) */
};

/* Keeps the message for the next publish_status, so that sync_status
** never shows a new error next to an old state. */
static void set_error(Loop *w, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sqlite3_free(w->err);
  w->err = sqlite3_vmprintf(fmt, ap);
  /* sync_status shows it: a server's text may echo the token. */
  http_mask_token(w->err, w->token);
  va_end(ap);
}

/* Nothing starts: a 401/403 waits for a token, a stuck client for help. */
static int halted(Loop *w) {
  return w->authBlocked || w->stuck;
}

static void publish_status(Loop *w) {
  Site *s = w->site;
  int64_t now = site_mono_ms(), wall = site_wall_ms(), next = 0;
  int failing = 0;
  for (int i = 0; i < CH_N; i++) {
    if (!w->ch[i].failing && !(i == CH_HEALTH && !w->online)) continue;
    if (i != CH_HEALTH) failing = 1;
    /* A retry under way counts as due now. */
    int64_t at = !w->ch[i].active && w->ch[i].at > now ? wall + (w->ch[i].at - now) : wall;
    if (!next || at < next) next = at;
  }
  const char *state = w->forced || !w->online ? "offline"
                      : halted(w)             ? "error"
                      : w->ch[CH_PUSH].active ? "pushing"
                      : w->ch[CH_PULL].active ? "pulling"
                      : failing               ? "error"
                                              : "idle";
  int busy = w->ch[CH_PUSH].active || w->ch[CH_PULL].active;
  pthread_mutex_lock(&s->mu);
  if (busy != s->busy) {
    s->busy = busy;
    pthread_cond_broadcast(&s->cond);
  }
  s->state = state;
  s->online = w->online && !w->forced;
  s->sse = w->sseUp;
  s->nextRetryAt = halted(w) || w->forced ? 0 : next;
  if (w->authBlocked && s->tokenGen == w->tokenGen) s->needsToken = 1; /* with state, one lock */
  if (w->err) { /* a new error moves to the site */
    site_show_error(s, w->err);
    w->err = 0;
  }
  if (!failing && !halted(w) && w->online) site_show_error(s, 0);
  pthread_mutex_unlock(&s->mu);
}

/* A sync_push or sync_pull of this process is under way: the worker starts
** no push or pull and holds events, as for its own push (order rules above). */
static int host_busy(Loop *w) {
  pthread_mutex_lock(&w->site->mu);
  int n = w->site->hostXfer;
  pthread_mutex_unlock(&w->site->mu);
  return n > 0;
}

/* Lets held events in again once no push is out (see on_sse_data). */
static void sse_resume(Loop *w) {
  if (!w->ssePaused || w->ch[CH_PUSH].active || host_busy(w)) return;
  w->ssePaused = 0;
  if (w->ch[CH_SSE].active) curl_easy_pause(w->ch[CH_SSE].r.easy, CURLPAUSE_CONT);
}

static void chan_stop(Loop *w, int i) {
  Chan *c = &w->ch[i];
  if (!c->active) return;
  curl_multi_remove_handle(w->multi, c->r.easy);
  c->active = 0;
  if (i == CH_SSE) {
    sse_end(w->sse);
    w->sseUp = 0;
    w->ssePaused = 0;
  }
  if (i == CH_PUSH) sse_resume(w);
}

static void reset_backoffs(Loop *w) {
  for (int i = 0; i < CH_N; i++) {
    backoff_reset(&w->ch[i].bo);
    w->ch[i].at = 0;
    w->ch[i].failing = 0;
  }
}

/* Schedules c's next attempt after its backoff, or after the server's hint
** (Retry-After, an event stream's retry:; negative for none) when longer,
** but never more than RETRY_AFTER_CAP_MS away. */
static void retry_later(Chan *c, int64_t hintMs) {
  int64_t d = backoff_next_ms(&c->bo, hintMs);
  c->at = site_mono_ms() + (d > RETRY_AFTER_CAP_MS ? RETRY_AFTER_CAP_MS : d);
}

static void fail(Loop *w, int i, int64_t retryMs, const char *msg) {
  Chan *c = &w->ch[i];
  retry_later(c, retryMs);
  c->failing = 1;
  set_error(w, "%s: %s", ch_name[i], msg);
}

static void succeed(Loop *w, int i) {
  backoff_reset(&w->ch[i].bo);
  w->ch[i].failing = 0;
  w->ch[i].at = 0;
}

/* A transfer could not reach the server: offline until /health answers. */
static void went_offline(Loop *w, int i, const char *msg) {
  set_error(w, "%s: %s", ch_name[i], msg);
  if (w->online) {
    w->online = 0;
    backoff_reset(&w->ch[CH_HEALTH].bo);
  }
  for (int k = 0; k < CH_N; k++)
    if (k != CH_HEALTH) chan_stop(w, k);
  Chan *h = &w->ch[CH_HEALTH];
  h->at = site_mono_ms() + backoff_next_ms(&h->bo, -1);
}

/* 401/403 to what, sent with the current token: nothing starts until a new one. */
static void token_refused(Loop *w, const char *what, const char *msg) {
  w->authBlocked = 1;
  set_error(w, "%s: %s (waiting for a new token: sync_config('token', ...))", what, msg);
  for (int k = 0; k < CH_N; k++)
    chan_stop(w, k);
}

static void auth_blocked(Loop *w, int i, const char *msg) {
  if (w->ch[i].gen == w->tokenGen) token_refused(w, ch_name[i], msg); /* else: retry, new token */
}

/* Terminal for the client: msg (taken) says why and what to do; nothing
** starts until sync_config, sync_online(1), a new token or a restart. */
static void go_stuck(Loop *w, char *msg) {
  w->stuck = 1;
  set_error(w, "%s", msg ? msg : "out of memory");
  sqlite3_free(msg);
  for (int k = 0; k < CH_N; k++)
    chan_stop(w, k);
}

static void unstick(Loop *w) {
  if (!w->stuck) return;
  w->stuck = 0;
  w->resyncFails = w->localFails = 0;
  reset_backoffs(w);
  w->wantPush = w->wantPull = 1;
}

/* A page or answer that failed to apply: retried unless it did LOCAL_MAX times. */
static void local_failed(Loop *w, int i, int rc, const char *err) {
  if (!client_lasting(rc) || ++w->localFails < LOCAL_MAX)
    fail(w, i, -1, err);
  else
    go_stuck(w, sqlite3_mprintf("%s: %s (%d times in a row; sync_online(1) tries again)",
                                ch_name[i], err, w->localFails));
}

static const client_kind ch_kind[CH_N] = {CLIENT_PUSH, CLIENT_PULL, CLIENT_EVENTS, CLIENT_HEALTH};

static int chan_start(Loop *w, int i, const char *url, const char *post, const char *lastId) {
  Chan *c = &w->ch[i];
  http_opts o;
  client_opts(&o, &w->cfg, w->token, ch_kind[i]);
  o.last_event_id = lastId;
  if (!url || http_prepare(&c->r, url, post, &o) != 0) {
    fail(w, i, -1, "out of memory");
    return -1;
  }
  if (curl_multi_add_handle(w->multi, c->r.easy) != CURLM_OK) {
    fail(w, i, -1, "curl_multi_add_handle failed");
    return -1;
  }
  c->active = 1;
  c->gen = w->tokenGen;
  return 0;
}

static int has_cursor(Loop *w) {
  char *cursor = ctx_meta_get(w->c, "cursor");
  sqlite3_free(cursor);
  return cursor != 0;
}

/* Builds the batch of mutations with ids above after (0: from the outbox's
** head) and sends it. Returns 1 when it went out. A failure to build one
** from the head is the channel's; after an id (the batch following one
** just answered) it is left to the push from the head that comes next. */
static int push_send(Loop *w, sqlite3_int64 after) {
  OutboxBatch b = {0};
  char *err = 0;
  int rc = SQLITE_OK;
  /* The batch built ahead, unless another connection committed since
  ** (sync_untrack drops pending mutations). */
  if (after && w->next.body && w->nextAfter == after && w->nextVersion >= 0 &&
      dataver_read(&w->dvStmt, w->db) == w->nextVersion) {
    b = w->next;
    memset(&w->next, 0, sizeof w->next);
  } else {
    rc = outbox_batch(w->c, w->batch, after, &b, &err);
  }
  site_scan_local(w->site, w->c);
  sqlite3_free(w->next.body);
  memset(&w->next, 0, sizeof w->next);
  if (rc != SQLITE_OK) {
    if (!after) fail(w, CH_PUSH, -1, err ? err : "sync_push_batch failed");
    sqlite3_free(err);
    return 0;
  }
  if (!b.body) {
    if (!after) w->wantPush = 0;
    return 0;
  }
  sqlite3_free(w->out.body);
  w->out = b;
  w->outStale = 0;
  client_trace("push", b.body);
  char *url = http_url(w->url, "/push", 0, 0);
  w->pushedLast = 1;
  rc = chan_start(w, CH_PUSH, url, b.body, 0);
  sqlite3_free(url);
  return rc == 0;
}

/* The event stream closes while a pull is out and opens again from its
** cursor: an event applied meanwhile could be newer than the pull's answer. */
static void start_pull(Loop *w) {
  chan_stop(w, CH_SSE);
  char *url = client_pull_url(w->c, w->url, w->client, &w->resync, w->pullLimit);
  w->pushedLast = 0;
  chan_start(w, CH_PULL, url, 0, 0);
  sqlite3_free(url);
}

static int on_sse_event(void *arg, const char *type, const char *data, size_t n, const char *id) {
  (void)n, (void)id;
  Loop *w = arg;
  if (strcmp(type, "changes") != 0) return 0;
  int64_t k = 0;
  char *err = 0;
  if (client_apply(w->c, w->site, data, APPLY_EVENT, 0, &k, 0, &err) != SQLITE_OK) {
    sqlite3_free(w->sseErr);
    w->sseErr = err;
    return 1;
  }
  return 0;
}

static int on_sse_data(void *arg, const char *p, size_t n) {
  Loop *w = arg;
  if (w->ch[CH_PUSH].active || host_busy(w)) {
    /* Hold events while a push is out: one could confirm the batch through
    ** last_mutation_id before its answer arrives, and a rejection in it
    ** would then never reach sync_rejected. */
    w->sseLast = site_mono_ms();
    w->ssePaused = 1;
    return HTTP_PAUSE;
  }
  if (!w->sseUp) {
    w->sseUp = 1;
    w->sseLast = site_mono_ms();
    succeed(w, CH_SSE);
    publish_status(w);
  }
  unsigned long long lines = sse_lines(w->sse);
  int rc = sse_feed(w->sse, p, n);
  /* Only an ended line is a sign of life: bytes that never end one (a
  ** 1 byte/s drip) leave the stall timer running. */
  if (sse_lines(w->sse) != lines) w->sseLast = site_mono_ms();
  if (rc == SSE_OK) return 0;
  if (rc != SSE_EABORT) {
    sqlite3_free(w->sseErr);
    unsigned long long cap = w->sseCap;
    w->sseErr = rc == SSE_ELINE    ? sqlite3_mprintf("a line over %llu bytes", cap)
                : rc == SSE_EEVENT ? sqlite3_mprintf("an event over %llu bytes", cap)
                                   : sqlite3_mprintf("out of memory");
  }
  return 1;
}

static void start_sse(Loop *w) {
  char *cursor = ctx_meta_get(w->c, "cursor");
  char *url = client_events_url(w->c, w->url, w->client, cursor);
  sse_end(w->sse);
  if (chan_start(w, CH_SSE, url, 0, cursor ? cursor : "") == 0) {
    w->ch[CH_SSE].r.on_data = on_sse_data;
    w->ch[CH_SSE].r.arg = w;
    w->sseLast = site_mono_ms();
  }
  sqlite3_free(url);
  sqlite3_free(cursor);
}

static void start_health(Loop *w) {
  char *url = http_url(w->url, "/health", 0, 0);
  chan_start(w, CH_HEALTH, url, 0, 0);
  sqlite3_free(url);
}

/* Whether the batch after the one just answered may go out before that
** answer is acknowledged: when schedule would start it right after (which
** asks for a pull when events are off: a due pull goes first). */
static int push_goes_on(Loop *w) {
  int pullDue = (w->wantPull || !w->cfg.sse) && site_mono_ms() >= w->ch[CH_PULL].at;
  return w->wantPush && w->online && !w->forced && !halted(w) && !pullDue &&
         !w->ch[CH_PULL].active && !host_busy(w) && !site_stopping(w->site) && has_cursor(w);
}

/* Writes as much of the push request as the socket takes now: one perform
** sends at most curl's upload buffer (64 KiB); the server starts once all is in. */
static void push_flush(Loop *w) {
  CURL *e = w->ch[CH_PUSH].r.easy;
  size_t len = strlen(w->out.body);
  curl_off_t up = 0, was;
  int running = 0;
  do {
    was = up;
    curl_multi_perform(w->multi, &running);
    if (curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &up) != CURLE_OK) break;
  } while (up > was && (size_t)up < len);
}

/* Builds the batch after the one out, while the server works on it, so that
** it goes the moment the answer comes (push_send, which retries a failure). */
static void push_prepare(Loop *w) {
  char *err = 0;
  sqlite3_free(w->next.body);
  memset(&w->next, 0, sizeof w->next);
  w->nextVersion = dataver_read(&w->dvStmt, w->db);
  if (outbox_batch(w->c, w->batch, w->out.top, &w->next, &err) == SQLITE_OK && w->next.body)
    w->nextAfter = w->out.top;
  site_scan_local(w->site, w->c);
  sqlite3_free(err);
}

/* A push answered. On a 200 the next batch (ids above this one's) goes out
** first, written to the socket at once, and this answer is acknowledged
** while the server works on it, as sync_push does. Requests stay one at a
** time and in id order. If the acknowledgement fails, the answer to the
** batch out is dropped when it comes: both batches stay pending and go again
** from the outbox's head (syncd answers ids it has seen with their outcomes). */
static void done_push(Loop *w, http_req *r) {
  client_trace(r->msg[0] ? r->msg : "answer", r->buf);
  OutboxBatch b = w->out;
  int stale = w->outStale;
  memset(&w->out, 0, sizeof w->out);
  w->outStale = 0;
  client_class cl = client_classify(r, CLIENT_PUSH, client_batch_size(&b, w->batch));
  if (cl == CL_OK && stale) {
    sqlite3_free(b.body);
    return;
  }
  if (cl == CL_OK) {
    char *answer = r->buf; /* kept: the next request reuses r */
    r->buf = 0;
    r->n = r->cap = 0;
    int64_t was = w->batch;
    w->batch = w->batch * 2 < w->cfg.batch_size ? w->batch * 2 : w->cfg.batch_size;
    if (push_goes_on(w) && push_send(w, b.top)) push_flush(w);
    int64_t n = 0;
    char *err = 0;
    int rc = client_answer(w->c, w->site, answer ? answer : "", &b, &n, &err);
    sqlite3_free(answer);
    sqlite3_free(b.body);
    if (rc != SQLITE_OK) {
      w->batch = was;
      if (w->ch[CH_PUSH].active) w->outStale = 1;
      local_failed(w, CH_PUSH, rc, err ? err : "sync_ack failed");
      sqlite3_free(err);
      return;
    }
    w->localFails = 0;
    succeed(w, CH_PUSH);
    if (!w->cfg.sse) w->wantPull = 1;
    if (w->ch[CH_PUSH].active) push_prepare(w);
    return;
  }
  outbox_record_attempt(w->c, b.first, b.top, r->msg);
  sqlite3_free(b.body);
  b.body = 0;
  switch (cl) {
  case CL_REFUSED: {
    /* Too large for the server even alone: refused for good, and the rest
    ** of the outbox goes on at once. */
    char *err = 0;
    int rc = client_refuse(w->c, w->site, &b, r->msg, &err);
    if (rc == SQLITE_OK)
      w->ch[CH_PUSH].at = 0;
    else
      local_failed(w, CH_PUSH, rc, err ? err : "sync_ack failed");
    sqlite3_free(err);
    break;
  }
  case CL_STUCK:
    go_stuck(w, client_stuck_reason(r, CLIENT_PUSH, b.first, 0));
    break;
  case CL_OFFLINE:
    went_offline(w, CH_PUSH, r->msg);
    break;
  case CL_HALVE:
    /* a request or its answer too large: the same batch would fail again */
    client_halve(&w->batch);
    set_error(w, "push: %s (batch halved to %lld)", r->msg, (long long)w->batch);
    w->ch[CH_PUSH].at = 0;
    break;
  case CL_AUTH:
    auth_blocked(w, CH_PUSH, r->msg);
    break;
  default:
    fail(w, CH_PUSH, r->retry_ms, r->msg);
  }
}

static void done_pull(Loop *w, http_req *r) {
  client_class cl = client_classify(r, CLIENT_PULL, w->pullLimit);
  if (cl == CL_OK) {
    int64_t n = 0;
    int more = 0;
    char *err = 0;
    w->verify.due |= w->resync || !has_cursor(w);
    int rc = client_apply(w->c, w->site, r->buf ? r->buf : "", 0, w->resync, &n, &more, &err);
    if (rc != SQLITE_OK) {
      local_failed(w, CH_PULL, rc, err);
      sqlite3_free(err);
      return;
    }
    if (w->resync == 1) w->resync = 2; /* later pages follow the cursor */
    succeed(w, CH_PULL);
    w->pull5xx = w->localFails = 0;
    if (!more) {
      w->wantPull = 0;
      w->wantPush |= w->resync != 0; /* its end may queue rows: existing_settle */
      w->resync = w->resyncFails = 0;
      w->pullLimit = w->cfg.pull_limit; /* caught up: what made pages fail is behind the cursor */
      w->nextPoll = site_mono_ms() + POLL_PULL_MS;
    }
    return;
  }
  switch (cl) {
  case CL_STUCK:
    go_stuck(w, client_stuck_reason(r, CLIENT_PULL, 0, 0));
    break;
  case CL_HALVE:
    /* A page over max_body: ask for smaller ones. */
    client_halve(&w->pullLimit);
    set_error(w, "pull: %s (limit halved to %lld)", r->msg, (long long)w->pullLimit);
    w->ch[CH_PULL].at = 0;
    break;
  case CL_OFFLINE:
    went_offline(w, CH_PULL, r->msg);
    break;
  case CL_RESYNC: {
    /* The cursor is gone (or unreadable: "malformed cursor"): pull
    ** everything again, keeping pending mutations. A resync that meets 410
    ** again waits instead of looping. */
    chan_stop(w, CH_SSE);
    char *err = 0;
    int stop = client_resync(w->c, r, &w->resync, &err);
    if (stop > 0 && ++w->resyncFails >= RESYNC_MAX) {
      go_stuck(w, client_stuck_reason(r, CLIENT_PULL, 0, w->resyncFails));
    } else if (stop) {
      fail(w, CH_PULL, r->retry_ms,
           stop > 0 ? "cursor expired again during a full resync"
           : err    ? err
                    : "out of memory");
    } else {
      set_error(w, "pull: %s: full resync", r->msg);
      w->ch[CH_PULL].at = 0;
    }
    sqlite3_free(err);
    break;
  }
  case CL_AUTH:
    auth_blocked(w, CH_PULL, r->msg);
    break;
  default:
    /* A page the server fails on every time (a row over its limits) comes
    ** in smaller pages; one 5xx (a restart) is not enough to say so. */
    fail(w, CH_PULL, r->retry_ms, r->msg);
    if (r->status >= 500 && ++w->pull5xx >= PULL_5XX_HALVE && w->pullLimit > 1) {
      client_halve(&w->pullLimit);
      set_error(w, "pull: %s (limit halved to %lld)", r->msg, (long long)w->pullLimit);
    }
  }
}

static void done_sse(Loop *w, http_req *r) {
  int wasUp = w->sseUp;
  client_class cl = client_classify(r, CLIENT_EVENTS, 0);
  sse_end(w->sse);
  w->sseUp = 0;
  if (r->aborted && w->sseErr) {
    /* An event failed to apply: the cursor stayed; pull again later. */
    fail(w, CH_SSE, -1, w->sseErr);
  } else if (cl == CL_AUTH) {
    auth_blocked(w, CH_SSE, r->msg);
    return;
  } else if (cl == CL_OFFLINE && !wasUp) {
    went_offline(w, CH_SSE, r->msg);
    return;
  } else if (wasUp && (r->status == 200 || r->status == 0)) {
    /* The stream ended (server restart, network drop): reconnect, after
    ** the server's retry: field but never later than Retry-After's cap
    ** (any digits are valid there; unbounded it would overflow `at`). */
    retry_later(&w->ch[CH_SSE], sse_retry_ms(w->sse));
  } else {
    fail(w, CH_SSE, r->retry_ms, r->msg[0] ? r->msg : "event stream ended");
  }
  sqlite3_free(w->sseErr);
  w->sseErr = 0;
  /* Pull first on every reconnect. */
  w->wantPull = 1;
  if (w->ch[CH_PULL].at < w->ch[CH_SSE].at) w->ch[CH_PULL].at = w->ch[CH_SSE].at;
}

static void done_health(Loop *w, http_req *r) {
  if (r->status >= 200 && r->status < 300) {
    w->online = 1;
    reset_backoffs(w);
    w->wantPull = w->wantPush = 1;
    return;
  }
  retry_later(&w->ch[CH_HEALTH], r->retry_ms);
}

static void drain_done(Loop *w) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(w->multi, &left)) != 0) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *e = m->easy_handle;
    CURLcode cc = m->data.result;
    int i = 0;
    while (i < CH_N && w->ch[i].r.easy != e)
      i++;
    if (i == CH_N) continue;
    curl_multi_remove_handle(w->multi, e);
    w->ch[i].active = 0;
    http_finish(&w->ch[i].r, cc);
    switch (i) {
    case CH_PUSH:
      done_push(w, &w->ch[i].r);
      sse_resume(w);
      break;
    case CH_PULL:
      done_pull(w, &w->ch[i].r);
      break;
    case CH_SSE:
      done_sse(w, &w->ch[i].r);
      break;
    default:
      done_health(w, &w->ch[i].r);
    }
  }
}

/* Another connection committed (any process): maybe new mutations. */
static void check_data_version(Loop *w) {
  int v = dataver_read(&w->dvStmt, w->db);
  if (v < 0) return;
  if (v != w->dataVersion) w->wantPush = 1;
  w->dataVersion = v;
}

/* A stream that ends no line (event or heartbeat: 15 s by default) for sse_stall_ms is
** dropped and reconnected, pull first; curl's low-speed limit is only the backstop. */
static void check_stall(Loop *w, int64_t now) {
  Chan *c = &w->ch[CH_SSE];
  if (!c->active || w->ssePaused || now - w->sseLast < w->cfg.sse_stall_ms) return;
  chan_stop(w, CH_SSE);
  set_error(w, "events: no complete line for %lld ms: reconnecting",
            (long long)w->cfg.sse_stall_ms);
  c->at = now + backoff_next_ms(&c->bo, -1);
  w->wantPull = 1;
  if (w->ch[CH_PULL].at < c->at) w->ch[CH_PULL].at = c->at;
}

static void schedule(Loop *w, int64_t now) {
  Chan *c = w->ch;
  if (!w->online) {
    if (!c[CH_HEALTH].active && now >= c[CH_HEALTH].at) start_health(w);
    return;
  }
  /* Push and pull take turns: a pull answered after a push committed could
  ** confirm that batch (last_mutation_id) before its answer is acked. A due
  ** pull goes before the next push, so steady writes cannot starve it. With
  ** no cursor yet the pull goes first: an initial sync sends live rows only,
  ** so a row pushed before it and deleted by another client would stay. */
  int host = host_busy(w);
  int pullTurn = w->wantPull && now >= c[CH_PULL].at && w->pushedLast;
  if (w->wantPush && !host && !c[CH_PUSH].active && !c[CH_PULL].active && now >= c[CH_PUSH].at &&
      !pullTurn && has_cursor(w))
    push_send(w, 0);
  if (!w->online) return;
  if (w->wantPull && !host && !c[CH_PULL].active && !c[CH_PUSH].active && now >= c[CH_PULL].at)
    start_pull(w);
  if (!w->cfg.sse && !w->wantPull && !c[CH_PULL].active && now >= w->nextPoll) w->wantPull = 1;
  if (w->cfg.sse && !w->wantPull && !c[CH_PULL].active && !c[CH_SSE].active && now >= c[CH_SSE].at)
    start_sse(w);
  char *err = 0; /* caught up and idle: verify (verify_net.c; it blocks this thread) */
  int v = host || w->wantPull || c[CH_PUSH].active || c[CH_PULL].active
              ? 2
              : verify_net_sched(&w->verify, now, w->site, w->c, &w->cfg, w->token, &err);
  w->wantPull |= v == 1;
  if (v == 4) token_refused(w, "verify", err);
  if (v < 0) set_error(w, "verify: %s", err);
  sqlite3_free(err);
}

static void at_min(int64_t *t, int64_t x) {
  if (x < *t) *t = x;
}

static int64_t wait_ms(Loop *w, int64_t now) {
  int64_t t = w->nextDv;
  Chan *c = w->ch;
  if (!w->forced && !halted(w)) {
    if (!w->online) {
      if (!c[CH_HEALTH].active) at_min(&t, c[CH_HEALTH].at);
    } else {
      int idle = !c[CH_PUSH].active && !c[CH_PULL].active && !host_busy(w);
      if (w->wantPush && idle) at_min(&t, c[CH_PUSH].at);
      if (w->wantPull && idle) at_min(&t, c[CH_PULL].at);
      if (w->cfg.sse && !w->wantPull && !c[CH_PULL].active && !c[CH_SSE].active)
        at_min(&t, c[CH_SSE].at);
      if (!w->cfg.sse) at_min(&t, w->nextPoll);
      if (c[CH_SSE].active && !w->ssePaused) at_min(&t, w->sseLast + w->cfg.sse_stall_ms);
    }
  }
  int64_t d = t - now;
  return d < 0 ? 0 : d > 1000 ? 1000 : d;
}

static void load_config(Loop *w) {
  config_clear(&w->cfg);
  config_load(w->c, &w->cfg);
  for (int i = 0; i < CH_N; i++) {
    w->ch[i].bo.min_ms = w->cfg.backoff_min_ms;
    w->ch[i].bo.max_ms = w->cfg.backoff_max_ms;
  }
  if (w->batch <= 0 || w->batch > w->cfg.batch_size) w->batch = w->cfg.batch_size;
  w->pullLimit = w->cfg.pull_limit;
  sqlite3_free(w->next.body); /* built at the old batch size */
  memset(&w->next, 0, sizeof w->next);
}

void loop_run(Loop *w) {
  Site *s = w->site;
  w->wantPush = w->wantPull = 1;
  w->online = 1;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    int stop = s->stop;
    unsigned nudge = s->nudge;
    s->nudge = 0;
    int forced = s->forcedOffline;
    int newToken = s->tokenGen != w->tokenGen;
    if (newToken) {
      site_token_free(w->token);
      w->token = s->token ? sqlite3_mprintf("%s", s->token) : 0;
      w->tokenGen = s->tokenGen;
    }
    pthread_mutex_unlock(&s->mu);
    if (stop) break;
    if (nudge & N_CONFIG) load_config(w);
    /* Someone acted on what made the worker stop: try again. */
    if ((nudge & (N_CONFIG | N_ONLINE)) || newToken) unstick(w);
    if (nudge & N_PUSH) w->wantPush = 1;
    if (nudge & N_PULL) w->wantPull = 1;
    if (newToken) {
      /* A new token: retry what 401/403 stopped, and reconnect the stream. */
      w->authBlocked = 0;
      chan_stop(w, CH_SSE);
      reset_backoffs(w);
      w->wantPush = w->wantPull = 1;
    }
    if (forced && !w->forced) {
      for (int i = 0; i < CH_N; i++)
        chan_stop(w, i);
    }
    if (!forced && (w->forced || (nudge & N_ONLINE))) {
      /* Back online: drain and pull at once. */
      w->online = 1;
      reset_backoffs(w);
      w->wantPush = w->wantPull = 1;
    }
    w->forced = forced;
    int64_t now = site_mono_ms();
    if (now >= w->nextDv) {
      check_data_version(w);
      w->nextDv = now + DV_POLL_MS;
    }
    check_stall(w, now);
    sse_resume(w);
    if (!w->forced && !halted(w)) schedule(w, now);
    int running = 0;
    curl_multi_perform(w->multi, &running);
    drain_done(w);
    publish_status(w);
    now = site_mono_ms();
    if (!w->forced && !halted(w)) schedule(w, now);
    curl_multi_perform(w->multi, &running);
    drain_done(w);
    curl_multi_poll(w->multi, 0, 0, (int)wait_ms(w, site_mono_ms()), 0);
  }
}

Loop *loop_new(Site *s, sqlite3 *db, SyncCtx *c, char **pzErr) {
  Loop *w = sqlite3_malloc64(sizeof *w);
  if (!w) {
    *pzErr = sqlite3_mprintf("out of memory");
    return 0;
  }
  memset(w, 0, sizeof *w);
  w->site = s;
  w->db = db;
  w->c = c;
  pthread_mutex_lock(&s->mu);
  w->tokenGen = s->tokenGen - 1; /* take the token on the first turn */
  pthread_mutex_unlock(&s->mu);
  w->url = ctx_meta_get(c, "url");
  w->client = ctx_meta_get(c, "client_id");
  load_config(w);
  /* An event's data is one pull page on one line: lines get the same cap
  ** as events (a larger event drops the stream; the pull that follows
  ** fetches the same changes under max_body). */
  w->sseCap = (size_t)w->cfg.max_body < SSE_MAX ? (size_t)w->cfg.max_body : SSE_MAX;
  w->sse = sse_new(w->sseCap, w->sseCap, on_sse_event, w);
  w->multi = curl_multi_init();
  for (int i = 0; i < CH_N; i++)
    backoff_init(&w->ch[i].bo, w->cfg.backoff_min_ms, w->cfg.backoff_max_ms, 0);
  if (!w->url || !w->client || !w->sse || !w->multi) {
    *pzErr = sqlite3_mprintf("%s", !w->url      ? "no server url"
                                   : !w->client ? "sync_init() has not been called"
                                                : "out of memory");
    loop_free(w);
    return 0;
  }
  pthread_mutex_lock(&s->mu);
  s->multi = w->multi;
  pthread_mutex_unlock(&s->mu);
  return w;
}

void loop_free(Loop *w) {
  if (!w) return;
  Site *s = w->site;
  pthread_mutex_lock(&s->mu);
  s->multi = 0;
  s->busy = 0;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
  for (int i = 0; i < CH_N; i++) {
    if (w->ch[i].active) curl_multi_remove_handle(w->multi, w->ch[i].r.easy);
    http_req_free(&w->ch[i].r);
  }
  if (w->multi) curl_multi_cleanup(w->multi);
  sse_free(w->sse);
  sqlite3_finalize(w->dvStmt);
  config_clear(&w->cfg);
  sqlite3_free(w->url);
  sqlite3_free(w->client);
  site_token_free(w->token);
  sqlite3_free(w->out.body);
  sqlite3_free(w->next.body);
  sqlite3_free(w->sseErr);
  sqlite3_free(w->err);
  sqlite3_free(w);
}
