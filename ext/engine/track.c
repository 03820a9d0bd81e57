/*
** track.c: sync_track and sync_untrack.
**
**   SELECT sync_track('todos');       -- 1: writes to todos are now queued
**   SELECT sync_track('todos', '{"existing":"keep"}');   -- and its rows stay local
**   SELECT sync_untrack('todos');     -- 1: no longer; its pending mutations are dropped
**
** Tracking needs an explicit PRIMARY KEY (single or composite; rowid tables
** with INTEGER PRIMARY KEY and WITHOUT ROWID tables both work). Tracking
** again is not an error: it re-creates the triggers, which is also how a
** table picks up columns added by ALTER TABLE. The rows already in a table
** tracked for the first time are queued as inserts ("existing": "push", the
** default), kept local-only ("keep") or replaced by the server's
** ("server"), see existing.c; all in one transaction with the tracking.
** sync_init re-creates the triggers of every tracked table when
** they come from a build whose triggers queued differently (track_refresh). Errors:
**   sync_track: table name must be text
**   sync_track: no such table "x"
**   sync_track: table "x" has no PRIMARY KEY
**   sync_track: options must be a JSON object
**   sync_track: unknown option "x"
**   sync_track: option "existing" must be "push", "keep" or "server"
**   sync_track: a row of "x" has a NULL in its primary key ({"id":null}): ...
**   sync_untrack: table name must be text
**   sync_untrack: table "x" is not tracked
*/
#include "track.h"
#include "capture.h"
#include "existing.h"
#include "table.h"

#include <string.h>

void track_fn_track(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!ctx_require_init(ctx, c, "sync_track")) return;
  const char *name = (const char *)sqlite3_value_text(argv[0]);
  if (!name) {
    ctx_error(ctx, "sync_track", "table name must be text");
    return;
  }
  if (argc > 1 && sqlite3_value_type(argv[1]) != SQLITE_NULL &&
      sqlite3_value_type(argv[1]) != SQLITE_TEXT) {
    ctx_error(ctx, "sync_track", "options must be a JSON object");
    return;
  }
  ExistingMode mode = EXISTING_NONE;
  SyncTable *t = 0;
  char *zErr = 0;
  int rc =
      existing_options(c, argc > 1 ? (const char *)sqlite3_value_text(argv[1]) : 0, &mode, &zErr);
  if (rc == SQLITE_OK) rc = table_get(c, name, 0, &t, &zErr);
  if (rc != SQLITE_OK) {
    ctx_error_msg(ctx, c, "sync_track", rc, zErr);
    return;
  }
  /* The DDL below changes the schema and so frees t: keep its name. */
  char *canonical = sqlite3_mprintf("%s", t->name);
  if (!canonical) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  int first = !table_is_tracked(c, canonical);
  rc = ctx_begin(c);
  if (rc == SQLITE_OK) {
    rc = existing_ensure(c);
    if (rc == SQLITE_OK) rc = table_get(c, canonical, 0, &t, &zErr);
    if (rc == SQLITE_OK) rc = capture_install(c, t);
    if (rc == SQLITE_OK) {
      char *sql = sqlite3_mprintf("INSERT OR IGNORE INTO sync_tracked(name, tracked_at) "
                                  "VALUES(%Q, strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ','now'))",
                                  canonical);
      rc = sql ? ctx_exec(c, sql) : SQLITE_NOMEM;
      sqlite3_free(sql);
    }
    /* Read again: the triggers changed the schema, which freed t. */
    if (rc == SQLITE_OK) rc = table_get(c, canonical, 1, &t, &zErr);
    if (rc == SQLITE_OK) rc = existing_track(c, t, mode, first, &zErr);
    rc = ctx_end(c, rc, &zErr);
  }
  sqlite3_free(canonical);
  if (rc != SQLITE_OK) {
    ctx_error_msg(ctx, c, "sync_track", rc, zErr);
    return;
  }
  sqlite3_result_int(ctx, 1);
}

void track_fn_untrack(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!ctx_require_init(ctx, c, "sync_untrack")) return;
  const char *name = (const char *)sqlite3_value_text(argv[0]);
  if (!name) {
    ctx_error(ctx, "sync_untrack", "table name must be text");
    return;
  }
  if (!table_is_tracked(c, name)) {
    ctx_error(ctx, "sync_untrack", "table \"%s\" is not tracked", name);
    return;
  }
  char *zErr = 0;
  int rc = ctx_begin(c);
  if (rc == SQLITE_OK) {
    rc = capture_remove(c, name);
    if (rc == SQLITE_OK) rc = existing_ensure(c);
    if (rc == SQLITE_OK) {
      char *sql = sqlite3_mprintf("DELETE FROM sync_outbox WHERE tbl=%Q COLLATE NOCASE;"
                                  "DELETE FROM sync_shadow WHERE tbl=%Q COLLATE NOCASE;"
                                  "DELETE FROM sync_local WHERE tbl=%Q COLLATE NOCASE;"
                                  "DELETE FROM sync_tracked WHERE name=%Q COLLATE NOCASE;",
                                  name, name, name, name);
      rc = sql ? ctx_exec(c, sql) : SQLITE_NOMEM;
      sqlite3_free(sql);
    }
    if (rc == SQLITE_OK) rc = existing_hold(c);
    rc = ctx_end(c, rc, &zErr);
  }
  if (rc != SQLITE_OK) {
    ctx_error_msg(ctx, c, "sync_untrack", rc, zErr);
    return;
  }
  sqlite3_result_int(ctx, 1);
}

int track_names(SyncCtx *c, int present, char ***pNames, int *pN) {
  *pNames = 0;
  *pN = 0;
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db,
                              present ? "SELECT name FROM main.sync_tracked WHERE EXISTS (SELECT 1 "
                                        "FROM main.sqlite_schema WHERE type = 'table' AND name = "
                                        "sync_tracked.name COLLATE NOCASE) ORDER BY name"
                                      : "SELECT name FROM main.sync_tracked ORDER BY name",
                              -1, &s, 0);
  while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    char **more = sqlite3_realloc64(*pNames, sizeof *more * (sqlite3_uint64)(*pN + 1));
    if (more) *pNames = more;
    char *name = more ? sqlite3_mprintf("%s", sqlite3_column_text(s, 0)) : 0;
    if (!name) {
      rc = SQLITE_NOMEM;
      break;
    }
    more[(*pN)++] = name;
    rc = SQLITE_OK;
  }
  sqlite3_finalize(s);
  if (rc == SQLITE_DONE) return SQLITE_OK;
  track_names_free(*pNames, *pN);
  *pNames = 0;
  *pN = 0;
  return rc;
}

void track_names_free(char **names, int n) {
  for (int i = 0; i < n; i++)
    sqlite3_free(names[i]);
  sqlite3_free(names);
}

int track_refresh(SyncCtx *c) {
  int rc = existing_ensure(c);
  if (rc == SQLITE_OK) rc = existing_note(c);
  /* sync_hold outlives the delete of the last kept row (a trigger cannot
  ** drop one), and costs every captured update and delete while it does. */
  if (rc == SQLITE_OK) rc = existing_hold(c);
  if (rc != SQLITE_OK) return rc;
  char *was = ctx_meta_get(c, "capture_version");
  int same = was && strcmp(was, CAPTURE_VERSION) == 0;
  sqlite3_free(was);
  if (same) return SQLITE_OK;
  /* Names first: each install changes the schema, which frees the cache. */
  char **names = 0;
  int n = 0;
  rc = track_names(c, 1, &names, &n);
  for (int i = 0; rc == SQLITE_OK && i < n; i++) {
    SyncTable *t = 0;
    char *zErr = 0;
    rc = table_get(c, names[i], 0, &t, &zErr);
    sqlite3_free(zErr);
    if (rc == SQLITE_OK) rc = capture_install(c, t);
  }
  track_names_free(names, n);
  if (rc == SQLITE_OK) rc = ctx_meta_set(c, "capture_version", CAPTURE_VERSION);
  return rc;
}
