/*
** inbox.c: apply's slow paths, taken only when a page does not write as it
** comes (apply.c takes the fast path).
**
** Server state is consistent at the end of a pull, not inside it: the change
** log keeps the latest change per row, so a UNIQUE swap or rotation arrives
** as rows that each collide with another's old value, a value handed from one
** row to another can arrive receiver first, and a page boundary can fall
** between the halves of a swap or between a child and its parent.
**
** Deferred rows (Settle): a row write a UNIQUE index refused is kept and
** retried after the page's other changes, over and over while some succeed.
** What is left is a cycle or a collision with a row the page does not
** write. For each remaining row, the local row holding its value in a UNIQUE
** index (not the primary key; jx_uniq_read: an index on expressions is
** looked up through them, a partial one with its WHERE) is:
**   - one of the deferred rows (its final state is coming): parked, its
**     colliding columns set to a value no row holds (text and blobs get a
**     random suffix, numbers one past the column's maximum; CHECK
**     constraints ignored for the park only), and rewritten afterwards;
**   - a row with pending mutations: its local effect is hidden, the row set
**     back to its server image (sync_shadow) or removed when the server has
**     none (parked instead when other rows refer to it: they may be the
**     server's, and its removal would cascade to them); its mutations stay
**     queued for the server to judge. A pending
**     row holding a value of that image is hidden in turn (write_image),
**     rather than the row removed: its removal would cascade to the
**     server's rows that refer to it, which no pull brings back;
**   - any other row: stale, because the server never holds two equal UNIQUE
**     values: its own change is on a later page, so the page is staged
**     (*pLater); on the pull's last page, the server wins and the row is
**     deleted (a cascade is right: the server holds no such row).
**
** Deletes put off (inbox.h): the list of a server's deletes apply.c holds
** back until the rest of the apply is written.
**
** The inbox: a page that cannot apply yet (a collision above, or a foreign
** key left unresolved, seen through SQLITE_DBSTATUS_DEFERRED_FKS) goes into
** sync_inbox(seq, page) and the cursor moves on, so the pull continues.
** apply.c applies the staged pages and the last one together.
*/
#include "inbox.h"
#include "cascade.h"
#include "jsonexpr.h"
#include "rebase.h"

#include <string.h>

int settle_add(Settle *st, SyncTable *t, int chg, const char *key, const char *row, int nRow) {
  if (ctx_room(&st->a, &st->cap, st->n, sizeof *st->a)) return SQLITE_NOMEM;
  Deferred *d = &st->a[st->n];
  d->t = t, d->chg = chg;
  d->key = sqlite3_mprintf("%s", key);
  d->row = sqlite3_mprintf("%.*s", nRow, row);
  if (!d->key || !d->row) {
    sqlite3_free(d->key);
    sqlite3_free(d->row);
    return SQLITE_NOMEM;
  }
  st->n++;
  return SQLITE_OK;
}

static void settle_remove(Settle *st, int k) {
  sqlite3_free(st->a[k].key);
  sqlite3_free(st->a[k].row);
  memmove(&st->a[k], &st->a[k + 1], sizeof *st->a * (size_t)(st->n - k - 1));
  st->n--;
}

/* A later change of the key replaces the deferred one. */
void settle_drop(Settle *st, SyncTable *t, const char *key) {
  for (int k = 0; k < st->n; k++)
    if (st->a[k].t == t && strcmp(st->a[k].key, key) == 0) settle_remove(st, k--);
}

void settle_free(Settle *st) {
  while (st->n)
    settle_remove(st, st->n - 1);
  sqlite3_free(st->a);
  memset(st, 0, sizeof *st);
}

static int settle_has(Settle *st, SyncTable *t, const char *key) {
  for (int k = 0; k < st->n; k++)
    if (st->a[k].t == t && strcmp(st->a[k].key, key) == 0) return 1;
  return 0;
}

/* The statements that find, park and delete the local row holding a UNIQUE
** index's values, ?1 being the incoming row (JSON). */
typedef struct Blocker {
  sqlite3_stmt *find; /* -> the holder's canonical key */
  sqlite3_stmt *park; /* moves the holder's values aside */
  sqlite3_stmt *drop; /* deletes the holder */
} Blocker;

static void blocker_free(Blocker *b) {
  sqlite3_finalize(b->find);
  sqlite3_finalize(b->park);
  sqlite3_finalize(b->drop);
  memset(b, 0, sizeof *b);
}

/* The key as the capture triggers write it (see capture.c key_expr). */
static void key_sql(sqlite3_str *s, SyncTable *t) {
  sqlite3_str_appendall(s, "json_object(");
  for (int i = 0; i < t->nPk; i++) {
    const char *col = t->cols[t->pk[i]];
    sqlite3_str_appendf(
        s,
        "%s'%q',CASE typeof(\"%w\") WHEN 'blob' THEN json_object('$hex',hex(\"%w\"))"
        " WHEN 'real' THEN json(printf('%%!.17g',\"%w\")) ELSE \"%w\" END",
        i ? "," : "", col, col, col, col, col);
  }
  sqlite3_str_appendall(s, ")");
}

/* Prepares b for unique index u of t (jsonexpr.h: its columns, the
** expressions of one on expressions, the WHERE of a partial one). Parking
** sets the columns u's parts read to values no row holds. */
static int blocker_prepare(SyncCtx *c, SyncTable *t, const JxUniq *u, Blocker *b) {
  unsigned char *park = sqlite3_malloc64((sqlite3_uint64)t->nCol + 1);
  if (!park) return SQLITE_NOMEM;
  memset(park, 0, (size_t)t->nCol + 1);
  jx_uniq_reads(t, u, park);
  sqlite3_str *where = sqlite3_str_new(c->db), *set = sqlite3_str_new(c->db);
  jx_uniq_match_json(where, t, u, "r", "?1");
  table_park_set(set, t, park);
  sqlite3_free(park);
  /* (An empty sqlite3_str finishes as NULL: its error code tells.) */
  int rc = sqlite3_str_errcode(where) || sqlite3_str_errcode(set) ? SQLITE_NOMEM : SQLITE_OK;
  char *w = sqlite3_str_finish(where), *p = sqlite3_str_finish(set);
  if (rc == SQLITE_OK && w && p) {
    sqlite3_str *s = sqlite3_str_new(c->db);
    sqlite3_str_appendall(s, "SELECT ");
    key_sql(s, t);
    sqlite3_str_appendf(s, " FROM main.\"%w\" AS r WHERE %s", t->name, w);
    char *find = sqlite3_str_finish(s);
    char *upd = sqlite3_mprintf("UPDATE main.\"%w\" AS r SET %s WHERE %s", t->name, p, w);
    char *drop = sqlite3_mprintf("DELETE FROM main.\"%w\" AS r WHERE %s", t->name, w);
    rc = find && upd && drop ? SQLITE_OK : SQLITE_NOMEM;
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(c->db, find, -1, &b->find, 0);
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(c->db, upd, -1, &b->park, 0);
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(c->db, drop, -1, &b->drop, 0);
    sqlite3_free(find);
    sqlite3_free(upd);
    sqlite3_free(drop);
  }
  sqlite3_free(w);
  sqlite3_free(p);
  return rc;
}

/* The key of the local row, other than the row's own key, holding row's
** values in b's index (*pKey NULL when none). */
static int blocker_find(Blocker *b, const char *row, const char *self, char **pKey) {
  *pKey = 0;
  sqlite3_bind_text(b->find, 1, row, -1, SQLITE_STATIC);
  int rc;
  while ((rc = sqlite3_step(b->find)) == SQLITE_ROW) {
    const char *k = (const char *)sqlite3_column_text(b->find, 0);
    if (k && strcmp(k, self) != 0) {
      *pKey = sqlite3_mprintf("%s", k);
      rc = *pKey ? SQLITE_ROW : SQLITE_NOMEM;
      break;
    }
  }
  int rc2 = sqlite3_reset(b->find);
  if (rc == SQLITE_NOMEM) return rc;
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc2;
}

/* Runs s with ?1 the incoming row; the error code stays readable. */
static int run_row(sqlite3_stmt *s, const char *row) {
  sqlite3_bind_text(s, 1, row, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Parks the holder (table_park_run: a CHECK is ignored for the park). */
static int park(SyncCtx *c, Blocker *b, const char *row) {
  return table_park_run(c, b->park, row);
}

static int clear_all(SyncCtx *, Settle *, Deferred *, int, int *, int *);

/* Writes image, the server's row for pending key of t. A pending row of
** this client holding one of its UNIQUE values (a row that took the value
** meanwhile) has its local effect hidden too, and the write is tried again;
** a confirmed holder is left alone. depth bounds the hides that hide
** others in turn (two pending rows can each hold the other's image value). */
static int write_image(SyncCtx *c, SyncTable *t, const char *key, const char *image, int depth) {
  int rc = table_write(t->upsert, image, 0);
  if (rc != SQLITE_CONSTRAINT || sqlite3_extended_errcode(c->db) != SQLITE_CONSTRAINT_UNIQUE ||
      depth >= 4)
    return rc;
  if ((rc = ctx_exec(c, "SAVEPOINT sync_hide")) != SQLITE_OK) return rc;
  Settle sub;
  memset(&sub, 0, sizeof sub);
  sub.depth = depth + 1;
  Deferred d = {t, 0, (char *)key, (char *)image};
  int done = 0, later = 0;
  rc = clear_all(c, &sub, &d, 0, &done, &later);
  if (rc == SQLITE_OK) rc = table_write(t->upsert, image, 0);
  if (rc == SQLITE_OK) return ctx_exec(c, "RELEASE sync_hide");
  ctx_exec(c, "ROLLBACK TO sync_hide; RELEASE sync_hide");
  return rc;
}

static int hide_at(SyncCtx *c, SyncTable *t, const char *key, int depth, int *pKept);

/* Hides the local effect of pending key: its server image, or no row when
** the server has none or the image collides too. Its mutations stay. */
int settle_hide(SyncCtx *c, SyncTable *t, const char *key) {
  return hide_at(c, t, key, 0, 0);
}

/* The row, when its image cannot stand, goes unless its removal would take
** rows that may be the server's with it (cascade_reaches_server: a cascade
** to them cannot be undone by a pull). Then it stays as it is: at depth 0,
** with pKept, *pKept is set (the caller parks it instead); deeper (a row
** hidden to make room for another's image), the row it blocks falls back
** instead. Without pKept at depth 0 (settle_hide) it goes regardless. */
static int hide_at(SyncCtx *c, SyncTable *t, const char *key, int depth, int *pKept) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_SHADOW_GET);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
  char *image = 0;
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
    image = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
    if (!image) {
      sqlite3_reset(s);
      return SQLITE_NOMEM;
    }
  }
  sqlite3_reset(s);
  int rc = image ? write_image(c, t, key, image, depth) : SQLITE_CONSTRAINT;
  sqlite3_free(image);
  if (rc == SQLITE_NOMEM || rc == SQLITE_OK) return rc;
  int refs = 0;
  rc = pKept || depth ? cascade_reaches_server(c, t, key, &refs) : SQLITE_OK;
  if (rc == SQLITE_OK && refs && !depth) *pKept = 1;
  return rc != SQLITE_OK || refs ? rc : table_write(t->del, key, 0);
}

static int key_pending(SyncCtx *c, SyncTable *t, const char *key, int *pYes) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_HAS_PENDING);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  *pYes = rc == SQLITE_ROW;
  sqlite3_reset(s);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Clears the way for d through one index (see the file's comment). *pDone
** counts what moved; *pLater is set when a holder's state is still to
** come. */
static int clear_one(SyncCtx *c, Settle *st, Deferred *d, Blocker *b, int final, int *pDone,
                     int *pLater) {
  char *key = 0;
  int rc = blocker_find(b, d->row, d->key, &key);
  if (rc != SQLITE_OK || !key) return rc;
  int pending = 0;
  if (settle_has(st, d->t, key)) {
    rc = park(c, b, d->row);
    if (rc == SQLITE_OK) ++*pDone;
  } else if ((rc = key_pending(c, d->t, key, &pending)) == SQLITE_OK && pending) {
    int kept = 0;
    rc = hide_at(c, d->t, key, st->depth, &kept);
    /* Rows refer to it (they may be the server's: a pending insert of a
    ** key the server holds, whose children a pull delivered): deleting it
    ** would cascade to them, so its value is parked instead, until its
    ** server row or the answer to its edits rebases it. */
    if (rc == SQLITE_OK && kept) rc = park(c, b, d->row);
    char *still = 0;
    if (rc == SQLITE_OK) rc = blocker_find(b, d->row, d->key, &still);
    if (rc == SQLITE_OK && !still) ++*pDone;
    pending = still == 0;
    sqlite3_free(still);
  }
  if (rc == SQLITE_OK && !pending && !settle_has(st, d->t, key)) {
    if (final) {
      rc = run_row(b->drop, d->row);
      if (rc == SQLITE_OK) ++*pDone;
    } else {
      *pLater = 1;
    }
  }
  sqlite3_free(key);
  return rc;
}

/* Clears the way for d through each of its table's UNIQUE indexes. */
static int clear_all(SyncCtx *c, Settle *st, Deferred *d, int final, int *pDone, int *pLater) {
  JxShape sh;
  int rc = jx_uniq_read(c, d->t, &sh);
  /* uniq[0] is the key */
  for (int u = 1; rc == SQLITE_OK && u < sh.nUniq; u++) {
    Blocker b;
    memset(&b, 0, sizeof b);
    rc = blocker_prepare(c, d->t, &sh.uniq[u], &b);
    if (rc == SQLITE_OK) rc = clear_one(c, st, d, &b, final, pDone, pLater);
    blocker_free(&b);
  }
  jx_shape_free(&sh);
  return rc;
}

/* Writes the deferred rows: retried while some succeed, then their holders
** moved (see the file's comment), until none is left. final: the pull's
** last page, where a holder outside the pages is deleted; otherwise *pLater
** is set and the caller stages the page. A failure other than UNIQUE, or a
** collision nothing clears, names the change and its key in *pzErr. */
int settle_run(SyncCtx *c, Settle *st, int final, int *pLater, char **pzErr) {
  *pLater = 0;
  int rc = SQLITE_OK;
  /* Each clearing round lets at least one row through: a bound for safety. */
  int clears = 0, maxClears = 2 * st->n + 2;
  while (st->n) {
    int progress = 0;
    char *msg = 0;
    Deferred *last = 0;
    for (int k = 0; rc == SQLITE_OK && k < st->n;) {
      Deferred *d = &st->a[k];
      rc = table_write(d->t->upsert, d->row, 0);
      if (rc == SQLITE_OK) {
        settle_remove(st, k);
        progress = 1;
        continue;
      }
      sqlite3_free(msg);
      msg = sqlite3_mprintf("%s", sqlite3_errmsg(c->db));
      last = d;
      if (rc == SQLITE_CONSTRAINT && sqlite3_extended_errcode(c->db) == SQLITE_CONSTRAINT_UNIQUE)
        rc = SQLITE_OK, k++;
    }
    if (rc == SQLITE_OK && st->n && !progress) {
      int done = 0;
      for (int k = 0; rc == SQLITE_OK && k < st->n && !*pLater; k++) {
        rc = clear_all(c, st, &st->a[k], final, &done, pLater);
        if (rc != SQLITE_OK && rc != SQLITE_NOMEM) {
          /* Read before anything resets it. */
          last = &st->a[k];
          sqlite3_free(msg);
          msg = sqlite3_mprintf("cannot move aside the row holding its values: %s",
                                sqlite3_errmsg(c->db));
        }
      }
      /* Nothing found to move (an index whose text cannot be read back,
      ** say): a later page may still resolve it; on the last one it is an
      ** error. */
      if (rc == SQLITE_OK && !*pLater && !done && !final) *pLater = 1;
      if (rc == SQLITE_OK && !*pLater && (!done || ++clears > maxClears)) rc = SQLITE_CONSTRAINT;
    }
    if (rc == SQLITE_OK && *pLater) {
      sqlite3_free(msg);
      return rc;
    }
    if (rc != SQLITE_OK) {
      if (rc != SQLITE_NOMEM && last)
        *pzErr = sqlite3_mprintf("change %d (%s %s): %s", last->chg, last->t->name, last->key,
                                 msg ? msg : sqlite3_errmsg(c->db));
      sqlite3_free(msg);
      return rc;
    }
    sqlite3_free(msg);
  }
  return rc;
}

void putoff_clear(PutOff *o) {
  sqlite3_free(o->key);
  sqlite3_free(o->pk);
  sqlite3_free(o->ver);
  memset(o, 0, sizeof *o);
}

PutOff putoff_take(PutOffs *po, int k) {
  PutOff o = po->a[k];
  memmove(&po->a[k], &po->a[k + 1], sizeof o * (size_t)(po->n - k - 1));
  po->n--;
  return o;
}

void putoff_drop(PutOffs *po, SyncTable *t, const char *key) {
  for (int k = 0; k < po->n; k++) {
    if (po->a[k].t != t || strcmp(po->a[k].key, key) != 0) continue;
    PutOff o = putoff_take(po, k--);
    putoff_clear(&o);
  }
}

int putoff_add(PutOffs *po, SyncTable *t, int chg, const char *key, jspan pk, jspan ver) {
  putoff_drop(po, t, key);
  if (ctx_room(&po->a, &po->cap, po->n, sizeof *po->a)) return SQLITE_NOMEM;
  PutOff *o = &po->a[po->n];
  o->t = t, o->chg = chg;
  o->key = sqlite3_mprintf("%s", key);
  o->pk = jscan_compact(pk);
  o->ver = ver.z ? sqlite3_mprintf("%.*s", ver.n, ver.z) : 0;
  if (!o->key || !o->pk || (ver.z && !o->ver)) {
    putoff_clear(o);
    return SQLITE_NOMEM;
  }
  po->n++;
  return SQLITE_OK;
}

void putoff_free(PutOffs *po) {
  for (int k = 0; k < po->n; k++)
    putoff_clear(&po->a[k]);
  sqlite3_free(po->a);
  memset(po, 0, sizeof *po);
}

/* 1 when the transaction holds a foreign key violation not yet resolved
** (counted with defer_foreign_keys on, checked only at COMMIT). */
int fk_unresolved(SyncCtx *c) {
  int cur = 0, hi = 0;
  return sqlite3_db_status(c->db, SQLITE_DBSTATUS_DEFERRED_FKS, &cur, &hi, 0) == SQLITE_OK && cur;
}

/* One pass of fk_hide_deletes over the violations as they stand. */
static int hide_pass(SyncCtx *c, int *pN) {
  *pN = 0;
  sqlite3_stmt *q = 0;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT DISTINCT parent FROM pragma_foreign_key_check"
                              " WHERE \"table\" NOT LIKE 'sync\\_%' ESCAPE '\\'",
                              -1, &q, 0);
  if (rc != SQLITE_OK) return rc;
  while (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
    const char *parent = (const char *)sqlite3_column_text(q, 0);
    SyncTable *t = 0;
    char *why = 0;
    if (!parent || !table_is_tracked(c, parent)) continue;
    rc = table_get(c, parent, 0, &t, &why);
    sqlite3_free(why);
    if (rc != SQLITE_OK) break;
    sqlite3_stmt *s = 0;
    rc = sqlite3_prepare_v2(c->db,
                            "SELECT pk, row FROM main.sync_shadow AS s WHERE tbl = ?1 AND"
                            " row IS NOT NULL AND EXISTS (SELECT 1 FROM main.sync_outbox AS o"
                            " WHERE o.tbl = s.tbl AND o.pk = s.pk)",
                            -1, &s, 0);
    if (rc == SQLITE_OK) sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    while (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
      char *cur = 0;
      rc = table_row_json(c, t, (const char *)sqlite3_column_text(s, 0), &cur);
      if (rc != SQLITE_OK || cur) {
        sqlite3_free(cur);
        continue;
      }
      rc = ctx_exec(c, "SAVEPOINT sync_fk_hide");
      if (rc != SQLITE_OK) break;
      int w = write_image(c, t, (const char *)sqlite3_column_text(s, 0),
                          (const char *)sqlite3_column_text(s, 1), 0);
      if (w == SQLITE_OK) {
        ++*pN;
        rc = ctx_exec(c, "RELEASE sync_fk_hide");
      } else {
        rc = w == SQLITE_NOMEM ? w : SQLITE_OK;
        ctx_exec(c, "ROLLBACK TO sync_fk_hide; RELEASE sync_fk_hide");
      }
    }
    sqlite3_finalize(s);
  }
  sqlite3_finalize(q);
  return rc;
}

/* A pending local delete of a parent whose child the server still has
** (the pull brings a child of a row this client deleted, the delete not yet
** pushed) is hidden like any pending edit that no longer fits: the parent
** shows its server image again, its delete stays queued for the server to
** judge (which cascades there as it should). Run on a pull's last page
** while foreign keys are unresolved: restores each pending row of the
** parent tables the violations name that is absent locally and has an
** image. A restored row can itself refer to a deleted row (a local delete
** of a user cascaded to its project, whose task the pull brings): passes
** repeat while they restore something. *pN counts the rows restored. */
int fk_hide_deletes(SyncCtx *c, int *pN) {
  *pN = 0;
  int rc = SQLITE_OK, n = 1;
  /* A pass that hides a holder can remove a row an earlier pass restored
  ** (its cascade): the bound keeps such a cycle finite. */
  for (int pass = 0; rc == SQLITE_OK && n && fk_unresolved(c) && pass < 64; pass++) {
    rc = hide_pass(c, &n);
    *pN += n;
  }
  return rc;
}

/* The key of a row of child t whose foreign key fkid finds no row in
** parent (*pKey NULL when none is found): foreign_key_check gives no rowid
** for a WITHOUT ROWID table, so the row is looked up by its columns. */
static void dangling_key(SyncCtx *c, SyncTable *t, const char *parent, int fkid, char **pKey) {
  *pKey = 0;
  sqlite3_stmt *q = 0;
  SyncTable *p = 0;
  char *ignored = 0;
  char *sql = sqlite3_mprintf("PRAGMA main.foreign_key_list(\"%w\")", t->name);
  sqlite3_str *s = sqlite3_str_new(c->db);
  sqlite3_str_appendall(s, "SELECT ");
  key_sql(s, t);
  sqlite3_str_appendf(s, " FROM main.\"%w\" AS x WHERE ", t->name);
  sqlite3_str *cond = sqlite3_str_new(c->db);
  int n = 0, ok = sql && sqlite3_prepare_v2(c->db, sql, -1, &q, 0) == SQLITE_OK;
  while (ok && sqlite3_step(q) == SQLITE_ROW) {
    /* id, seq, table, from, to: to is NULL for the parent's primary key */
    if (sqlite3_column_int(q, 0) != fkid) continue;
    const char *from = (const char *)sqlite3_column_text(q, 3);
    const char *to = (const char *)sqlite3_column_text(q, 4);
    int seq = sqlite3_column_int(q, 1);
    if (!to && !p && table_get(c, parent, 0, &p, &ignored) != SQLITE_OK) p = 0;
    if (!to) to = p && seq < p->nPk ? p->cols[p->pk[seq]] : 0;
    if (!from || !to) {
      ok = 0;
      break;
    }
    sqlite3_str_appendf(s, "x.\"%w\" IS NOT NULL AND ", from);
    sqlite3_str_appendf(cond, "%sy.\"%w\" = x.\"%w\"", n++ ? " AND " : "", to, from);
  }
  sqlite3_finalize(q);
  q = 0;
  char *where = sqlite3_str_finish(cond);
  sqlite3_str_appendf(s, "NOT EXISTS (SELECT 1 FROM main.\"%w\" AS y WHERE %s) LIMIT 1", parent,
                      where ? where : "");
  char *find = sqlite3_str_finish(s);
  if (ok && n && find && sqlite3_prepare_v2(c->db, find, -1, &q, 0) == SQLITE_OK &&
      sqlite3_step(q) == SQLITE_ROW)
    *pKey = sqlite3_mprintf("%s", sqlite3_column_text(q, 0));
  sqlite3_finalize(q);
  sqlite3_free(find);
  sqlite3_free(where);
  sqlite3_free(sql);
  sqlite3_free(ignored);
}

/* The keys, as "tbl\0key\0" pairs, of child's rows that reference the row
** of key pk (JSON, nPk bytes) of t through the foreign key fid. */
static int referrers(SyncCtx *c, SyncTable *t, SyncTable *child, int fid, const char *pk, int nPk,
                     sqlite3_str *out) {
  sqlite3_stmt *q = 0;
  char *sql = sqlite3_mprintf("PRAGMA main.foreign_key_list(\"%w\")", child->name);
  int rc = sql ? sqlite3_prepare_v2(c->db, sql, -1, &q, 0) : SQLITE_NOMEM;
  sqlite3_free(sql);
  sqlite3_str *s = sqlite3_str_new(c->db);
  sqlite3_str_appendall(s, "SELECT ");
  key_sql(s, child);
  sqlite3_str_appendf(s, " FROM (SELECT x.* FROM main.\"%w\" AS x, main.\"%w\" AS p WHERE 1",
                      child->name, t->name);
  int n = 0;
  /* id, seq, table, from, to: "to" NULL means the parent's primary key. */
  while (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
    if (sqlite3_column_int(q, 0) != fid) continue;
    const char *from = (const char *)sqlite3_column_text(q, 3);
    const char *to = (const char *)sqlite3_column_text(q, 4);
    int seq = sqlite3_column_int(q, 1);
    if (!to && seq < t->nPk) to = t->cols[t->pk[seq]];
    if (!from || !to) break;
    sqlite3_str_appendf(s, " AND x.\"%w\" = p.\"%w\"", from, to);
    n++;
  }
  if (rc == SQLITE_OK) rc = sqlite3_reset(q);
  sqlite3_finalize(q);
  sqlite3_str_appendall(s, " AND ");
  table_key_where(s, t, "p.", 1);
  /* A row referring to itself goes with its own delete. */
  cascade_not_self(s, t, child->name);
  sqlite3_str_appendall(s, ")");
  sql = sqlite3_str_finish(s);
  if (rc == SQLITE_OK && !sql) rc = SQLITE_NOMEM;
  if (rc == SQLITE_OK && n) rc = sqlite3_prepare_v2(c->db, sql, -1, &q, 0);
  sqlite3_free(sql);
  if (rc != SQLITE_OK || !n) return rc;
  sqlite3_bind_text(q, 1, pk, nPk, SQLITE_STATIC);
  while (sqlite3_step(q) == SQLITE_ROW) {
    sqlite3_str_appendf(out, "%s", child->name);
    sqlite3_str_appendchar(out, 1, 0);
    sqlite3_str_appendf(out, "%s", sqlite3_column_text(q, 0));
    sqlite3_str_appendchar(out, 1, 0);
  }
  return sqlite3_finalize(q);
}

/* Before the server's delete of key pk (JSON, nPk bytes) of t: a local row with
** pending edits that references that row shows its server image again
** (settle_hide), its edits still queued. Else the delete's cascade (or SET
** NULL) would act on this client's edit, not on what the server holds: a
** project the client gave the deleted user as owner would go, and with it
** the tasks the server keeps under that project (confirmed rows no pull
** brings back). Rows of t itself count (a folder this client moved under
** the deleted folder would take the server's subfolders and, through SET
** NULL, clear the folder of the server's documents). A row whose image
** references the deleted row too then goes with it, as on the server. A row
** with no image that can stand (a pending insert) is removed, unless that
** would take rows that may be the server's (cascade_reaches_server) and
** !force: its key may be one the server holds under another parent, whose
** children this pull has delivered while its own row is still to come, and
** no pull sends those children again. It then stays, so the delete is put
** off (apply.c) until that row is its image; force (the pull's last page,
** where the server's state is whole) removes it whatever it takes. Only
** with foreign keys enforced. */
int settle_hide_referrers(SyncCtx *c, SyncTable *t, const char *pk, int nPk, int force) {
  int fk = 0;
  if (sqlite3_db_config(c->db, SQLITE_DBCONFIG_ENABLE_FKEY, -1, &fk) != SQLITE_OK || !fk)
    return SQLITE_OK;
  sqlite3_stmt *q = 0;
  /* t itself too: a tree (folders under folders) refers to its own table */
  int rc = sqlite3_prepare_v2(c->db, "SELECT DISTINCT tbl FROM main.sync_outbox", -1, &q, 0);
  sqlite3_str *keys = sqlite3_str_new(c->db);
  while (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(q, 0);
    SyncTable *child = 0;
    char *why = 0;
    if (!name || !table_is_tracked(c, name)) continue;
    rc = table_get(c, name, 1, &child, &why);
    sqlite3_free(why);
    if (rc != SQLITE_OK) {
      rc = rc == SQLITE_NOMEM ? rc : SQLITE_OK;
      continue;
    }
    sqlite3_stmt *f = 0;
    char *sql = sqlite3_mprintf("PRAGMA main.foreign_key_list(\"%w\")", child->name);
    rc = sql ? sqlite3_prepare_v2(c->db, sql, -1, &f, 0) : SQLITE_NOMEM;
    sqlite3_free(sql);
    int last = -1;
    while (rc == SQLITE_OK && sqlite3_step(f) == SQLITE_ROW) {
      const char *parent = (const char *)sqlite3_column_text(f, 2);
      int fid = sqlite3_column_int(f, 0);
      if (fid == last || !parent || sqlite3_stricmp(parent, t->name) != 0) continue;
      last = fid;
      rc = referrers(c, t, child, fid, pk, nPk, keys);
    }
    sqlite3_finalize(f);
  }
  sqlite3_finalize(q);
  int n = sqlite3_str_length(keys);
  char *z = sqlite3_str_finish(keys);
  if (rc == SQLITE_OK && n && !z) rc = SQLITE_NOMEM;
  for (const char *p = z; rc == SQLITE_OK && p && p < z + n;) {
    const char *tbl = p, *key = p + strlen(p) + 1;
    p = key + strlen(key) + 1;
    SyncTable *child = 0;
    char *why = 0;
    int pending = 0;
    rc = table_get(c, tbl, 1, &child, &why);
    sqlite3_free(why);
    if (rc == SQLITE_OK) rc = key_pending(c, child, key, &pending);
    /* a row kept still refers to the deleted one: apply.c then puts the
    ** delete off (cascade_referred) */
    int kept = 0;
    if (rc == SQLITE_OK && pending) rc = hide_at(c, child, key, 0, force ? 0 : &kept);
  }
  sqlite3_free(z);
  return rc;
}

/* Names the first dangling reference: child table, its key, the parent. */
int fk_explain(SyncCtx *c, char **pzErr) {
  sqlite3_stmt *q = 0;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT \"table\", rowid, parent, fkid FROM pragma_foreign_key_check"
                              " WHERE \"table\" NOT LIKE 'sync\\_%' ESCAPE '\\'",
                              -1, &q, 0);
  if (rc != SQLITE_OK) return rc;
  char *child = 0, *parent = 0;
  sqlite3_int64 rowid = 0;
  int hasRowid = 0, fkid = 0;
  if (sqlite3_step(q) == SQLITE_ROW) {
    child = sqlite3_mprintf("%s", sqlite3_column_text(q, 0));
    hasRowid = sqlite3_column_type(q, 1) != SQLITE_NULL;
    rowid = sqlite3_column_int64(q, 1);
    parent = sqlite3_mprintf("%s", sqlite3_column_text(q, 2));
    fkid = sqlite3_column_int(q, 3);
  }
  sqlite3_finalize(q);
  char *key = 0;
  SyncTable *t = 0;
  char *ignored = 0;
  if (child && parent && !hasRowid && table_get(c, child, 0, &t, &ignored) == SQLITE_OK) {
    dangling_key(c, t, parent, fkid, &key);
  } else if (child && hasRowid && table_get(c, child, 0, &t, &ignored) == SQLITE_OK) {
    sqlite3_str *s = sqlite3_str_new(c->db);
    sqlite3_str_appendall(s, "SELECT ");
    key_sql(s, t);
    sqlite3_str_appendf(s, " FROM main.\"%w\" WHERE rowid = ?1", t->name);
    char *sql = sqlite3_str_finish(s);
    if (sql && sqlite3_prepare_v2(c->db, sql, -1, &q, 0) == SQLITE_OK) {
      sqlite3_bind_int64(q, 1, rowid);
      if (sqlite3_step(q) == SQLITE_ROW) key = sqlite3_mprintf("%s", sqlite3_column_text(q, 0));
    }
    sqlite3_finalize(q);
    sqlite3_free(sql);
  }
  sqlite3_free(ignored);
  if (child && parent)
    *pzErr = sqlite3_mprintf("FOREIGN KEY constraint failed: %s %s refers to a row of \"%s\""
                             " that does not exist%s",
                             child, key ? key : "(a row)", parent,
                             table_is_tracked(c, parent) ? "" : " (that table is not tracked)");
  else
    *pzErr = sqlite3_mprintf("FOREIGN KEY constraint failed");
  sqlite3_free(child);
  sqlite3_free(parent);
  sqlite3_free(key);
  return *pzErr ? SQLITE_CONSTRAINT : SQLITE_NOMEM;
}

/* The number of staged pages (0 when sync_inbox does not exist yet). */
int inbox_count(SyncCtx *c, sqlite3_int64 *pN) {
  sqlite3_stmt *s = 0;
  *pN = 0;
  if (sqlite3_prepare_v2(c->db, "SELECT count(*) FROM main.sync_inbox", -1, &s, 0) != SQLITE_OK)
    return SQLITE_OK;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *pN = sqlite3_column_int64(s, 0);
  rc = sqlite3_finalize(s);
  return rc;
}

int inbox_stage(SyncCtx *c, const char *page) {
  int rc = ctx_exec(c, "CREATE TABLE IF NOT EXISTS main.sync_inbox("
                       "seq INTEGER PRIMARY KEY, page TEXT NOT NULL)");
  sqlite3_stmt *s = 0;
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(c->db, "INSERT INTO main.sync_inbox(page) VALUES(?1)", -1, &s, 0);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(s, 1, page, -1, SQLITE_STATIC);
    rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(c->db);
  }
  sqlite3_finalize(s);
  return rc;
}

int inbox_clear(SyncCtx *c) {
  return ctx_exec(c, "DELETE FROM main.sync_inbox");
}

/* The staged pages in order: step it, read column 0, finalize it. NULL on
** failure (message in sqlite3_errmsg). */
sqlite3_stmt *inbox_scan(SyncCtx *c) {
  sqlite3_stmt *s = 0;
  if (sqlite3_prepare_v2(c->db, "SELECT page FROM main.sync_inbox ORDER BY seq", -1, &s, 0) !=
      SQLITE_OK) {
    sqlite3_finalize(s);
    return 0;
  }
  return s;
}
