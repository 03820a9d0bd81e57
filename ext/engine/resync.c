/*
** resync.c: a full resync, the engine's side.
**
** When the server cannot serve this client's cursor (410, or a malformed
** cursor), the network layer calls resync_start and then pulls every live
** row again from no cursor, handing each page to resync_page instead of
** apply_page. A resync delivers upserts only, so rows the server deleted
** while the cursor was too old would stay: while it runs, the keys it
** delivers are noted in temp.sync_resync_seen (a temp table of the pulling
** connection); when its last page is applied, the rows of tracked tables it
** did not deliver and that have no pending mutation are deleted, as an
** engine write (ctx_engine_begin: nothing is queued, foreign keys deferred
** when enforced). Keys are compared as quote() of each key part in key
** order, both sides read through sync_val; the key columns come from the
** SyncTable cache (table.c), whose names JSON paths can address. Until
** the last page is applied, sync_meta's "resync" says one is owed
** (resync_owed): a resync cut short by a failed pull, sync_stop or a closed
** connection starts over from no cursor instead of leaving those rows. A
** resync is owed too when the cursor was not pulled from the server at the
** url now set (existing_foreign), or sync_track asked for the server's
** rows (existing.c).
**
** After the server went back in time (existing.c), each page's rows are
** first compared with the confirmed ones they replace (resync_older).
**
** Keys with pending mutations keep their rows, but the server's image of
** one the resync did not deliver (sync_shadow) becomes "absent": the
** server no longer has the row, or no longer gives it to this user, and a
** refused edit must not bring back the row it had.
**
** Pages staged in sync_inbox (apply.c) belong to the pull the cursor was
** for: resync_start drops them with the cursor, in one transaction, or they
** would be applied before the resync's pages. A table that had never been
** pulled when the resync started (not in sync_meta 'pulled_tables', which
** the network layer keeps; noted in 'resync_tables' until the resync ends)
** keeps its rows: they were written before sync_track and never pushed,
** and the server not having them says nothing.
*/
#include "resync.h"
#include "apply.h"
#include "existing.h"
#include "inbox.h"
#include "table.h"

#include <stdlib.h>
#include <string.h>

/* Forgets the cursor, the pages staged for it (in one transaction) and
** the keys an earlier resync noted. sync_meta's "resync" is set first:
** without a cursor, a resync cut short would otherwise look like a first
** pull to the next one. The tables pulled so far are noted in
** "resync_tables" when the resync begins, not when one cut short starts
** over: 'pulled_tables' names every tracked table by then. On failure the
** cause is in sqlite3_errmsg, except for a failure past "resync" (then
** owed, so the next pull starts it again). */
int resync_start(SyncCtx *c) {
  char *owed = ctx_meta_get(c, "resync"), *noted = ctx_meta_get(c, "resync_tables");
  int rc = existing_ensure(c);
  if (rc == SQLITE_OK && (!owed || !noted)) {
    /* A database that pulled before 'pulled_tables' was kept: every table;
    ** a cursor from elsewhere: none. */
    char *pulled = ctx_meta_get(c, "pulled_tables");
    rc = ctx_meta_set(c, "resync_tables", existing_foreign(c) ? "" : pulled ? pulled : "*");
    sqlite3_free(pulled);
  }
  sqlite3_free(owed);
  sqlite3_free(noted);
  if (rc == SQLITE_OK) rc = ctx_meta_set(c, "resync", "1");
  if (rc != SQLITE_OK) return rc;
  rc = ctx_exec(c, "SAVEPOINT sync_resync_start");
  if (rc != SQLITE_OK) return rc;
  rc = ctx_meta_del(c, "cursor");
  if (rc == SQLITE_OK) rc = ctx_meta_del(c, "pulled_version");
  sqlite3_int64 staged = 0;
  if (rc == SQLITE_OK) rc = inbox_count(c, &staged);
  if (rc == SQLITE_OK && staged) rc = inbox_clear(c);
  if (rc == SQLITE_OK)
    rc = ctx_exec(c, "CREATE TEMP TABLE IF NOT EXISTS sync_resync_seen(tbl TEXT, k TEXT,"
                     " PRIMARY KEY(tbl, k)) WITHOUT ROWID;"
                     "DELETE FROM temp.sync_resync_seen;");
  if (rc == SQLITE_OK) return ctx_exec(c, "RELEASE sync_resync_start");
  ctx_exec(c, "ROLLBACK TO sync_resync_start; RELEASE sync_resync_start");
  return rc;
}

/* 1 when the list (names joined by ',', each with '%' and ',' written as
** %25 and %2C, or "*" for every table) names tbl. */
static int listed(const char *list, const char *tbl) {
  if (strcmp(list, "*") == 0) return 1;
  for (const char *p = list; *p;) {
    const char *q = tbl;
    while (*p && *p != ',' && *q) {
      char ch = *p;
      if (ch == '%' && p[1] && p[2]) {
        char hex[3] = {p[1], p[2], 0};
        ch = (char)strtol(hex, 0, 16);
        p += 2;
      }
      if (ch != *q) break;
      p++, q++;
    }
    if ((!*p || *p == ',') && !*q) return 1;
    while (*p && *p != ',')
      p++;
    if (*p) p++;
  }
  return 0;
}

/* Runs sql (taken; NULL: out of memory), a statement without result rows,
** with ?1 the table's name and ?2 page (NULL when it has none). */
static int run_for(SyncCtx *c, char *sql, const char *tbl, const char *page) {
  sqlite3_stmt *s = 0;
  int rc = sql ? sqlite3_prepare_v2(c->db, sql, -1, &s, 0) : SQLITE_NOMEM;
  sqlite3_free(sql);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(s, 1, tbl, -1, SQLITE_STATIC);
    if (page) sqlite3_bind_text(s, 2, page, -1, SQLITE_STATIC);
    rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(c->db);
  }
  sqlite3_finalize(s);
  return rc;
}

/* The key text of t: quote(part1)||','||quote(part2)... where each part is
** the expression fmt (a printf format with one %w or %q for the column's
** name) . sqlite3_malloc'd, NULL when out of memory. */
static char *key_expr(SyncTable *t, const char *fmt) {
  sqlite3_str *k = sqlite3_str_new(0);
  for (int i = 0; i < t->nPk; i++) {
    char *part = sqlite3_mprintf(fmt, t->cols[t->pk[i]]);
    sqlite3_str_appendf(k, "%squote(%s)", i ? "||','||" : "", part ? part : "NULL");
    sqlite3_free(part);
  }
  return sqlite3_str_finish(k);
}

/* Calls each(c, t, page, arg) for every tracked table t with upserts on
** page, until one fails. A table that is not tracked is left to
** apply_page, which refuses it. */
static int each_table(SyncCtx *c, const char *page,
                      int (*each)(SyncCtx *, SyncTable *, const char *, void *), void *arg) {
  sqlite3_stmt *q = 0;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT DISTINCT value->>'table' FROM json_each(?1,'$.changes')"
                              " WHERE value->>'op' = 'upsert'",
                              -1, &q, 0);
  if (rc == SQLITE_OK) sqlite3_bind_text(q, 1, page, -1, SQLITE_STATIC);
  while (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
    const char *tbl = (const char *)sqlite3_column_text(q, 0);
    SyncTable *t = 0;
    char *why = 0;
    if (tbl && table_get(c, tbl, 1, &t, &why) == SQLITE_OK)
      rc = each(c, t, page, arg);
    else
      sqlite3_free(why);
  }
  sqlite3_finalize(q);
  return rc;
}

/* Notes the keys of one page's upserts of t (before the page is applied). */
static int note_table(SyncCtx *c, SyncTable *t, const char *page, void *unused) {
  (void)unused;
  char *k = key_expr(t, "sync_val(value->'$.pk.\"%q\"')");
  char *sql = k ? sqlite3_mprintf("INSERT OR IGNORE INTO temp.sync_resync_seen(tbl, k)"
                                  " SELECT ?1, %s FROM json_each(?2,'$.changes')"
                                  " WHERE value->>'table' = ?1 AND value->>'op' = 'upsert'",
                                  k)
                : 0;
  sqlite3_free(k);
  return run_for(c, sql, t->name, page);
}

/* The local key text of t has no pending mutation (?1: t's name). */
static char *unqueued_sql(SyncTable *t) {
  char *local = key_expr(t, "\"%w\""), *queued = key_expr(t, "sync_val(pk->'$.\"%q\"')");
  char *sql = local && queued ? sqlite3_mprintf("%s NOT IN (SELECT %s FROM main.sync_outbox"
                                                " WHERE tbl = ?1)",
                                                local, queued)
                              : 0;
  sqlite3_free(local);
  sqlite3_free(queued);
  return sql;
}

/* The rows of t a page of a resync after the server went back in time
** brings back older than this client holds them (existing_reset_page), in
** a table pulled before (pulled: resync_tables). */
static int older_table(SyncCtx *c, SyncTable *t, const char *page, void *pulled) {
  if (pulled && !listed(pulled, t->name)) return SQLITE_OK;
  /* each key column = the page's value: the table's key index finds the row */
  sqlite3_str *m = sqlite3_str_new(0);
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(m, "%s\"%w\" = sync_val(sync_p_pk->'$.\"%q\"')", i ? " AND " : "",
                        t->cols[t->pk[i]], t->cols[t->pk[i]]);
  char *match = sqlite3_str_finish(m);
  char *unqueued = unqueued_sql(t);
  int rc = match && unqueued ? existing_reset_page(c, t, page, match, unqueued) : SQLITE_NOMEM;
  sqlite3_free(match);
  sqlite3_free(unqueued);
  return rc;
}

/* Before a page of a resync is applied: its keys are noted and, after the
** server went back in time (sync_meta 'server_reset'), the confirmed rows
** it brings back older are the writes the server lost. */
static int resync_note(SyncCtx *c, const char *page) {
  int rc = each_table(c, page, note_table, 0);
  char *reset = rc == SQLITE_OK ? ctx_meta_get(c, "server_reset") : 0;
  if (!reset) return rc;
  sqlite3_free(reset);
  char *pulled = ctx_meta_get(c, "resync_tables");
  rc = each_table(c, page, older_table, pulled);
  sqlite3_free(pulled);
  return rc;
}

/* Settles the rows of one tracked table the resync did not deliver and no
** pending mutation holds (existing_settle); *pN grows by those deleted. */
static int resync_drop(SyncCtx *c, SyncTable *t, int pulled, sqlite3_int64 *pN) {
  char *local = key_expr(t, "\"%w\"");
  char *unseen =
      local
          ? sqlite3_mprintf("%s NOT IN (SELECT k FROM temp.sync_resync_seen WHERE tbl = ?1)", local)
          : 0;
  char *unqueued = unqueued_sql(t);
  int rc = unseen && unqueued ? existing_settle(c, t, unseen, unqueued, pulled, pN) : SQLITE_NOMEM;
  if (rc == SQLITE_OK && pulled) {
    char *image = key_expr(t, "sync_val(pk->'$.\"%q\"')");
    char *sql = image ? sqlite3_mprintf("UPDATE main.sync_shadow SET row = NULL, version = NULL"
                                        " WHERE tbl = ?1 AND row IS NOT NULL AND %s NOT IN"
                                        " (SELECT k FROM temp.sync_resync_seen WHERE tbl = ?1)",
                                        image)
                      : 0;
    sqlite3_free(image);
    rc = run_for(c, sql, t->name, 0);
  }
  sqlite3_free(local);
  sqlite3_free(unseen);
  sqlite3_free(unqueued);
  return rc;
}

/* After the last page: drops what the server no longer has, as one engine
** write. *pN gets the number of rows deleted. */
static int resync_finish(SyncCtx *c, sqlite3_int64 *pN, char **pzErr) {
  *pN = 0;
  char *why = 0;
  int rc = ctx_engine_begin(c);
  if (rc != SQLITE_OK) {
    *pzErr = sqlite3_mprintf("resync cleanup: %s", ctx_errmsg(c, rc));
    return rc;
  }
  rc = existing_ensure(c);
  char *pulled = ctx_meta_get(c, "resync_tables");
  sqlite3_stmt *q = 0;
  /* A tracked table dropped or renamed since has nothing left to clean. */
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(c->db,
                            "SELECT name FROM main.sync_tracked AS k WHERE EXISTS (SELECT 1 FROM"
                            " main.sqlite_schema AS m WHERE m.type = 'table'"
                            " AND m.name = k.name COLLATE NOCASE)",
                            -1, &q, 0);
  while (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
    SyncTable *t = 0;
    const char *name = (const char *)sqlite3_column_text(q, 0);
    if (!name) continue;
    rc = table_get(c, name, 1, &t, &why);
    if (rc == SQLITE_OK) rc = resync_drop(c, t, !pulled || listed(pulled, name), pN);
  }
  sqlite3_finalize(q);
  sqlite3_free(pulled);
  /* The rows are now the server's current ones: the guards of confirmed
  ** versions (images of keys with nothing pending, see rebase_key) have
  ** nothing older left to guard against. Rows that could not take the
  ** server's state yet (sync_meta 'guards', rebase_guards) keep theirs. */
  char *fallen = rc == SQLITE_OK ? ctx_meta_get(c, "guards") : 0;
  if (rc == SQLITE_OK && !fallen)
    rc = ctx_exec(c, "DELETE FROM main.sync_shadow WHERE NOT EXISTS (SELECT 1 FROM"
                     " main.sync_outbox AS o WHERE o.tbl = sync_shadow.tbl"
                     " AND o.pk = sync_shadow.pk)");
  sqlite3_free(fallen);
  if (rc == SQLITE_OK) rc = ctx_meta_del(c, "resync");
  if (rc == SQLITE_OK) rc = ctx_meta_del(c, "resync_tables");
  if (rc == SQLITE_OK) rc = existing_resync_done(c);
  rc = ctx_engine_end(c, rc, &why);
  if (rc != SQLITE_OK) {
    *pzErr = sqlite3_mprintf("resync cleanup: %s", why ? why : sqlite3_errstr(rc));
  } else {
    ctx_exec(c, "DELETE FROM temp.sync_resync_seen");
  }
  sqlite3_free(why);
  return rc;
}

int resync_owed(SyncCtx *c) {
  char *v = ctx_meta_get(c, "resync");
  sqlite3_free(v);
  return v != 0 || existing_foreign(c);
}

int resync_page(SyncCtx *c, const char *page, ApplyResult *res, char **pzErr) {
  memset(res, 0, sizeof *res);
  int rc = ctx_exec(c, "SAVEPOINT sync_resync_page");
  if (rc != SQLITE_OK) {
    *pzErr = sqlite3_mprintf("%s", ctx_errmsg(c, rc));
    return rc;
  }
  rc = resync_note(c, page);
  if (rc != SQLITE_OK) *pzErr = sqlite3_mprintf("%s", ctx_errmsg(c, rc));
  if (rc == SQLITE_OK) rc = apply_page(c, page, 0, res, pzErr);
  if (rc == SQLITE_OK && !res->more) {
    sqlite3_int64 gone = 0;
    rc = resync_finish(c, &gone, pzErr);
    res->n += gone;
  }
  if (rc == SQLITE_OK) rc = ctx_exec(c, "RELEASE sync_resync_page");
  if (rc != SQLITE_OK) {
    if (!*pzErr) *pzErr = sqlite3_mprintf("%s", ctx_errmsg(c, rc));
    ctx_exec(c, "ROLLBACK TO sync_resync_page; RELEASE sync_resync_page");
  }
  return rc;
}
