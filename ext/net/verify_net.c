/*
** verify_net.c: sync_verify, divergence detection and repair against the
** server, on the caller's connection and thread.
**
**   SELECT sync_verify();         -- every tracked table
**   SELECT sync_verify('todos');  -- one
**   -- {"tables":[{"table":"todos","checked":1000,"diverged":3,"repaired":3,
**   --             "ms":12,"requests":4,"bytes":9120}],"diverged":3,"repaired":3}
**
** Pulls first, so that the client is at the server's head, then walks each
** table's key-hash space with POST /verify (the engine's side, what is
** compared and how, is ext/engine/verify.c). Every answer must be for the
** client's cursor: if the server moved on meanwhile, the call pulls again
** and starts over (at most VERIFY_TRIES times). The keys that differ are
** repaired from the server's rows, every table in one transaction, pending
** mutations rebased on top; until then the changes wait in a temporary
** table, not in memory (the spool, verify.c), and a walk that starts over
** or fails deletes them. Like sync_pull, it holds this process's worker
** off while it runs and refuses to run inside a transaction.
** Errors (all "sync_verify: cause"):
**   sync_verify: table "x" is not tracked
**   sync_verify: the server kept changing (the client is at s1-9, ...)
**   sync_verify: cannot reach http://...: Couldn't connect to server
**   sync_verify: HTTP 404: not found                (a server without /verify)
** A tracked table the server does not sync (a 400 whose "unknown_table"
** names it, or from a syncd before that field whose error is "no such
** table: <name>": a table it lacks, or one without a rule under --rules) is
** skipped, and its report says so ("skipped"), rather than keep the other
** tables unverified.
*/
#include "verify_net.h"
#include "jscan.h"
#include "oneshot.h"
#include "track.h"
#include "table.h"
#include "value.h"
#include "verify.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define VERIFY_TRIES 3

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The tables to verify: the one named, or every tracked one. */
static int table_names(Oneshot *x, sqlite3_value *arg, char ***pNames, int *pN) {
  *pNames = 0;
  *pN = 0;
  if (arg && sqlite3_value_type(arg) != SQLITE_NULL) {
    const char *name = (const char *)sqlite3_value_text(arg);
    if (!name || !table_is_tracked(x->c, name)) {
      ctx_error(x->ctx, x->fn, "table \"%s\" is not tracked", name ? name : "");
      return -1;
    }
    char **a = sqlite3_malloc64(sizeof *a);
    if (a) a[0] = sqlite3_mprintf("%s", name);
    if (!a || !a[0]) {
      sqlite3_free(a);
      sqlite3_result_error_nomem(x->ctx);
      return -1;
    }
    *pNames = a;
    *pN = 1;
    return 0;
  }
  int rc = track_names(x->c, 0, pNames, pN);
  if (rc != SQLITE_OK) {
    ctx_error_db(x->ctx, x->c, x->fn, rc);
    return -1;
  }
  return 0;
}

/* What one table's walk found. */
typedef struct TableStat {
  sqlite3_int64 checked, diverged, requests, bytes;
  double ms;
  int skipped; /* the server does not sync the table */
} TableStat;

/* One verification's transport and outcome, for sync_verify and the
** worker alike: requests go out one at a time on r. */
typedef struct Walk {
  SyncCtx *c;
  Site *site; /* told which tables the repair wrote (sync_wait); may be NULL */
  http_req *r;
  const sync_conf *cfg;
  const char *token, *url, *client; /* url: the /verify url */
  int rc;                           /* a local failure's SQLite code */
  char *err;                        /* its message, or why the walk started over */
  int httpFailed;                   /* the failure was a request's (r->msg) */
} Walk;

/* 1 when the text value v is prefix followed by name, the name in any case
** (the caller may have named the table otherwise than the request did). */
static int text_is(jspan v, const char *prefix, const char *name) {
  if (strcmp(jscan_type(v), "text") != 0) return 0;
  int nul = 0;
  char *got = jscan_text(v, &nul);
  char *want = sqlite3_mprintf("%s%s", prefix, name);
  int same = got && want && !nul && sqlite3_stricmp(got, want) == 0;
  sqlite3_free(got);
  sqlite3_free(want);
  return same;
}

/* Whether r, a refused request, says the server does not sync table. The
** message's words are read only from a syncd that answers without the
** field: they are written for people, and may change. */
static int not_synced(const http_req *r, const char *table) {
  if (r->status != 400 || !r->buf || !jscan_document(r->buf, r->buf + r->n)) return 0;
  const char *z = jscan_ws(r->buf, r->buf + r->n);
  if (*z != '{') return 0;
  jspan obj = {z, (int)(r->buf + r->n - z)};
  jspan unknown = jscan_field(obj, "unknown_table");
  if (unknown.z) return text_is(unknown, "", table);
  return text_is(jscan_field(obj, "error"), "no such table: ", table);
}

static int walk_request(Walk *w, const char *body) {
  http_opts o;
  client_opts(&o, w->cfg, w->token, CLIENT_PULL);
  if (http_prepare(w->r, w->url, body, &o) != 0) {
    snprintf(w->r->msg, sizeof w->r->msg, "out of memory");
    return -1;
  }
  http_finish(w->r, curl_easy_perform(w->r->easy));
  return w->r->msg[0] ? -1 : 0;
}

/* One table's walk at cursor, its repair spooled under walk. 0 done, 1
** the server moved on (w->err says how), -1 failed. */
static int walk_table(Walk *w, const char *table, const char *cursor, sqlite3_int64 walk,
                      TableStat *st) {
  double t0 = now_ms();
  Verify *v = 0;
  char *body = 0;
  memset(st, 0, sizeof *st);
  int rc = verify_begin(w->c, table, w->client, cursor, walk, &v, &w->err);
  while (rc == SQLITE_OK && (rc = verify_next(v, &body, &w->err)) == SQLITE_OK && body) {
    st->requests++;
    st->bytes += (sqlite3_int64)strlen(body);
    int bad = walk_request(w, body);
    sqlite3_free(body);
    if (bad && st->requests == 1 && not_synced(w->r, table)) {
      st->skipped = 1;
      break;
    }
    if (bad) {
      verify_free(v);
      w->httpFailed = 1;
      return -1;
    }
    st->bytes += (sqlite3_int64)w->r->n;
    rc = verify_take(v, w->r->buf ? w->r->buf : "", &w->err);
  }
  if (rc == SQLITE_OK) {
    st->checked = verify_checked(v);
    st->diverged = verify_diverged(v);
    st->ms = now_ms() - t0;
  }
  verify_free(v);
  w->rc = rc;
  return rc == SQLITE_OK ? 0 : rc == SQLITE_ABORT ? 1 : -1;
}

/* The JSON report of a finished walk (every table repaired). */
static char *report(char **names, const TableStat *st, int n, sqlite3_int64 *pTotal) {
  sqlite3_str *s = sqlite3_str_new(0);
  sqlite3_int64 total = 0;
  sqlite3_str_appendall(s, "{\"tables\":[");
  for (int i = 0; i < n; i++) {
    sqlite3_str_appendall(s, i ? ",{\"table\":" : "{\"table\":");
    value_append_string(s, names[i], -1);
    sqlite3_str_appendf(s,
                        ",\"checked\":%lld,\"diverged\":%lld,\"repaired\":%lld,\"ms\":%lld,"
                        "\"requests\":%lld,\"bytes\":%lld%s}",
                        st[i].checked, st[i].diverged, st[i].diverged, (sqlite3_int64)st[i].ms,
                        st[i].requests, st[i].bytes,
                        st[i].skipped ? ",\"skipped\":\"the server does not sync it\"" : "");
    total += st[i].diverged;
  }
  sqlite3_str_appendf(s, "],\"diverged\":%lld,\"repaired\":%lld}", total, total);
  *pTotal = total;
  return sqlite3_str_finish(s);
}

/* Every table of names at the client's cursor, then the repair and its
** record in one transaction. 0 with *pReport, 1 the server moved on, -1
** failed (w says why). */
static int walk_all(Walk *w, char **names, int n, char **pReport) {
  *pReport = 0;
  TableStat *st = sqlite3_malloc64(sizeof *st * (size_t)(n ? n : 1));
  char *cursor = ctx_meta_get(w->c, "cursor");
  sqlite3_int64 walk = 0;
  int out = st ? 0 : -1;
  if (!st) w->rc = SQLITE_NOMEM;
  if (out == 0 && (w->rc = verify_spool_open(w->c, &walk, &w->err)) != SQLITE_OK) out = -1;
  for (int i = 0; out == 0 && i < n; i++)
    out = walk_table(w, names[i], cursor ? cursor : "", walk, &st[i]);
  /* the walk given up: nothing it spooled is left (the repair drops its own) */
  if (out != 0 && walk) verify_spool_drop(w->c, walk);
  if (out == 0) {
    sqlite3_int64 total = 0;
    char *json = report(names, st, n, &total);
    ApplyResult res;
    memset(&res, 0, sizeof res);
    w->rc = json ? verify_repair(w->c, walk, total, json, &res, &w->err) : SQLITE_NOMEM;
    if (!json) verify_spool_drop(w->c, walk);
    if (w->rc == SQLITE_OK) {
      site_publish(w->site, &res);
      *pReport = json;
    } else {
      sqlite3_free(json);
      out = -1;
    }
    apply_result_clear(&res);
  }
  sqlite3_free(cursor);
  sqlite3_free(st);
  return out;
}

void verify_net_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  Oneshot x;
  if (oneshot_open(&x, ctx, "sync_verify") != 0) return;
  char **names = 0;
  int n = 0;
  char *url = http_url(x.url, "/verify", 0, 0);
  char *client = ctx_meta_get(x.c, "client_id");
  Walk w = {x.c, x.nc->site, &x.r, &x.cfg, x.token, url, client, SQLITE_OK, 0, 0};
  if (!url || !client) {
    sqlite3_result_error_nomem(ctx);
  } else if (table_names(&x, argc ? argv[0] : 0, &names, &n) == 0) {
    int out = 1;
    for (int attempt = 0; out == 1 && attempt < VERIFY_TRIES; attempt++) {
      int64_t pulled = 0;
      if (oneshot_pull_all(&x, &pulled) != 0) {
        out = 2; /* the pull's error is set */
        break;
      }
      sqlite3_free(w.err);
      w.err = 0;
      char *json = 0;
      out = walk_all(&w, names, n, &json);
      if (out == 0) sqlite3_result_text(ctx, json, -1, sqlite3_free);
    }
    if (out == 1)
      ctx_error(ctx, "sync_verify", "the server kept changing (%s); try again", w.err);
    else if (out < 0 && w.httpFailed)
      oneshot_fail(&x);
    else if (out < 0)
      ctx_error_msg(ctx, x.c, "sync_verify", w.rc, w.err), w.err = 0;
  }
  sqlite3_free(w.err);
  track_names_free(names, n);
  sqlite3_free(client);
  sqlite3_free(url);
  oneshot_close(&x);
}

int verify_net_worker(Site *site, SyncCtx *c, const sync_conf *cfg, const char *token,
                      char **pzErr) {
  *pzErr = 0;
  char *base = ctx_meta_get(c, "url"), *client = ctx_meta_get(c, "client_id");
  char **names = 0;
  int n = 0;
  int rc = track_names(c, 0, &names, &n);
  http_req r;
  http_req_init(&r);
  char *url = base && client ? http_url(base, "/verify", 0, 0) : 0;
  Walk w = {c, site, &r, cfg, token, url, client, rc, 0, 0};
  char *json = 0;
  int out = rc == SQLITE_OK && url ? walk_all(&w, names, n, &json) : -1;
  /* A server that does not offer /verify (an older syncd; one from before
  ** this one answered for a user's readable rows under rules said 501). */
  if (out != 0 && w.httpFailed && (r.status == 404 || r.status == 501)) out = 3;
  if (out != 0 && w.httpFailed && client_classify(&r, CLIENT_PULL, 0) == CL_AUTH) out = 4;
  if (out != 0)
    *pzErr = w.httpFailed ? sqlite3_mprintf("%s", r.msg)
             : w.err      ? sqlite3_mprintf("%s", w.err)
                          : sqlite3_mprintf("%s", sqlite3_errstr(w.rc ? w.rc : SQLITE_NOMEM));
  sqlite3_free(json);
  sqlite3_free(w.err);
  sqlite3_free(url);
  sqlite3_free(base);
  sqlite3_free(client);
  http_req_free(&r);
  track_names_free(names, n);
  return out;
}

int verify_net_sched(VerifySched *vs, int64_t now, Site *site, SyncCtx *c, const sync_conf *cfg,
                     const char *token, char **pzErr) {
  int64_t every = cfg->verify_interval_s * 1000;
  /* 0 turns verification off, the one after a first sync too */
  if (vs->off || !every) return 2;
  /* from the last one, so that a new interval counts at once */
  if (!vs->last) vs->last = now;
  if (!vs->due && now < vs->last + every) return 2;
  char *cursor = ctx_meta_get(c, "cursor"); /* none yet: the first sync comes first */
  sqlite3_free(cursor);
  if (!cursor) return 2;
  int out = verify_net_worker(site, c, cfg, token, pzErr);
  /* moved on: again after a pull; token refused: again once a new one is in */
  if (out != 1 && out != 4) vs->due = 0, vs->last = now;
  if (out == 3) {
    /* not an error of this client's: it stops asking until restarted */
    vs->off = 1;
    sqlite3_free(*pzErr);
    *pzErr = 0;
    return 2;
  }
  return out;
}
