/*
** outbox.c: the queue of pending mutations, on its way out and back.
**
**   SELECT sync_pending();            -- how many mutations wait
**   SELECT sync_push_batch();         -- next push request body, or NULL
**   SELECT sync_push_batch(10);       -- 10 mutations (more to reach the
**                                     -- row one refers to: batchcut.c)
**   SELECT sync_push_batch(10, 7);    -- at most 10, those after id 7 (a
**                                     -- batch whose answer is still awaited)
**   SELECT sync_ack('{"results":[{"id":1,"status":"applied","row":{...},"version":7}]}');
**
** sync_push_batch returns {"client_id":"...","mutations":[{"id":1,"table":"t",
** "op":"insert","pk":{...},"data":{...}},...]} in id order. sync_ack takes the
** server's answer: an applied mutation leaves the outbox and the server's row
** (with server-made values) becomes the row's image; a rejected one moves to
** sync_rejected; either way the row is rebased so that it shows the server's
** row plus what is still pending. Ids not in the outbox are ignored; a
** pending one above the highest id sync_push_batch has handed out
** (sync_control.sent_id) is refused: the server cannot have received it. It
** returns how many mutations it resolved, and changes nothing on error.
** sync_ack(response, top) says the answer is to a batch whose last id was
** top: then a pending id above top is refused too (sync_push sends the next
** batch before it acknowledges an answer, so sent_id is already past it):
**   sync_ack: response must be a JSON object with a "results" array
**   sync_ack: result 2 has no integer "id"
**   sync_ack: result 2 has unknown status "x"
**   sync_ack: "row" of result 2 must be an object or null
**   sync_ack: result 2: mutation 7 is above the highest mutation id this
**             client has sent (5)
**   sync_ack: result 2: mutation 7 is above top (6), the last id of the batch
**             answered
**   sync_ack: top must be a mutation id (an integer >= 0)
**
** The network layer (ext/net/) uses the same code through C (outbox.h):
** outbox_batch builds a batch, outbox_answer resolves the answer to one,
** outbox_record_attempt notes a failed push on its mutations and
** outbox_first gives the lowest pending id; outbox_counts feeds
** sync_status and outbox_changes_after sync_wait(.., 'all'). Nothing
** outside ext/engine/ queries the outbox.
*/
#include "outbox.h"
#include "batchcut.h"
#include "guard.h"
#include "jscan.h"
#include "rebase.h"
#include "table.h"
#include "value.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void outbox_fn_pending(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc, (void)argv;
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!ctx_require_init(ctx, c, "sync_pending")) return;
  sqlite3_stmt *s = ctx_stmt(c, STMT_PENDING_COUNT);
  if (!s || sqlite3_step(s) != SQLITE_ROW) {
    ctx_error_db(ctx, c, "sync_pending", sqlite3_errcode(c->db));
  } else {
    sqlite3_result_int64(ctx, sqlite3_column_int64(s, 0));
  }
  if (s) sqlite3_reset(s);
}

/* sync_wire(json): the JSON with {"$hex":..} blobs in wire form. */
void outbox_fn_wire(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
  const char *z = (const char *)sqlite3_value_text(argv[0]);
  int n = sqlite3_value_bytes(argv[0]);
  sqlite3_str *out = sqlite3_str_new(0);
  value_append_wire(out, z, n);
  ctx_result_str(ctx, out);
}

int outbox_batch(SyncCtx *c, sqlite3_int64 limit, sqlite3_int64 after, OutboxBatch *out,
                 char **pzErr) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT id, tbl, op, pk, data FROM sync_outbox WHERE id > ?1"
                              " AND id <= ?2 ORDER BY id LIMIT ?3",
                              -1, &s, 0);
  char *client = rc == SQLITE_OK ? ctx_meta_get(c, "client_id") : 0;
  if (rc != SQLITE_OK || !client) {
    sqlite3_finalize(s);
    *pzErr = sqlite3_mprintf("%s", rc ? ctx_errmsg(c, rc) : "out of memory");
    return rc ? rc : SQLITE_NOMEM;
  }
  sqlite3_str *body = sqlite3_str_new(c->db);
  sqlite3_str_appendall(body, "{\"client_id\":");
  value_append_string(body, client, -1);
  sqlite3_str_appendall(body, ",\"mutations\":[");
  int n = 0;
  /* limit mutations, then those up to where cut_extend says the batch ends */
  sqlite3_int64 from = after, to = (sqlite3_int64)(~0ULL >> 1), most = limit;
  for (int pass = 0; pass < 2; pass++) {
    sqlite3_bind_int64(s, 1, from);
    sqlite3_bind_int64(s, 2, to);
    sqlite3_bind_int64(s, 3, most);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      out->top = sqlite3_column_int64(s, 0);
      if (!n) out->first = out->top;
      sqlite3_str_appendf(body, "%s{\"id\":%lld,\"table\":", n++ ? "," : "", out->top);
      value_append_string(body, (const char *)sqlite3_column_text(s, 1), -1);
      sqlite3_str_appendall(body, ",\"op\":");
      value_append_string(body, (const char *)sqlite3_column_text(s, 2), -1);
      sqlite3_str_appendall(body, ",\"pk\":");
      value_append_wire(body, (const char *)sqlite3_column_text(s, 3), sqlite3_column_bytes(s, 3));
      sqlite3_str_appendall(body, ",\"data\":");
      if (sqlite3_column_type(s, 4) == SQLITE_NULL)
        sqlite3_str_appendall(body, "null");
      else
        value_append_wire(body, (const char *)sqlite3_column_text(s, 4),
                          sqlite3_column_bytes(s, 4));
      sqlite3_str_appendchar(body, 1, '}');
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE || pass || n < limit) break;
    from = out->top, most = -1;
    rc = cut_extend(c, limit, after, out->top, &to);
    if (rc != SQLITE_OK || to == out->top) {
      rc = rc == SQLITE_OK ? SQLITE_DONE : rc;
      break;
    }
  }
  sqlite3_str_appendall(body, "]}");
  sqlite3_free(client);
  sqlite3_finalize(s);
  s = 0;
  /* Recorded before the body leaves, in the caller's transaction: a
  ** last_mutation_id may then confirm only what a server could have got. */
  if (rc == SQLITE_DONE && n > 0) {
    rc = sqlite3_prepare_v2(c->db, "UPDATE main.sync_control SET sent_id = ?1 WHERE sent_id < ?1",
                            -1, &s, 0);
    if (rc == SQLITE_OK) {
      sqlite3_bind_int64(s, 1, out->top);
      rc = sqlite3_step(s);
    }
  }
  if (rc != SQLITE_DONE) *pzErr = sqlite3_mprintf("%s", ctx_errmsg(c, rc));
  sqlite3_finalize(s);
  int len = sqlite3_str_length(body);
  char *z = sqlite3_str_finish(body);
  if (rc != SQLITE_DONE || n == 0) {
    sqlite3_free(z);
    out->first = out->top = 0;
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
  }
  if (!z || len == 0) {
    sqlite3_free(z);
    out->first = out->top = 0;
    *pzErr = sqlite3_mprintf("out of memory");
    return SQLITE_NOMEM;
  }
  out->body = z;
  return SQLITE_OK;
}

void outbox_fn_push_batch(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!ctx_require_init(ctx, c, "sync_push_batch")) return;
  sqlite3_int64 limit = 1000;
  char *conf = ctx_meta_get(c, "config.batch_size");
  if (conf) limit = strtoll(conf, 0, 10);
  sqlite3_free(conf);
  sqlite3_int64 after = 0;
  if (argc > 0) {
    if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER || sqlite3_value_int64(argv[0]) <= 0) {
      ctx_error(ctx, "sync_push_batch", "limit must be a positive integer");
      return;
    }
    limit = sqlite3_value_int64(argv[0]);
  }
  if (argc > 1) {
    if (sqlite3_value_type(argv[1]) != SQLITE_INTEGER || sqlite3_value_int64(argv[1]) < 0) {
      ctx_error(ctx, "sync_push_batch", "after must be a mutation id (an integer >= 0)");
      return;
    }
    after = sqlite3_value_int64(argv[1]);
  }
  OutboxBatch b;
  char *zErr = 0;
  int rc = outbox_batch(c, limit, after, &b, &zErr);
  if (rc != SQLITE_OK)
    ctx_error_msg(ctx, c, "sync_push_batch", rc, zErr);
  else if (b.body)
    sqlite3_result_text(ctx, b.body, -1, sqlite3_free);
}

/* The server's answer for a tracked table dropped or renamed since it
** was queued still resolves its mutations (applied ones leave the outbox,
** refused ones reach sync_rejected): only the rebase is left out, with no
** row to write, and the key's image goes. Returns SQLITE_OK and clears
** *pzErr when tbl is no table any more; else rc, unchanged. */
static int outbox_table_gone(SyncCtx *c, const char *tbl, const char *pk, int rc, char **pzErr) {
  sqlite3_stmt *s = 0;
  int gone = 0;
  if (sqlite3_prepare_v2(c->db,
                         "SELECT 1 FROM main.sqlite_schema WHERE type = 'table'"
                         " AND name = ?1 COLLATE NOCASE",
                         -1, &s, 0) == SQLITE_OK) {
    sqlite3_bind_text(s, 1, tbl, -1, SQLITE_STATIC);
    gone = sqlite3_step(s) == SQLITE_DONE;
  }
  sqlite3_finalize(s);
  if (!gone) return rc;
  sqlite3_free(*pzErr);
  *pzErr = 0;
  return rebase_drop_image(c, tbl, pk);
}

/* Resolves mutation id as the server decided: applied (with the server's row
** when hasRow; row NULL = no such row now) or rejected (moved to
** sync_rejected with reason); then rebases its key. Returns an SQLite code;
** *pDone is set when the id was in the outbox (other ids are ignored). */
static int outbox_resolve(SyncCtx *c, sqlite3_int64 id, int applied, const char *row, int hasRow,
                          const char *reason, sqlite3_int64 version, int hasVersion, int *pDone,
                          char **pzErr) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_OUTBOX_GET);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_int64(s, 1, id);
  char *tbl = 0, *pk = 0;
  if (sqlite3_step(s) == SQLITE_ROW) {
    tbl = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
    pk = sqlite3_mprintf("%s", sqlite3_column_text(s, 2));
  }
  sqlite3_reset(s);
  if (!tbl || !pk) {
    sqlite3_free(tbl);
    sqlite3_free(pk);
    return SQLITE_OK;
  }
  *pDone = 1;
  SyncTable *t = 0;
  int rc = table_get(c, tbl, 1, &t, pzErr);
  if (rc != SQLITE_OK && rc != SQLITE_NOMEM) rc = outbox_table_gone(c, tbl, pk, rc, pzErr);
  if (rc == SQLITE_OK && applied && hasRow && t)
    rc = rebase_set_image(c, t->name, pk, row, version, hasVersion);
  if (rc == SQLITE_OK && !applied) {
    s = ctx_stmt(c, STMT_REJECT);
    if (!s) rc = sqlite3_errcode(c->db);
    if (s) {
      sqlite3_bind_int64(s, 1, id);
      sqlite3_bind_text(s, 2, reason ? reason : "rejected by the server", -1, SQLITE_STATIC);
      rc = ctx_run(c, s);
    }
  }
  if (rc == SQLITE_OK) {
    s = ctx_stmt(c, STMT_OUTBOX_DEL);
    if (!s) rc = sqlite3_errcode(c->db);
    if (s) {
      sqlite3_bind_int64(s, 1, id);
      rc = ctx_run(c, s);
    }
  }
  if (rc == SQLITE_OK && t) rc = rebase_key(c, t, pk, applied && hasRow, 0, pzErr);
  sqlite3_free(tbl);
  sqlite3_free(pk);
  return rc;
}

/* sync_control.sent_id: the highest id sync_push_batch has handed out. */
int outbox_sent_id(SyncCtx *c, sqlite3_int64 *pSent) {
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db, "SELECT sent_id FROM main.sync_control", -1, &s, 0);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *pSent = sqlite3_column_int64(s, 0);
    rc = rc == SQLITE_ROW ? SQLITE_OK : rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;
  }
  sqlite3_finalize(s);
  return rc;
}

/* One result of a push answer whose mutation is in the outbox. */
typedef struct AckItem {
  sqlite3_int64 id, version;
  int pos;        /* its index in "results": the order the server decided */
  int applied;    /* else rejected */
  int hasRow;     /* "row" given: an object (row) or null (row NULL) */
  int hasVersion; /* "version" is an integer */
  int dup;        /* an earlier result had the same id: ignored */
  char *row, *reason, *tbl, *pk;
} AckItem;

static void ack_free(AckItem *a, int n) {
  for (int i = 0; i < n; i++) {
    sqlite3_free(a[i].row);
    sqlite3_free(a[i].reason);
    sqlite3_free(a[i].tbl);
    sqlite3_free(a[i].pk);
  }
  sqlite3_free(a);
}

static int ack_by_id(const void *x, const void *y) {
  const AckItem *a = x, *b = y;
  if (a->id != b->id) return a->id < b->id ? -1 : 1;
  return a->pos - b->pos;
}

static int ack_by_key(const void *x, const void *y) {
  const AckItem *a = x, *b = y;
  int r = strcmp(a->tbl, b->tbl);
  if (!r) r = strcmp(a->pk, b->pk);
  return r ? r : a->pos - b->pos;
}

/* A key's results, a run [first, first+n) of the items sorted by key. */
typedef struct AckKey {
  int first, n, last; /* last: pos of its last result */
} AckKey;

static int ack_key_by_last(const void *x, const void *y) {
  return ((const AckKey *)x)->last - ((const AckKey *)y)->last;
}

/* A result's fields, read in place (jscan.h): the answer of a batch of
** 1000 read by json_each and seven JSON functions per result took a
** quarter of a drain's client time (bench/RESULTS.md, "PostgreSQL
** drain"). */
enum { F_ID, F_STATUS, F_ROW, F_REASON, F_VERSION, F_N };
static const char *const ack_fields[F_N] = {"id", "status", "row", "reason", "version"};

/* Field v as ->> gives its text: NULL for null or absent, a string
** unescaped, true and false as 1 and 0, any other value as written. *ok
** is 0 when out of memory. */
static char *ack_text(jspan v, int *ok) {
  int nul = 0;
  char *z = 0;
  if (!v.z || jscan_is(v, "null")) return *ok = 1, (char *)0;
  if (v.z[0] == '"')
    z = jscan_text(v, &nul);
  else if (jscan_is(v, "true") || jscan_is(v, "false"))
    z = sqlite3_mprintf("%d", v.z[0] == 't');
  else
    z = jscan_compact(v);
  *ok = z != 0;
  return z;
}

/* Reads and checks every result, joined with its outbox row. Results whose
** id is not pending are skipped; *paItem gets the others in results order. */
static int ack_collect(SyncCtx *c, const char *json, sqlite3_int64 top, AckItem **paItem,
                       int *pnItem, char **pzErr) {
  const char *e = json + strlen(json), *z = jscan_ws(json, e), *end = jscan_valid(z, e, 0);
  if (!end || jscan_ws(end, e) != e) {
    *pzErr = sqlite3_mprintf("response must be a JSON object with a \"results\" array");
    return SQLITE_ERROR;
  }
  jspan results = jscan_field((jspan){z, (int)(end - z)}, "results");
  sqlite3_int64 sent = 0;
  int rc = outbox_sent_id(c, &sent);
  if (rc != SQLITE_OK) return rc;
  /* Which bound an id breaks decides whom the error blames: the answer
  ** (an id never sent) or top (sent, but after the batch answered). */
  sqlite3_int64 bound = top >= 0 && top < sent ? top : sent;
  sqlite3_stmt *s = ctx_stmt(c, STMT_OUTBOX_GET);
  if (!s) return sqlite3_errcode(c->db);
  AckItem *a = 0;
  int n = 0, cap = 0;
  const char *r = results.z;
  jspan v, f[F_N];
  for (int i = 1; rc == SQLITE_OK && jscan_element(&r, results.z + results.n, &v); i++) {
    if (v.z[0] == '{')
      jscan_fields(v, ack_fields, F_N, f);
    else
      memset(f, 0, sizeof f);
    int okStatus = 1, okReason = 1;
    char *status = ack_text(f[F_STATUS], &okStatus);
    const char *rowType = f[F_ROW].z ? jscan_type(f[F_ROW]) : 0;
    sqlite3_int64 id = 0;
    int isId = strcmp(jscan_type(f[F_ID]), "integer") == 0;
    int applied = status && strcmp(status, "applied") == 0;
    int pending = 0;
    /* an integer past 64 bits is no id of the outbox's */
    if (isId && jscan_int64(f[F_ID], &id)) {
      sqlite3_bind_int64(s, 1, id);
      pending = sqlite3_step(s) == SQLITE_ROW;
    }
    if (!okStatus) {
      rc = SQLITE_NOMEM;
    } else if (!isId) {
      *pzErr = sqlite3_mprintf("result %d has no integer \"id\"", i);
    } else if (!applied && !(status && strcmp(status, "rejected") == 0)) {
      *pzErr = sqlite3_mprintf("result %d has unknown status \"%s\"", i, status ? status : "");
    } else if (rowType && strcmp(rowType, "object") != 0 && strcmp(rowType, "null") != 0) {
      *pzErr = sqlite3_mprintf("\"row\" of result %d must be an object or null", i);
    } else if (pending && id > sent) {
      *pzErr = sqlite3_mprintf("result %d: mutation %lld is above the highest mutation id this"
                               " client has sent (%lld)",
                               i, id, sent);
    } else if (pending && id > bound) {
      *pzErr = sqlite3_mprintf("result %d: mutation %lld is above top (%lld), the last id of the"
                               " batch answered",
                               i, id, bound);
    }
    sqlite3_free(status);
    if (*pzErr) rc = SQLITE_ERROR;
    if (rc == SQLITE_OK && pending && n == cap) {
      int ncap = cap ? 2 * cap : 64;
      AckItem *na = sqlite3_realloc64(a, (sqlite3_uint64)ncap * sizeof(*a));
      if (na)
        a = na, cap = ncap;
      else
        rc = SQLITE_NOMEM;
    }
    if (rc == SQLITE_OK && pending) {
      AckItem *it = &a[n++];
      memset(it, 0, sizeof(*it));
      it->id = id;
      it->pos = i;
      it->applied = applied;
      it->hasRow = rowType != 0;
      it->hasVersion = strcmp(jscan_type(f[F_VERSION]), "integer") == 0;
      if (it->hasVersion && !jscan_int64(f[F_VERSION], &it->version))
        it->version = f[F_VERSION].z[0] == '-' ? INT64_MIN : INT64_MAX; /* as a REAL reads */
      if (rowType && strcmp(rowType, "object") == 0 && !(it->row = jscan_compact(f[F_ROW])))
        rc = SQLITE_NOMEM;
      it->reason = ack_text(f[F_REASON], &okReason);
      it->tbl = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
      it->pk = sqlite3_mprintf("%s", sqlite3_column_text(s, 2));
      if (!okReason || !it->tbl || !it->pk) rc = SQLITE_NOMEM;
    }
    sqlite3_reset(s);
  }
  if (rc != SQLITE_OK) {
    ack_free(a, n);
    return rc;
  }
  *paItem = a;
  *pnItem = n;
  return SQLITE_OK;
}

/* Moves the rejected mutations to sync_rejected, then deletes every resolved
** mutation from the outbox in one statement. */
static int ack_dequeue(SyncCtx *c, AckItem *a, int n) {
  int rc = SQLITE_OK;
  sqlite3_str *ids = sqlite3_str_new(c->db);
  for (int i = 0; i < n && rc == SQLITE_OK; i++) {
    if (a[i].dup) continue;
    sqlite3_str_appendf(ids, "%s%lld", sqlite3_str_length(ids) ? "," : "[", a[i].id);
    if (a[i].applied) continue;
    sqlite3_stmt *s = ctx_stmt(c, STMT_REJECT);
    if (!s) return sqlite3_errcode(c->db);
    sqlite3_bind_int64(s, 1, a[i].id);
    sqlite3_bind_text(s, 2, a[i].reason ? a[i].reason : "rejected by the server", -1,
                      SQLITE_STATIC);
    rc = ctx_run(c, s);
  }
  sqlite3_str_appendchar(ids, 1, ']');
  char *list = sqlite3_str_finish(ids);
  if (!list) return SQLITE_NOMEM;
  sqlite3_stmt *s = 0;
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(
        c->db, "DELETE FROM main.sync_outbox WHERE id IN (SELECT value FROM json_each(?1))", -1, &s,
        0);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(s, 1, list, -1, SQLITE_STATIC);
    rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(c->db);
  }
  sqlite3_finalize(s);
  sqlite3_free(list);
  return rc;
}

/* Brings the image of one key up to date with its results a[0..n) (in
** results order, what rebase_set_image would have done one by one), then
** rebases the key once. */
static int ack_key(SyncCtx *c, AckItem *a, int n, sqlite3_int64 pulled, char **pzErr) {
  SyncTable *t = 0;
  int rc = table_get(c, a[0].tbl, 1, &t, pzErr);
  if (rc != SQLITE_OK)
    return rc == SQLITE_NOMEM ? rc : outbox_table_gone(c, a[0].tbl, a[0].pk, rc, pzErr);
  sqlite3_stmt *s = ctx_stmt(c, STMT_SHADOW_GET);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, a[0].pk, -1, SQLITE_STATIC);
  char *held = 0;
  int had = 0, verInt = 0;
  sqlite3_int64 ver = 0;
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    had = 1;
    verInt = sqlite3_column_type(s, 1) == SQLITE_INTEGER;
    ver = sqlite3_column_int64(s, 1);
    if (sqlite3_column_type(s, 0) != SQLITE_NULL) {
      held = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
      if (!held) rc = SQLITE_NOMEM;
    }
  }
  sqlite3_reset(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    sqlite3_free(held);
    return rc;
  }
  /* The image: the held one, replaced by each applied row in turn unless
  ** the image then held carries a newer server version. An applied result
  ** without a version changed nothing on the server (a delete of a row
  ** already gone): the version known so far still dates the image. */
  const AckItem *img = 0;
  for (int i = 0; i < n; i++) {
    if (a[i].dup || !a[i].applied || !a[i].hasRow) continue;
    int exists = had || img;
    if (exists && a[i].hasVersion && verInt && ver > a[i].version) continue;
    img = &a[i];
    if (a[i].hasVersion) verInt = 1, ver = a[i].version;
  }
  const char *image = img ? img->row : held;
  int pending = 0, net = 0, fell = 0;
  /* as rebase_key: only a delete this answer applied is fresh */
  int gone = !image && img && img->hasVersion;
  rc = rebase_write(c, t, a[0].pk, image, gone, &pending, &net, &fell, pzErr);
  /* Still pending: keep the new image. Nothing pending: the image goes,
  ** unless the row now shows it and its version is one whose echo is
  ** still to come: a row this answer confirmed, or a version no page has
  ** carried yet (rebase_pulled), dating an image held from an earlier
  ** answer (this one refused what followed it, or changed nothing: a
  ** delete of a row already gone). Then it stays as a guard, so that a
  ** change older than the push (a page fetched or an event held before its
  ** answer) cannot take the row back; the first change at least as new
  ** drops it (rebase_key). An image of a version pulled already goes: no
  ** echo would end it, and a guard makes its table's pages slow. */
  int dated = verInt && net && ((img && img->hasVersion) || ver > pulled);
  int keep = pending ? img != 0 : img && dated;
  /* A held image with nothing applied now stays as it is when so dated,
  ** and before the first pull whatever the row (rebase_before_pull). */
  int hold = !pending && !img && had && verInt && (dated || (held && rebase_before_pull(c)));
  if (rc == SQLITE_OK && !pending && fell) {
    /* Another key of this answer may still hold what the row needs, or
    ** rows the server holds still refer to a row whose refused insert
    ** cannot delete it (an image of "absent" is guarded too, see
    ** rebase_key). */
    rc = rebase_guard(c, t->name, a[0].pk, image, ver, verInt, img != 0 || !image);
  } else if (rc == SQLITE_OK && !hold && (keep || (!pending && had))) {
    s = ctx_stmt(c, keep ? STMT_SHADOW_PUT : STMT_SHADOW_DROP);
    if (!s) rc = sqlite3_errcode(c->db);
    if (s) {
      sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
      sqlite3_bind_text(s, 2, a[0].pk, -1, SQLITE_STATIC);
      if (keep && img->row) sqlite3_bind_text(s, 3, img->row, -1, SQLITE_STATIC);
      if (keep && verInt) sqlite3_bind_int64(s, 4, ver);
      rc = ctx_run(c, s);
    }
  }
  sqlite3_free(held);
  return rc;
}

/* Resolves the collected results set-wise: one outbox delete for all of
** them, then one rebase per key, keys in the order of their last result
** (the order in which resolving them one by one would have left them). */
static int ack_resolve(SyncCtx *c, AckItem *a, int n, sqlite3_int64 *pDone, char **pzErr) {
  if (n == 0) return SQLITE_OK;
  qsort(a, n, sizeof(*a), ack_by_id);
  sqlite3_int64 done = 0;
  for (int i = 0; i < n; i++) {
    a[i].dup = i > 0 && a[i].id == a[i - 1].id;
    done += !a[i].dup;
  }
  int rc = ack_dequeue(c, a, n);
  if (rc != SQLITE_OK) return rc;
  qsort(a, n, sizeof(*a), ack_by_key);
  AckKey *k = sqlite3_malloc64((sqlite3_uint64)n * sizeof(*k));
  if (!k) return SQLITE_NOMEM;
  int nk = 0;
  for (int i = 0; i < n; i++) {
    if (i == 0 || strcmp(a[i].tbl, a[i - 1].tbl) != 0 || strcmp(a[i].pk, a[i - 1].pk) != 0)
      k[nk++] = (AckKey){i, 0, 0};
    k[nk - 1].n++;
    if (!a[i].dup) k[nk - 1].last = a[i].pos;
  }
  qsort(k, nk, sizeof(*k), ack_key_by_last);
  sqlite3_int64 pulled = rebase_pulled_version(c);
  for (int i = 0; i < nk && rc == SQLITE_OK; i++)
    rc = ack_key(c, a + k[i].first, k[i].n, pulled, pzErr);
  sqlite3_free(k);
  /* Rows that could not take the server's state while another key of the
  ** answer was still in the way try again now that all are resolved. */
  if (rc == SQLITE_OK) rc = rebase_guards(c, 0, pzErr);
  *pDone = done;
  return rc;
}

/* sync_ack(answer, top) in C (top -1: no bound): resolves the server's
** answer as one engine write. *pDone gets how many mutations it resolved. */
static int outbox_ack(SyncCtx *c, const char *answer, sqlite3_int64 top, sqlite3_int64 *pDone,
                      char **pzErr) {
  *pDone = 0;
  if (!ctx_json_is(c, answer, "$.results", "array")) {
    *pzErr = sqlite3_mprintf("response must be a JSON object with a \"results\" array");
    return SQLITE_ERROR;
  }
  AckItem *a = 0;
  int n = 0;
  int rc = ctx_engine_begin(c);
  if (rc == SQLITE_OK) rc = ack_collect(c, answer, top, &a, &n, pzErr);
  if (rc == SQLITE_OK) rc = ack_resolve(c, a, n, pDone, pzErr);
  ack_free(a, n);
  return ctx_engine_end(c, rc, pzErr);
}

void outbox_fn_ack(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!ctx_require_init(ctx, c, "sync_ack")) return;
  sqlite3_int64 top = -1;
  if (argc > 1) {
    if (sqlite3_value_type(argv[1]) != SQLITE_INTEGER || sqlite3_value_int64(argv[1]) < 0) {
      ctx_error(ctx, "sync_ack", "top must be a mutation id (an integer >= 0)");
      return;
    }
    top = sqlite3_value_int64(argv[1]);
  }
  char *zErr = 0;
  sqlite3_int64 done = 0;
  int rc = outbox_ack(c, (const char *)sqlite3_value_text(argv[0]), top, &done, &zErr);
  if (rc != SQLITE_OK) {
    ctx_error_msg(ctx, c, "sync_ack", rc, zErr);
    return;
  }
  sqlite3_result_int64(ctx, done);
}

/* ---- for the network layer ---- */

void outbox_record_attempt(SyncCtx *c, sqlite3_int64 first, sqlite3_int64 top, const char *why) {
  sqlite3_stmt *s = 0;
  if (sqlite3_prepare_v2(c->db,
                         "UPDATE main.sync_outbox SET attempts = attempts + 1, last_error = ?3"
                         " WHERE id BETWEEN ?1 AND ?2",
                         -1, &s, 0) == SQLITE_OK) {
    sqlite3_bind_int64(s, 1, first);
    sqlite3_bind_int64(s, 2, top);
    sqlite3_bind_text(s, 3, why, -1, SQLITE_STATIC);
    sqlite3_step(s);
  }
  sqlite3_finalize(s);
}

/* 1 when a mutation with an id from first to top is still in the outbox. */
static int outbox_holds(SyncCtx *c, sqlite3_int64 first, sqlite3_int64 top) {
  sqlite3_stmt *s = 0;
  int yes = 0;
  if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM main.sync_outbox WHERE id BETWEEN ?1 AND ?2 LIMIT 1",
                         -1, &s, 0) == SQLITE_OK) {
    sqlite3_bind_int64(s, 1, first);
    sqlite3_bind_int64(s, 2, top);
    yes = sqlite3_step(s) == SQLITE_ROW;
  }
  sqlite3_finalize(s);
  return yes;
}

int outbox_answer(SyncCtx *c, const char *answer, const OutboxBatch *b, sqlite3_int64 *pDone,
                  char **pzErr) {
  static const char none[] = "the server's answer resolved none of the batch";
  *pDone = 0;
  char *why = 0;
  int began = ctx_tx_begin(c);
  int rc = began < 0 ? sqlite3_errcode(c->db) : outbox_ack(c, answer, b->top, pDone, &why);
  rc = ctx_tx_end(c, began, rc, &why);
  if (rc != SQLITE_OK) {
    *pzErr = sqlite3_mprintf("sync_ack: %s", why ? why : sqlite3_errstr(rc));
  } else if (*pDone == 0 && outbox_holds(c, b->first, b->top)) {
    /* An answer that resolved none may be fine: an event's
    ** last_mutation_id can confirm the batch while its answer is on the
    ** way. Otherwise it is an error, recorded on the batch. */
    outbox_record_attempt(c, b->first, b->top, none);
    *pzErr = sqlite3_mprintf("%s", none);
    rc = SQLITE_ERROR;
  }
  sqlite3_free(why);
  return rc;
}

int outbox_counts(SyncCtx *c, sqlite3_int64 *pPending, sqlite3_int64 *pRejected) {
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT (SELECT count(*) FROM main.sync_outbox),"
                              " (SELECT count(*) FROM main.sync_rejected)",
                              -1, &s, 0);
  if (rc == SQLITE_OK) rc = sqlite3_step(s) == SQLITE_ROW ? SQLITE_OK : sqlite3_errcode(c->db);
  if (rc == SQLITE_OK) {
    *pPending = sqlite3_column_int64(s, 0);
    *pRejected = sqlite3_column_int64(s, 1);
  }
  sqlite3_finalize(s);
  return rc;
}

sqlite3_int64 outbox_first(SyncCtx *c) {
  sqlite3_stmt *s = 0;
  sqlite3_int64 id = 0;
  if (sqlite3_prepare_v2(c->db, "SELECT min(id) FROM main.sync_outbox", -1, &s, 0) == SQLITE_OK &&
      sqlite3_step(s) == SQLITE_ROW)
    id = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return id;
}

/* The server has processed this client's mutations up to upto (their push
** answer was lost). Those the page lists under "rejected" move to
** sync_rejected with the server's reason; the others were applied and leave
** the outbox. Their keys are rebased. The ids are read first: resolving
** writes the outbox. rejected (nRejected bytes) is the page's "rejected"
** array or NULL. */
int outbox_confirm_upto(SyncCtx *c, const char *rejected, int nRejected, sqlite3_int64 upto,
                        char **pzErr) {
  sqlite3_stmt *r = 0;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT value->>'$.id', value->>'$.reason' FROM json_each(?1)"
                              " WHERE json_type(value,'$.id') = 'integer'"
                              " AND value->>'$.id' <= ?2 ORDER BY value->>'$.id'",
                              -1, &r, 0);
  if (rc != SQLITE_OK) return rc;
  if (rejected) sqlite3_bind_text(r, 1, rejected, nRejected, SQLITE_STATIC);
  sqlite3_bind_int64(r, 2, upto);
  int done = 0;
  while (rc == SQLITE_OK && sqlite3_step(r) == SQLITE_ROW) {
    const char *reason = (const char *)sqlite3_column_text(r, 1);
    rc = outbox_resolve(c, sqlite3_column_int64(r, 0), 0, 0, 0,
                        reason ? reason : "rejected by the server", 0, 0, &done, pzErr);
  }
  sqlite3_finalize(r);
  if (rc != SQLITE_OK) return rc;

  sqlite3_stmt *s = ctx_stmt(c, STMT_OUTBOX_UPTO);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_int64(s, 1, upto);
  sqlite3_int64 *ids = 0;
  int n = 0, cap = 0;
  while (sqlite3_step(s) == SQLITE_ROW) {
    if ((rc = ctx_room(&ids, &cap, n, sizeof *ids)) != SQLITE_OK) break;
    ids[n++] = sqlite3_column_int64(s, 0);
  }
  sqlite3_reset(s);
  for (int i = 0; rc == SQLITE_OK && i < n; i++)
    rc = outbox_resolve(c, ids[i], 1, 0, 0, 0, 0, 0, &done, pzErr);
  sqlite3_free(ids);
  return rc;
}

/* Appends each name sql (rows of name, count; lo and hi bound as ?1, ?2
** when it has them) returns, NUL-terminated, to names, and adds the counts
** to *pN. */
static int append_names(SyncCtx *c, const char *sql, sqlite3_int64 lo, sqlite3_int64 hi,
                        sqlite3_str *names, sqlite3_int64 *pN) {
  sqlite3_stmt *q = 0;
  int rc = sqlite3_prepare_v2(c->db, sql, -1, &q, 0);
  if (rc != SQLITE_OK) return rc;
  if (sqlite3_bind_parameter_count(q) == 2) {
    sqlite3_bind_int64(q, 1, lo);
    sqlite3_bind_int64(q, 2, hi);
  }
  while (sqlite3_step(q) == SQLITE_ROW) {
    sqlite3_str_appendall(names, (const char *)sqlite3_column_text(q, 0));
    sqlite3_str_appendchar(names, 1, 0);
    *pN += sqlite3_column_int64(q, 1);
  }
  rc = sqlite3_finalize(q);
  return rc == SQLITE_OK ? sqlite3_str_errcode(names) : rc;
}

int outbox_changes_after(SyncCtx *c, sqlite3_int64 lo, sqlite3_int64 *pMark, sqlite3_str *names) {
  /* The mark the capture triggers number from (last_id keeps the highest
  ** id once its row has gone); cached: the worker asks at every batch. */
  sqlite3_stmt *q = ctx_stmt(c, STMT_LAST_ID);
  if (!q) return SQLITE_ERROR;
  sqlite3_int64 hi = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
  int rc = sqlite3_reset(q);
  if (rc != SQLITE_OK || hi < 0) return rc != SQLITE_OK ? rc : SQLITE_ERROR;
  *pMark = hi;
  if (lo < 0 || hi <= lo) return SQLITE_OK;
  sqlite3_int64 n = 0;
  rc = append_names(c,
                    "SELECT tbl, count(*) FROM main.sync_outbox WHERE id > ?1 AND id <= ?2"
                    " GROUP BY tbl",
                    lo, hi, names, &n);
  if (rc == SQLITE_OK && n < hi - lo)
    rc = append_names(c, "SELECT name, 0 FROM main.sync_tracked", 0, 0, names, &n);
  return rc;
}
