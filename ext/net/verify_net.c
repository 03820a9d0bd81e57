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
** mutations rebased on top. Like sync_pull, it holds this process's worker
** off while it runs and refuses to run inside a transaction.
** Errors (all "sync_verify: cause"):
**   sync_verify: table "x" is not tracked
**   sync_verify: the server kept changing (the client is at s1-9, ...)
**   sync_verify: cannot reach http://...: Couldn't connect to server
**   sync_verify: HTTP 404: not found                (a server without /verify)
*/
#include "verify_net.h"
#include "oneshot.h"
#include "table.h"
#include "value.h"
#include "verify.h"

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
  sqlite3_stmt *s;
  if (sqlite3_prepare_v2(x->c->db, "SELECT name FROM main.sync_tracked ORDER BY name", -1, &s, 0)) {
    ctx_error_db(x->ctx, x->c, x->fn, sqlite3_errcode(x->c->db));
    return -1;
  }
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    char **a = sqlite3_realloc64(*pNames, sizeof *a * (size_t)(*pN + 1));
    char *name = a ? sqlite3_mprintf("%s", sqlite3_column_text(s, 0)) : 0;
    if (a) *pNames = a;
    if (!name) {
      rc = SQLITE_NOMEM;
      break;
    }
    a[(*pN)++] = name;
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) {
    ctx_error_db(x->ctx, x->c, x->fn, rc);
    return -1;
  }
  return 0;
}

/* What one table's walk found. */
typedef struct TableStat {
  sqlite3_int64 checked, diverged, requests, bytes;
  double ms;
} TableStat;

/* One table's walk, at cursor: its repair appended to changes. 0 done, 1
** the server moved on (*pzMoved says how), -1 failed (the error set on x's
** ctx). */
static int verify_table(Oneshot *x, const char *url, const char *table, const char *client,
                        const char *cursor, sqlite3_str *changes, TableStat *st, char **pzMoved) {
  double t0 = now_ms();
  Verify *v = 0;
  char *err = 0, *body = 0;
  memset(st, 0, sizeof *st);
  int rc = verify_begin(x->c, table, client, cursor, &v, &err);
  while (rc == SQLITE_OK && (rc = verify_next(v, &body, &err)) == SQLITE_OK && body) {
    st->requests++;
    st->bytes += (sqlite3_int64)strlen(body);
    int bad = oneshot_request(x, url, body, CLIENT_PULL);
    sqlite3_free(body);
    if (bad) {
      verify_free(v);
      oneshot_fail(x);
      return -1;
    }
    st->bytes += (sqlite3_int64)x->r.n;
    rc = verify_take(v, x->r.buf ? x->r.buf : "", &err);
  }
  int out = 0;
  if (rc == SQLITE_ABORT) {
    *pzMoved = err;
    err = 0;
    out = 1;
  } else if (rc != SQLITE_OK) {
    ctx_error_msg(x->ctx, x->c, x->fn, rc, err);
    err = 0;
    out = -1;
  } else {
    st->checked = verify_checked(v);
    st->diverged = verify_diverged(v);
    const char *z = verify_changes(v);
    if (*z && sqlite3_str_length(changes)) sqlite3_str_appendchar(changes, 1, ',');
    sqlite3_str_appendall(changes, z);
    st->ms = now_ms() - t0;
  }
  sqlite3_free(err);
  verify_free(v);
  return out;
}

/* The JSON report of a finished call (every table repaired). */
static char *report(char **names, const TableStat *st, int n) {
  sqlite3_str *s = sqlite3_str_new(0);
  sqlite3_int64 total = 0;
  sqlite3_str_appendall(s, "{\"tables\":[");
  for (int i = 0; i < n; i++) {
    sqlite3_str_appendall(s, i ? ",{\"table\":" : "{\"table\":");
    value_append_string(s, names[i], -1);
    sqlite3_str_appendf(s,
                        ",\"checked\":%lld,\"diverged\":%lld,\"repaired\":%lld,\"ms\":%lld,"
                        "\"requests\":%lld,\"bytes\":%lld}",
                        st[i].checked, st[i].diverged, st[i].diverged, (sqlite3_int64)st[i].ms,
                        st[i].requests, st[i].bytes);
    total += st[i].diverged;
  }
  sqlite3_str_appendf(s, "],\"diverged\":%lld,\"repaired\":%lld}", total, total);
  return sqlite3_str_finish(s);
}

void verify_net_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  Oneshot x;
  if (oneshot_open(&x, ctx, "sync_verify") != 0) {
    oneshot_close(&x);
    return;
  }
  char **names = 0;
  int n = 0;
  char *url = http_url(x.url, "/verify", 0, 0);
  char *client = ctx_meta_get(x.c, "client_id");
  TableStat *st = 0;
  if (!url || !client) {
    sqlite3_result_error_nomem(ctx);
  } else if (table_names(&x, argc ? argv[0] : 0, &names, &n) == 0) {
    st = sqlite3_malloc64(sizeof *st * (size_t)(n ? n : 1));
    char *moved = 0;
    int done = 0;
    for (int attempt = 0; st && !done && attempt < VERIFY_TRIES; attempt++) {
      int64_t pulled = 0;
      if (oneshot_pull_all(&x, &pulled) != 0) break;
      char *cursor = ctx_meta_get(x.c, "cursor");
      sqlite3_str *changes = sqlite3_str_new(0);
      int out = 0;
      sqlite3_free(moved);
      moved = 0;
      for (int i = 0; out == 0 && i < n; i++)
        out =
            verify_table(&x, url, names[i], client, cursor ? cursor : "", changes, &st[i], &moved);
      char *all = sqlite3_str_finish(changes);
      if (out == 0) {
        sqlite3_int64 applied = 0;
        char *err = 0;
        int rc = all ? verify_repair(x.c, all, &applied, &err) : SQLITE_NOMEM;
        char *json = rc == SQLITE_OK ? report(names, st, n) : 0;
        if (rc == SQLITE_OK && json)
          sqlite3_result_text(ctx, json, -1, sqlite3_free);
        else if (rc == SQLITE_OK)
          sqlite3_result_error_nomem(ctx);
        else
          ctx_error_msg(ctx, x.c, "sync_verify", rc, err);
        done = 1;
      } else if (out < 0) {
        done = 1;
      }
      sqlite3_free(all);
      sqlite3_free(cursor);
    }
    if (!st)
      sqlite3_result_error_nomem(ctx);
    else if (!done && moved)
      ctx_error(ctx, "sync_verify", "the server kept changing (%s); try again", moved);
    sqlite3_free(moved);
  }
  for (int i = 0; i < n; i++)
    sqlite3_free(names[i]);
  sqlite3_free(names);
  sqlite3_free(st);
  sqlite3_free(client);
  sqlite3_free(url);
  oneshot_close(&x);
}
