/*
** capture.c: the triggers that queue every write to a tracked table.
**
** They are plain SQL, so a connection that never loaded the extension still
** queues its writes. For table T with key (id) and columns (id, a, b):
**
**   sync_ai_T  AFTER INSERT   queue 'insert' with the whole row, or 'update'
**                             of the whole row when it replaced its own key
**   sync_au_T  AFTER UPDATE   queue 'update' with the changed columns only
**   sync_ak_T  AFTER UPDATE OF the key (and the rowid's names), key changed:
**                             queue 'delete' old key + 'insert' new
**   sync_ad_T  AFTER DELETE   queue 'delete'
**   sync_bi_T, sync_bu_T, sync_bs_T, sync_rp_T: the rows a REPLACE deletes
**                             without a delete trigger (replace.c)
**
** The columns sync_track's "server_columns" names are never sent: an insert's
** data leaves them out (the server's defaults fill them), an update of only
** them queues nothing, and the server's rows bring their values.
**
** What each write queues, in id order (the server applies them in that
** order, so each one must be applicable after the ones before it):
**
**   INSERT                           insert K
**   UPDATE, key kept                 update K (changed columns; nothing when
**                                    nothing changed, type and sign of zero
**                                    included in a column without affinity)
**   UPDATE of the key K -> K2        delete K, insert K2
**   UPDATE of the key K -> K2 equal under its collation ('A@x', 'a@x' under
**   NOCASE)                          refused (key_case_check)
**   DELETE                           delete K
**   INSERT OR REPLACE / REPLACE INTO of an existing key K
**                                    update K (the whole row), with
**                                    recursive_triggers on or off: never
**                                    delete + update, which the server would
**                                    answer "no such row" (nor delete +
**                                    insert, which would cascade on it)
**   any REPLACE that deletes rows R through a UNIQUE index, or an UPDATE OR
**   REPLACE of the key onto an existing key R
**                                    delete R (each), then the write's own
**   INSERT OR IGNORE that ignores, UPSERT's DO NOTHING, a failed statement
**                                    nothing
**   UPSERT's DO UPDATE               what its UPDATE queues
**   rows an ON DELETE CASCADE / SET NULL removes or changes locally
**                                    their own delete / update, queued when
**                                    SQLite runs the action (before the
**                                    write that caused it)
**
** A row whose key has a NULL part (a table with a rowid allows it unless the
** part is the rowid or NOT NULL) is refused with an error naming the column:
** the server refuses it and, as NULL = NULL is not true, nothing could find
** the row again to undo it.
**
** Each fires only while sync_control.applying is 0, so the engine's own
** writes are not queued. The first pending mutation of a key also records the
** row as it was before (the server's last known row) in sync_shadow; a key
** with pending mutations and no sync_shadow entry was absent on the server.
** Values become JSON through jsonexpr.c.
**
** Speed: these triggers run on every write the app makes. SQLite allocates
** and initialises a frame of registers for a trigger program on every
** statement that fires it, so the size of the generated SQL is paid on every
** write, not only its executed branches: a column gets only the branches for
** what it can hold (jsonexpr.c), and work that is rare goes into a program
** of its own, allocated only when it fires (sync_bs_T, sync_rp_T: fired by an
** UPDATE of sync_req_T whose WHERE is false unless a row is about to be, or
** was, replaced; an INSERT ... SELECT into a table with triggers would build
** a temporary table on every insert). Measured with callgrind
** (bench/RESULTS.md, "Capture triggers"): an untracked insert is 11.7k
** instructions, a tracked one 82k (UPDATE 100k, DELETE 81k), most of it the
** JSON of the values, the outbox row and its index, and for UPDATE and
** DELETE the server image in sync_shadow. Under valgrind SQLite's printf
** misses far more often than natively (x87 long double is emulated with 64
** bits), so plain callgrind runs the neighbour search on many rows that
** never need it; RESULTS.md says how to measure without that. bench/
** measures the wall time (make bench).
**
** The wall time at the default page cache is mostly not those
** instructions: every captured write also inserts into b-trees ordered by
** key, not by time (the outbox's (tbl, pk) index; sync_shadow for an UPDATE
** or DELETE), which a large transaction spreads over more pages than the
** cache holds. Removing them (measured, RESULTS.md "Capture nearer its
** floor") takes the 100k-row figures from about 10x / 14x / 23x to 4.5x /
** 2.3x / 2.8x with today's JSON kept; staging the raw values instead of JSON
** takes them to about 2.2x / 1.6x / 1.7x. That design (append-only
** staging, the engine building the JSON, images and index when it next
** reads the queue) is measured there, not built: every reader of
** sync_outbox and sync_shadow would have to fold the staged rows first.
*/
#include "capture.h"
#include "replace.h"

static void append(sqlite3_str *s, const char *z) {
  sqlite3_str_appendall(s, z);
}

static int is_key(SyncTable *t, int col) {
  for (int i = 0; i < t->nPk; i++)
    if (t->pk[i] == col) return 1;
  return 0;
}

/* A column an update sends when it changes: outside the key, not the
** server's (sync_track's server_columns). */
static int is_sent(SyncTable *t, int col) {
  return !is_key(t, col) && !(t->server && t->server[col]);
}

/* OLD and NEW have the same key (same=1) or not (same=0), compared under
** the key's collations, or as their text (binary). */
static void key_same(sqlite3_str *s, SyncTable *t, int same, int binary) {
  append(s, same ? "(" : "NOT (");
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(s, "%sOLD.\"%w\" IS NEW.\"%w\"%s", i ? " AND " : "", t->cols[t->pk[i]],
                        t->cols[t->pk[i]], binary ? " COLLATE BINARY" : "");
  append(s, ")");
}

/* A term of sync_ak_T's WHEN refusing a key change its collation does not
** see ('A@x' to 'a@x' under NOCASE, 'k' to 'k ' under RTRIM). The protocol's
** key is its text, so it would be a delete and an insert; but the server's
** delete meets the row's children under the same collation and takes them
** (ON DELETE CASCADE, SET NULL) where the local UPDATE cascaded nothing.
** Refused, the app's statement fails and nothing changes; a delete and an
** insert made by the app cascade locally as they will on the server. */
static void key_case_check(sqlite3_str *s, SyncTable *t) {
  int coll = 0;
  for (int i = 0; i < t->nPk; i++)
    coll |= t->pkColl[i];
  if (!coll) return;
  char *msg = sqlite3_mprintf("sync_ak_%s: the key of \"%s\" changed only in what its collation "
                              "ignores (case, trailing spaces), which cannot sync: delete the row "
                              "and insert it under the new key",
                              t->name, t->name);
  append(s, " AND (CASE WHEN ");
  key_same(s, t, 1, 0);
  sqlite3_str_appendf(s, " THEN RAISE(ABORT, %Q) END) IS NULL", msg ? msg : "key case change");
  sqlite3_free(msg);
}

/* Records prefix's row as the server image unless the key already has
** pending mutations (then the image was taken by the first of them) or an
** image kept with nothing pending (a guard: the server's row, which stays).
** An upsert clause, not OR REPLACE: an app's UPSERT imposes its own
** conflict rule on OR clauses in the triggers it fires, so OR REPLACE acted
** as a plain INSERT there and failed the app's statement on a guard. */
static void shadow_if_first(sqlite3_str *s, SyncTable *t, const int *kind, const char *prefix) {
  sqlite3_str_appendf(s, "INSERT INTO sync_shadow(tbl,pk,row) SELECT %Q,", t->name);
  jx_key(s, t, kind, prefix);
  append(s, ",");
  jx_row(s, t, kind, prefix);
  sqlite3_str_appendf(s,
                      " WHERE NOT EXISTS (SELECT 1 FROM sync_outbox WHERE tbl=%Q AND pk=", t->name);
  jx_key(s, t, kind, prefix);
  append(s, ") ON CONFLICT(tbl,pk) DO NOTHING;");
}

static void enqueue(sqlite3_str *s, SyncTable *t, const int *kind, const char *op,
                    const char *prefix, int withRow) {
  sqlite3_str_appendf(s, "INSERT INTO sync_outbox(id,tbl,op,pk,data) VALUES(%s,%Q,%s,", jx_next_id,
                      t->name, op);
  jx_key(s, t, kind, prefix);
  append(s, ",");
  if (withRow)
    jx_data(s, t, kind, prefix);
  else
    append(s, "NULL");
  append(s, ");");
}

/* Refuses a NEW row whose key has a NULL part: the server refuses it (a key
** compares with =, and NULL = NULL is not true), so it could never sync, and
** nothing could find the row again to undo it. Only a table with a rowid lets
** a key part other than the rowid be NULL, unless it is declared NOT NULL.
** A term of the trigger's WHEN, which costs less than a statement. */
static void null_key_check(sqlite3_str *s, SyncTable *t, const JxShape *sh, const char *trig) {
  int n = 0;
  for (int i = 0; i < t->nPk; i++) {
    if (!sh->nullKey[i]) continue;
    const char *col = t->cols[t->pk[i]];
    char *msg = sqlite3_mprintf("%s_%s: primary key column \"%s\" of \"%s\" is NULL: a row "
                                "needs its whole key to sync",
                                trig, t->name, col, t->name);
    sqlite3_str_appendf(s, "%sWHEN NEW.\"%w\" IS NULL THEN RAISE(ABORT, %Q) ",
                        n++ ? "" : " AND (CASE ", col, msg ? msg : "NULL key");
    sqlite3_free(msg);
  }
  if (n) append(s, "END) IS NULL");
}

/* The non-key columns of an UPDATE trigger's data: each NULL when unchanged,
** and the path json_remove drops it by ('$[0]', nothing, when changed). */
typedef struct Changed {
  SyncTable *t;
  const int *kind;
  int *col, n;
} Changed;

static const char *changed_name(int i, void *arg) {
  Changed *ch = arg;
  return ch->t->cols[ch->col[i]];
}

static void changed_value(sqlite3_str *s, int i, void *arg) {
  Changed *ch = arg;
  const char *name = ch->t->cols[ch->col[i]];
  int kind = ch->kind[ch->col[i]];
  char *x = sqlite3_mprintf("NEW.\"%w\"", name);
  if (kind) {
    append(s, "CASE WHEN ");
    jx_same(s, name, kind, "OLD", "NEW");
    append(s, " THEN NULL ELSE ");
    if (x) jx_value(s, x, kind);
    append(s, " END");
  } else if (x) {
    append(s, x);
  }
  sqlite3_free(x);
}

static void changed_path(sqlite3_str *s, int i, void *arg) {
  Changed *ch = arg;
  const char *name = ch->t->cols[ch->col[i]];
  append(s, "CASE WHEN ");
  jx_same(s, name, ch->kind[ch->col[i]], "OLD", "NEW");
  sqlite3_str_appendf(s, " THEN '$.\"%q\"' ELSE '$[0]' END", name);
}

/* Every name a trigger of ours ever had, so that re-tracking drops them
** (sync_ar_T, the replace case, is now part of sync_ai_T). */
static const char *const kinds[] = {"bi", "bs", "bu", "rp", "ai", "ar", "au", "ak", "ad"};

/* What the triggers of table X were written from: the CREATE text of the
** table and of its indexes (column names, types and keys, UNIQUE indexes,
** partial ones included), as SQLite keeps it. It is stored in sync_meta
** ('capture_sig:' + the lower-case name) when they are installed: an ALTER
** TABLE or CREATE INDEX made without sync_migrate shows as a difference. */
#define SIG_OF(X)                                                                                  \
  "(SELECT group_concat(coalesce(sql, name), char(10)) FROM (SELECT sql, name FROM "               \
  "main.sqlite_schema WHERE type IN ('table', 'index') AND tbl_name = " X                          \
  " COLLATE NOCASE ORDER BY type DESC, name))"

static int sig_run(SyncCtx *c, const char *sql, const char *table) {
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db, sql, -1, &s, 0);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
    rc = ctx_run(c, s);
  }
  sqlite3_finalize(s);
  return rc;
}

int capture_stale(SyncCtx *c, char ***pNames, int **pKnown, int *pN) {
  *pNames = 0;
  *pKnown = 0;
  *pN = 0;
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(
      c->db,
      "SELECT name, was IS NOT NULL FROM (SELECT t.name AS name, (SELECT "
      "value FROM main.sync_meta WHERE key = 'capture_sig:' || "
      "lower(t.name)) AS was, " SIG_OF(
          "t.name") " AS now FROM "
                    "main.sync_tracked t) WHERE now IS NOT NULL AND was IS NOT now "
                    "ORDER BY name",
      -1, &s, 0);
  while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    char **names = sqlite3_realloc64(*pNames, sizeof *names * (sqlite3_uint64)(*pN + 1));
    if (names) *pNames = names;
    int *known = names ? sqlite3_realloc64(*pKnown, sizeof *known * (sqlite3_uint64)(*pN + 1)) : 0;
    if (known) *pKnown = known;
    char *name = known ? sqlite3_mprintf("%s", sqlite3_column_text(s, 0)) : 0;
    if (!name) {
      rc = SQLITE_NOMEM;
      break;
    }
    names[*pN] = name;
    known[(*pN)++] = sqlite3_column_int(s, 1);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(s);
  if (rc == SQLITE_DONE) return SQLITE_OK;
  for (int i = 0; i < *pN; i++)
    sqlite3_free((*pNames)[i]);
  sqlite3_free(*pNames);
  sqlite3_free(*pKnown);
  *pNames = 0;
  *pKnown = 0;
  *pN = 0;
  return rc;
}

int capture_remove(SyncCtx *c, const char *table) {
  int rc = replace_remove(c, table);
  if (rc == SQLITE_OK)
    rc = sig_run(c, "DELETE FROM main.sync_meta WHERE key = 'capture_sig:' || lower(?1)", table);
  for (int i = 0; rc == SQLITE_OK && i < (int)(sizeof kinds / sizeof kinds[0]); i++) {
    char *sql = sqlite3_mprintf("DROP TRIGGER IF EXISTS main.\"sync_%s_%w\"", kinds[i], table);
    rc = sql ? ctx_exec(c, sql) : SQLITE_NOMEM;
    sqlite3_free(sql);
  }
  return rc;
}

/* Returns SQLITE_NOMEM when a piece could not be built (s may then hold
** incomplete SQL), else SQLITE_OK. */
static int triggers(sqlite3_str *s, SyncTable *t, const JxShape *sh) {
  const char *T = t->name;
  const int *kind = sh->kind;

  sqlite3_str_appendf(s,
                      "CREATE TRIGGER main.\"sync_bi_%w\" BEFORE INSERT ON \"%w\" WHEN %s BEGIN ",
                      T, T, jx_ctrl);
  replace_before_insert(s, t, sh);
  append(s, "END;\n");
  replace_triggers(s, t, sh);

  /* One AFTER INSERT trigger for both cases: a row left in the stash under
  ** its own key was replaced (sync_rp_T clears the others). Each trigger
  ** costs a frame of registers per statement, so there is no separate
  ** trigger for the replace case. */
  sqlite3_str_appendf(s, "CREATE TRIGGER main.\"sync_ai_%w\" AFTER INSERT ON \"%w\" WHEN %s", T, T,
                      jx_ctrl);
  null_key_check(s, t, sh, "sync_ai");
  append(s, " BEGIN ");
  replace_kick(s, t, sh, "insert");
  sqlite3_str_appendf(s,
                      "INSERT INTO sync_outbox(id,tbl,op,pk,data) VALUES(%s,%Q, CASE WHEN "
                      "EXISTS (SELECT 1 FROM sync_stash WHERE tbl=%Q AND pk=",
                      jx_next_id, T, T);
  jx_key(s, t, kind, "NEW");
  append(s, ") THEN 'update' ELSE 'insert' END,");
  jx_key(s, t, kind, "NEW");
  append(s, ",");
  jx_data(s, t, kind, "NEW");
  append(s, "); END;\n");

  int nSent = 0;
  for (int i = 0; i < t->nCol; i++)
    nSent += is_sent(t, i);
  if (nSent) {
    sqlite3_str_appendf(s, "CREATE TRIGGER main.\"sync_au_%w\" AFTER UPDATE ON \"%w\" WHEN %s AND ",
                        T, T, jx_ctrl);
    key_same(s, t, 1, 0);
    append(s, " AND (");
    for (int i = 0, n = 0; i < t->nCol; i++) {
      if (!is_sent(t, i)) continue;
      append(s, n++ ? " OR " : "");
      if (kind[i] & EXACT) {
        append(s, "NOT (");
        jx_same(s, t->cols[i], kind[i], "OLD", "NEW");
        append(s, ")");
      } else {
        sqlite3_str_appendf(s, "OLD.\"%w\" IS NOT NEW.\"%w\" COLLATE BINARY", t->cols[i],
                            t->cols[i]);
      }
    }
    append(s, ") BEGIN ");
    /* Only a UNIQUE index lets an UPDATE that keeps the key replace a row. */
    if (sh->nUniq > 1) replace_kick(s, t, sh, "update");
    shadow_if_first(s, t, kind, "OLD");
    sqlite3_str_appendf(s, "INSERT INTO sync_outbox(id,tbl,op,pk,data) VALUES(%s,%Q,'update',",
                        jx_next_id, T);
    jx_key(s, t, kind, "NEW");
    /* The object of every non-key column, unchanged ones as NULL (not worth
    ** formatting), then json_remove drops the unchanged ones. */
    append(s, ",");
    Changed ch = {t, kind, sqlite3_malloc64(sizeof(int) * t->nCol), 0};
    if (!ch.col) return SQLITE_NOMEM;
    for (int i = 0; i < t->nCol; i++)
      if (is_sent(t, i)) ch.col[ch.n++] = i;
    sqlite3_str *obj = sqlite3_str_new(0);
    jx_object(obj, ch.n, changed_name, changed_value, &ch);
    char *o = sqlite3_str_finish(obj);
    if (o) jx_remove(s, o, ch.n, changed_path, &ch);
    sqlite3_free(o);
    sqlite3_free(ch.col);
    if (!o) return SQLITE_NOMEM;
    append(s, "); END;\n");
  }

  /* UPDATE OF the key: SQLite leaves a trigger out of every UPDATE whose SET
  ** names none of its columns, so the common UPDATE does not even allocate
  ** this program's registers (a fifth of an UPDATE's instructions). The
  ** rowid's names count too: with a rowid alias key, SET rowid = x changes
  ** the key (a name the table uses for a column means that column). */
  sqlite3_str_appendf(s, "CREATE TRIGGER main.\"sync_ak_%w\" AFTER UPDATE OF ", T);
  replace_of_key(s, t);
  sqlite3_str_appendf(s, " ON \"%w\" WHEN %s AND ", T, jx_ctrl);
  key_same(s, t, 0, 1);
  key_case_check(s, t);
  null_key_check(s, t, sh, "sync_ak");
  append(s, " BEGIN ");
  replace_kick(s, t, sh, "rekey");
  shadow_if_first(s, t, kind, "OLD");
  enqueue(s, t, kind, "'delete'", "OLD", 0);
  enqueue(s, t, kind, "'insert'", "NEW", 1);
  append(s, " END;\n");

  sqlite3_str_appendf(s, "CREATE TRIGGER main.\"sync_ad_%w\" AFTER DELETE ON \"%w\" WHEN %s BEGIN ",
                      T, T, jx_ctrl);
  shadow_if_first(s, t, kind, "OLD");
  enqueue(s, t, kind, "'delete'", "OLD", 0);
  append(s, " END;\n");
  return SQLITE_OK;
}

/* (Re)creates the triggers of t. */
int capture_install(SyncCtx *c, SyncTable *t) {
  int rc = capture_remove(c, t->name);
  if (rc == SQLITE_OK) rc = replace_install(c, t);
  if (rc != SQLITE_OK) return rc;
  JxShape sh;
  rc = jx_shape_read(c, t, &sh);
  if (rc == SQLITE_OK) {
    sqlite3_str *s = sqlite3_str_new(c->db);
    rc = triggers(s, t, &sh);
    char *sql = sqlite3_str_finish(s);
    if (rc == SQLITE_OK) rc = sql ? ctx_exec(c, sql) : SQLITE_NOMEM;
    sqlite3_free(sql);
  }
  jx_shape_free(&sh);
  if (rc == SQLITE_OK)
    rc = sig_run(c,
                 "INSERT OR REPLACE INTO main.sync_meta(key, value) VALUES('capture_sig:' || "
                 "lower(?1), " SIG_OF("?1") ")",
                 t->name);
  return rc;
}

/* t->canon: ?1 key object -> the key text the triggers write, NULL when a
** part is missing or null. */
static int canon_prepare(SyncCtx *c, SyncTable *t) {
  sqlite3_str *s = sqlite3_str_new(c->db);
  sqlite3_str_appendall(s, "SELECT CASE WHEN ");
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(s, "%scoalesce(?1 -> '$.\"%q\"', 'null') = 'null'", i ? " OR " : "",
                        t->cols[t->pk[i]]);
  sqlite3_str_appendall(s, " THEN NULL ELSE json_object(");
  for (int i = 0; i < t->nPk; i++) {
    const char *col = t->cols[t->pk[i]];
    char *src = sqlite3_mprintf("sync_val(?1 -> '$.\"%q\"')", col);
    sqlite3_str_appendf(s, "%s'%q',", i ? "," : "", col);
    if (src) jx_value(s, src, MAY_ANY);
    sqlite3_free(src);
  }
  sqlite3_str_appendall(s, ") END");
  char *sql = sqlite3_str_finish(s);
  if (!sql) return SQLITE_NOMEM;
  int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &t->canon, 0);
  sqlite3_free(sql);
  return rc;
}

int capture_canon_pk(SyncCtx *c, SyncTable *t, const char *pkJson, int n, char **pOut,
                     char **pzErr) {
  *pOut = 0;
  int rc = t->canon ? SQLITE_OK : canon_prepare(c, t);
  if (rc != SQLITE_OK) {
    *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(c->db));
    return rc;
  }
  sqlite3_stmt *s = t->canon;
  sqlite3_bind_text(s, 1, pkJson, n, SQLITE_STATIC);
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    rc = SQLITE_OK;
    if (sqlite3_column_type(s, 0) == SQLITE_NULL) {
      *pzErr = sqlite3_mprintf("primary key of \"%s\" is missing or null", t->name);
      rc = SQLITE_ERROR;
    } else {
      *pOut = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
      if (!*pOut) rc = SQLITE_NOMEM;
    }
  } else {
    *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(c->db));
  }
  sqlite3_reset(s);
  return rc;
}
