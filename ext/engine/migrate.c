/*
** migrate.c: schema changes of tracked tables, and the capture triggers
** that must follow them.
**
**   SELECT sync_migrate('ALTER TABLE todos ADD COLUMN due TEXT');  -- 1
**
** The capture triggers (capture.c) name the columns of their table, so an
** ALTER TABLE leaves them behind: a column added is never sent, a column
** renamed is sent under its old name, and a DROP COLUMN is refused by
** SQLite ("error in trigger sync_bs_T ... no such column"). sync_migrate
** runs the SQL (any number of statements) with the triggers of every
** tracked table removed, then writes them again from the new schema, in one
** savepoint: on any error nothing of it stays. It returns the number of
** tracked tables whose triggers it rebuilt. Rows written by the SQL itself
** are not queued (each device runs the same migration, and the server its
** own); write them after it when they should be sent.
**
** Mutations queued before it are pushed as they were recorded (under the
** old column names). A tracked table must still exist afterwards under its
** name, with the same key columns: the server and the other clients know it
** by that name and key, and the queue refers to rows by them.
**
** A change made without sync_migrate (another tool, a connection without
** the extension) is found at the engine's next write transaction on any
** connection that loaded it (ctx_engine_begin runs migrate_check once per
** schema change; the worker's pulls and acknowledgements are such writes):
** the triggers are rebuilt and sync_meta's schema_change and
** schema_changed_at (shown by sync_status) say which tables and when.
** Writes made in between were captured with the old column set.
**
** Errors:
**   sync_migrate: sql must be text
**   sync_migrate: tracked table "x" no longer exists (renamed or dropped):
**     sync_untrack it first
**   sync_migrate: the primary key of tracked table "x" changed (...)
**   sync_migrate: <SQLite's message for the SQL>
*/
#include "migrate.h"
#include "capture.h"
#include "track.h"

#include <string.h>

/* The key columns of each tracked table, one text per name. */
static int key_columns(SyncCtx *c, char **names, int n, char ***pKeys) {
  char **keys = sqlite3_malloc64(sizeof *keys * (sqlite3_uint64)(n ? n : 1));
  if (!keys) return SQLITE_NOMEM;
  memset(keys, 0, sizeof *keys * (size_t)(n ? n : 1));
  *pKeys = keys;
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT group_concat(name, ', ') FROM (SELECT name FROM "
                              "pragma_table_info(?1, 'main') WHERE pk > 0 ORDER BY pk)",
                              -1, &s, 0);
  for (int i = 0; rc == SQLITE_OK && i < n; i++) {
    sqlite3_bind_text(s, 1, names[i], -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
      keys[i] = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
      if (!keys[i]) rc = SQLITE_NOMEM;
    }
    int rc2 = sqlite3_reset(s);
    if (rc == SQLITE_OK) rc = rc2;
  }
  sqlite3_finalize(s);
  return rc;
}

/* Installs the triggers of each table named again. */
static int reinstall(SyncCtx *c, char **names, int n, char **pzErr) {
  int rc = SQLITE_OK;
  for (int i = 0; rc == SQLITE_OK && i < n; i++) {
    SyncTable *t = 0;
    rc = table_get(c, names[i], 0, &t, pzErr);
    if (rc == SQLITE_OK) rc = capture_install(c, t);
  }
  return rc;
}

static int migrate_run(SyncCtx *c, const char *sql, char **names, int n, char **pzErr) {
  char **before = 0, **after = 0;
  int rc = key_columns(c, names, n, &before);
  for (int i = 0; rc == SQLITE_OK && i < n; i++)
    rc = capture_remove(c, names[i]);
  if (rc == SQLITE_OK) {
    rc = sqlite3_exec(c->db, sql, 0, 0, pzErr);
    if (rc != SQLITE_OK && !*pzErr) *pzErr = sqlite3_mprintf("%s", ctx_errmsg(c, rc));
  }
  if (rc == SQLITE_OK) rc = key_columns(c, names, n, &after);
  for (int i = 0; rc == SQLITE_OK && i < n; i++) {
    if (!after[i]) {
      *pzErr = sqlite3_mprintf("tracked table \"%s\" no longer exists (renamed or dropped): "
                               "sync_untrack it first",
                               names[i]);
      rc = SQLITE_ERROR;
    } else if (!before[i] || strcmp(before[i], after[i]) != 0) {
      *pzErr = sqlite3_mprintf("the primary key of tracked table \"%s\" changed (%s -> %s): the "
                               "server and the queue know its rows by it",
                               names[i], before[i] ? before[i] : "none", after[i]);
      rc = SQLITE_ERROR;
    }
  }
  if (rc == SQLITE_OK) rc = reinstall(c, names, n, pzErr);
  for (int i = 0; i < n; i++) {
    if (before) sqlite3_free(before[i]);
    if (after) sqlite3_free(after[i]);
  }
  sqlite3_free(before);
  sqlite3_free(after);
  return rc;
}

void migrate_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!ctx_require_init(ctx, c, "sync_migrate")) return;
  const char *sql = (const char *)sqlite3_value_text(argv[0]);
  if (!sql || sqlite3_value_type(argv[0]) != SQLITE_TEXT) {
    ctx_error(ctx, "sync_migrate", "sql must be text");
    return;
  }
  char **names = 0;
  int n = 0;
  char *zErr = 0;
  int rc = ctx_begin(c);
  if (rc == SQLITE_OK) {
    rc = track_names(c, 1, &names, &n);
    if (rc == SQLITE_OK) rc = migrate_run(c, sql, names, n, &zErr);
    rc = ctx_end(c, rc, &zErr);
  }
  track_names_free(names, n);
  if (rc != SQLITE_OK) {
    ctx_error_msg(ctx, c, "sync_migrate", rc, zErr);
    return;
  }
  sqlite3_result_int(ctx, n);
}

int migrate_check(SyncCtx *c) {
  char **names = 0;
  int *known = 0, n = 0;
  int rc = capture_stale(c, &names, &known, &n);
  char *zErr = 0;
  if (rc == SQLITE_OK) rc = reinstall(c, names, n, &zErr);
  sqlite3_free(zErr);
  /* Triggers of a build that kept no record are rebuilt silently: nothing
  ** says the table changed. */
  sqlite3_str *said = sqlite3_str_new(c->db);
  for (int i = 0; i < n; i++)
    if (known[i])
      sqlite3_str_appendf(said, "%s\"%s\"", sqlite3_str_length(said) ? ", " : "", names[i]);
  if (rc == SQLITE_OK && sqlite3_str_length(said)) {
    sqlite3_str_appendall(said, ": altered without sync_migrate, capture triggers rebuilt "
                                "(writes before this were captured with the old columns)");
    char *msg = sqlite3_str_value(said);
    rc = msg ? ctx_meta_set(c, "schema_change", msg) : SQLITE_NOMEM;
    if (rc == SQLITE_OK)
      rc = ctx_exec(c, "INSERT OR REPLACE INTO main.sync_meta(key, value) VALUES("
                       "'schema_changed_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))");
  }
  sqlite3_free(sqlite3_str_finish(said));
  for (int i = 0; i < n; i++)
    sqlite3_free(names[i]);
  sqlite3_free(names);
  sqlite3_free(known);
  return rc;
}
