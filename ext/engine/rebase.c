/*
** rebase.c: the visible row = the server's row + this client's pending
** mutations replayed in order.
**
** For a key with pending mutations, sync_shadow holds the server's last known
** row (row NULL, or no entry at all, means the server has no such row). When
** the server's row changes (sync_apply), when the server confirms a mutation
** (sync_ack applied, last_mutation_id) or refuses one (sync_ack rejected), the
** engine updates the image or the outbox and calls rebase_key, which folds
** what is still pending into the image and writes the net row once. Replays
** are idempotent (mutations carry values, not deltas), so replaying a mutation
** the image already contains changes nothing. When nothing is pending any
** more, the image is dropped: the visible row is then the server's; but an
** image the push answer confirmed, with its version, stays until a change at
** least as new arrives, so that an older one cannot take the row back.
**
** A rebase never fails on local state (docs/ARCHITECTURE.md, "Rebase: edits
** that cannot be replayed"): each row is tried in a savepoint and checked
** against the foreign keys (deferred to COMMIT inside engine writes), and
** when it cannot stand the image alone, the row as it stands, or no row is
** tried in turn. Local rows holding a UNIQUE value of the server's row move
** aside first (make_room; rebase_make_room for apply.c).
**
** Callers run inside ctx_engine_begin, so nothing here is captured.
*/
#include "rebase.h"
#include "capture.h"
#include "cascade.h"
#include "jscan.h"
#include "jsonexpr.h"
#include "table.h"
#include "value.h"

#include <stdlib.h>
#include <string.h>

/* Records row (NULL = absent) as the server's image of key pk, unless the
** image held already carries a newer server version (a push response can
** arrive after the change stream has delivered a later version of the row). */
int rebase_set_image(SyncCtx *c, const char *tbl, const char *pk, const char *row,
                     sqlite3_int64 version, int hasVersion) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_SHADOW_GET);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, tbl, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
  int newer = sqlite3_step(s) == SQLITE_ROW && hasVersion &&
              sqlite3_column_type(s, 1) == SQLITE_INTEGER && sqlite3_column_int64(s, 1) > version;
  sqlite3_reset(s);
  c->imageKept = newer;
  if (newer) return SQLITE_OK;
  s = ctx_stmt(c, STMT_SHADOW_PUT);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, tbl, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
  if (row) sqlite3_bind_text(s, 3, row, -1, SQLITE_STATIC);
  if (hasVersion) sqlite3_bind_int64(s, 4, version);
  return ctx_run(c, s);
}

int rebase_drop_image(SyncCtx *c, const char *tbl, const char *pk) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_SHADOW_DROP);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, tbl, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
  return ctx_run(c, s);
}

/* 1 when rc says the row cannot stand in the table as it is now (a
** constraint, a type a STRICT column refuses, a trigger's RAISE): the
** rebase then falls back to another row instead of failing. */
static int unfit(int rc) {
  switch (rc & 0xff) {
  case SQLITE_CONSTRAINT:
  case SQLITE_MISMATCH:
  case SQLITE_TOOBIG:
  case SQLITE_RANGE:
  case SQLITE_ERROR:
    return 1;
  }
  return 0;
}

static int has_key(const char *z, jspan key) {
  const char *e = z + strlen(z);
  jspan k, v;
  while (jscan_member(&z, e, &k, &v))
    if (k.n == key.n && memcmp(k.z, key.z, (size_t)k.n) == 0) return 1;
  return 0;
}

/* base's members that patch does not set, then patch's: values are copied
** as written, so integers and REALs stay exact (json_patch would also drop
** the members set to null). Both are objects the engine wrote. */
static char *merge(const char *base, const char *patch) {
  sqlite3_str *out = sqlite3_str_new(0);
  const char *src[2] = {base, patch};
  int n = 0;
  sqlite3_str_appendchar(out, 1, '{');
  for (int i = 0; i < 2; i++) {
    const char *z = src[i], *e = z + strlen(z);
    jspan k, v;
    while (jscan_member(&z, e, &k, &v)) {
      if (i == 0 && has_key(patch, k)) continue;
      sqlite3_str_appendf(out, "%s\"%.*s\":%.*s", n++ ? "," : "", k.n, k.z, v.n, v.z);
    }
  }
  sqlite3_str_appendchar(out, 1, '}');
  return sqlite3_str_finish(out);
}

/* The key's net row: image with its pending mutations folded in, in id
** order (an insert sets its columns on the row or creates it, an update
** sets its columns on a row that exists, a delete removes it). Replaying
** them one by one would pass through in-between values a UNIQUE index may
** refuse (a color given to this row and then the row renamed away: the
** color is already on the renamed row). *pNet is NULL for absent. */
static int net_row(SyncCtx *c, SyncTable *t, const char *pk, const char *image, char **pNet,
                   int *pPending) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_KEY_PENDING);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
  char *net = image ? sqlite3_mprintf("%s", image) : 0;
  int rc = image && !net ? SQLITE_NOMEM : SQLITE_OK, pending = 0, step;
  while (rc == SQLITE_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
    const char *op = (const char *)sqlite3_column_text(s, 0);
    const char *data = (const char *)sqlite3_column_text(s, 1);
    pending++;
    char *next = 0;
    if (op && strcmp(op, "delete") != 0 && data && (net || strcmp(op, "insert") == 0)) {
      next = net ? merge(net, data) : sqlite3_mprintf("%s", data);
      if (!next) rc = SQLITE_NOMEM;
    }
    sqlite3_free(net);
    net = next;
  }
  if (rc == SQLITE_OK && step != SQLITE_DONE) rc = sqlite3_errcode(c->db);
  sqlite3_reset(s);
  if (rc != SQLITE_OK) {
    sqlite3_free(net);
    net = 0;
  }
  *pNet = net;
  *pPending = pending;
  return rc;
}

/* The foreign keys of t as SQL conditions on row alias "r": a row of t with
** a parent missing (child side), or a row elsewhere whose parent was the
** old row of t and is gone (parent side). *pSql is NULL when t has none on
** that side. */
static int fk_sql(SyncCtx *c, SyncTable *t, int parent, char **pSql) {
  *pSql = 0;
  sqlite3_stmt *q = 0;
  int rc = sqlite3_prepare_v2(
      c->db,
      parent ? "SELECT m.name, f.id, f.seq, f.\"from\", coalesce(f.\"to\", (SELECT name FROM"
               " pragma_table_info(f.\"table\") WHERE pk = f.seq + 1)), f.\"table\""
               " FROM main.sqlite_schema AS m JOIN pragma_foreign_key_list(m.name) AS f"
               " WHERE m.type = 'table' AND f.\"table\" = ?1 COLLATE NOCASE"
               " ORDER BY m.name, f.id, f.seq"
             : "SELECT ?1, f.id, f.seq, f.\"from\", coalesce(f.\"to\", (SELECT name FROM"
               " pragma_table_info(f.\"table\") WHERE pk = f.seq + 1)), f.\"table\""
               " FROM pragma_foreign_key_list(?1) AS f ORDER BY f.id, f.seq",
      -1, &q, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(q, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_str *w = sqlite3_str_new(0), *notnull = sqlite3_str_new(0), *match = sqlite3_str_new(0);
  char *child = 0, *par = 0;
  int id = -1, n = 0;
  /* One clause per foreign key, closed when the next one starts. */
  for (int more = 1; more;) {
    more = sqlite3_step(q) == SQLITE_ROW;
    const char *tbl = more ? (const char *)sqlite3_column_text(q, 0) : 0;
    int fid = more ? sqlite3_column_int(q, 1) : -1;
    if (n && (!more || fid != id || strcmp(tbl, child) != 0)) {
      char *nn = sqlite3_str_finish(notnull), *mt = sqlite3_str_finish(match);
      if (parent)
        sqlite3_str_appendf(w,
                            "%sEXISTS (SELECT 1 FROM main.\"%w\" AS x WHERE %s AND NOT EXISTS"
                            " (SELECT 1 FROM main.\"%w\" AS p WHERE %s))",
                            sqlite3_str_length(w) ? " OR " : "", child, nn ? nn : "0", par,
                            mt ? mt : "0");
      else
        sqlite3_str_appendf(w, "%s(%s AND NOT EXISTS (SELECT 1 FROM main.\"%w\" AS p WHERE %s))",
                            sqlite3_str_length(w) ? " OR " : "", nn ? nn : "0", par, mt ? mt : "0");
      sqlite3_free(nn);
      sqlite3_free(mt);
      notnull = sqlite3_str_new(0);
      match = sqlite3_str_new(0);
      n = 0;
    }
    if (!more) break;
    if (!n) {
      sqlite3_free(child);
      sqlite3_free(par);
      child = sqlite3_mprintf("%s", tbl);
      par = sqlite3_mprintf("%s", sqlite3_column_text(q, 5));
      id = fid;
    }
    const char *from = (const char *)sqlite3_column_text(q, 3);
    const char *to = (const char *)sqlite3_column_text(q, 4);
    if (!from || !to || !child || !par) {
      rc = to ? SQLITE_NOMEM : SQLITE_ERROR;
      break;
    }
    /* Parent side: x references what the old row (?2) held. */
    if (parent)
      sqlite3_str_appendf(notnull, "%sx.\"%w\" = sync_val(?2 -> '$.\"%q\"')", n ? " AND " : "",
                          from, to);
    else
      sqlite3_str_appendf(notnull, "%sr.\"%w\" IS NOT NULL", n ? " AND " : "", from);
    sqlite3_str_appendf(match, "%sp.\"%w\" = %s.\"%w\"", n ? " AND " : "", to, parent ? "x" : "r",
                        from);
    n++;
  }
  sqlite3_finalize(q);
  sqlite3_free(sqlite3_str_finish(notnull));
  sqlite3_free(sqlite3_str_finish(match));
  sqlite3_free(child);
  sqlite3_free(par);
  char *z = sqlite3_str_finish(w);
  if (rc == SQLITE_OK && z && *z) {
    *pSql = z;
    return SQLITE_OK;
  }
  sqlite3_free(z);
  return rc;
}

/* The statement that finds a foreign-key violation around key ?1 of t
** (side 0: its row lacks a parent) or around the old row ?2 (side 1: a row
** that referenced it lost its parent); *pOut NULL when t has no foreign key
** on that side. Cached per table until the schema changes. */
static int fk_stmt(SyncCtx *c, SyncTable *t, int side, sqlite3_stmt **pOut) {
  CtxFk *f = 0;
  for (CtxFk **pp = &c->fks; *pp;) {
    CtxFk *g = *pp;
    if (g->schemaVersion != c->schemaVersion) {
      /* Built for a schema that is gone. */
      *pp = g->next;
      sqlite3_finalize(g->check[0]);
      sqlite3_finalize(g->check[1]);
      sqlite3_free(g->tbl);
      sqlite3_free(g);
      continue;
    }
    if (strcmp(g->tbl, t->name) == 0) f = g;
    pp = &g->next;
  }
  if (f) {
    *pOut = f->check[side];
    return SQLITE_OK;
  }
  /* Cached statements need the anchor that finalizes them at close. */
  int rc = ctx_anchor(c);
  if (rc != SQLITE_OK) return rc;
  f = sqlite3_malloc64(sizeof *f);
  if (!f) return SQLITE_NOMEM;
  memset(f, 0, sizeof *f);
  f->tbl = sqlite3_mprintf("%s", t->name);
  f->schemaVersion = c->schemaVersion;
  rc = f->tbl ? SQLITE_OK : SQLITE_NOMEM;
  for (int i = 0; i < 2 && rc == SQLITE_OK; i++) {
    char *cond = 0;
    rc = fk_sql(c, t, i, &cond);
    if (rc != SQLITE_OK || !cond) continue;
    sqlite3_str *q = sqlite3_str_new(0);
    if (i == 0) {
      sqlite3_str_appendf(q, "SELECT 1 FROM main.\"%w\" AS r WHERE (%s)", t->name, cond);
      sqlite3_str_appendall(q, " AND ");
      table_key_where(q, t, "r.", 1);
    } else {
      sqlite3_str_appendf(q, "SELECT 1 WHERE %s", cond);
    }
    sqlite3_free(cond);
    char *sql = sqlite3_str_finish(q);
    rc = sql ? sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &f->check[i], 0)
             : SQLITE_NOMEM;
    sqlite3_free(sql);
  }
  if (rc != SQLITE_OK) {
    sqlite3_finalize(f->check[0]);
    sqlite3_finalize(f->check[1]);
    sqlite3_free(f->tbl);
    sqlite3_free(f);
    return rc;
  }
  f->next = c->fks;
  c->fks = f;
  *pOut = f->check[side];
  return SQLITE_OK;
}

/* SQLITE_CONSTRAINT_FOREIGNKEY when the row of key pk of t (if any) lacks
** a parent, or a row that referenced old (the row before the write; NULL
** when there was none) lost its parent. Foreign keys are deferred inside
** the engine's writes, so a violation would only show at COMMIT, failing the
** whole ack or page. Only when foreign keys are enforced. */
static int fk_check(SyncCtx *c, SyncTable *t, const char *pk, const char *row, const char *old) {
  int fk = 0;
  if (sqlite3_db_config(c->db, SQLITE_DBCONFIG_ENABLE_FKEY, -1, &fk) != SQLITE_OK || !fk)
    return SQLITE_OK;
  int rc = SQLITE_OK;
  for (int side = 0; side < 2 && rc == SQLITE_OK; side++) {
    if (side == 0 ? !row : !old) continue;
    sqlite3_stmt *s = 0;
    rc = fk_stmt(c, t, side, &s);
    if (rc != SQLITE_OK || !s) continue;
    sqlite3_bind_text(s, side + 1, side ? old : pk, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    rc = step == SQLITE_ROW    ? SQLITE_CONSTRAINT_FOREIGNKEY
         : step == SQLITE_DONE ? SQLITE_OK
                               : sqlite3_errcode(c->db);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
  return rc;
}

/* The rows of t, other than key pk (?1), that hold a value of row (?2)
** in one of t's UNIQUE indexes (as the capture's REPLACE lookups read them,
** jsonexpr.c: partial ones with their WHERE, expressions included), as key
** objects in *paKey (*pnKey of them, sqlite3_malloc'd). */
static int unique_holders(SyncCtx *c, SyncTable *t, const char *pk, const char *row, char ***paKey,
                          int *pnKey) {
  *paKey = 0;
  *pnKey = 0;
  sqlite3_stmt *q = 0;
  JxShape sh;
  int rc = jx_uniq_read(c, t, &sh);
  sqlite3_str *w = sqlite3_str_new(0);
  for (int u = 1; rc == SQLITE_OK && u < sh.nUniq; u++) {
    sqlite3_str_appendall(w, u > 1 ? ") OR (" : "(");
    jx_uniq_match_json(w, t, &sh.uniq[u], "r", "?2");
  }
  jx_shape_free(&sh);
  if (rc != SQLITE_OK) {
    sqlite3_free(sqlite3_str_finish(w));
    return rc;
  }
  /* No index the lookups can read: no holder (an empty sqlite3_str
  ** finishes as NULL, which is not out of memory). */
  if (!sqlite3_str_errcode(w) && !sqlite3_str_length(w)) {
    sqlite3_free(sqlite3_str_finish(w));
    return SQLITE_OK;
  }
  sqlite3_str_appendchar(w, 1, ')');
  char *cond = sqlite3_str_finish(w);
  if (!cond) return SQLITE_NOMEM;
  sqlite3_str *sql = sqlite3_str_new(0);
  sqlite3_str_appendall(sql, "SELECT ");
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(sql, "%sr.\"%w\" AS \"%w\"", i ? "," : "", t->cols[t->pk[i]],
                        t->cols[t->pk[i]]);
  sqlite3_str_appendf(sql, " FROM main.\"%w\" AS r WHERE (%s) AND NOT (", t->name, cond);
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(sql, "%sr.\"%w\" IS sync_val(?1 -> '$.\"%q\"')", i ? " AND " : "",
                        t->cols[t->pk[i]], t->cols[t->pk[i]]);
  sqlite3_str_appendchar(sql, 1, ')');
  sqlite3_free(cond);
  char *z = sqlite3_str_finish(sql);
  rc = z ? sqlite3_prepare_v2(c->db, z, -1, &q, 0) : SQLITE_NOMEM;
  sqlite3_free(z);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(q, 1, pk, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 2, row, -1, SQLITE_STATIC);
  char **a = 0;
  int n = 0;
  while (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
    char **more = sqlite3_realloc64(a, sizeof *a * (sqlite3_uint64)(n + 1));
    sqlite3_str *k = sqlite3_str_new(0);
    value_append_row(k, q);
    char *key = sqlite3_str_finish(k);
    if (!more || !key) {
      sqlite3_free(key);
      if (more) a = more;
      rc = SQLITE_NOMEM;
      break;
    }
    a = more;
    a[n++] = key;
  }
  sqlite3_finalize(q);
  *paKey = a;
  *pnKey = n;
  return rc;
}

/* try_row's flags. */
#define TRY_CHECK 1 /* also check the foreign keys of a row already there */
#define TRY_ALONE 2 /* no delete of a row other rows refer to */

static int try_row(SyncCtx *, SyncTable *, const char *, const char *, const char *, int,
                   const char *, int *, char **);

/* The server's row for key pk of t is about to be written, and another
** local row holds one of its UNIQUE values. That row is either stale
** (confirmed, but the server has since changed it: the pull brings its newer
** version, so it is deleted meanwhile) or shows pending edits of this
** client (they stay queued for the server to judge and their effect is
** hidden: the row shows its own image, or no row). A row that other rows
** reference is never deleted here: a cascade would take rows no pull brings
** back. Rows that cannot be moved stay, and the write then falls back. */
static int make_room(SyncCtx *c, SyncTable *t, const char *pk, const char *row, char **pzWhy) {
  char **keys = 0;
  int n = 0;
  int rc = unique_holders(c, t, pk, row, &keys, &n);
  sqlite3_stmt *refs = 0;
  int fk = 0;
  if (rc == SQLITE_OK && n &&
      sqlite3_db_config(c->db, SQLITE_DBCONFIG_ENABLE_FKEY, -1, &fk) == SQLITE_OK && fk)
    rc = fk_stmt(c, t, 1, &refs);
  for (int i = 0; rc == SQLITE_OK && i < n; i++) {
    char *k = 0, *why = 0, *cur = 0, *image = 0;
    rc = capture_canon_pk(c, t, keys[i], -1, &k, &why);
    sqlite3_free(why);
    if (rc != SQLITE_OK) break;
    /* A key with an image and nothing pending shows its image too: a guard
    ** whose image still collides is stale like any confirmed row, but the
    ** key may be one whose mutations this same push answer has just
    ** resolved, not rebased yet (ack_resolve dequeues them all first): its
    ** row is still the local edit, and the image is the server's row. */
    sqlite3_stmt *s = ctx_stmt(c, STMT_HAS_PENDING);
    if (!s) rc = sqlite3_errcode(c->db);
    int pending = 0;
    if (rc == SQLITE_OK) {
      sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
      sqlite3_bind_text(s, 2, k, -1, SQLITE_STATIC);
      pending = sqlite3_step(s) == SQLITE_ROW;
      sqlite3_reset(s);
      s = ctx_stmt(c, STMT_SHADOW_GET);
    }
    if (s) {
      sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
      sqlite3_bind_text(s, 2, k, -1, SQLITE_STATIC);
      if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
        image = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
      sqlite3_reset(s);
    }
    if (rc == SQLITE_OK) rc = table_row_json(c, t, k, &cur);
    int fit = 0;
    if (rc == SQLITE_OK && image) rc = try_row(c, t, k, image, cur, 0, 0, &fit, pzWhy);
    if (rc == SQLITE_OK && !fit && !refs) {
      rc = try_row(c, t, k, 0, cur, 0, 0, &fit, pzWhy);
      /* With nothing pending, a server row as image may be the server's
      ** row as it is now (a refusal of this same answer, not rebased yet,
      ** whose image another local row still holds a value of): no pull
      ** sends it again, so it stays as a guard, written again once room is
      ** made (rebase_guards). An image of "absent" goes with the row. */
      if (rc == SQLITE_OK && fit && !pending && image) {
        rc = rebase_guard(c, t->name, k, 0, 0, 0, 0);
      } else if (rc == SQLITE_OK && fit && !pending) {
        rc = rebase_drop_image(c, t->name, k);
      }
    }
    sqlite3_free(k);
    sqlite3_free(cur);
    sqlite3_free(image);
  }
  for (int i = 0; i < n; i++)
    sqlite3_free(keys[i]);
  sqlite3_free(keys);
  return rc;
}

/* make_room for apply.c: the server's row for key pk of t (a key with
** nothing pending) failed with SQLITE_CONSTRAINT_UNIQUE; the local rows in
** its way move aside, and the caller writes the row again. On failure
** *pzErr names the key. */
int rebase_make_room(SyncCtx *c, SyncTable *t, const char *pk, const char *row, char **pzErr) {
  char *why = 0;
  int rc = make_room(c, t, pk, row, &why);
  if (rc != SQLITE_OK && rc != SQLITE_NOMEM && !*pzErr)
    *pzErr = sqlite3_mprintf("cannot make room for %s %s: %s", t->name, pk,
                             why ? why : ctx_errmsg(c, rc));
  sqlite3_free(why);
  return rc;
}

/* Makes row (NULL = absent) the row of key pk, cur being the row there now,
** inside a savepoint: *pFit is 0 (and nothing changed) when the table
** refuses it or a foreign key would break, 1 when it now stands. flags:
** TRY_CHECK, TRY_ALONE (the delete of a row other rows refer to is
** refused: the rows it would take may be the server's, which no pull sends
** again once delivered). room: the server's
** row for the key (row itself, or what row's pending edits start from):
** other local rows holding its UNIQUE values move aside (make_room). Any other
** failure is returned, its text in *pzWhy (the rollback would clear the
** database's). */
static int try_row(SyncCtx *c, SyncTable *t, const char *pk, const char *row, const char *cur,
                   int flags, const char *room, int *pFit, char **pzWhy) {
  *pFit = 0;
  int rc;
  /* Most acks confirm a row exactly as it stands: comparing it is much
  ** cheaper than the upsert (json per column, the capture triggers'
  ** frames), and writing an identical row changes nothing. */
  if (row ? cur && strcmp(row, cur) == 0 : !cur) {
    rc = (flags & TRY_CHECK) && row ? fk_check(c, t, pk, row, 0) : SQLITE_OK;
    *pFit = rc == SQLITE_OK;
  } else {
    rc = ctx_exec(c, "SAVEPOINT sync_rebase");
    if (rc != SQLITE_OK) return rc;
    int refs = 0;
    if (!row && (flags & TRY_ALONE)) rc = cascade_reaches_server(c, t, pk, &refs);
    if (rc == SQLITE_OK && refs) rc = SQLITE_CONSTRAINT_FOREIGNKEY;
    if (rc == SQLITE_OK) rc = row ? table_write(t->upsert, row, 0) : table_write(t->del, pk, 0);
    if ((rc & 0xff) == SQLITE_CONSTRAINT && room && row &&
        sqlite3_extended_errcode(c->db) == SQLITE_CONSTRAINT_UNIQUE) {
      rc = make_room(c, t, pk, room, pzWhy);
      if (rc == SQLITE_OK) rc = table_write(t->upsert, row, 0);
    }
    if (rc == SQLITE_OK) rc = fk_check(c, t, pk, row, cur);
    if (rc == SQLITE_OK) {
      *pFit = 1;
      return ctx_exec(c, "RELEASE sync_rebase");
    }
    if (!unfit(rc) && !*pzWhy) *pzWhy = sqlite3_mprintf("%s", ctx_errmsg(c, rc));
    ctx_exec(c, "ROLLBACK TO sync_rebase; RELEASE sync_rebase");
  }
  return rc == SQLITE_OK || unfit(rc) ? SQLITE_OK : rc;
}

/* Writes image (the server's row as JSON; NULL = absent) with the key's
** pending mutations folded in as the row of key pk of table t; *pPending
** gets how many there were, *pFell whether the row left is neither that
** row nor the image (see rebase_guard); gone: image is NULL because the
** server said the row is gone (a version came with it), so deleting it may
** take the rows that refer to it, as the server's delete did (else those
** may be the server's: the delete is refused, see TRY_ALONE). Applying the
** server's state never fails
** because of local state: when that row cannot stand (a UNIQUE value
** another local row holds, a parent gone), the pending edits stay queued
** for the server to judge and their effect is hidden: the image alone is
** written; when the image cannot stand either (a parent the server deleted
** without telling us yet), the row stays as it is, or, when even that
** breaks a foreign key, goes. Fails only on errors of the database itself
** (out of memory, I/O); then *pzErr names the key. *pNet is set when the
** net row stands, *pFell when the row left is neither that row nor the
** image (see rebase_guard). */
int rebase_write(SyncCtx *c, SyncTable *t, const char *pk, const char *image, int gone,
                 int *pPending, int *pNet, int *pFell, char **pzErr) {
  char *cur = 0, *net = 0;
  *pNet = *pFell = 0;
  int rc = table_row_json(c, t, pk, &cur);
  if (rc == SQLITE_OK) rc = net_row(c, t, pk, image, &net, pPending);
  const char *cand[4] = {net, image, cur, 0};
  char *why = 0;
  int fit = 0, i;
  for (i = 0; rc == SQLITE_OK && !fit && i < 4; i++) {
    if (i == 1 && !*pPending) continue;
    if (i == 3 && !cur) break;
    /* The net row and the image delete no row others refer to unless the
    ** server deleted it; a row that cannot stand even as it is goes,
    ** whatever it takes with it. */
    int alone = i < 2 && !gone ? TRY_ALONE : 0;
    rc = try_row(c, t, pk, cand[i], cur, (i > 0 ? TRY_CHECK : 0) | alone, i < 2 ? image : 0, &fit,
                 &why);
    *pNet = fit && i == 0;
  }
  /* i is one past the candidate that stood. */
  *pFell = rc == SQLITE_OK && i > 2;
  sqlite3_free(cur);
  sqlite3_free(net);
  if (rc != SQLITE_OK && rc != SQLITE_NOMEM && !*pzErr)
    *pzErr = sqlite3_mprintf("cannot rebase %s %s: %s", t->name, pk, why ? why : ctx_errmsg(c, rc));
  sqlite3_free(why);
  return rc;
}

/* 1 before this client's first pull. Until then a row the server confirmed
** (its image carries a version) keeps its image when nothing is pending any
** more, whatever the row shows: the initial sync sends no delete, so only
** the image lets it tell a row the server has deleted since
** (rebase_initial_end). A refused edit of a row another client deleted
** meanwhile would otherwise bring the row back for good. */
int rebase_before_pull(SyncCtx *c) {
  char *cursor = ctx_meta_get(c, "cursor");
  sqlite3_free(cursor);
  return cursor == 0;
}

/* sync_meta 'pulled_version': the highest version of any change a page
** (or an event) has brought. An image whose version is higher is of a
** change no page applied yet has carried: its echo, or a later change of
** its key, is still to come, and a page fetched earlier may still bring an
** older row of the key (outbox.c, ack_key). Versions of another database
** mean nothing: a resync forgets it (resync.c). */
int rebase_pulled(SyncCtx *c, sqlite3_int64 top) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_META_MAX);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, "pulled_version", -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, top);
  return ctx_run(c, s);
}

/* The highest version pulled (rebase_pulled), or -1 when none was. */
sqlite3_int64 rebase_pulled_version(SyncCtx *c) {
  char *v = ctx_meta_get(c, "pulled_version");
  sqlite3_int64 n = v ? strtoll(v, 0, 10) : -1;
  sqlite3_free(v);
  return n;
}

/* Re-derives the visible row of key pk (the canonical key text) of table t
** from its image, and drops the image once nothing is pending, unless it
** guards a confirmed version (rebase_set_image has just kept it over an
** older change: a page fetched, or an event held, before the push that
** confirmed it, and older changes may still follow), or the row could not
** take it (*pFell, if pFell: the image stays as a guard, rebase_guards).
** fresh: the caller has just recorded the image from the server (a pulled
** change, a result this answer applied); only then does an image of
** "absent" with a version delete the row as the server did, taking the
** rows that refer to it. One kept from an earlier pull (a refused insert
** over a pulled delete, a guard) does not: the server may have made the
** row again since, and rows pulled in between refer to the new one, whose
** own row comes on a later page (TRY_ALONE). Returns an SQLite code; on
** failure *pzErr names the key. */
int rebase_key(SyncCtx *c, SyncTable *t, const char *pk, int fresh, int *pFell, char **pzErr) {
  int kept = c->imageKept;
  c->imageKept = 0;
  sqlite3_stmt *s = ctx_stmt(c, STMT_SHADOW_GET);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
  char *image = 0;
  int rc = sqlite3_step(s), confirmed = 0, gone = 0;
  if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
    image = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
    confirmed = sqlite3_column_type(s, 1) == SQLITE_INTEGER;
    if (!image) rc = SQLITE_NOMEM;
  } else if (rc == SQLITE_ROW) {
    gone = fresh && sqlite3_column_type(s, 1) == SQLITE_INTEGER;
  }
  sqlite3_reset(s);
  if (rc == SQLITE_NOMEM) return rc;

  int pending = 0, net = 0, fell = 0;
  rc = rebase_write(c, t, pk, image, gone, &pending, &net, &fell, pzErr);
  int hold = rc == SQLITE_OK && !pending && confirmed && rebase_before_pull(c);
  /* An image of "absent" is guarded too: its delete was refused because
  ** it would take other rows with it (TRY_ALONE), which may be the
  ** server's (a refused insert of a key the server holds, whose children
  ** a pull has already delivered: the server's row for the key is still
  ** to come, and replaces the guard). It is tried again, never forced. */
  int absent = image == 0;
  sqlite3_free(image);
  if (pFell) *pFell = fell;
  if (rc == SQLITE_OK && !pending && fell) {
    rc = rebase_guard(c, t->name, pk, 0, 0, 0, absent);
  } else if (rc == SQLITE_OK && !pending && !(kept && net) && !hold) {
    rc = rebase_drop_image(c, t->name, pk);
  }
  if (rc != SQLITE_OK && rc != SQLITE_NOMEM && !*pzErr)
    *pzErr = sqlite3_mprintf("cannot rebase %s %s: %s", t->name, pk, ctx_errmsg(c, rc));
  return rc;
}

/* Guards. A key with nothing pending whose row could not take the server's
** row (rebase_write's *pFell: a UNIQUE value another row holds until a
** later result of the same answer removes it, a parent not there yet)
** would otherwise differ from the server for good: no pull sends the row
** again unless it changes. It keeps its image in sync_shadow with no
** mutation in the outbox (as a confirmed version's guard does, see
** rebase_key) and is listed in sync_meta 'guards' ([[tbl, pk], ...]);
** rebase_guards writes the listed keys again at the end of every ack and of
** every pull's last page. A change from the server for the key replaces
** its guard (apply.c). An image of "absent" is guarded only when its
** delete would take rows that refer to it (TRY_ALONE): it is tried again
** the same way, never forced. A holder moved aside by make_room with
** nothing pending keeps its server image as a guard too. */

/* Keeps row as the guard image of key pk of tbl and lists the key; put:
** write the image (else the image there stays). */
int rebase_guard(SyncCtx *c, const char *tbl, const char *pk, const char *row,
                 sqlite3_int64 version, int hasVersion, int put) {
  int rc = put ? rebase_set_image(c, tbl, pk, row, version, hasVersion) : SQLITE_OK;
  sqlite3_stmt *s = 0;
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(
        c->db,
        "INSERT INTO main.sync_meta(key, value) VALUES('guards', json_array(json_array(?1, ?2)))"
        " ON CONFLICT(key) DO UPDATE SET value = CASE WHEN EXISTS (SELECT 1 FROM"
        " json_each(value) AS g WHERE g.value->>0 = ?1 AND g.value->>1 = ?2) THEN value"
        " ELSE json_insert(value, '$[#]', json_array(?1, ?2)) END",
        -1, &s, 0);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(s, 1, tbl, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
    rc = ctx_run(c, s);
  }
  sqlite3_finalize(s);
  return rc;
}

/* An initial sync (a pull from no cursor) delivers every live row and no
** delete: a row this client pushed and the server confirmed (a guard) but
** has deleted since, before this client ever pulled, would stay for good.
** rebase_initial_begin notes the guards held when the initial sync starts
** (in temp.sync_initial, on the pulling connection); rebase_initial_end,
** after its last page, takes every one the sync did not deliver (apply.c
** drops the guard of a key it writes) as absent on the server. Guards
** taken during the sync (a push answer between its pages) are left. */
int rebase_initial_begin(SyncCtx *c) {
  char *cursor = ctx_meta_get(c, "cursor"), *resync = ctx_meta_get(c, "resync");
  int initial = !cursor && !resync;
  sqlite3_free(cursor);
  sqlite3_free(resync);
  if (!initial) return SQLITE_OK;
  /* A key with pending edits keeps its image through the sync, and a
  ** confirmed image (with its version) of a row the server has deleted
  ** since would stay as their base for good, so that a refused edit brings
  ** the row back: such an image becomes "absent" now, and the sync, which
  ** delivers every live row, sets it again when the row still exists. */
  int rc = ctx_exec(c, "UPDATE main.sync_shadow AS s SET row = NULL, version = NULL"
                       " WHERE row IS NOT NULL AND version IS NOT NULL AND EXISTS (SELECT 1"
                       " FROM main.sync_outbox AS o WHERE o.tbl = s.tbl AND o.pk = s.pk)");
  if (rc != SQLITE_OK) return rc;
  sqlite3_stmt *s = 0;
  rc = sqlite3_prepare_v2(c->db,
                          "SELECT 1 FROM main.sync_shadow AS s WHERE NOT EXISTS (SELECT 1"
                          " FROM main.sync_outbox AS o WHERE o.tbl = s.tbl AND o.pk = s.pk)",
                          -1, &s, 0);
  int any = rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW;
  sqlite3_finalize(s);
  if (rc != SQLITE_OK || !any) return rc;
  return ctx_exec(c, "CREATE TEMP TABLE IF NOT EXISTS sync_initial(tbl TEXT, pk TEXT,"
                     " PRIMARY KEY(tbl, pk)) WITHOUT ROWID;"
                     "DELETE FROM temp.sync_initial;"
                     "INSERT INTO temp.sync_initial SELECT tbl, pk FROM main.sync_shadow AS s"
                     " WHERE NOT EXISTS (SELECT 1 FROM main.sync_outbox AS o"
                     " WHERE o.tbl = s.tbl AND o.pk = s.pk)");
}

int rebase_initial_end(SyncCtx *c, char **pzErr) {
  sqlite3_stmt *q = 0;
  if (sqlite3_prepare_v2(c->db,
                         "SELECT i.tbl, i.pk FROM temp.sync_initial AS i JOIN main.sync_shadow"
                         " AS s ON s.tbl = i.tbl AND s.pk = i.pk WHERE NOT EXISTS (SELECT 1"
                         " FROM main.sync_outbox AS o WHERE o.tbl = i.tbl AND o.pk = i.pk)",
                         -1, &q, 0) != SQLITE_OK) {
    sqlite3_finalize(q);
    return SQLITE_OK; /* no initial sync under way on this connection */
  }
  int rc = SQLITE_OK;
  /* Read first: rebasing writes sync_shadow. */
  sqlite3_str *keys = sqlite3_str_new(c->db);
  int n = 0;
  while (sqlite3_step(q) == SQLITE_ROW) {
    sqlite3_str_appendf(keys, "%s", sqlite3_column_text(q, 0));
    sqlite3_str_appendchar(keys, 1, 0);
    sqlite3_str_appendf(keys, "%s", sqlite3_column_text(q, 1));
    sqlite3_str_appendchar(keys, 1, 0);
    n++;
  }
  sqlite3_finalize(q);
  char *z = sqlite3_str_finish(keys);
  if (n && !z) return SQLITE_NOMEM;
  for (const char *p = z; rc == SQLITE_OK && n-- > 0;) {
    const char *tbl = p, *pk = p + strlen(p) + 1;
    p = pk + strlen(pk) + 1;
    SyncTable *t = 0;
    char *why = 0;
    int fell = 0;
    rc = table_get(c, tbl, 1, &t, &why);
    sqlite3_free(why);
    if (rc != SQLITE_OK) {
      rc = rc == SQLITE_NOMEM ? rc : SQLITE_OK;
      continue;
    }
    rc = rebase_set_image(c, t->name, pk, 0, 0, 0);
    if (rc == SQLITE_OK) rc = rebase_key(c, t, pk, 0, &fell, pzErr);
  }
  sqlite3_free(z);
  if (rc == SQLITE_OK) rc = ctx_exec(c, "DELETE FROM temp.sync_initial");
  return rc;
}
