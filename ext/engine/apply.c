/*
** apply.c: sync_apply, the server's changes into the local tables.
**
**   SELECT sync_apply('{"changes":[
**            {"table":"todos","op":"upsert","pk":{"id":"a"},"row":{...},"version":12},
**            {"table":"todos","op":"delete","pk":{"id":"b"},"version":13}],
**          "cursor":"s1-13","last_mutation_id":17,"has_more":false}');   -- 2
**
** The shape of a pull page and of an SSE event. Everything, cursor included,
** commits in one savepoint or not at all; the engine's writes are not queued.
** Changes apply in page order. A change to a key without pending mutations
** is written as is. For a key with pending mutations the server's row
** becomes the key's image and the row is rebased, so local edits stay
** visible until confirmed or refused. last_mutation_id says the server has
** processed this client's mutations up to that id (their push response was
** lost): they leave the outbox, the ones listed in
** "rejected":[{"id":..,"reason":..}] into sync_rejected (a server gives that
** list when the pull names the lowest pending id). It is taken from the last
** page only (has_more absent or false), because only then have the pages
** delivered every change those mutations made; before that the image would
** lack them and the row would flicker back.
**
** Applying the server's state never fails because of local state, and the
** server's state is consistent only at a pull's end (the log keeps the latest
** change per row). So, foreign keys on or off:
**   - foreign keys are deferred (PRAGMA defer_foreign_keys, ctx.c) and
**     checked at the end of the apply (SQLITE_DBSTATUS_DEFERRED_FKS);
**   - with foreign keys enforced, a delete of a row that other rows refer
**     to is put off to the end of the apply, so that its cascade takes
**     only what the server's took (put_off, below);
**   - a row a UNIQUE index refuses is retried after the other changes, and
**     rows that block each other (a swap, a rotation) are parked out of the
**     way (inbox.c); a pending local row in the way has its local effect
**     hidden (its server image, or no row) while its mutations stay queued;
**   - a page that still cannot apply (a foreign key left dangling, a UNIQUE
**     value held by a row whose change is on a later page, a delete put off
**     whose row is still referred to) is staged in sync_inbox and its
**     cursor kept, and sync_apply returns 0. While pages
**     are staged, the next pages with has_more true are staged unread; the
**     last page (or an event) applies them all, then itself, in one
**     savepoint. On that last page a UNIQUE value a row outside the pull
**     still holds is the server's: that row is deleted. An event is one
**     push's consistent result, so it counts as a last page, unless pages
**     are staged (a pull is under way): then what it cannot apply waits.
**   - a change for a table this client does not track (the server added it
**     later) is skipped, not refused, and counted: sync_meta
**     'skipped_changes' holds the running total (ApplyResult.skipped).
**
** The page is read here, in C, once: a validating pass with the rules of
** SQLite's json_valid (3.40: RFC 8259 text, nesting up to 2000), then one
** walk over the changes. Values are never converted through a double:
** each one's JSON text is bound by value_bind (the rules of sync_val) into
** a statement kept per table, one INSERT ... ON CONFLICT DO UPDATE for a
** whole row and one DELETE by key. A row that lacks some of the table's
** columns goes through the table's JSON upsert (absent columns keep their
** value or DEFAULT), and a key with pending mutations through rebase.
** Object keys are matched by their text as written, the first of equal keys
** winning, as SQLite's JSON paths do.
**
** Names are checked against the tracked tables and their columns; values go
** through sync_val's rules. Columns the local table does not have are
** ignored (a newer server may add columns). Errors, with nothing changed:
**   sync_apply: changes must be a JSON object
**   sync_apply: change 3 is not an object
**   sync_apply: change 3 has no "table"           (or "table" is not a string)
**   sync_apply: change 3 has unknown op "x"
**   sync_apply: change 3: primary key of "todos" is missing or null
**   sync_apply: change 3 has no "row" object
**   sync_apply: change 3 (todos {"id":"a"}): NOT NULL constraint failed: ...
**   sync_apply: FOREIGN KEY constraint failed: items {"id":"i2"} refers to a
**               row of "lists" that does not exist   (on a pull's last page;
**               "(that table is not tracked)" added when it is not)
**   sync_apply: staged page 2: change 1 ...        (a staged page's failure)
**   sync_apply: cursor must be a string
**   sync_apply: last_mutation_id must be an integer
**   sync_apply: last_mutation_id 9 is above the highest mutation id this
**               client has sent (4)          (also for a number beyond 64
**               bits, written as SQLite prints a REAL: 1.0e+20)
*/
#include "apply.h"
#include "apply_rows.h"
#include "capture.h"
#include "cascade.h"
#include "inbox.h"
#include "outbox.h"
#include "guard.h"
#include "rebase.h"
#include "jscan.h"
#include "table.h"
#include "value.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading the page ----
**
** The page is read in place by the shared scanner (common/jscan.h): once
** jscan_valid has accepted it, the walk only finds where things end. */

/* A member's value is a string without escapes: its inside. */
static int span_plain_string(jspan v, jspan *inside) {
  if (!v.z || v.z[0] != '"' || memchr(v.z, '\\', (size_t)v.n)) return 0;
  inside->z = v.z + 1, inside->n = v.n - 2;
  return 1;
}

static int span_is_number(jspan v) {
  return v.z && (v.z[0] == '-' || (v.z[0] >= '0' && v.z[0] <= '9'));
}

static int span_is_integer(jspan v) {
  return span_is_number(v) && !memchr(v.z, '.', (size_t)v.n) && !memchr(v.z, 'e', (size_t)v.n) &&
         !memchr(v.z, 'E', (size_t)v.n);
}

/* The number v as SQLite's ->> gives it to sqlite3_column_int64: exact
** within 64 bits, else through a REAL, saturated; *pReal gets the number
** as a REAL and *pExact whether it was an exact integer. */
static sqlite3_int64 span_int64(jspan v, double *pReal, int *pExact) {
  char *t = sqlite3_mprintf("%.*s", v.n, v.z);
  *pExact = 0;
  *pReal = t ? value_atof(t) : 0;
  if (t && span_is_integer(v)) {
    char *end = 0;
    errno = 0;
    long long i = strtoll(t, &end, 10);
    if (errno == 0 && *end == 0) {
      *pExact = 1;
      sqlite3_free(t);
      return i;
    }
  }
  sqlite3_free(t);
  if (*pReal >= 9223372036854775807.0) return LLONG_MAX;
  if (*pReal <= -9223372036854775808.0) return LLONG_MIN;
  return (sqlite3_int64)*pReal;
}

/* The text SQLite's ->> gives for the JSON value v (a string unescaped, a
** number or literal as SQLite prints it), for the rare names with escapes
** and for error messages. NULL for JSON null or no memory. */
static char *span_text(SyncCtx *c, jspan v) {
  sqlite3_stmt *s = 0;
  char *out = 0;
  if (sqlite3_prepare_v2(c->db, "SELECT ?1 ->> '$'", -1, &s, 0) == SQLITE_OK) {
    sqlite3_bind_text(s, 1, v.z, v.n, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
      out = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
  }
  sqlite3_finalize(s);
  return out;
}

/* t->bound[1]: ?1..?nPk the key, delete it. Kept with t (dropped when the
** schema changes): preparing compiles t's capture triggers into it. */
static int delete_prepare(SyncCtx *c, SyncTable *t) {
  sqlite3_str *s = sqlite3_str_new(c->db);
  sqlite3_str_appendf(s, "DELETE FROM main.\"%w\" WHERE ", t->name);
  for (int i = 0; i < t->nPk; i++) {
    char rhs[16];
    sqlite3_snprintf(sizeof rhs, rhs, "?%d", i + 1);
    if (i) sqlite3_str_appendall(s, " AND ");
    table_key_match(s, t, i, "", rhs);
  }
  char *sql = sqlite3_str_finish(s);
  if (!sql) return SQLITE_NOMEM;
  int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &t->bound[1], 0);
  sqlite3_free(sql);
  return rc;
}

/* ---- one page ---- */

/* A table the page names, as written: resolved once per page. */
typedef struct PageTable {
  jspan name;
  SyncTable *t;
  int pending; /* the outbox holds mutations of t: each key is looked up */
} PageTable;

typedef struct Page {
  SyncCtx *c;
  const char *end;          /* the page text's end */
  int anyPending;           /* the outbox or sync_shadow is not empty */
  sqlite3_stmt *tblPending; /* ?1 tbl -> a row if a key of it has an image or mutations */
  PageTable tables[8];
  int nTables;
  Batch batch;    /* whole rows of one table not yet written */
  char **touched; /* the distinct tables the changes name (ApplyResult.tables) */
  int nTouched;
  Settle settle;         /* rows a UNIQUE index refused, written at the end */
  PutOffs off;           /* deletes put off to the end (inbox.c, put_off) */
  int fk;                /* foreign keys are enforced on the connection */
  sqlite3_int64 n;       /* changes applied */
  sqlite3_int64 skipped; /* changes to tables this client does not track */
  sqlite3_int64 top;     /* the highest version of its changes, if hasTop */
  int hasTop;
} Page;

/* Adds t to the page's distinct tables (at most the tracked ones). */
static int page_touch(Page *pg, SyncTable *t) {
  for (int k = 0; k < pg->nTouched; k++)
    if (strcmp(pg->touched[k], t->name) == 0) return SQLITE_OK;
  char **more = sqlite3_realloc64(pg->touched, sizeof *more * (sqlite3_uint64)(pg->nTouched + 1));
  if (!more) return SQLITE_NOMEM;
  pg->touched = more;
  if ((more[pg->nTouched] = sqlite3_mprintf("%s", t->name)) == 0) return SQLITE_NOMEM;
  pg->nTouched++;
  return SQLITE_OK;
}

/* Resolves the table named by v (a JSON string). Errors as table_get. */
static int page_table(Page *pg, jspan v, PageTable **pOut, char **pzErr) {
  SyncCtx *c = pg->c;
  for (int k = 0; k < pg->nTables; k++) {
    PageTable *p = &pg->tables[k];
    if (p->name.n == v.n && memcmp(p->name.z, v.z, (size_t)v.n) == 0) {
      *pOut = p;
      return SQLITE_OK;
    }
  }
  jspan in;
  char *name = span_plain_string(v, &in) ? sqlite3_mprintf("%.*s", in.n, in.z) : span_text(c, v);
  if (!name) return SQLITE_NOMEM;
  SyncTable *t = 0;
  /* A table this client does not track (one the server added later): its
  ** changes are skipped, not refused, or no older client could pull. */
  int rc = table_is_tracked(c, name) ? table_get(c, name, 1, &t, pzErr) : SQLITE_OK;
  sqlite3_free(name);
  if (rc == SQLITE_OK && t) rc = page_touch(pg, t);
  if (rc != SQLITE_OK) return rc;
  /* More tables than the cache holds: the last slot is reused. */
  PageTable *p = &pg->tables[pg->nTables < 8 ? pg->nTables++ : 7];
  p->name = v, p->t = t, p->pending = 0;
  if (t && pg->anyPending) {
    if (!pg->tblPending) {
      /* A key with an image and nothing pending is a guard (rebase.c):
      ** its changes go through rebase_key too. */
      rc = sqlite3_prepare_v2(c->db,
                              "SELECT 1 FROM sync_shadow WHERE tbl = ?1 UNION ALL"
                              " SELECT 1 FROM sync_outbox WHERE tbl = ?1 LIMIT 1",
                              -1, &pg->tblPending, 0);
      if (rc != SQLITE_OK) return rc;
    }
    sqlite3_bind_text(pg->tblPending, 1, t->name, -1, SQLITE_STATIC);
    p->pending = sqlite3_step(pg->tblPending) == SQLITE_ROW;
    rc = sqlite3_reset(pg->tblPending);
    if (rc != SQLITE_OK) return rc;
  }
  *pOut = p;
  return SQLITE_OK;
}

/* The canonical key text of pk (see capture_canon_pk); on failure *pzErr
** names change i. */
static int change_key(SyncCtx *c, SyncTable *t, int i, jspan pk, char **pOut, char **pzErr) {
  char *why = 0;
  int rc = capture_canon_pk(c, t, pk.z, pk.n, pOut, &why);
  if (rc != SQLITE_OK && why) *pzErr = sqlite3_mprintf("change %d: %s", i, why);
  sqlite3_free(why);
  return rc;
}

/* Runs s (values bound, rc their binding's code) and resets it; on failure
** *pzErr names change i and its key. msg: a value's error found while
** binding (s not run). */
static int change_run(SyncCtx *c, SyncTable *t, int i, jspan pk, sqlite3_stmt *s, int rc,
                      const char *msg, char **pzErr) {
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(s);
    rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
    if (rc != SQLITE_OK) msg = 0;
  }
  char *err = rc != SQLITE_OK && rc != SQLITE_NOMEM
                  ? sqlite3_mprintf("%s", msg ? msg : sqlite3_errmsg(c->db))
                  : 0;
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (rc == SQLITE_OK || rc == SQLITE_NOMEM) return rc;
  char *key = 0;
  if (change_key(c, t, i, pk, &key, pzErr) == SQLITE_OK)
    *pzErr = sqlite3_mprintf("change %d (%s %s): %s", i, t->name, key, err ? err : "");
  sqlite3_free(key);
  sqlite3_free(err);
  return rc;
}

/* Keeps the row of change i for after the other changes: a UNIQUE index
** refused it (inbox.c). */
static int defer_row(Page *pg, SyncTable *t, int i, jspan pk, jspan row, char **pzErr) {
  char *key = 0;
  int rc = change_key(pg->c, t, i, pk, &key, pzErr);
  if (rc == SQLITE_OK) rc = settle_add(&pg->settle, t, i, key, row.z, row.n);
  sqlite3_free(key);
  return rc;
}

/* Writes the batch's rows, if any. When the batch fails (the statement has
** undone its writes), its rows are written one by one: SQLite reads all of
** an INSERT's SELECT before it writes a row when the table has triggers, so
** this finds the row that failed. Rows a UNIQUE index refused are deferred;
** any other failure fails the page. */
static int batch_flush(Page *pg, char **pzErr) {
  Batch *b = &pg->batch;
  if (b->nRow == 0) return SQLITE_OK;
  SyncCtx *c = pg->c;
  SyncTable *t = b->t;
  int rc = t->bound[0] ? SQLITE_OK : batch_prepare(c, t);
  char *msg = 0;
  int unique = 0;
  if (rc == SQLITE_OK) rc = batch_run(c->db, b, 0, b->nRow, &msg, &unique);
  if (rc != SQLITE_OK && msg) {
    sqlite3_free(msg);
    msg = 0, rc = SQLITE_OK;
    for (int k = 0; rc == SQLITE_OK && k < b->nRow; k++) {
      rc = batch_run(c->db, b, k, k + 1, &msg, &unique);
      if (rc != SQLITE_OK && unique) {
        sqlite3_free(msg);
        msg = 0;
        rc = defer_row(pg, t, b->chg[k], b->pks[k], b->rows[k], pzErr);
      } else if (rc != SQLITE_OK && msg) {
        char *key = 0;
        if (change_key(c, t, b->chg[k], b->pks[k], &key, pzErr) == SQLITE_OK)
          *pzErr = sqlite3_mprintf("change %d (%s %s): %s", b->chg[k], t->name, key, msg);
        sqlite3_free(key);
      }
    }
  }
  sqlite3_free(msg);
  b->nRow = 0;
  return rc;
}

/* Writes row, or deletes pk, for a key without pending mutations. A whole
** row joins the batch; anything else writes the batch first, so the page's
** order holds. */
static int change_write(Page *pg, SyncTable *t, int i, int upsert, jspan pk, jspan row,
                        char **pzErr) {
  SyncCtx *c = pg->c;
  Batch *b = &pg->batch;
  int rc = SQLITE_OK;
  if (upsert && t->nCol <= apply_rows_ncols(c->db)) {
    if (b->nRow && (b->t != t || (b->nRow + 1) * t->nCol > BATCH_SPANS))
      rc = batch_flush(pg, pzErr);
    if (rc != SQLITE_OK) return rc;
    int whole = batch_add(b, t, i, pk, row);
    if (whole < 0) return SQLITE_NOMEM;
    if (whole) return SQLITE_OK;
  }
  rc = batch_flush(pg, pzErr);
  if (rc != SQLITE_OK) return rc;
  if (upsert) {
    /* Some columns absent: the JSON upsert keeps them. */
    sqlite3_bind_text(t->upsert, 1, row.z, row.n, SQLITE_STATIC);
    rc = sqlite3_step(t->upsert);
    int ok = rc == SQLITE_DONE || rc == SQLITE_ROW;
    int unique = !ok && sqlite3_extended_errcode(c->db) == SQLITE_CONSTRAINT_UNIQUE;
    char *msg = ok || unique ? 0 : sqlite3_mprintf("%s", sqlite3_errmsg(c->db));
    sqlite3_reset(t->upsert);
    sqlite3_clear_bindings(t->upsert);
    if (ok) return SQLITE_OK;
    if (unique) return defer_row(pg, t, i, pk, row, pzErr);
    rc = msg ? change_run(c, t, i, pk, t->upsert, rc, msg, pzErr) : SQLITE_NOMEM;
    sqlite3_free(msg);
    return rc;
  }
  if (!t->bound[1] && (rc = delete_prepare(c, t)) != SQLITE_OK) return rc;
  sqlite3_stmt *s = t->bound[1];
  const char *msg = 0;
  for (int k = 0; rc == SQLITE_OK && k < t->nPk; k++) {
    jspan v = jscan_field(pk, t->cols[t->pk[k]]);
    if (v.z[0] == '{' || v.z[0] == '[') {
      char *compact = jscan_compact(v);
      rc = compact ? value_bind(s, k + 1, compact, (int)strlen(compact), &msg) : SQLITE_NOMEM;
      sqlite3_free(compact);
    } else {
      rc = value_bind(s, k + 1, v.z, v.n, &msg);
    }
  }
  return change_run(c, t, i, pk, s, rc, msg, pzErr);
}

/* Writes change i of t, a delete when !upsert. pending: t has keys with
** pending mutations or an image, so the key is looked up. */
static int change_apply(Page *pg, SyncTable *t, int pending, int i, int upsert, jspan pk, jspan row,
                        jspan ver, char **pzErr) {
  SyncCtx *c = pg->c;
  if (!pending && !pg->settle.n && !pg->off.n)
    return change_write(pg, t, i, upsert, pk, row, pzErr);
  char *k = 0;
  int rc = change_key(c, t, i, pk, &k, pzErr);
  if (rc != SQLITE_OK) return rc;
  /* A newer change of a deferred row, or of a delete put off, replaces it. */
  settle_drop(&pg->settle, t, k);
  putoff_drop(&pg->off, t, k);
  if (!pending) {
    rc = change_write(pg, t, i, upsert, pk, row, pzErr);
    sqlite3_free(k);
    return rc;
  }
  sqlite3_stmt *s = ctx_stmt(c, STMT_HAS_PENDING);
  if (!s) {
    sqlite3_free(k);
    return sqlite3_errcode(c->db);
  }
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, k, -1, SQLITE_STATIC);
  pending = sqlite3_step(s) == SQLITE_ROW;
  sqlite3_reset(s);
  if (pending) {
    rc = batch_flush(pg, pzErr);
    char *image = upsert && rc == SQLITE_OK ? jscan_compact(row) : 0;
    double r;
    int exact;
    sqlite3_int64 version = span_is_integer(ver) ? span_int64(ver, &r, &exact) : 0;
    if (rc == SQLITE_OK && upsert && !image) rc = SQLITE_NOMEM;
    if (rc == SQLITE_OK) rc = rebase_set_image(c, t->name, k, image, version, span_is_integer(ver));
    if (rc == SQLITE_OK) rc = rebase_key(c, t, k, 1, 0, pzErr);
    if (rc == SQLITE_CONSTRAINT) {
      /* The local edits no longer fit next to the server's rows (a replay
      ** hit a UNIQUE index, say): hidden, still queued for the server to
      ** judge. */
      sqlite3_free(*pzErr);
      *pzErr = 0;
      rc = settle_hide(c, t, k);
    }
    sqlite3_free(image);
  } else {
    /* A guard (rebase.c): a change older than the version it keeps is
    ** skipped; any other replaces it and is written as usual, so that
    ** swaps and stale holders are settled (inbox.c). */
    s = ctx_stmt(c, STMT_SHADOW_GET);
    if (!s) rc = sqlite3_errcode(c->db);
    int guard = 0, older = 0;
    if (s) {
      sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
      sqlite3_bind_text(s, 2, k, -1, SQLITE_STATIC);
      guard = sqlite3_step(s) == SQLITE_ROW;
      if (guard && span_is_integer(ver) && sqlite3_column_type(s, 1) == SQLITE_INTEGER) {
        double r;
        int exact;
        older = sqlite3_column_int64(s, 1) > span_int64(ver, &r, &exact);
      }
      rc = sqlite3_reset(s);
    }
    if (rc == SQLITE_OK && guard && !older) rc = rebase_drop_image(c, t->name, k);
    if (rc == SQLITE_OK && !older) rc = change_write(pg, t, i, upsert, pk, row, pzErr);
  }
  sqlite3_free(k);
  return rc;
}

/* Puts off the server's delete of key pk of t (change i) when rows refer to
** the row (see inbox.h, "Deletes put off"); *pPut says whether it did. Only
** with foreign keys enforced: otherwise a delete takes nothing with it. */
static int put_off(Page *pg, SyncTable *t, int i, jspan pk, jspan ver, int *pPut, char **pzErr) {
  SyncCtx *c = pg->c;
  *pPut = 0;
  if (!pg->fk) return SQLITE_OK;
  /* The page's rows before it are among the rows referring to it. */
  int rc = batch_flush(pg, pzErr), refs = 0;
  char *k = 0;
  if (rc == SQLITE_OK) rc = change_key(c, t, i, pk, &k, pzErr);
  if (rc == SQLITE_OK) rc = cascade_referred(c, t, k, &refs);
  if (rc == SQLITE_OK && refs) {
    settle_drop(&pg->settle, t, k);
    rc = putoff_add(&pg->off, t, i, k, pk, ver);
    *pPut = rc == SQLITE_OK;
  }
  sqlite3_free(k);
  return rc;
}

/* Applies the deletes put off, in page order. Without force, one whose row
** rows still refer to stays put off. */
static int off_run(Page *pg, int force, char **pzErr) {
  SyncCtx *c = pg->c;
  int rc = SQLITE_OK;
  for (int k = 0; rc == SQLITE_OK && k < pg->off.n;) {
    PutOff *o = &pg->off.a[k];
    jspan pk = {o->pk, (int)strlen(o->pk)}, row = {0, 0};
    jspan ver = {o->ver, o->ver ? (int)strlen(o->ver) : 0};
    /* As before any server delete (apply_change): the rows pending edits
    ** made refer to it show the server's. */
    if (pg->anyPending) rc = settle_hide_referrers(c, o->t, pk.z, pk.n, force);
    int reach = 0;
    if (rc == SQLITE_OK && !force) rc = cascade_referred(c, o->t, o->key, &reach);
    if (rc != SQLITE_OK || reach) {
      k++;
      continue;
    }
    /* change_apply drops it from the list (a change of its key). */
    PutOff run = putoff_take(&pg->off, k);
    pk.z = run.pk, ver.z = run.ver;
    rc = change_apply(pg, run.t, pg->anyPending, run.chg, 0, pk, row, ver, pzErr);
    putoff_clear(&run);
  }
  return rc;
}

/* Change i (from 1), the accepted JSON value at *pz; *pz is left after it. */
static int apply_change(Page *pg, int i, const char **pz, char **pzErr) {
  SyncCtx *c = pg->c;
  const char *z = *pz;
  if (*z != '{') {
    *pz = jscan_skip(z, pg->end);
    *pzErr = sqlite3_mprintf("change %d is not an object", i);
    return SQLITE_ERROR;
  }
  jspan key, val, tbl = {0, 0}, op = {0, 0}, pk = {0, 0}, row = {0, 0}, ver = {0, 0};
  while (jscan_member(&z, pg->end, &key, &val)) {
    jspan *f = 0;
    switch (key.n) {
    case 2:
      f = key.z[0] == 'o' && key.z[1] == 'p' ? &op : key.z[0] == 'p' && key.z[1] == 'k' ? &pk : 0;
      break;
    case 3:
      f = memcmp(key.z, "row", 3) == 0 ? &row : 0;
      break;
    case 5:
      f = memcmp(key.z, "table", 5) == 0 ? &tbl : 0;
      break;
    case 7:
      f = memcmp(key.z, "version", 7) == 0 ? &ver : 0;
      break;
    }
    if (f && !f->z) *f = val;
  }
  *pz = z + 1; /* past the '}' jscan_member stopped at */
  if (span_is_integer(ver)) {
    double r;
    int exact;
    sqlite3_int64 v = span_int64(ver, &r, &exact);
    if (!pg->hasTop || v > pg->top) pg->top = v, pg->hasTop = 1;
  }
  if (!tbl.z || jscan_is(tbl, "null")) {
    *pzErr = sqlite3_mprintf("change %d has no \"table\"", i);
    return SQLITE_ERROR;
  }
  if (tbl.z[0] != '"') {
    *pzErr = sqlite3_mprintf("change %d: \"table\" is not a string", i);
    return SQLITE_ERROR;
  }
  PageTable *p = 0;
  int rc = page_table(pg, tbl, &p, pzErr);
  if (rc != SQLITE_OK) return rc;
  SyncTable *t = p->t;
  if (!t) {
    pg->skipped++;
    return SQLITE_OK;
  }
  pg->n++;
  jspan in;
  int plain = span_plain_string(op, &in);
  int upsert = plain && in.n == 6 && memcmp(in.z, "upsert", 6) == 0;
  int del = plain && in.n == 6 && memcmp(in.z, "delete", 6) == 0;
  if (!upsert && !del) {
    /* Escapes, or not a string: what SQLite reads. */
    char *o = plain ? sqlite3_mprintf("%.*s", in.n, in.z) : op.z ? span_text(c, op) : 0;
    upsert = o && strcmp(o, "upsert") == 0;
    del = o && strcmp(o, "delete") == 0;
    if (!upsert && !del) *pzErr = sqlite3_mprintf("change %d has unknown op \"%s\"", i, o ? o : "");
    sqlite3_free(o);
    if (!upsert && !del) return SQLITE_ERROR;
  }
  if (!pk.z || pk.z[0] != '{') {
    *pzErr = sqlite3_mprintf("change %d has no \"pk\" object", i);
    return SQLITE_ERROR;
  }
  if (upsert && (!row.z || row.z[0] != '{')) {
    *pzErr = sqlite3_mprintf("change %d has no \"row\" object", i);
    return SQLITE_ERROR;
  }
  for (int k = 0; k < t->nPk; k++) {
    jspan v = jscan_field(pk, t->cols[t->pk[k]]);
    if (!v.z || jscan_is(v, "null")) {
      *pzErr = sqlite3_mprintf("change %d: primary key of \"%s\" is missing or null", i, t->name);
      return SQLITE_ERROR;
    }
  }
  /* Rows pending edits made refer to it show the server's (inbox.c). */
  if (del && pg->anyPending && (rc = batch_flush(pg, pzErr)) == SQLITE_OK)
    rc = settle_hide_referrers(c, t, pk.z, pk.n, 0);
  if (rc != SQLITE_OK) return rc;
  if (del) {
    int put = 0;
    rc = put_off(pg, t, i, pk, ver, &put, pzErr);
    if (rc != SQLITE_OK || put) return rc;
  }
  return change_apply(pg, t, p->pending, i, upsert, pk, row, ver, pzErr);
}

/* last_mutation_id may confirm only mutations sync_push_batch has handed
** out (sync_control.sent_id): a larger one, from a server's bug or another
** client's numbering, would drop pending mutations the server never got.
** Checked before anything is written, so a refused page changes nothing. A
** number that is no integer, or one beyond 64 bits, is named as SQLite
** prints a REAL when it is above, else refused as no integer. *pUpto gets
** the id. */
static int check_sent(SyncCtx *c, jspan lm, sqlite3_int64 *pUpto, char **pzErr) {
  double r = 0;
  int exact = 0;
  sqlite3_int64 sent = 0, upto = span_int64(lm, &r, &exact);
  int rc = outbox_sent_id(c, &sent);
  if (rc != SQLITE_OK) return rc;
  int above =
      exact ? upto > sent
            : r >= 9223372036854775808.0 ||
                  (r >= -9223372036854775808.0 &&
                   ((sqlite3_int64)r > sent || ((sqlite3_int64)r == sent && r > (double)sent)));
  if (above) {
    char *id = exact ? sqlite3_mprintf("%lld", upto) : sqlite3_mprintf("%!.15g", r);
    *pzErr = sqlite3_mprintf("last_mutation_id %s is above the highest mutation id this client"
                             " has sent (%lld)",
                             id ? id : "?", sent);
    sqlite3_free(id);
    return SQLITE_ERROR;
  }
  if (!span_is_integer(lm)) {
    *pzErr = sqlite3_mprintf("last_mutation_id must be an integer");
    return SQLITE_ERROR;
  }
  *pUpto = upto;
  return SQLITE_OK;
}

void apply_result_clear(ApplyResult *res) {
  for (int k = 0; k < res->nTables; k++)
    sqlite3_free(res->tables[k]);
  sqlite3_free(res->tables);
  memset(res, 0, sizeof *res);
}

/* A page's envelope, read in place. */
typedef struct Envelope {
  const char *end; /* the text's end */
  jspan changes, cursor, lm, more, rej;
} Envelope;

/* Validates json and reads its envelope (an event's last_mutation_id is
** ignored). On failure *pzErr says why. */
static int page_read(const char *json, int flags, Envelope *e, char **pzErr) {
  memset(e, 0, sizeof *e);
  const char *pe = json ? json + strlen(json) : 0, *z = json ? jscan_ws(json, pe) : 0;
  const char *end = z && *z == '{' ? jscan_valid(z, pe, 0) : 0;
  if (!end || jscan_ws(end, pe) != pe) {
    *pzErr = sqlite3_mprintf("changes must be a JSON object");
    return SQLITE_ERROR;
  }
  e->end = pe;
  /* The first of equal keys counts. */
  jspan key, val;
  while (jscan_member(&z, pe, &key, &val)) {
    jspan *f = jscan_is(key, "changes")            ? &e->changes
               : jscan_is(key, "cursor")           ? &e->cursor
               : jscan_is(key, "last_mutation_id") ? &e->lm
               : jscan_is(key, "has_more")         ? &e->more
               : jscan_is(key, "rejected")         ? &e->rej
                                                   : 0;
    if (f && !f->z) *f = val;
  }
  if (jscan_is(e->cursor, "null")) e->cursor.z = 0;
  if (jscan_is(e->lm, "null") || (flags & APPLY_EVENT)) e->lm.z = 0;
  if (e->changes.z && e->changes.z[0] != '[')
    *pzErr = sqlite3_mprintf("\"changes\" must be an array");
  else if (e->cursor.z && e->cursor.z[0] != '"')
    *pzErr = sqlite3_mprintf("cursor must be a string");
  else if (e->lm.z && !span_is_number(e->lm))
    *pzErr = sqlite3_mprintf("last_mutation_id must be an integer");
  else if (e->rej.z && e->rej.z[0] != '[')
    *pzErr = sqlite3_mprintf("\"rejected\" must be an array");
  else
    return SQLITE_OK;
  return SQLITE_ERROR;
}

/* Applies the changes of one page in order (rows a UNIQUE index refused
** are kept in pg->settle). */
static int page_walk(Page *pg, const Envelope *e, char **pzErr) {
  pg->end = e->end;
  pg->nTables = 0; /* their names point into the previous page */
  if (!e->changes.z) return SQLITE_OK;
  int rc = SQLITE_OK, n = 0;
  const char *z = jscan_ws(e->changes.z + 1, e->end);
  while (rc == SQLITE_OK && *z != ']') {
    rc = apply_change(pg, ++n, &z, pzErr);
    if (rc != SQLITE_OK && rc != SQLITE_NOMEM && pg->batch.nRow) {
      /* The rows before the refused change come first in page order: a
      ** failure among them is the one to report. */
      char *zFirst = 0;
      int rcFirst = batch_flush(pg, &zFirst);
      if (rcFirst != SQLITE_OK) {
        sqlite3_free(*pzErr);
        *pzErr = zFirst, rc = rcFirst;
      }
    }
    z = jscan_ws(z, e->end);
    if (*z == ',') z = jscan_ws(z + 1, e->end);
  }
  if (rc == SQLITE_OK) rc = batch_flush(pg, pzErr);
  pg->batch.nRow = 0;
  return rc;
}

/* Applies the staged pages, then e, in one inner savepoint. When they
** cannot apply yet (a UNIQUE value held by a row whose change is still to
** come, a foreign key left dangling) and this is not the pull's end
** (final 0), the savepoint is undone and *pStage set. */
static int apply_all(Page *pg, const Envelope *e, sqlite3_int64 staged, int final, int *pStage,
                     char **pzErr) {
  SyncCtx *c = pg->c;
  /* A violation the caller's own transaction made is the caller's. */
  int fkBefore = fk_unresolved(c);
  int rc = ctx_exec(c, "SAVEPOINT sync_apply_try");
  if (rc != SQLITE_OK) return rc;
  if (staged) {
    sqlite3_stmt *s = inbox_scan(c);
    int step = SQLITE_DONE, k = 0;
    if (!s) rc = sqlite3_errcode(c->db);
    while (rc == SQLITE_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
      /* One staged page in memory at a time. */
      char *text = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
      Envelope se;
      char *why = 0;
      k++;
      rc = text ? page_read(text, APPLY_EVENT, &se, &why) : SQLITE_NOMEM;
      if (rc == SQLITE_OK) rc = page_walk(pg, &se, &why);
      if (rc != SQLITE_OK && why) *pzErr = sqlite3_mprintf("staged page %d: %s", k, why);
      sqlite3_free(why);
      sqlite3_free(text);
    }
    if (rc == SQLITE_OK && step != SQLITE_DONE) rc = sqlite3_errcode(c->db);
    sqlite3_finalize(s);
  }
  if (rc == SQLITE_OK) rc = page_walk(pg, e, pzErr);
  int later = 0;
  /* Deletes put off that now take only what the server's took go before
  ** the rows a UNIQUE index refused: they may free a value those need. */
  if (rc == SQLITE_OK) rc = off_run(pg, 0, pzErr);
  if (rc == SQLITE_OK) rc = settle_run(c, &pg->settle, final, &later, pzErr);
  /* The others wait for the pull's last page, where the server wins. */
  if (rc == SQLITE_OK && !later && pg->off.n) {
    if (final)
      rc = off_run(pg, 1, pzErr);
    else
      later = 1;
  }
  if (rc == SQLITE_OK && !later && !fkBefore && fk_unresolved(c)) {
    int restored = 0;
    if (final) rc = fk_hide_deletes(c, &restored);
    /* A refused insert kept for its referrers (an absent guard) that still
    ** refers to a row the page deleted: the page may have taken those
    ** referrers, so the guard's delete is tried before giving up. */
    if (rc == SQLITE_OK && final && fk_unresolved(c)) rc = rebase_guards_rewrite(c, pzErr);
    if (rc == SQLITE_OK && final && fk_unresolved(c))
      rc = fk_explain(c, pzErr);
    else if (rc == SQLITE_OK && !final)
      later = 1;
  }
  if (rc != SQLITE_OK && rc != SQLITE_NOMEM && !*pzErr)
    *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(c->db));
  if (rc == SQLITE_OK && !later) {
    rc = ctx_exec(c, "RELEASE sync_apply_try");
    if (rc == SQLITE_OK && staged) rc = inbox_clear(c);
    return rc;
  }
  ctx_exec(c, "ROLLBACK TO sync_apply_try");
  ctx_exec(c, "RELEASE sync_apply_try");
  *pStage = rc == SQLITE_OK;
  return rc;
}

/* Adds n to sync_meta 'skipped_changes', the running total of changes to
** tables this client does not track. */
static int count_skipped(SyncCtx *c, sqlite3_int64 n) {
  char *v = ctx_meta_get(c, "skipped_changes");
  char *total = sqlite3_mprintf("%lld", (v ? strtoll(v, 0, 10) : 0) + n);
  sqlite3_free(v);
  int rc = total ? ctx_meta_set(c, "skipped_changes", total) : SQLITE_NOMEM;
  sqlite3_free(total);
  return rc;
}

int apply_page(SyncCtx *c, const char *json, int flags, ApplyResult *res, char **pzErr) {
  memset(res, 0, sizeof *res);
  Envelope e;
  char *zErr = 0;
  sqlite3_int64 upto = 0;
  int rc = page_read(json, flags, &e, &zErr);
  if (rc == SQLITE_OK && e.lm.z) rc = check_sent(c, e.lm, &upto, &zErr);
  if (rc != SQLITE_OK) {
    *pzErr = zErr ? zErr : sqlite3_mprintf("%s", ctx_errmsg(c, rc));
    return rc;
  }
  int lastPage = !jscan_is(e.more, "true");

  Page pg;
  memset(&pg, 0, sizeof pg);
  pg.c = c;
  if (sqlite3_db_config(c->db, SQLITE_DBCONFIG_ENABLE_FKEY, -1, &pg.fk) != SQLITE_OK) pg.fk = 0;
  sqlite3_int64 staged = 0;
  int stage = 0;
  rc = ctx_engine_begin(c);
  if (rc == SQLITE_OK) rc = inbox_count(c, &staged);
  if (rc == SQLITE_OK && !(flags & (APPLY_EVENT | APPLY_SQL))) rc = rebase_initial_begin(c);
  if (rc == SQLITE_OK) {
    /* Without anything pending (nor a guard, see rebase.c), no change
    ** needs its key looked up. */
    sqlite3_stmt *s = ctx_stmt(c, STMT_ANY_IMAGE);
    if (!s) rc = sqlite3_errcode(c->db);
    if (s && sqlite3_step(s) == SQLITE_ROW) pg.anyPending = sqlite3_column_int64(s, 0) != 0;
    if (s) rc = sqlite3_reset(s);
  }
  if (rc == SQLITE_OK) {
    /* Pages wait in the inbox until the pull's last page, applied once
    ** with all of them (trying each would cost the square of their
    ** number). An event ends no pull under way. */
    if (staged && !lastPage)
      stage = 1;
    else
      rc =
          apply_all(&pg, &e, staged, lastPage && !(staged && (flags & APPLY_EVENT)), &stage, &zErr);
  }
  sqlite3_finalize(pg.tblPending);
  sqlite3_free(pg.batch.vals);
  sqlite3_free(pg.batch.chg);
  sqlite3_free(pg.batch.pks);
  sqlite3_free(pg.batch.rows);
  settle_free(&pg.settle);
  putoff_free(&pg.off);
  if (rc == SQLITE_OK && stage) rc = inbox_stage(c, json);
  /* A staged page is never the last one, whose id alone is taken. */
  if (rc == SQLITE_OK && !stage && lastPage && e.lm.z)
    rc = outbox_confirm_upto(c, e.rej.z, e.rej.n, upto, &zErr);
  /* Rows that could not take the server's state try again once it is
  ** consistent (rebase.c, "Guards"). */
  if (rc == SQLITE_OK && !stage && lastPage && !(flags & (APPLY_EVENT | APPLY_SQL)))
    rc = rebase_initial_end(c, &zErr);
  if (rc == SQLITE_OK && !stage && lastPage) rc = rebase_guards(c, !(flags & APPLY_EVENT), &zErr);
  if (rc == SQLITE_OK && !stage && pg.skipped) rc = count_skipped(c, pg.skipped);
  if (rc == SQLITE_OK && !stage && pg.hasTop) rc = rebase_pulled(c, pg.top);
  if (rc == SQLITE_OK && e.cursor.z) {
    jspan in;
    char *cur = span_plain_string(e.cursor, &in) ? sqlite3_mprintf("%.*s", in.n, in.z)
                                                 : span_text(c, e.cursor);
    rc = cur ? ctx_meta_set(c, "cursor", cur) : SQLITE_NOMEM;
    sqlite3_free(cur);
  }
  rc = ctx_engine_end(c, rc, &zErr);
  res->tables = pg.touched;
  res->nTables = pg.nTouched;
  if (rc != SQLITE_OK || stage) apply_result_clear(res);
  if (rc != SQLITE_OK) {
    *pzErr = zErr ? zErr : sqlite3_mprintf("%s", sqlite3_errstr(rc));
    return rc;
  }
  sqlite3_free(zErr);
  res->more = !lastPage;
  res->staged = stage;
  if (!stage) res->n = pg.n, res->skipped = pg.skipped;
  return SQLITE_OK;
}

/* sync_apply(page): apply_page as an SQL function; returns the number of
** changes applied: 0 for a page staged in sync_inbox, every staged page's
** changes with the page that applies them; changes skipped for a table
** that is not tracked are not counted (sync_meta 'skipped_changes' is). */
void apply_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!ctx_require_init(ctx, c, "sync_apply")) return;
  const char *json = (const char *)sqlite3_value_text(argv[0]);
  if (!json && sqlite3_value_type(argv[0]) != SQLITE_NULL) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  ApplyResult res;
  char *zErr = 0;
  int rc = apply_page(c, json, APPLY_SQL, &res, &zErr);
  if (rc == SQLITE_OK)
    sqlite3_result_int64(ctx, res.n);
  else
    ctx_error_msg(ctx, c, "sync_apply", rc, zErr);
  apply_result_clear(&res);
}
