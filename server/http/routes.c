/*
** routes.c: syncd's HTTP endpoints (docs/PROTOCOL.md):
**   GET /health, POST /push, GET /pull, GET /events (events.c streams it),
**   POST /verify (server/store/fingerprint.c computes it).
** Every answer is JSON; errors are {"error":"..."} with a 4xx/5xx status.
** A large answer, and an event stream, is gzipped for a client whose
** Accept-Encoding takes it (unless syncd runs with --no-compress).
** Bodies are read up to --max-body bytes; beyond that the rest is drained
** and discarded and the answer is 413.
**
** Handlers run on a libmicrohttpd polling thread, which serves its share
** of the connections: what needs no storage (/health, refusals at the head,
** bodies) is answered there, and a request that waits on storage (every
** route of the table below) is handed to work.c's threads with its
** connection suspended. Either way an answer is only recorded in the
** request (answer()) and queued by the connection's polling thread
** (flush()): libmicrohttpd lets only the handler queue it.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "compress.h"
#include "conns.h"
#include "events.h"
#include "fingerprint.h"
#include "jscan.h"
#include "reply.h"
#include "request.h"
#include "routes.h"
#include "userlimit.h"
#include "work.h"

#define PULL_DEFAULT_LIMIT 1000
#define PULL_MAX_LIMIT 10000

/* One request's state, from its first call to the completion callback. */
typedef struct request {
  const server_ctx *ctx;
  struct MHD_Connection *c;
  const struct route *route;
  work_item job;             /* while a worker runs route */
  struct MHD_Response *resp; /* the answer recorded, not yet queued */
  int handed;                /* the route ran, or runs on a worker */
  int stream;                /* resp is an event stream */
  sqlite3_str *body;         /* NULL until data arrives; freed when over the limit */
  size_t n;
  int keep_body; /* POST /push: other bodies are read and dropped */
  int too_big;
  int status; /* the status answered, for the log */
  struct timespec start;
  char *line; /* "METHOD /url" for the log */
  auth_level auth;
  char token[AUTH_CLIENT_TOKEN_LEN + 1]; /* with AUTH_ONE_CLIENT */
  jwtauth_claims user;                   /* with AUTH_USER */
} request;

/* Record the answer (r taken over; NULL: a 500); flush() queues it. */
static enum MHD_Result answer(struct MHD_Connection *c, request *rq, int status,
                              struct MHD_Response *r) {
  (void)c;
  if (!r) {
    status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
  }
  if (rq->resp) MHD_destroy_response(rq->resp);
  rq->status = status;
  rq->resp = r;
  return MHD_YES;
}

/* Queue the recorded answer, if any (on the polling thread). */
static enum MHD_Result flush(struct MHD_Connection *c, request *rq, enum MHD_Result res) {
  if (res == MHD_NO || !rq->resp) return res;
  /* idle streams are normal; heartbeats keep the socket busy */
  if (rq->stream) MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0);
  enum MHD_Result ok = MHD_queue_response(c, (unsigned)rq->status, rq->resp);
  MHD_destroy_response(rq->resp);
  rq->resp = 0;
  return ok;
}

/* Whether this answer may be gzipped: syncd compresses and the client
** takes it. */
static int gzip_ok(const server_ctx *ctx, struct MHD_Connection *c) {
  return ctx->compress && compress_accepts(MHD_lookup_connection_value(
                              c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING));
}

/* 200 with json (taken over), gzipped when it may be and is large enough. */
static enum MHD_Result answer_json(const server_ctx *ctx, struct MHD_Connection *c, request *rq,
                                   char *json) {
  struct MHD_Response *r = reply_json_gz(json, gzip_ok(ctx, c));
  /* a cache must not hand a gzipped answer to a client that did not ask */
  if (r && ctx->compress) MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
  return answer(c, rq, MHD_HTTP_OK, r);
}

static enum MHD_Result answer_error(struct MHD_Connection *c, request *rq, int status,
                                    const char *msg) {
  return answer(c, rq, status, reply_error(msg));
}

static enum MHD_Result not_allowed(struct MHD_Connection *c, request *rq, const char *allow) {
  struct MHD_Response *r = reply_error("method not allowed");
  if (r) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
  return answer(c, rq, MHD_HTTP_METHOD_NOT_ALLOWED, r);
}

/* 403 when the request's credentials are one client's token and client_id
** (n bytes) is another client. */
static int forbidden(const server_ctx *ctx, const request *rq, const char *client_id, size_t n) {
  return rq->auth == AUTH_ONE_CLIENT && !auth_client_ok(&ctx->auth, rq->token, client_id, n);
}

static enum MHD_Result answer_forbidden(struct MHD_Connection *c, request *rq) {
  return answer_error(c, rq, MHD_HTTP_FORBIDDEN, "forbidden: the token is not this client_id's");
}

/* Under rules, a JWT user's request for a client_id another user holds:
** 403 (or 500 when the store cannot tell), answered here; 0: go on. */
static int not_users(const server_ctx *ctx, struct MHD_Connection *c, request *rq,
                     const char *client, enum MHD_Result *res) {
  store_user user = {rq->user.sub, rq->user.json};
  char *err = 0;
  int mine = 1;
  if (store_client_user(ctx->st, rq->auth == AUTH_USER ? &user : 0, client, &mine, &err)) {
    *res = answer_error(c, rq, MHD_HTTP_INTERNAL_SERVER_ERROR, err ? err : "storage failure");
    sqlite3_free(err);
    return 1;
  }
  if (!mine)
    *res = answer_error(c, rq, MHD_HTTP_FORBIDDEN,
                        "forbidden: this client_id belongs to another user");
  return !mine;
}

static int store_status(int rc) {
  switch (rc) {
  case STORE_BAD_CURSOR:
    return MHD_HTTP_BAD_REQUEST;
  case STORE_EXPIRED:
  case STORE_MOVED:
    return MHD_HTTP_GONE;
  case STORE_BUSY:
    return MHD_HTTP_SERVICE_UNAVAILABLE;
  default:
    return MHD_HTTP_INTERNAL_SERVER_ERROR;
  }
}

static const char *store_message(int rc, const char *err) {
  switch (rc) {
  case STORE_BAD_CURSOR:
    return "malformed cursor";
  case STORE_EXPIRED:
  case STORE_MOVED:
    return "cursor expired";
  default:
    return err ? err : "storage failure";
  }
}

/* The request's body handed over (sqlite3_free it; NULL when empty) with
** its length: 1, or 0 with *res the answer (too large, out of memory). */
static int take_body(struct MHD_Connection *c, request *rq, char **body, int *len,
                     enum MHD_Result *res) {
  if (rq->too_big)
    return *res = answer_error(c, rq, MHD_HTTP_CONTENT_TOO_LARGE, "body too large"), 0;
  *len = rq->body ? sqlite3_str_length(rq->body) : 0;
  *body = rq->body ? sqlite3_str_finish(rq->body) : 0;
  rq->body = 0;
  if (*len > 0 && !*body)
    return *res = answer_error(c, rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory"), 0;
  return 1;
}

/* 400 with msg (a parser's sqlite3_malloc'd message, freed here). */
/* 400 with msg (freed here); table: the table it names is one the server
** does not sync, said in a field of its own ("unknown_table") so that a
** client need not read the message's words. */
static enum MHD_Result bad_request(struct MHD_Connection *c, request *rq, char *msg,
                                   const char *table) {
  enum MHD_Result r = answer(c, rq, MHD_HTTP_BAD_REQUEST,
                             reply_error_with(msg, table ? "unknown_table" : 0, table));
  sqlite3_free(msg);
  return r;
}

static enum MHD_Result do_push(const server_ctx *ctx, struct MHD_Connection *c, request *rq) {
  enum MHD_Result res;
  char *body;
  int len;
  if (!take_body(c, rq, &body, &len, &res)) return res;
  push_request pr;
  char *msg = push_request_parse(body ? body : "", (size_t)len, &pr);
  sqlite3_free(body);
  if (msg) return bad_request(c, rq, msg, 0);
  if (forbidden(ctx, rq, pr.client_id, strlen(pr.client_id))) {
    push_request_free(&pr);
    return answer_forbidden(c, rq);
  }
  if (not_users(ctx, c, rq, pr.client_id, &res)) {
    push_request_free(&pr);
    return res;
  }
  char *json = 0, *err = 0;
  int changed = 0;
  store_user user = {rq->user.sub, rq->user.json};
  int rc = store_push_as(ctx->st, rq->auth == AUTH_USER ? &user : 0, pr.client_id, pr.m, pr.n,
                         &json, &changed, &err);
  push_request_free(&pr);
  if (rc != STORE_OK) {
    fprintf(stderr, "syncd: push failed: %s\n", err ? err : "?");
    struct MHD_Response *resp = reply_error(store_message(rc, err));
    sqlite3_free(err);
    /* busy: the client's backoff is enough, nothing is wrong with the push */
    if (resp && rc == STORE_BUSY) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    return answer(c, rq, store_status(rc), resp);
  }
  if (changed) events_notify(0);
  return answer_json(ctx, c, rq, json);
}

/* The client_id query argument, or NULL when it is missing or unfit. */
static const char *client_arg(struct MHD_Connection *c) {
  const char *id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "client_id");
  size_t n = id ? strlen(id) : 0;
  return n > 0 && n <= 256 && jscan_utf8_valid((const unsigned char *)id, n) ? id : 0;
}

static enum MHD_Result do_pull(const server_ctx *ctx, struct MHD_Connection *c, request *rq) {
  const char *client = client_arg(c);
  if (!client)
    return answer_error(c, rq, MHD_HTTP_BAD_REQUEST, "client_id is required (1 to 256 bytes)");
  if (forbidden(ctx, rq, client, strlen(client))) return answer_forbidden(c, rq);
  enum MHD_Result res;
  if (not_users(ctx, c, rq, client, &res)) return res;
  const char *cursor = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor");
  const char *lim = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
  long limit = PULL_DEFAULT_LIMIT;
  if (lim) {
    char *end;
    limit = strtol(lim, &end, 10);
    if (!*lim || *end || limit <= 0)
      return answer_error(c, rq, MHD_HTTP_BAD_REQUEST, "limit must be a positive integer");
    if (limit > PULL_MAX_LIMIT) limit = PULL_MAX_LIMIT;
  }
  const char *pf = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "pending_from");
  long long pending_from = 0;
  if (pf) {
    char *end;
    errno = 0;
    pending_from = strtoll(pf, &end, 10);
    if (*pf < '0' || *pf > '9' || *end || errno || pending_from <= 0)
      return answer_error(c, rq, MHD_HTTP_BAD_REQUEST, "pending_from must be a positive integer");
  }
  store_page page;
  char *err = 0;
  const char *tables = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "tables");
  store_user user = {rq->user.sub, rq->user.json};
  int rc =
      store_pull_as(ctx->st, rq->auth == AUTH_USER ? &user : 0, client,
                    cursor && *cursor ? cursor : 0, (int)limit, pending_from, tables, &page, &err);
  if (rc == STORE_EXPIRED && cursor && *cursor && store_cursor_reset(ctx->st, cursor))
    return sqlite3_free(err),
           answer(c, rq, MHD_HTTP_GONE,
                  reply_json(sqlite3_mprintf("{\"error\":\"cursor expired\",\"reset\":true}")));
  /* the client resyncs without counting this as a resync cut short by a
  ** change log dropped too fast (docs/PROTOCOL.md) */
  if (rc == STORE_MOVED)
    return sqlite3_free(err),
           answer(c, rq, MHD_HTTP_GONE,
                  reply_json(sqlite3_mprintf("{\"error\":\"cursor expired\",\"moved\":true}")));
  if (rc != STORE_OK) {
    enum MHD_Result r = answer_error(c, rq, store_status(rc), store_message(rc, err));
    sqlite3_free(err);
    return r;
  }
  char *json = page.json;
  page.json = 0;
  store_page_clear(&page);
  return answer_json(ctx, c, rq, json);
}

static enum MHD_Result do_events(const server_ctx *ctx, struct MHD_Connection *c, request *rq) {
  const char *client = client_arg(c);
  if (!client)
    return answer_error(c, rq, MHD_HTTP_BAD_REQUEST, "client_id is required (1 to 256 bytes)");
  if (forbidden(ctx, rq, client, strlen(client))) return answer_forbidden(c, rq);
  enum MHD_Result res;
  if (not_users(ctx, c, rq, client, &res)) return res;
  const char *cursor = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
  if (!cursor || !*cursor) cursor = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor");
  char *copy = cursor && *cursor ? sqlite3_mprintf("%s", cursor) : 0;
  if (cursor && *cursor && !copy)
    return answer_error(c, rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
  struct MHD_Response *r;
  store_user user = {rq->user.sub, rq->user.json};
  int status = events_start(ctx, c, client, copy, rq->auth == AUTH_USER ? &user : 0,
                            rq->user.expires, gzip_ok(ctx, c), &r);
  rq->stream = status == MHD_HTTP_OK;
  return answer(c, rq, status, r);
}

static enum MHD_Result do_verify(const server_ctx *ctx, struct MHD_Connection *c, request *rq) {
  enum MHD_Result res;
  char *body;
  int len;
  if (!take_body(c, rq, &body, &len, &res)) return res;
  fp_request fr;
  char *msg = fp_request_parse(body ? body : "", (size_t)len, &fr);
  sqlite3_free(body);
  char *json = 0, *err = 0;
  int rc = STORE_OK;
  if (!msg && forbidden(ctx, rq, fr.client_id, strlen(fr.client_id))) {
    fp_request_free(&fr);
    return answer_forbidden(c, rq);
  }
  if (!msg && not_users(ctx, c, rq, fr.client_id, &res)) {
    fp_request_free(&fr);
    return res;
  }
  store_user user = {rq->user.sub, rq->user.json};
  int unknown = 0;
  if (!msg)
    rc = store_fingerprint(ctx->st, rq->auth == AUTH_USER ? &user : 0, &fr, &json, &msg, &unknown,
                           &err);
  if (msg) res = bad_request(c, rq, msg, unknown ? fr.table : 0);
  fp_request_free(&fr);
  if (msg) return res;
  if (rc != STORE_OK) {
    enum MHD_Result r = answer_error(c, rq, store_status(rc), store_message(rc, err));
    sqlite3_free(err);
    return r;
  }
  return answer_json(ctx, c, rq, json);
}

struct route {
  const char *path, *method;
  enum MHD_Result (*fn)(const server_ctx *, struct MHD_Connection *, request *);
};

static const struct route routes[] = {
    {"/push", "POST", do_push},
    {"/pull", "GET", do_pull},
    {"/events", "GET", do_events},
    {"/verify", "POST", do_verify},
};

static const struct route *find_route(const char *url) {
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
    if (strcmp(url, routes[i].path) == 0) return &routes[i];
  return 0;
}

/* A body is JSON: "application/json", optionally with parameters. */
static int json_content_type(struct MHD_Connection *c) {
  const char *t = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  static const char json[] = "application/json";
  if (!t || strncasecmp(t, json, sizeof json - 1) != 0) return 0;
  t += sizeof json - 1;
  return !*t || *t == ';' || *t == ' ' || *t == '\t';
}

static enum MHD_Result health(struct MHD_Connection *c, request *rq) {
  conns_phase(c, CONN_BUSY);
  return answer(c, rq, MHD_HTTP_OK,
                reply_json(sqlite3_mprintf("{\"ok\":true,\"event_reads\":%llu}", events_reads())));
}

static int declares_body(struct MHD_Connection *c) {
  const char *len = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  return (len && strcmp(len, "0") != 0) ||
         MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

/* The request head is complete: answer what needs no body, and refuse
** what can be refused, before a body is read (MHD then closes the
** connection instead of reading it): a body nobody will use must not hold
** a slot while it drips in. */
static enum MHD_Result on_head(const server_ctx *ctx, struct MHD_Connection *c, request *rq,
                               const char *url, const char *method) {
  /* a chunked body has no declared length: it is counted as it comes */
  const char *len = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (len && strtoull(len, 0, 10) > ctx->max_body)
    return answer_error(c, rq, MHD_HTTP_CONTENT_TOO_LARGE, "body too large");
  if (strcmp(url, "/health") == 0) {
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
      return not_allowed(c, rq, "GET, HEAD");
    /* an answer queued now closes the connection: only when a body comes */
    return declares_body(c) ? health(c, rq) : MHD_YES;
  }
  const struct route *r = find_route(url);
  if (!r) return answer_error(c, rq, MHD_HTTP_NOT_FOUND, "not found");
  if (strcmp(method, r->method) != 0) return not_allowed(c, rq, r->method);
  const char *why = 0;
  rq->auth = auth_header(
      &ctx->auth, MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
      (long long)time(0), rq->token, &rq->user, &why);
  /* the reason is one of jwtauth.c's fixed texts: nothing to escape */
  if (rq->auth == AUTH_DENIED)
    return why ? answer(c, rq, MHD_HTTP_UNAUTHORIZED,
                        reply_json(
                            sqlite3_mprintf("{\"error\":\"unauthorized\",\"reason\":\"%s\"}", why)))
               : answer_error(c, rq, MHD_HTTP_UNAUTHORIZED, "unauthorized");
  /* one user's requests may not starve the others' (userlimit.c) */
  int wait = rq->auth == AUTH_USER && ctx->max_requests_per_user
                 ? userlimit_take(rq->user.sub, ctx->max_requests_per_user)
                 : 0;
  if (wait) {
    struct MHD_Response *r = reply_error("too many requests for this user: try again later");
    char secs[16];
    snprintf(secs, sizeof secs, "%d", wait);
    if (r) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    return answer(c, rq, MHD_HTTP_TOO_MANY_REQUESTS, r);
  }
  if (strcmp(method, "POST") != 0) return MHD_YES;
  if (!json_content_type(c))
    return answer_error(c, rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                        "Content-Type must be application/json");
  rq->keep_body = 1;
  return MHD_YES;
}

/* A route, on a worker (work.c): its answer is recorded for flush(). */
static void run_route(void *arg) {
  request *rq = arg;
  if (rq->route->fn(rq->ctx, rq->c, rq) == MHD_NO && rq->resp) {
    MHD_destroy_response(rq->resp);
    rq->resp = 0;
  }
}

enum MHD_Result routes_handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls) {
  const server_ctx *ctx = cls;
  request *rq = *req_cls;
  (void)version;
  if (!rq) {
    rq = calloc(1, sizeof *rq);
    if (!rq) return MHD_NO;
    clock_gettime(CLOCK_MONOTONIC, &rq->start);
    rq->line = sqlite3_mprintf("%s %s", method, url);
    rq->ctx = ctx;
    rq->c = c;
    *req_cls = rq;
    conns_phase(c, CONN_BODY);
    return flush(c, rq, on_head(ctx, c, rq, url, method));
  }
  if (*upload_data_size) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    conns_body(c, n);
    if (!rq->too_big && rq->n + n > ctx->max_body) {
      rq->too_big = 1;
      sqlite3_free(sqlite3_str_finish(rq->body));
      rq->body = 0;
    }
    rq->n += n;
    if (rq->too_big || !rq->keep_body) return MHD_YES;
    if (!rq->body) rq->body = sqlite3_str_new(0);
    sqlite3_str_append(rq->body, upload_data, (int)n);
    return sqlite3_str_errcode(rq->body) == SQLITE_OK ? MHD_YES : MHD_NO;
  }
  /* called again once a worker has answered (resumed) */
  if (rq->handed) return rq->resp ? flush(c, rq, MHD_YES) : MHD_NO;
  if (strcmp(url, "/health") == 0) return flush(c, rq, health(c, rq));
  conns_phase(c, CONN_BUSY);
  rq->route = find_route(url);
  rq->handed = 1;
  rq->job = (work_item){.c = c, .fn = run_route, .arg = rq};
  if (work_submit(&rq->job) == 0) return MHD_YES;
  /* shutting down: the workers are gone, the answer is made here */
  run_route(rq);
  return rq->resp ? flush(c, rq, MHD_YES) : MHD_NO;
}

void routes_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                      enum MHD_RequestTerminationCode toe) {
  const server_ctx *ctx = cls;
  request *rq = *req_cls;
  (void)toe;
  conns_phase(c, CONN_IDLE);
  if (!rq) return;
  if (ctx->verbose) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double ms = (double)(now.tv_sec - rq->start.tv_sec) * 1e3 +
                (double)(now.tv_nsec - rq->start.tv_nsec) / 1e6;
    fprintf(stderr, "syncd: %s %d %.1fms\n", rq->line ? rq->line : "?", rq->status, ms);
  }
  if (rq->resp) MHD_destroy_response(rq->resp);
  sqlite3_free(sqlite3_str_finish(rq->body));
  sqlite3_free(rq->line);
  jwtauth_claims_clear(&rq->user);
  free(rq);
  *req_cls = 0;
}
