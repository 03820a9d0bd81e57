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
** old column and table names). A tracked table must keep its key columns
** (the server and the queue know its rows by them) and must not be
** dropped. A tracked table renamed (ALTER TABLE ... RENAME TO) is another
** table to the server: the tracking moves to the new name as if sync_track
** had just seen it, its rows kept local-only (sync_orphans, state kept)
** until the app sends them with sync_track(new, '{"existing":"push"}'),
** and the next pull is a full resync of it (docs/MIGRATIONS.md).
**
** A change made without sync_migrate (another tool, a connection without
** the extension) is found at the engine's next write transaction on any
** connection that loaded it (ctx_engine_begin runs migrate_check once per
** schema change; the worker's pulls and acknowledgements are such writes):
** the triggers are rebuilt (a rename is followed as above) and sync_meta's
** schema_change and schema_changed_at (shown by sync_status) say which
** tables and when.
** Writes made in between were captured with the old column set.
**
** Errors:
**   sync_migrate: sql must be text
**   sync_migrate: tracked table "x" was dropped: sync_untrack it first
**   sync_migrate: tracked table "x" was renamed to "y", which is tracked too
**   sync_migrate: the primary key of tracked table "x" changed (...)
**   sync_migrate: <SQLite's message for the SQL>
*/
#include "migrate.h"
#include "capture.h"
#include "existing.h"
#include "track.h"

#include <string.h>

/* The text sql's first row gives with ?1 bound to arg; *pOut NULL for no
** row or a NULL. */
static int one_text(SyncCtx *c, const char *sql, const char *arg, char **pOut) {
  *pOut = 0;
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db, sql, -1, &s, 0);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
      *pOut = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
      if (!*pOut) rc = SQLITE_NOMEM;
    }
    int rc2 = sqlite3_finalize(s);
    if (rc == SQLITE_OK) rc = rc2;
  }
  return rc;
}

/* The key columns of table name, as one text; *pOut NULL when there is no
** such table. */
static int key_of(SyncCtx *c, const char *name, char **pOut) {
  return one_text(c,
                  "SELECT group_concat(name, ', ') FROM (SELECT name FROM "
                  "pragma_table_info(?1, 'main') WHERE pk > 0 ORDER BY pk)",
                  name, pOut);
}

/* SQLITE_ERROR with the cause when table now's key is not keyBefore, the
** key tracked table from had. */
static int key_kept(SyncCtx *c, const char *from, const char *now, const char *keyBefore,
                    char **pzErr) {
  char *key = 0;
  int rc = key_of(c, now, &key);
  if (rc == SQLITE_OK && (!key || !keyBefore || strcmp(key, keyBefore) != 0)) {
    *pzErr = sqlite3_mprintf("the primary key of tracked table \"%s\" changed (%s -> %s): the "
                             "server and the queue know its rows by it",
                             from, keyBefore ? keyBefore : "none", key ? key : "none");
    rc = SQLITE_ERROR;
  }
  sqlite3_free(key);
  return rc;
}

/* The table a trigger named trig is on now (it follows an ALTER TABLE ...
** RENAME TO, and goes with a DROP TABLE): *pOut NULL when it is gone. */
static int trigger_table(SyncCtx *c, const char *trig, char **pOut) {
  return one_text(c, "SELECT tbl_name FROM main.sqlite_schema WHERE type = 'trigger' AND name = ?1",
                  trig, pOut);
}

/* Installs the triggers of table name again. */
static int reinstall(SyncCtx *c, const char *name, char **pzErr) {
  SyncTable *t = 0;
  int rc = table_get(c, name, 0, &t, pzErr);
  return rc == SQLITE_OK ? capture_install(c, t) : rc;
}

/* Tracked table from is now to (an ALTER TABLE ... RENAME TO; its own
** triggers are gone). To the server and the other devices to is another
** table: the tracking moves to it as if sync_track had just seen it, with
** its rows kept local-only (sync_orphans, state kept) until the app sends
** them (sync_track(to, '{"existing":"push"}')) or lets the server's replace
** them; the next pull is a full resync of it. What was queued under from
** is pushed as it was recorded. */
static int rename_tracking(SyncCtx *c, const char *from, const char *to, const char *keyBefore,
                           char **pzErr) {
  if (table_is_tracked(c, to)) {
    *pzErr = sqlite3_mprintf("tracked table \"%s\" was renamed to \"%s\", which is tracked too",
                             from, to);
    return SQLITE_ERROR;
  }
  int rc = key_kept(c, from, to, keyBefore, pzErr);
  if (rc == SQLITE_OK) {
    char *sql = sqlite3_mprintf(
        "UPDATE main.sync_tracked SET name = %Q, existing = NULL, tracked_at = "
        "strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now') WHERE name = %Q COLLATE NOCASE",
        to, from);
    rc = sql ? ctx_exec(c, sql) : SQLITE_NOMEM;
    sqlite3_free(sql);
  }
  if (rc == SQLITE_OK) rc = reinstall(c, to, pzErr);
  SyncTable *t = 0;
  if (rc == SQLITE_OK) rc = table_get(c, to, 1, &t, pzErr);
  if (rc == SQLITE_OK) rc = existing_track(c, t, EXISTING_KEEP, 1, pzErr);
  return rc;
}

static int migrate_run(SyncCtx *c, const char *sql, char **names, int n, char **pzErr) {
  char **before = sqlite3_malloc64(sizeof *before * (sqlite3_uint64)(n ? n : 1));
  if (!before) return SQLITE_NOMEM;
  memset(before, 0, sizeof *before * (size_t)(n ? n : 1));
  int rc = existing_ensure(c);
  for (int i = 0; rc == SQLITE_OK && i < n; i++)
    rc = key_of(c, names[i], &before[i]);
  /* The capture triggers name the columns (a DROP COLUMN would fail on
  ** them); a marker that names none follows the table through a RENAME TO
  ** and goes with a DROP TABLE. */
  for (int i = 0; rc == SQLITE_OK && i < n; i++) {
    rc = capture_remove(c, names[i]);
    char *mk = rc == SQLITE_OK ? sqlite3_mprintf("CREATE TRIGGER main.\"sync_mk_%w\" AFTER "
                                                 "INSERT ON \"%w\" WHEN 0 BEGIN SELECT 0; END",
                                                 names[i], names[i])
                               : 0;
    if (rc == SQLITE_OK) rc = mk ? ctx_exec(c, mk) : SQLITE_NOMEM;
    sqlite3_free(mk);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_exec(c->db, sql, 0, 0, pzErr);
    if (rc != SQLITE_OK && !*pzErr) *pzErr = sqlite3_mprintf("%s", ctx_errmsg(c, rc));
  }
  for (int i = 0; rc == SQLITE_OK && i < n; i++) {
    char *trig = sqlite3_mprintf("sync_mk_%s", names[i]), *now = 0;
    rc = trig ? trigger_table(c, trig, &now) : SQLITE_NOMEM;
    char *drop = rc == SQLITE_OK && now ? sqlite3_mprintf("DROP TRIGGER main.\"%w\"", trig) : 0;
    if (rc == SQLITE_OK && now) rc = drop ? ctx_exec(c, drop) : SQLITE_NOMEM;
    sqlite3_free(drop);
    sqlite3_free(trig);
    /* A table made again under its name (SQLite's way to change a column's
    ** type or constraints: create, copy, drop, rename) loses the marker but
    ** is the same table if its key is. */
    char *key = 0;
    if (rc == SQLITE_OK && !now) rc = key_of(c, names[i], &key);
    if (rc == SQLITE_OK && !now && !key) {
      *pzErr = sqlite3_mprintf("tracked table \"%s\" was dropped: sync_untrack it first", names[i]);
      rc = SQLITE_ERROR;
    } else if (rc == SQLITE_OK && now && sqlite3_stricmp(now, names[i]) != 0) {
      rc = rename_tracking(c, names[i], now, before[i], pzErr);
    } else if (rc == SQLITE_OK) {
      rc = key_kept(c, names[i], names[i], before[i], pzErr);
      if (rc == SQLITE_OK) rc = reinstall(c, names[i], pzErr);
    }
    sqlite3_free(now);
    sqlite3_free(key);
  }
  for (int i = 0; i < n; i++)
    sqlite3_free(before[i]);
  sqlite3_free(before);
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

/* Tracked tables renamed without sync_migrate: gone, while their own
** trigger sync_ai_T followed them to another name. pairs gets from, to,
** from, to... (2 * *pN sqlite3_malloc'd names). */
static int renamed_tables(SyncCtx *c, char ***pPairs, int *pN) {
  *pPairs = 0;
  *pN = 0;
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(
      c->db,
      "SELECT t.name, g.tbl_name FROM main.sync_tracked t JOIN main.sqlite_schema g ON g.type = "
      "'trigger' AND g.name = 'sync_ai_' || t.name WHERE g.tbl_name <> t.name COLLATE NOCASE AND "
      "NOT EXISTS (SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = t.name "
      "COLLATE NOCASE)",
      -1, &s, 0);
  while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    char **more = sqlite3_realloc64(*pPairs, sizeof *more * (sqlite3_uint64)(2 * *pN + 2));
    if (!more) {
      rc = SQLITE_NOMEM;
      break;
    }
    *pPairs = more;
    more[2 * *pN] = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
    more[2 * *pN + 1] = sqlite3_mprintf("%s", sqlite3_column_text(s, 1));
    (*pN)++;
    rc = more[2 * *pN - 2] && more[2 * *pN - 1] ? SQLITE_OK : SQLITE_NOMEM;
  }
  sqlite3_finalize(s);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* A rename made without sync_migrate: the triggers named after from (on to
** now, still queueing under from's name) and from's sync_req go, then the
** tracking moves as sync_migrate moves it. The key cannot be compared with
** the one before: to's own is taken. */
static int follow_rename(SyncCtx *c, const char *from, const char *to, char **pzErr) {
  char *key = 0;
  int rc = existing_ensure(c);
  if (rc == SQLITE_OK) rc = capture_remove(c, from);
  if (rc == SQLITE_OK) rc = key_of(c, to, &key);
  if (rc == SQLITE_OK) rc = rename_tracking(c, from, to, key, pzErr);
  sqlite3_free(key);
  return rc;
}

int migrate_check(SyncCtx *c) {
  char **pairs = 0, **names = 0;
  int *known = 0, nPairs = 0, n = 0;
  char *zErr = 0;
  sqlite3_str *said = sqlite3_str_new(c->db);
  int rc = renamed_tables(c, &pairs, &nPairs);
  for (int i = 0; rc == SQLITE_OK && i < nPairs; i++) {
    rc = follow_rename(c, pairs[2 * i], pairs[2 * i + 1], &zErr);
    sqlite3_str_appendf(said, "%s\"%s\" renamed to \"%s\"", i ? ", " : "", pairs[2 * i],
                        pairs[2 * i + 1]);
  }
  if (rc == SQLITE_OK) rc = capture_stale(c, &names, &known, &n);
  for (int i = 0; rc == SQLITE_OK && i < n; i++) {
    rc = reinstall(c, names[i], &zErr);
    /* Triggers of a build that kept no record are rebuilt silently:
    ** nothing says the table changed. */
    if (known[i])
      sqlite3_str_appendf(said, "%s\"%s\"", sqlite3_str_length(said) ? ", " : "", names[i]);
  }
  sqlite3_free(zErr);
  if (rc == SQLITE_OK && sqlite3_str_length(said)) {
    sqlite3_str_appendall(said, ": altered without sync_migrate, capture triggers rebuilt "
                                "(writes before this were captured with the old columns and name)");
    char *msg = sqlite3_str_value(said);
    rc = msg ? ctx_meta_set(c, "schema_change", msg) : SQLITE_NOMEM;
    if (rc == SQLITE_OK)
      rc = ctx_exec(c, "INSERT OR REPLACE INTO main.sync_meta(key, value) VALUES("
                       "'schema_changed_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))");
  }
  sqlite3_free(sqlite3_str_finish(said));
  for (int i = 0; i < 2 * nPairs; i++)
    sqlite3_free(pairs[i]);
  sqlite3_free(pairs);
  for (int i = 0; i < n; i++)
    sqlite3_free(names[i]);
  sqlite3_free(names);
  sqlite3_free(known);
  return rc;
}
