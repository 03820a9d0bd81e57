/*
** guard.c: rows that keep their server image with nothing pending (guards,
** see rebase.c "Guards") written again once they can be.
**
** rebase_guards runs at the end of every ack and of every pull's last page.
** It passes over the keys listed in sync_meta 'guards' while one of them
** takes its image (guards_settle); guards left holding each other's UNIQUE
** values (a swap between two refused rows) are then unlocked one at a time:
** one is parked in a savepoint and the rest settled (guards_unlock). Every
** loop is bounded by the number of guards listed. An absent guard whose
** server row two pulls have not brought ends, its row kept as this
** client's own (guards_absent).
*/
#include "guard.h"
#include "existing.h"
#include "jsonexpr.h"
#include "rebase.h"

#include <string.h>

/* Moves the row of key pk of t out of the way of its UNIQUE indexes, all of
** them as the capture reads them (jsonexpr.c: on expressions, partial, on
** generated columns): each column a part reads, the columns a generated
** one is made of rather than itself, gets a value no row holds
** (table_park_set; a CHECK is ignored for the park). The caller writes the
** row's image over it, or rolls back, in the same savepoint: a parked value
** is never seen. */
static int park_row(SyncCtx *c, SyncTable *t, const char *pk) {
  unsigned char *cols = sqlite3_malloc64((sqlite3_uint64)t->nCol + 1);
  if (!cols) return SQLITE_NOMEM;
  memset(cols, 0, (size_t)t->nCol + 1);
  JxShape sh;
  int rc = jx_uniq_read(c, t, &sh);
  /* uniq[0] is the key */
  for (int u = 1; rc == SQLITE_OK && u < sh.nUniq; u++)
    jx_uniq_reads(t, &sh.uniq[u], cols);
  jx_shape_free(&sh);
  sqlite3_str *sql = sqlite3_str_new(0);
  sqlite3_str_appendf(sql, "UPDATE main.\"%w\" SET ", t->name);
  int n = table_park_set(sql, t, cols);
  sqlite3_free(cols);
  sqlite3_str_appendall(sql, " WHERE ");
  table_key_where(sql, t, "", 1);
  char *z = sqlite3_str_finish(sql);
  if (rc == SQLITE_OK && !z) rc = SQLITE_NOMEM;
  sqlite3_stmt *s = 0;
  if (rc == SQLITE_OK && n) rc = sqlite3_prepare_v2(c->db, z, -1, &s, 0);
  sqlite3_free(z);
  if (s) rc = table_park_run(c, s, pk);
  sqlite3_finalize(s);
  return rc;
}

/* One pass over the guards listed in sync_meta 'guards': each is written
** again from its image (rebase_key), and the list then holds those that
** still could not (rebase_key lists them again). A key no longer guarded
** (the server's change replaced it, or it is pending again) leaves the
** list. *pFixed and *pLeft count the keys written and those left; keep:
** before this client's first pull (see rebase_guards). */
static int guards_pass(SyncCtx *c, int keep, int *pFixed, int *pLeft, char **pzErr) {
  *pFixed = *pLeft = 0;
  char *list = ctx_meta_get(c, "guards");
  if (!list) return SQLITE_OK;
  int rc = ctx_meta_del(c, "guards");
  sqlite3_stmt *q = 0;
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(c->db,
                            "SELECT g.value->>0, g.value->>1, s.row, s.version"
                            " FROM json_each(?1) AS g JOIN main.sync_shadow AS s"
                            " ON s.tbl = g.value->>0 AND s.pk = g.value->>1"
                            " WHERE NOT EXISTS"
                            " (SELECT 1 FROM main.sync_outbox AS o"
                            " WHERE o.tbl = g.value->>0 AND o.pk = g.value->>1)",
                            -1, &q, 0);
  if (rc == SQLITE_OK) sqlite3_bind_text(q, 1, list, -1, SQLITE_STATIC);
  /* json_each reads the list held in memory, not sync_meta: rebasing
  ** may list keys again meanwhile. */
  while (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
    const char *tbl = (const char *)sqlite3_column_text(q, 0);
    const char *pk = (const char *)sqlite3_column_text(q, 1);
    SyncTable *t = 0;
    char *why = 0;
    int fell = 0;
    rc = tbl && pk ? table_get(c, tbl, 1, &t, &why) : SQLITE_ERROR;
    sqlite3_free(why);
    if (rc != SQLITE_OK) {
      /* The table is gone or no longer tracked: nothing to guard. */
      rc = rc == SQLITE_NOMEM ? rc : SQLITE_OK;
      continue;
    }
    /* Once it stands, a server row stays as a confirmed version's guard
    ** (rebase_key): an initial sync that does not deliver the row, or
    ** an older change, must still be able to tell. An image of "absent"
    ** goes once the row is gone. */
    c->imageKept = sqlite3_column_type(q, 2) != SQLITE_NULL;
    rc = rebase_key(c, t, pk, 0, &fell, pzErr);
    if (rc == SQLITE_OK && !fell && keep && sqlite3_column_type(q, 2) != SQLITE_NULL)
      rc =
          rebase_set_image(c, t->name, pk, (const char *)sqlite3_column_text(q, 2),
                           sqlite3_column_int64(q, 3), sqlite3_column_type(q, 3) == SQLITE_INTEGER);
    if (fell)
      ++*pLeft;
    else
      ++*pFixed;
  }
  sqlite3_finalize(q);
  sqlite3_free(list);
  return rc;
}

/* Passes over the guards while one of them is written (a row may take its
** image only once another has taken its own). A pass that writes a guard
** normally takes it off the list, so the passes are bounded by the number
** of guards there were (limit); the bound also ends a guard moved aside
** again by another's write (make_room) for good. *pLeft counts those left. */
static int guards_settle(SyncCtx *c, int keep, int limit, int *pLeft, char **pzErr) {
  int rc = SQLITE_OK, fixed = 1;
  *pLeft = 1;
  for (int pass = 0; rc == SQLITE_OK && fixed && *pLeft && pass <= limit; pass++)
    rc = guards_pass(c, keep, &fixed, pLeft, pzErr);
  return rc;
}

/* *pYes 1 when key pk of tbl is listed in sync_meta 'guards'. */
static int guard_listed(SyncCtx *c, const char *tbl, const char *pk, int *pYes) {
  *pYes = 0;
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT 1 FROM main.sync_meta AS m, json_each(m.value) AS g"
                              " WHERE m.key = 'guards' AND g.value->>0 = ?1 AND g.value->>1 = ?2",
                              -1, &s, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(s, 1, tbl, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
  *pYes = sqlite3_step(s) == SQLITE_ROW;
  return sqlite3_finalize(s);
}

/* Guards that hold each other's values (a UNIQUE swap between two refused
** rows: each shows the e-mail the other's server row has) are left by
** every pass: neither can take its image while the other shows its row.
** Each guard whose image is a server row is tried in turn: in a savepoint,
** its row is parked (park_row), the guards are settled again, and the
** savepoint is kept when the parked row then took its image, else rolled
** back (nothing changed). Each is tried once per call: bounded. *pLeft is
** the number of guards left afterwards. */
static int guards_unlock(SyncCtx *c, int keep, int limit, int *pLeft, char **pzErr) {
  char *list = ctx_meta_get(c, "guards");
  if (!list) return SQLITE_OK;
  sqlite3_stmt *q = 0;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT g.value->>0, g.value->>1 FROM json_each(?1) AS g"
                              " JOIN main.sync_shadow AS s ON s.tbl = g.value->>0"
                              " AND s.pk = g.value->>1 WHERE s.row IS NOT NULL AND NOT EXISTS"
                              " (SELECT 1 FROM main.sync_outbox AS o"
                              " WHERE o.tbl = g.value->>0 AND o.pk = g.value->>1)",
                              -1, &q, 0);
  if (rc == SQLITE_OK) sqlite3_bind_text(q, 1, list, -1, SQLITE_STATIC);
  while (rc == SQLITE_OK && *pLeft && sqlite3_step(q) == SQLITE_ROW) {
    const char *tbl = (const char *)sqlite3_column_text(q, 0);
    const char *pk = (const char *)sqlite3_column_text(q, 1);
    SyncTable *t = 0;
    char *why = 0;
    rc = tbl && pk ? table_get(c, tbl, 1, &t, &why) : SQLITE_ERROR;
    sqlite3_free(why);
    if (rc != SQLITE_OK) {
      rc = rc == SQLITE_NOMEM ? rc : SQLITE_OK;
      continue;
    }
    /* Still listed: an earlier unlock of this call may have written it. */
    int listed = 0;
    rc = guard_listed(c, tbl, pk, &listed);
    if (rc != SQLITE_OK || !listed) continue;
    rc = ctx_exec(c, "SAVEPOINT sync_unlock");
    if (rc != SQLITE_OK) break;
    int left = *pLeft;
    rc = park_row(c, t, pk);
    if (rc == SQLITE_OK) rc = guards_settle(c, keep, limit, &left, pzErr);
    /* Kept only when the parked row took its image (it left the list). */
    if (rc == SQLITE_OK) rc = guard_listed(c, tbl, pk, &listed);
    if (rc == SQLITE_OK && !listed) {
      rc = ctx_exec(c, "RELEASE sync_unlock");
      *pLeft = left;
    } else {
      /* Also on an error: the savepoint leaves the database as it was. */
      ctx_exec(c, "ROLLBACK TO sync_unlock; RELEASE sync_unlock");
    }
  }
  sqlite3_finalize(q);
  sqlite3_free(list);
  return rc;
}

/* An absent guard (a refused insert's row, kept because deleting it would
** take rows that may be the server's) waits for the server's row for its
** key, which a pull brings when the server has one for this client. A
** pull's last page, then another, without it prove that the server has
** none (the first pull may have been fetched before the refusal; the
** second started after the first ended, after the guard was listed): the
** row is this client's alone (its children are its own, or rows whose
** parent the server does not send it). Its guard ends then instead of
** being tried at every ack and pull for good: the row stays, listed in
** sync_orphans as kept (its edits stay local, existing_hold), and the
** image goes. sync_meta 'guards_absent' ([[tbl, pk, n], ...]) counts the
** last pages each absent guard listed has outlived; it is rewritten from
** the list at every call, so a key that leaves the list is forgotten.
** pull: the call ends a pull's last page (not an event's). */
static int guards_absent(SyncCtx *c, int pull) {
  /* Each absent guard listed (tbl, pk) with the count it reaches (n). */
  static const char counted[] =
      "SELECT g.value->>0 AS tbl, g.value->>1 AS pk, ?1 + coalesce((SELECT a.value->>2"
      " FROM json_each(coalesce((SELECT value FROM main.sync_meta"
      " WHERE key = 'guards_absent'), '[]')) AS a"
      " WHERE a.value->>0 = g.value->>0 AND a.value->>1 = g.value->>1), 0) AS n"
      " FROM json_each(coalesce((SELECT value FROM main.sync_meta WHERE key = 'guards'),"
      " '[]')) AS g JOIN main.sync_shadow AS s ON s.tbl = g.value->>0 AND s.pk = g.value->>1"
      " WHERE s.row IS NULL AND NOT EXISTS (SELECT 1 FROM main.sync_outbox AS o"
      " WHERE o.tbl = g.value->>0 AND o.pk = g.value->>1)";
  char *sql = sqlite3_mprintf("SELECT (SELECT json_group_array(json_array(tbl, pk, n)) FROM (%s)"
                              " WHERE n < 2), (SELECT count(*) FROM (%s) WHERE n >= 2)",
                              counted, counted);
  sqlite3_stmt *q = 0;
  int rc = sql ? sqlite3_prepare_v2(c->db, sql, -1, &q, 0) : SQLITE_NOMEM;
  sqlite3_free(sql);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int(q, 1, pull != 0);
  char *left = 0;
  int ended = 0;
  if (sqlite3_step(q) == SQLITE_ROW) {
    left = sqlite3_mprintf("%s", sqlite3_column_text(q, 0));
    ended = sqlite3_column_int(q, 1);
    if (!left) rc = SQLITE_NOMEM;
  }
  int rc2 = sqlite3_finalize(q);
  if (rc == SQLITE_OK) rc = rc2;
  /* The rows of those that end stay as this client's own (kept); their
  ** images and listings go (an empty list is no list). */
  if (rc == SQLITE_OK && ended) {
    sql = sqlite3_mprintf(
        "INSERT OR REPLACE INTO main.sync_local(tbl, pk, state, noted_at)"
        " SELECT tbl, pk, 'kept', strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ','now') FROM (%s)"
        " WHERE n >= 2",
        counted);
    rc = sql ? sqlite3_prepare_v2(c->db, sql, -1, &q, 0) : SQLITE_NOMEM;
    sqlite3_free(sql);
    if (rc == SQLITE_OK) {
      sqlite3_bind_int(q, 1, pull != 0);
      rc = ctx_run(c, q);
      sqlite3_finalize(q);
    }
    if (rc == SQLITE_OK)
      rc = ctx_exec(c, "DELETE FROM main.sync_shadow AS s WHERE row IS NULL AND EXISTS"
                       " (SELECT 1 FROM main.sync_local AS l WHERE l.tbl = s.tbl"
                       " AND l.pk = s.pk AND l.state = 'kept') AND NOT EXISTS (SELECT 1"
                       " FROM main.sync_outbox AS o WHERE o.tbl = s.tbl AND o.pk = s.pk);"
                       "UPDATE main.sync_meta SET value = (SELECT json_group_array(json(g.value))"
                       " FROM json_each(value) AS g WHERE EXISTS (SELECT 1 FROM main.sync_shadow"
                       " AS s WHERE s.tbl = g.value->>0 AND s.pk = g.value->>1))"
                       " WHERE key = 'guards';"
                       "DELETE FROM main.sync_meta WHERE key = 'guards'"
                       " AND json_array_length(value) = 0");
    if (rc == SQLITE_OK) rc = existing_hold(c);
  }
  if (rc == SQLITE_OK)
    rc = left && strcmp(left, "[]") != 0 ? ctx_meta_set(c, "guards_absent", left)
                                         : ctx_meta_del(c, "guards_absent");
  sqlite3_free(left);
  return rc;
}

/* Rewrites every listed guard from its image, over again while one of them
** takes it (the rows may hold each other's values), then breaks the cycles
** left (guards_unlock); those that still cannot stay listed. *pListed (if
** pListed): 0 when no guard was listed. */
static int guards_rewrite(SyncCtx *c, int *pListed, char **pzErr) {
  /* Run at the end of every ack and every pull: most find no list. */
  char *list = ctx_meta_get(c, "guards");
  if (pListed) *pListed = list != 0;
  if (!list) return SQLITE_OK;
  sqlite3_stmt *s = 0;
  int limit = 0;
  int rc = sqlite3_prepare_v2(c->db, "SELECT json_array_length(?1)", -1, &s, 0);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(s, 1, list, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) limit = sqlite3_column_int(s, 0);
    rc = sqlite3_finalize(s);
  }
  sqlite3_free(list);
  /* Before this client's first pull, a row written from a guard keeps
  ** its image: the initial sync sends no delete, so only the image lets
  ** it tell a row the server has deleted since (rebase_initial_end). */
  char *cursor = ctx_meta_get(c, "cursor");
  int keep = !cursor, left = 0;
  sqlite3_free(cursor);
  if (rc == SQLITE_OK) rc = guards_settle(c, keep, limit, &left, pzErr);
  if (rc == SQLITE_OK && left > 1) rc = guards_unlock(c, keep, limit, &left, pzErr);
  return rc;
}

int rebase_guards_rewrite(SyncCtx *c, char **pzErr) {
  return guards_rewrite(c, 0, pzErr);
}

/* guards_rewrite, then an absent guard ends after two pulls
** (guards_absent). */
int rebase_guards(SyncCtx *c, int pull, char **pzErr) {
  int listed = 0;
  int rc = guards_rewrite(c, &listed, pzErr);
  if (rc != SQLITE_OK) return rc;
  return listed ? guards_absent(c, pull) : ctx_meta_del(c, "guards_absent");
}
