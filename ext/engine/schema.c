/*
** schema.c: the extension's own tables, and sync_init / sync_cursor.
**
**   SELECT sync_init('https://sync.example.com');          -- client id
**   SELECT sync_init(NULL, '{"batch_size":50}');          -- bring your own transport
**   SELECT sync_init('');                                  -- forget the url
**   SELECT sync_cursor();                                  -- NULL before the first pull
**
** sync_init creates the tables below in the main database when missing,
** switches a file database to WAL, and draws the client id once (kept across
** reopen; a second call only updates the url and options). A NULL url keeps
** the one stored before, if any; '' removes it. Errors:
**   sync_init: url must be NULL, '' or an http:// or https:// URL
**   sync_init: options must be a JSON object
**   sync_init: unknown option "x"
**   sync_init: option "batch_size" must be a positive integer (options.c)
** The options are the keys of sync_config() but the token, which is never
** stored, checked by the same code (options.c); an option set to null goes
** back to its default.
**
** The tables (all plain SQL, so connections without the extension can still
** queue writes through the capture triggers):
**   sync_meta     key/value: client_id, url, cursor, config.*
**   sync_tracked  tracked table names
**   sync_outbox   one row per pending mutation; created_at as a julian day
**                 (strftime on every captured write doubled the capture
**                 cost; sync_pending formats it). Ids are idempotency keys on
**                 the server and must never be reused, even once the outbox
**                 is empty: the triggers take max(max(id), last_id) + 1, and
**                 sync_outbox_gone (a trigger, so that any connection keeps
**                 it) moves an id into sync_control.last_id when its row
**                 leaves while holding the highest id. Not AUTOINCREMENT:
**                 that reads and writes sqlite_sequence on every captured
**                 statement (a quarter of an autocommit insert's cost).
**   sync_shadow   the server's last known row for keys with pending
**                 mutations (row NULL = absent; no entry = absent too)
**   sync_stash    scratch for REPLACE: the rows a write collides with, their
**                 rowid and the highest mutation id when stashed (replace.c;
**                 a database from before gets rid and mark from sync_track)
**   sync_control  one row; applying=1 while the engine writes; last_id (above);
**                 sent_id, the highest mutation id sync_push_batch has handed
**                 out: a server's last_mutation_id above it is refused, as it
**                 would confirm mutations the server never received
**   sync_rejected mutations the server refused
**   sync_inbox    pull pages that could not apply yet, applied with the
**                 pull's last page (apply.c)
*/
#include "schema.h"
#include "options.h"
#include "track.h"

#include <string.h>

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS sync_meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS sync_tracked(name TEXT PRIMARY KEY, tracked_at TEXT NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS sync_outbox("
    " id INTEGER PRIMARY KEY, tbl TEXT NOT NULL, op TEXT NOT NULL,"
    " pk TEXT NOT NULL, data TEXT,"
    " created_at REAL NOT NULL DEFAULT (julianday('now')),"
    " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);"
    "CREATE INDEX IF NOT EXISTS sync_outbox_key ON sync_outbox(tbl, pk);"
    "CREATE TABLE IF NOT EXISTS sync_shadow(tbl TEXT NOT NULL, pk TEXT NOT NULL, row TEXT,"
    " version INTEGER, PRIMARY KEY(tbl, pk)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS sync_stash(tbl TEXT, pk TEXT, row TEXT, rid INTEGER, mark INTEGER);"
    "CREATE TABLE IF NOT EXISTS sync_control(id INTEGER PRIMARY KEY CHECK (id = 1),"
    " applying INTEGER NOT NULL DEFAULT 0, last_id INTEGER NOT NULL DEFAULT 0,"
    " sent_id INTEGER NOT NULL DEFAULT 0);"
    "INSERT OR IGNORE INTO sync_control(id, applying) VALUES(1, 0);"
    "CREATE TABLE IF NOT EXISTS sync_rejected(id INTEGER PRIMARY KEY, table_name TEXT NOT NULL,"
    " op TEXT NOT NULL, pk TEXT NOT NULL, data TEXT, reason TEXT, rejected_at TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS sync_inbox(seq INTEGER PRIMARY KEY, page TEXT NOT NULL);";

/* Run after schema_sql, once sync_control has last_id (see migrate). */
static const char schema_gone_sql[] =
    "CREATE TRIGGER IF NOT EXISTS main.sync_outbox_gone AFTER DELETE ON sync_outbox"
    " WHEN NOT EXISTS (SELECT 1 FROM sync_outbox WHERE id > OLD.id)"
    " BEGIN UPDATE sync_control SET last_id = OLD.id WHERE last_id < OLD.id; END;";

/* A database made before last_id existed has an AUTOINCREMENT outbox whose
** highest id ever issued is in sqlite_sequence: last_id starts from it (the
** table keeps AUTOINCREMENT; the explicit ids the triggers now give agree
** with it). */
static int migrate_last_id(SyncCtx *c) {
  int added = 0;
  int rc = ctx_add_column(c, "sync_control", "last_id", "INTEGER NOT NULL DEFAULT 0", &added);
  if (rc != SQLITE_OK || !added) return rc;
  sqlite3_stmt *s = 0;
  rc = sqlite3_prepare_v2(c->db, "SELECT 1 FROM main.sqlite_master WHERE name='sqlite_sequence'",
                          -1, &s, 0);
  int has = rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW;
  sqlite3_finalize(s);
  if (rc == SQLITE_OK && has)
    rc = ctx_exec(c, "UPDATE main.sync_control SET last_id = coalesce((SELECT seq FROM "
                     "main.sqlite_sequence WHERE name='sync_outbox'), 0)");
  return rc;
}

/* A database made before sent_id existed does not say which of its pending
** mutations were handed out. Ids below the outbox's lowest (or up to last_id)
** have left it, answered, so they were sent; the pending ones count as not
** sent until the next sync_push_batch hands them out. Erring low only delays
** a confirmation (a pull page is refused until the next push, whose answer
** resolves them anyway); erring high would let a server drop them unsent. */
static int migrate(SyncCtx *c) {
  int rc = migrate_last_id(c);
  if (rc != SQLITE_OK) return rc;
  int added = 0;
  rc = ctx_add_column(c, "sync_control", "sent_id", "INTEGER NOT NULL DEFAULT 0", &added);
  if (rc == SQLITE_OK && added)
    rc = ctx_exec(c, "UPDATE main.sync_control SET sent_id = max(last_id,"
                     " coalesce((SELECT min(id) FROM main.sync_outbox) - 1, 0))");
  return rc;
}

static int url_ok(const char *u) {
  return strncmp(u, "http://", 7) == 0 ? u[7] != 0 : strncmp(u, "https://", 8) == 0 && u[8];
}

static char *new_client_id(void) {
  unsigned char b[16];
  sqlite3_randomness(sizeof b, b);
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  char hex[33];
  for (int i = 0; i < 16; i++)
    sqlite3_snprintf(3, hex + 2 * i, "%02x", b[i]);
  return sqlite3_mprintf("%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* Checks and stores the options object as config.<key> rows (options.c:
** the same checks as sync_config; null puts a key back to its default).
** Returns an SQLite code; *pzErr gets the cause of a refusal. */
static int store_options(SyncCtx *c, const char *json, char **pzErr) {
  if (!ctx_json_is(c, json, "$", "object")) {
    *pzErr = sqlite3_mprintf("options must be a JSON object");
    return SQLITE_ERROR;
  }
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db, "SELECT key, type, value FROM json_each(?1)", -1, &s, 0);
  if (rc == SQLITE_OK) sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
  int paired = 0, step = SQLITE_DONE;
  while (rc == SQLITE_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
    const char *key = (const char *)sqlite3_column_text(s, 0);
    const char *type = (const char *)sqlite3_column_text(s, 1);
    const SyncOpt *o = opt_find(key);
    if (!o || !type) {
      *pzErr = sqlite3_mprintf("unknown option \"%s\"", key ? key : "");
      rc = SQLITE_ERROR;
    } else if (o->kind == OPT_TOKEN) {
      *pzErr = sqlite3_mprintf("option \"token\" is never stored: set it with "
                               "sync_config('token', ...) (memory only)");
      rc = SQLITE_ERROR;
    } else if (strcmp(type, "object") == 0 || strcmp(type, "array") == 0) {
      *pzErr = sqlite3_mprintf("option \"%s\" must not be a JSON %s", key, type);
      rc = SQLITE_ERROR;
    } else {
      char *text = 0, *why = 0;
      int isBool = strcmp(type, "true") == 0 || strcmp(type, "false") == 0;
      if (strcmp(type, "null") != 0)
        rc = opt_check(o, sqlite3_column_value(s, 2), isBool, &text, &why);
      if (rc == SQLITE_ERROR) *pzErr = sqlite3_mprintf("option %s", why);
      if (rc == SQLITE_OK) rc = opt_store(c, o, text);
      paired |= opt_paired(o);
      sqlite3_free(text);
      sqlite3_free(why);
    }
  }
  if (rc == SQLITE_OK && step != SQLITE_DONE) {
    rc = step;
    *pzErr = sqlite3_mprintf("%s", ctx_errmsg(c, rc));
  }
  sqlite3_finalize(s);
  if (rc == SQLITE_OK && paired) rc = opt_agree(c, pzErr);
  return rc;
}

void schema_fn_init(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  SyncCtx *c = sqlite3_user_data(ctx);
  const char *url = (const char *)sqlite3_value_text(argv[0]);
  int urlType = sqlite3_value_type(argv[0]);
  if (urlType == SQLITE_TEXT && !url) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  if (urlType != SQLITE_NULL && (urlType != SQLITE_TEXT || (*url && !url_ok(url)))) {
    ctx_error(ctx, "sync_init", "url must be NULL, '' or an http:// or https:// URL");
    return;
  }
  const char *opts = argc > 1 ? (const char *)sqlite3_value_text(argv[1]) : 0;
  if (argc > 1 && sqlite3_value_type(argv[1]) != SQLITE_NULL &&
      sqlite3_value_type(argv[1]) != SQLITE_TEXT) {
    ctx_error(ctx, "sync_init", "options must be a JSON object");
    return;
  }
  char *zErr = 0, *id = 0;
  int rc = ctx_begin(c);
  if (rc == SQLITE_OK) {
    rc = ctx_exec(c, schema_sql);
    if (rc == SQLITE_OK) rc = migrate(c);
    if (rc == SQLITE_OK) rc = ctx_exec(c, schema_gone_sql);
    if (rc == SQLITE_OK) rc = track_refresh(c);
    /* The tables may have just appeared: statements cached while they were
    ** missing failed to prepare and were not kept, so nothing is stale. */
    if (rc == SQLITE_OK) id = ctx_meta_get(c, "client_id");
    if (rc == SQLITE_OK && !id) {
      id = new_client_id();
      rc = id ? ctx_meta_set(c, "client_id", id) : SQLITE_NOMEM;
    }
    /* NULL keeps the url a previous call stored (an app that brings its own
    ** transport on one run must not strand the worker of the next); ''
    ** removes it. */
    if (rc == SQLITE_OK && urlType == SQLITE_TEXT)
      rc = *url ? ctx_meta_set(c, "url", url) : ctx_meta_del(c, "url");
    if (rc == SQLITE_OK && opts) rc = store_options(c, opts, &zErr);
    rc = ctx_end(c, rc, &zErr);
  }
  if (rc != SQLITE_OK) {
    sqlite3_free(id);
    ctx_error_msg(ctx, c, "sync_init", rc, zErr);
    return;
  }
  /* WAL lets the app read while the engine writes. It cannot be switched on
  ** inside a transaction or for an in-memory database; then the mode stays. */
  if (sqlite3_get_autocommit(c->db)) ctx_exec(c, "PRAGMA main.journal_mode=WAL");
  sqlite3_result_text(ctx, id, -1, sqlite3_free);
}

void schema_fn_cursor(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc, (void)argv;
  SyncCtx *c = sqlite3_user_data(ctx);
  if (!ctx_require_init(ctx, c, "sync_cursor")) return;
  char *v = ctx_meta_get(c, "cursor");
  if (v) sqlite3_result_text(ctx, v, -1, sqlite3_free);
}
