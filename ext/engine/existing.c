/*
** existing.c: the rows of a tracked table the server has not confirmed.
**
**   SELECT sync_track('todos', '{"existing":"push"}');   -- the default
**   SELECT sync_track('todos', '{"existing":"keep"}');
**   SELECT sync_track('todos', '{"existing":"server"}');
**   SELECT * FROM sync_orphans;                          -- vtab_orphans.c
**
** Rows already in a table when it is first tracked were never queued:
**   push    queues each as an insert, in the same transaction as the
**           tracking (one INSERT ... SELECT: ids follow the table's order)
**   keep    leaves them local-only, listed in sync_local as 'kept'
**   server  lists them as 'replace': the next pull is a full resync, which
**           writes the server's rows and removes the others ('removed',
**           with the row as it was)
** Tracking a table again with an option applies it to the rows sync_local
** still lists as kept or replace (push: queued and no longer listed, the
** unsent edits of such a row folded into its insert); with no option it
** changes nothing. The mode is kept in sync_tracked.existing.
**
** Every other row of a tracked table is pending or was confirmed by the
** server (captured writes are queued; pulls write server rows). A full
** resync (resync.c) therefore deletes an undelivered row only when no
** mutation holds it, sync_local does not keep it, and it was confirmed: its
** table had been pulled from this server before. In a table never pulled
** from this server (tracked by an older build, or confirmed only by pages
** and answers given by hand to a database without a url) such a row gets
** the table's mode (none recorded: push).
**
** A resync after the server went back in time (restored from an older copy
** or replaced: its 410 says "reset", sync_meta 'server_reset' notes it until
** the resync ends) does not take a confirmed row the server lacks for
** deleted: with sync_config('on_server_reset') 'orphans' (the default) the
** row is listed in sync_local as 'server_reset' with what it held (see
** sync_orphans) and leaves the table; with 'republish' it stays and is
** queued as an insert, so that the server gets it back. A confirmed row
** the resync brings back with other values is the same loss, found before
** its page is applied (existing_reset_page): listed with what it held, or
** queued as an update. sync_status shows what was done (note_reset).
**
** Which server confirmed what: sync_init notes, before it changes the url,
** the url and cursor held (sync_meta 'cursor_from', existing_note). A
** cursor still the one noted with no url (pages and answers given by hand)
** was not pulled from the server now set: the next pull is a full resync
** in which no table counts as pulled (existing_foreign). A url changed
** from one server to another is taken as the same service moved (a
** resync there would otherwise send back every row deleted since the
** cursor).
*/
#include "existing.h"
#include "jsonexpr.h"
#include "options.h"

#include <string.h>

static const char *const mode_names[] = {0, "push", "keep", "server"};
static const char now_sql[] = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

int existing_ensure(SyncCtx *c) {
  int rc = ctx_exec(c, "CREATE TABLE IF NOT EXISTS main.sync_local(id INTEGER PRIMARY KEY,"
                       " tbl TEXT NOT NULL, pk TEXT NOT NULL, state TEXT NOT NULL, row TEXT,"
                       " noted_at TEXT NOT NULL, UNIQUE(tbl, pk))");
  if (rc == SQLITE_OK) rc = ctx_add_column(c, "sync_tracked", "existing", "TEXT", 0);
  /* sync_track's server_columns (track.c, table.c) */
  return rc == SQLITE_OK ? ctx_add_column(c, "sync_tracked", "server_columns", "TEXT", 0) : rc;
}

int existing_options(SyncCtx *c, const char *json, ExistingMode *pMode, char **pzErr) {
  *pMode = EXISTING_NONE;
  if (!json) return SQLITE_OK;
  if (!ctx_json_is(c, json, "$", "object")) {
    *pzErr = sqlite3_mprintf("options must be a JSON object");
    return SQLITE_ERROR;
  }
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db, "SELECT key, type, value FROM json_each(?1)", -1, &s, 0);
  if (rc == SQLITE_OK) sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
  while (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
    const char *key = (const char *)sqlite3_column_text(s, 0);
    const char *type = (const char *)sqlite3_column_text(s, 1);
    const char *v = (const char *)sqlite3_column_text(s, 2);
    if (key && strcmp(key, "server_columns") == 0) continue; /* track.c reads it */
    if (!key || strcmp(key, "existing") != 0) {
      *pzErr = sqlite3_mprintf("unknown option \"%s\"", key ? key : "");
      rc = SQLITE_ERROR;
      break;
    }
    int m = EXISTING_PUSH;
    while (m <= EXISTING_SERVER &&
           !(type && v && strcmp(type, "text") == 0 && strcmp(v, mode_names[m]) == 0))
      m++;
    if (m > EXISTING_SERVER) {
      *pzErr = sqlite3_mprintf("option \"existing\" must be \"push\", \"keep\" or \"server\"");
      rc = SQLITE_ERROR;
      break;
    }
    *pMode = (ExistingMode)m;
  }
  int rcFin = sqlite3_finalize(s);
  return rc == SQLITE_OK ? rcFin : rc;
}

/* SQL pieces for table t: its key as the capture triggers write it (the
** outbox's pk) and its row as JSON, both read from the table by name. */
typedef struct Exprs {
  char *key, *row, *name; /* name: "T" quoted, the prefix of both */
  char *data;             /* the row as an insert sends it (jx_data) */
} Exprs;

static int exprs_make(SyncCtx *c, SyncTable *t, Exprs *x) {
  memset(x, 0, sizeof *x);
  JxShape sh;
  int rc = jx_shape_read(c, t, &sh);
  x->name = sqlite3_mprintf("\"%w\"", t->name);
  if (rc == SQLITE_OK && !x->name) rc = SQLITE_NOMEM;
  if (rc == SQLITE_OK) {
    sqlite3_str *k = sqlite3_str_new(0), *r = sqlite3_str_new(0), *d = sqlite3_str_new(0);
    jx_key(k, t, sh.kind, x->name);
    jx_row(r, t, sh.kind, x->name);
    jx_data(d, t, sh.kind, x->name);
    x->key = sqlite3_str_finish(k);
    x->row = sqlite3_str_finish(r);
    x->data = sqlite3_str_finish(d);
    if (!x->key || !x->row || !x->data) rc = SQLITE_NOMEM;
  }
  jx_shape_free(&sh);
  return rc;
}

static void exprs_free(Exprs *x) {
  sqlite3_free(x->key);
  sqlite3_free(x->row);
  sqlite3_free(x->data);
  sqlite3_free(x->name);
}

/* Runs sql (built by the caller, NULL when out of memory) with ?1 bound to
** t's name; *pChanged gets the rows it changed, if asked. */
static int run(SyncCtx *c, SyncTable *t, char *sql, sqlite3_int64 *pChanged) {
  sqlite3_stmt *s = 0;
  int rc = sql ? sqlite3_prepare_v2(c->db, sql, -1, &s, 0) : SQLITE_NOMEM;
  sqlite3_free(sql);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  rc = sqlite3_step(s);
  rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : sqlite3_errcode(c->db);
  if (rc == SQLITE_OK && pChanged) *pChanged = sqlite3_changes64(c->db);
  sqlite3_finalize(s);
  return rc;
}

/* sync_config('on_server_reset') is 'republish' (else 'orphans'). */
static int republishing(SyncCtx *c) {
  const SyncOpt *o = opt_find("on_server_reset");
  char *how = o ? opt_get(c, o) : 0;
  int yes = how && strcmp(how, "republish") == 0;
  sqlite3_free(how);
  return yes;
}

int existing_reset_page(SyncCtx *c, SyncTable *t, const char *page, const char *match,
                        const char *unqueued) {
  Exprs x;
  int rc = exprs_make(c, t, &x);
  int republish = republishing(c);
  /* The page's rows of t and the local rows they differ from: compared
  ** member by member over the columns both have (as wire values) */
  char *from = rc == SQLITE_OK
                   ? sqlite3_mprintf(
                         " FROM main.%s JOIN (SELECT value->'$.pk' AS sync_p_pk, value->'$.row' AS"
                         " sync_p_row FROM json_each(?2, '$.changes') WHERE value->>'table' = ?1"
                         " AND value->>'op' = 'upsert') ON %s WHERE (%s) AND EXISTS (SELECT 1"
                         " FROM json_each(sync_p_row) AS s JOIN json_each(%s) AS l ON l.key ="
                         " s.key WHERE l.type IS NOT s.type OR l.atom IS NOT s.atom OR"
                         " (s.atom IS NULL AND l.value IS NOT s.value)) AND %s NOT IN (SELECT pk"
                         " FROM main.sync_local WHERE tbl = ?1)",
                         x.name, match, unqueued, x.row, x.key)
                   : 0;
  char *sql = 0;
  if (from && republish) {
    /* an update of every column but the key's (an update names what it sets) */
    sqlite3_str *d = sqlite3_str_new(0);
    sqlite3_str_appendf(d, "json_remove(%s", x.data);
    for (int i = 0; i < t->nPk; i++)
      sqlite3_str_appendf(d, ", '$.\"%q\"'", t->cols[t->pk[i]]);
    sqlite3_str_appendall(d, ")");
    char *data = sqlite3_str_finish(d);
    sql = data ? sqlite3_mprintf("INSERT INTO main.sync_outbox(id, tbl, op, pk, data) SELECT %s +"
                                 " row_number() OVER (), ?1, 'update', %s, %s%s",
                                 jx_last_id, x.key, data, from)
               : 0;
    sqlite3_free(data);
  } else if (from) {
    sql = sqlite3_mprintf("INSERT OR REPLACE INTO main.sync_local(tbl, pk, state, row, noted_at)"
                          " SELECT ?1, %s, 'server_reset', %s, %s%s",
                          x.key, x.row, now_sql, from);
  }
  sqlite3_stmt *s = 0;
  if (rc == SQLITE_OK) rc = sql ? sqlite3_prepare_v2(c->db, sql, -1, &s, 0) : SQLITE_NOMEM;
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, page, -1, SQLITE_STATIC);
    rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(c->db);
  }
  sqlite3_finalize(s);
  sqlite3_free(sql);
  sqlite3_free(from);
  exprs_free(&x);
  return rc;
}

/* Queues an insert of every row of t matching where (an SQL condition on
** the table's row; ?1 is its name, and no key it matches has a pending
** mutation), in one statement. A key with a NULL part cannot sync
** (capture.c refuses it too): strict, the call fails; else such a row is
** kept local-only. The keys queued had no server row: an image they held
** (a guard) goes. */
static int queue_inserts(SyncCtx *c, SyncTable *t, const Exprs *x, const char *where, int strict,
                         char **pzErr) {
  sqlite3_str *nul = sqlite3_str_new(0);
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(nul, "%s%s.\"%w\" IS NULL", i ? " OR " : "", x->name, t->cols[t->pk[i]]);
  char *cond = sqlite3_str_finish(nul);
  if (!cond) return SQLITE_NOMEM;
  int rc = SQLITE_OK;
  if (strict) {
    sqlite3_stmt *s = 0;
    char *sql = sqlite3_mprintf("SELECT %s FROM main.%s WHERE (%s) AND (%s) LIMIT 1", x->key,
                                x->name, where, cond);
    rc = sql ? sqlite3_prepare_v2(c->db, sql, -1, &s, 0) : SQLITE_NOMEM;
    sqlite3_free(sql);
    if (rc == SQLITE_OK) {
      sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
      rc = sqlite3_step(s);
      if (rc == SQLITE_ROW) {
        *pzErr = sqlite3_mprintf("a row of \"%s\" has a NULL in its primary key (%s): a row "
                                 "needs its whole key to sync",
                                 t->name, sqlite3_column_text(s, 0));
        rc = SQLITE_CONSTRAINT;
      } else {
        rc = rc == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(c->db);
      }
    }
    sqlite3_finalize(s);
  } else {
    rc = run(c, t,
             sqlite3_mprintf("INSERT OR IGNORE INTO main.sync_local(tbl, pk, state, noted_at)"
                             " SELECT ?1, %s, 'kept', %s FROM main.%s WHERE (%s) AND (%s)",
                             x->key, now_sql, x->name, where, cond),
             0);
  }
  if (rc == SQLITE_OK)
    rc = run(c, t,
             sqlite3_mprintf("DELETE FROM main.sync_shadow WHERE tbl = ?1 AND pk IN (SELECT %s"
                             " FROM main.%s WHERE (%s) AND NOT (%s))",
                             x->key, x->name, where, cond),
             0);
  /* One statement whatever the size: ids are numbered by row_number()
  ** from the highest ever issued (jx_last_id, read once). */
  if (rc == SQLITE_OK)
    rc = run(c, t,
             sqlite3_mprintf("INSERT INTO main.sync_outbox(id, tbl, op, pk, data)"
                             " SELECT %s + row_number() OVER (), ?1, 'insert', %s, %s"
                             " FROM main.%s WHERE (%s) AND NOT (%s)",
                             jx_last_id, x->key, x->data, x->name, where, cond),
             0);
  sqlite3_free(cond);
  return rc;
}

/* The next pull is a full resync. Tables pulled so far are noted now
** (resync_start keeps a note it finds): a table first tracked with
** "server" had no rows from this server. */
static int owe_resync(SyncCtx *c) {
  char *owed = ctx_meta_get(c, "resync");
  int rc = SQLITE_OK;
  if (!owed) {
    char *pulled = ctx_meta_get(c, "pulled_tables");
    rc = ctx_meta_set(c, "resync_tables", pulled && !existing_foreign(c) ? pulled : "");
    sqlite3_free(pulled);
    if (rc == SQLITE_OK) rc = ctx_meta_set(c, "resync", "1");
  }
  sqlite3_free(owed);
  return rc;
}

/* A kept row is local-only and a row waiting for the server's is about to
** go: an edit of either sent as it is would be refused (no such row) and
** its rollback would undo the edit. So the row keeps its edits locally and
** nothing is queued for it; a delete also ends its listing. The trigger is
** plain SQL (a connection without the extension writes through it too) and
** exists only while something is listed, so other apps' writes pay
** nothing (a delete of the last listed row leaves it: sync_init drops it,
** track_refresh). An insert is never held: a listed key has its row, so an insert
** of it is the engine queueing the row itself. */
int existing_hold(SyncCtx *c) {
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(
      c->db, "SELECT 1 FROM main.sync_local WHERE state IN ('kept', 'replace') LIMIT 1", -1, &s, 0);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(s);
  int listed = rc == SQLITE_ROW;
  rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(c->db);
  sqlite3_finalize(s);
  if (rc != SQLITE_OK) return rc;
  if (!listed) return ctx_exec(c, "DROP TRIGGER IF EXISTS main.sync_hold");
  return ctx_exec(
      c, "CREATE TRIGGER IF NOT EXISTS main.sync_hold AFTER INSERT ON main.sync_outbox"
         " WHEN NEW.op <> 'insert' AND EXISTS (SELECT 1 FROM sync_local WHERE tbl = NEW.tbl"
         " AND pk = NEW.pk AND state IN ('kept', 'replace')) BEGIN"
         " DELETE FROM sync_outbox WHERE id = NEW.id;"
         " DELETE FROM sync_shadow WHERE tbl = NEW.tbl AND pk = NEW.pk AND NOT EXISTS"
         " (SELECT 1 FROM sync_outbox WHERE tbl = NEW.tbl AND pk = NEW.pk);"
         " DELETE FROM sync_local WHERE NEW.op = 'delete' AND tbl = NEW.tbl AND pk = NEW.pk;"
         " END");
}

int existing_track(SyncCtx *c, SyncTable *t, ExistingMode mode, int first, char **pzErr) {
  if (mode == EXISTING_NONE && !first) return SQLITE_OK;
  if (mode == EXISTING_NONE) mode = EXISTING_PUSH;
  Exprs x;
  int rc = exprs_make(c, t, &x);
  /* The rows this applies to: a listed row has nothing queued (sync_hold
  ** keeps its edits local), so the row as it stands is its insert. */
  char *which = first ? sqlite3_mprintf("1")
                      : sqlite3_mprintf("%s IN (SELECT pk FROM main.sync_local WHERE tbl = ?1 AND"
                                        " state IN ('kept', 'replace')) AND %s NOT IN (SELECT pk"
                                        " FROM main.sync_outbox WHERE tbl = ?1)",
                                        x.key, x.key);
  if (rc == SQLITE_OK && !which) rc = SQLITE_NOMEM;
  if (rc == SQLITE_OK && mode == EXISTING_PUSH) {
    rc = queue_inserts(c, t, &x, which, 1, pzErr);
    if (rc == SQLITE_OK)
      rc = run(c, t,
               sqlite3_mprintf("DELETE FROM main.sync_local WHERE tbl = ?1 AND state IN"
                               " ('kept', 'replace')"),
               0);
  } else if (rc == SQLITE_OK && first) {
    rc = run(c, t,
             sqlite3_mprintf("INSERT OR REPLACE INTO main.sync_local(tbl, pk, state, noted_at)"
                             " SELECT ?1, %s, '%s', %s FROM main.%s",
                             x.key, mode == EXISTING_KEEP ? "kept" : "replace", now_sql, x.name),
             0);
  } else if (rc == SQLITE_OK) {
    rc = run(c, t,
             sqlite3_mprintf("UPDATE main.sync_local SET state = '%s' WHERE tbl = ?1 AND state"
                             " IN ('kept', 'replace')",
                             mode == EXISTING_KEEP ? "kept" : "replace"),
             0);
  }
  if (rc == SQLITE_OK && mode == EXISTING_SERVER) rc = owe_resync(c);
  if (rc == SQLITE_OK)
    rc = run(c, t,
             sqlite3_mprintf("UPDATE main.sync_tracked SET existing = '%s' WHERE name = ?1",
                             mode_names[mode]),
             0);
  if (rc == SQLITE_OK) rc = existing_hold(c);
  sqlite3_free(which);
  exprs_free(&x);
  return rc;
}

int existing_note(SyncCtx *c) {
  /* Only a database sync_init ran on before (it has a client id; its url
  ** may be absent) has something a url can have confirmed; the note changes
  ** only with the cursor, so it keeps the url that cursor came with. */
  return ctx_exec(
      c, "INSERT INTO main.sync_meta(key, value) SELECT 'cursor_from',"
         " json_array((SELECT value FROM main.sync_meta WHERE key = 'url'),"
         " (SELECT value FROM main.sync_meta WHERE key = 'cursor'))"
         " FROM main.sync_meta AS u WHERE u.key = 'client_id' AND NOT EXISTS (SELECT 1 FROM"
         " main.sync_meta AS f WHERE f.key = 'cursor_from' AND f.value->>1 IS"
         " (SELECT value FROM main.sync_meta WHERE key = 'cursor'))"
         " ON CONFLICT(key) DO UPDATE SET value = excluded.value");
}

int existing_foreign(SyncCtx *c) {
  sqlite3_stmt *s = 0;
  int foreign = 0;
  /* Something must have been confirmed: a cursor, or an image with the
  ** server's version (an answer given by hand before any page). */
  if (sqlite3_prepare_v2(c->db,
                         "SELECT 1 FROM main.sync_meta AS f, main.sync_meta AS u"
                         " WHERE f.key = 'cursor_from' AND u.key = 'url' AND u.value IS NOT NULL"
                         " AND f.value->>0 IS NULL AND f.value->>1 IS (SELECT value FROM"
                         " main.sync_meta WHERE key = 'cursor') AND (f.value->>1 IS NOT NULL OR"
                         " EXISTS (SELECT 1 FROM main.sync_shadow WHERE version IS NOT NULL))",
                         -1, &s, 0) == SQLITE_OK)
    foreign = sqlite3_step(s) == SQLITE_ROW;
  sqlite3_finalize(s);
  return foreign;
}

/* What a resync after the server went back in time did, for sync_status
** (server_reset, server_reset_at in sync_meta): words a person can act on. */
static int note_reset(SyncCtx *c) {
  int republish = republishing(c);
  sqlite3_int64 n = 0;
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(
      c->db, "SELECT count(*) FROM main.sync_local WHERE state = 'server_reset'", -1, &s, 0);
  if (rc == SQLITE_OK) rc = sqlite3_step(s) == SQLITE_ROW ? SQLITE_OK : sqlite3_errcode(c->db);
  if (rc == SQLITE_OK) n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  if (rc != SQLITE_OK) return rc;
  static const char went[] =
      "the server went back in time (restored from an older copy, or replaced): ";
  char *msg = republish ? sqlite3_mprintf("%sthe rows it lost or holds older were queued to be "
                                          "pushed again (on_server_reset republish)",
                                          went)
                        : sqlite3_mprintf("%s%lld rows it lost or holds older are listed in "
                                          "sync_orphans (state server_reset, with what this "
                                          "client held); DELETE them there once dealt with",
                                          went, n);
  rc = msg ? ctx_meta_set(c, "server_reset_note", msg) : SQLITE_NOMEM;
  sqlite3_free(msg);
  if (rc == SQLITE_OK)
    rc = ctx_exec(c, "INSERT OR REPLACE INTO main.sync_meta(key, value) VALUES("
                     "'server_reset_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))");
  return rc;
}

int existing_resync_done(SyncCtx *c) {
  char *reset = ctx_meta_get(c, "server_reset");
  int rc = reset ? note_reset(c) : SQLITE_OK;
  sqlite3_free(reset);
  if (rc == SQLITE_OK) rc = ctx_meta_del(c, "server_reset");
  return rc == SQLITE_OK ? ctx_meta_del(c, "cursor_from") : rc;
}

static ExistingMode mode_of(SyncCtx *c, SyncTable *t) {
  sqlite3_stmt *s = 0;
  ExistingMode m = EXISTING_NONE;
  if (sqlite3_prepare_v2(c->db, "SELECT existing FROM main.sync_tracked WHERE name = ?1", -1, &s,
                         0) == SQLITE_OK) {
    sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
      for (int i = EXISTING_PUSH; i <= EXISTING_SERVER; i++)
        if (strcmp((const char *)sqlite3_column_text(s, 0), mode_names[i]) == 0) m = i;
  }
  sqlite3_finalize(s);
  return m;
}

int existing_settle(SyncCtx *c, SyncTable *t, const char *unseen, const char *unqueued, int pulled,
                    sqlite3_int64 *pN) {
  ExistingMode mode = mode_of(c, t);
  Exprs x;
  int rc = exprs_make(c, t, &x);
  char *gone = sqlite3_mprintf("(%s) AND (%s)", unseen, unqueued);
  char *kept = sqlite3_mprintf("%s NOT IN (SELECT pk FROM main.sync_local WHERE tbl = ?1 AND"
                               " state = 'kept')",
                               x.key);
  if (rc == SQLITE_OK && (!gone || !kept)) rc = SQLITE_NOMEM;
  int replaceAll = !pulled && mode == EXISTING_SERVER;
  /* Most tables list nothing: then only the last DELETE has work. */
  sqlite3_stmt *any = 0;
  int listed = 1;
  if (rc == SQLITE_OK &&
      sqlite3_prepare_v2(c->db,
                         "SELECT 1 FROM main.sync_local WHERE tbl = ?1 AND state IN"
                         " ('kept', 'replace')",
                         -1, &any, 0) == SQLITE_OK) {
    sqlite3_bind_text(any, 1, t->name, -1, SQLITE_STATIC);
    listed = sqlite3_step(any) == SQLITE_ROW;
  }
  sqlite3_finalize(any);
  /* Rows the server's rows replace: listed with what they held. */
  if (rc == SQLITE_OK && (listed || replaceAll))
    rc = run(c, t,
             sqlite3_mprintf("INSERT OR REPLACE INTO main.sync_local(tbl, pk, state, row,"
                             " noted_at) SELECT ?1, %s, 'removed', %s, %s FROM main.%s WHERE %s"
                             " AND (%d OR %s IN (SELECT pk FROM main.sync_local WHERE tbl = ?1"
                             " AND state = 'replace'))",
                             x.key, x.row, now_sql, x.name, gone, replaceAll, x.key),
             0);
  /* Kept rows the server now has are its rows. */
  if (rc == SQLITE_OK && listed)
    rc = run(c, t,
             sqlite3_mprintf("DELETE FROM main.sync_local WHERE tbl = ?1 AND (state = 'replace'"
                             " OR (state = 'kept' AND pk IN (SELECT %s FROM main.%s WHERE NOT"
                             " (%s))))",
                             x.key, x.name, unseen),
             0);
  if (rc == SQLITE_OK && !pulled && (mode == EXISTING_PUSH || mode == EXISTING_NONE)) {
    char *where = sqlite3_mprintf("%s AND %s", gone, kept);
    char *why = 0;
    rc = where ? queue_inserts(c, t, &x, where, 0, &why) : SQLITE_NOMEM;
    sqlite3_free(where);
    sqlite3_free(why);
  } else if (rc == SQLITE_OK && !pulled && mode == EXISTING_KEEP) {
    rc = run(c, t,
             sqlite3_mprintf("INSERT OR IGNORE INTO main.sync_local(tbl, pk, state, noted_at)"
                             " SELECT ?1, %s, 'kept', %s FROM main.%s WHERE %s",
                             x.key, now_sql, x.name, gone),
             0);
  }
  char *reset = pulled && rc == SQLITE_OK ? ctx_meta_get(c, "server_reset") : 0;
  if (reset) {
    /* The server went back in time: what it lacks was confirmed and lost
    ** there, not deleted. Pushed again, or listed with its row. */
    char *where = sqlite3_mprintf("%s AND %s", gone, kept);
    char *why = 0;
    if (!where)
      rc = SQLITE_NOMEM;
    else if (republishing(c))
      rc = queue_inserts(c, t, &x, where, 0, &why);
    else
      rc = run(c, t,
               sqlite3_mprintf("INSERT OR REPLACE INTO main.sync_local(tbl, pk, state, row,"
                               " noted_at) SELECT ?1, %s, 'server_reset', %s, %s FROM main.%s"
                               " WHERE %s",
                               x.key, x.row, now_sql, x.name, where),
               0);
    /* A confirmed one (the server had it: an image) with pending edits stays,
    ** their base now "absent" (resync.c): a refused edit takes it, so it is
    ** listed with what it holds either way */
    if (rc == SQLITE_OK)
      rc = run(c, t,
               sqlite3_mprintf("INSERT OR REPLACE INTO main.sync_local(tbl, pk, state, row,"
                               " noted_at) SELECT ?1, %s, 'server_reset', %s, %s FROM main.%s"
                               " WHERE (%s) AND NOT (%s) AND %s AND %s IN (SELECT pk FROM"
                               " main.sync_shadow WHERE tbl = ?1 AND row IS NOT NULL)",
                               x.key, x.row, now_sql, x.name, unseen, unqueued, kept, x.key),
               0);
    sqlite3_free(where);
    sqlite3_free(why);
    sqlite3_free(reset);
  }
  sqlite3_int64 n = 0;
  if (rc == SQLITE_OK)
    rc = run(c, t, sqlite3_mprintf("DELETE FROM main.%s WHERE %s AND %s", x.name, gone, kept), &n);
  *pN += n;
  if (rc == SQLITE_OK) rc = existing_hold(c);
  sqlite3_free(gone);
  sqlite3_free(kept);
  exprs_free(&x);
  return rc;
}
