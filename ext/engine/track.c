/*
** track.c: sync_track and sync_untrack.
**
**   SELECT sync_track('todos');       -- 1: writes to todos are now queued
**   SELECT sync_track('todos', '{"existing":"keep"}');   -- and its rows stay local
**   SELECT sync_track('todos', '{"server_columns":["updated_at"]}');  -- never sent
**
** "server_columns" names columns whose values the server owns (its defaults
** and triggers fill them, docs/RULES.md): the capture triggers never send
** them (capture.c), and the server's rows bring their values. Kept in
** sync_tracked.server_columns; tracking again without the option keeps
** them, [] clears them.
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
**   sync_track: option "server_columns" must be an array of column names
**   sync_track: server_columns: no column "x" in table "t"
**   sync_track: server_columns: "id" is a primary key column of "t"
**   sync_track: a row of "x" has a NULL in its primary key ({"id":null}): ...
**   sync_untrack: table name must be text
**   sync_untrack: table "x" is not tracked
*/
#include "track.h"
#include "capture.h"
#include "existing.h"
#include "table.h"
#include "value.h"

#include <string.h>

/* sync_track's "server_columns" (absent: *pGiven 0, nothing changes): an
** array of t's columns outside its key, into *pList as a JSON array of
** their names as the table spells them (NULL for an empty array). */
static int server_columns(SyncCtx *c, SyncTable *t, const char *json, int *pGiven, char **pList,
                          char **pzErr) {
  *pGiven = 0;
  *pList = 0;
  if (!json) return SQLITE_OK;
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT json_type(?1, '$.server_columns'), j.type, j.value FROM"
                              " (SELECT 1) LEFT JOIN json_each(?1, '$.server_columns') AS j"
                              " ON json_type(?1, '$.server_columns') = 'array'",
                              -1, &s, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
  unsigned char *seen = sqlite3_malloc64((sqlite3_uint64)t->nCol + 1);
  sqlite3_str *out = sqlite3_str_new(c->db);
  int n = 0;
  if (!seen) rc = SQLITE_NOMEM;
  if (seen) memset(seen, 0, (size_t)t->nCol + 1);
  sqlite3_str_appendchar(out, 1, '[');
  while (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
    const char *what = (const char *)sqlite3_column_text(s, 0);
    if (!what) break; /* no such option */
    *pGiven = 1;
    if (strcmp(what, "array") != 0) {
      *pzErr = sqlite3_mprintf("option \"server_columns\" must be an array of column names");
      rc = SQLITE_ERROR;
      break;
    }
    if (sqlite3_column_type(s, 1) == SQLITE_NULL) break; /* an empty array */
    const char *type = (const char *)sqlite3_column_text(s, 1);
    const char *name = (const char *)sqlite3_column_text(s, 2);
    if (!type || strcmp(type, "text") != 0) {
      *pzErr = sqlite3_mprintf("option \"server_columns\" must be an array of column names");
      rc = SQLITE_ERROR;
      break;
    }
    int col = -1;
    for (int i = 0; name && i < t->nCol; i++)
      if (sqlite3_stricmp(t->cols[i], name) == 0) col = i;
    int key = 0;
    for (int i = 0; col >= 0 && i < t->nPk; i++)
      key |= t->pk[i] == col;
    if (col < 0 || key) {
      *pzErr = col < 0 ? sqlite3_mprintf("server_columns: no column \"%s\" in table \"%s\"",
                                         name ? name : "", t->name)
                       : sqlite3_mprintf("server_columns: \"%s\" is a primary key column of"
                                         " \"%s\"",
                                         t->cols[col], t->name);
      rc = SQLITE_ERROR;
      break;
    }
    if (seen[col]++) continue;
    if (n++) sqlite3_str_appendchar(out, 1, ',');
    value_append_string(out, t->cols[col], -1);
  }
  sqlite3_finalize(s);
  sqlite3_free(seen);
  sqlite3_str_appendchar(out, 1, ']');
  char *list = sqlite3_str_finish(out);
  if (rc == SQLITE_OK && !list) rc = SQLITE_NOMEM;
  if (rc == SQLITE_OK && n)
    *pList = list;
  else
    sqlite3_free(list);
  return rc;
}

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
  const char *options = argc > 1 ? (const char *)sqlite3_value_text(argv[1]) : 0;
  int given = 0;
  char *server = 0;
  int rc = existing_options(c, options, &mode, &zErr);
  if (rc == SQLITE_OK) rc = table_get(c, name, 0, &t, &zErr);
  if (rc == SQLITE_OK) rc = server_columns(c, t, options, &given, &server, &zErr);
  if (rc != SQLITE_OK) {
    ctx_error_msg(ctx, c, "sync_track", rc, zErr);
    return;
  }
  /* The DDL below changes the schema and so frees t: keep its name. */
  char *canonical = sqlite3_mprintf("%s", t->name);
  if (!canonical) {
    sqlite3_free(server);
    sqlite3_result_error_nomem(ctx);
    return;
  }
  int first = !table_is_tracked(c, canonical);
  rc = ctx_begin(c);
  if (rc == SQLITE_OK) {
    rc = existing_ensure(c);
    if (rc == SQLITE_OK) {
      char *sql = sqlite3_mprintf("INSERT OR IGNORE INTO sync_tracked(name, tracked_at) "
                                  "VALUES(%Q, strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ','now'))",
                                  canonical);
      rc = sql ? ctx_exec(c, sql) : SQLITE_NOMEM;
      sqlite3_free(sql);
    }
    /* before the triggers, which leave the server's columns out; the
    ** cached table does not see a change of sync_tracked by itself */
    if (rc == SQLITE_OK && given) {
      char *sql = sqlite3_mprintf(
          "UPDATE main.sync_tracked SET server_columns = %Q WHERE name = %Q", server, canonical);
      rc = sql ? ctx_exec(c, sql) : SQLITE_NOMEM;
      sqlite3_free(sql);
      table_cache_clear(c);
    }
    if (rc == SQLITE_OK) rc = table_get(c, canonical, 0, &t, &zErr);
    if (rc == SQLITE_OK) rc = capture_install(c, t);
    /* Read again: the triggers changed the schema, which freed t. */
    if (rc == SQLITE_OK) rc = table_get(c, canonical, 1, &t, &zErr);
    if (rc == SQLITE_OK) rc = existing_track(c, t, mode, first, &zErr);
    rc = ctx_end(c, rc, &zErr);
  }
  sqlite3_free(canonical);
  sqlite3_free(server);
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
