/*
** table.c: what the engine knows about each tracked table, and the cached
** statements that write it from JSON.
**
** A SyncTable is built from PRAGMA table_xinfo on first use and kept until
** PRAGMA schema_version changes. Its statements take JSON objects as bound
** parameters and never splice a received name or value into SQL: column names
** come from the table itself, values go through sync_val(). An absent key in
** a data object means "leave the column alone" (or its DEFAULT on insert), so
** the same statements serve sync_mutate, the replay of pending mutations and
** the server's rows.
*/
#include "table.h"
#include "value.h"

#include <string.h>

static void table_free(SyncTable *t) {
  sqlite3_finalize(t->upsert);
  sqlite3_finalize(t->update);
  sqlite3_finalize(t->del);
  sqlite3_finalize(t->exists);
  sqlite3_finalize(t->row);
  sqlite3_finalize(t->canon);
  sqlite3_finalize(t->bound[0]);
  sqlite3_finalize(t->bound[1]);
  sqlite3_finalize(t->referred);
  for (int i = 0; i < t->nCol; i++) {
    sqlite3_free(t->cols[i]);
    sqlite3_free(t->dflt[i]);
  }
  sqlite3_free(t->cols);
  sqlite3_free(t->dflt);
  sqlite3_free(t->pk);
  sqlite3_free(t->pkColl);
  sqlite3_free(t->server);
  sqlite3_free(t->name);
  sqlite3_free(t);
}

void table_cache_clear(SyncCtx *c) {
  while (c->tables) {
    SyncTable *t = c->tables;
    c->tables = t->next;
    table_free(t);
  }
}

/* Appends `<lhs>"col" = <rhs>` for key part `part` of t. A key is its JSON
** text, so under a collation other than BINARY ('A@x' and 'a@x' one row to a
** NOCASE key) the match is also made BINARY: a delete of 'A@x' must not
** take the row the server now calls 'a@x'. The collated term stays first,
** for the key's index. */
void table_key_match(sqlite3_str *s, SyncTable *t, int part, const char *lhs, const char *rhs) {
  const char *col = t->cols[t->pk[part]];
  sqlite3_str_appendf(s, "%s\"%w\" = %s", lhs, col, rhs);
  if (t->pkColl[part]) sqlite3_str_appendf(s, " AND %s\"%w\" = %s COLLATE BINARY", lhs, col, rhs);
}

/* Appends the match of every key part of a row of t (lhs: its alias and a
** dot, or "") to sync_val(?N -> '$."col"'), joined by AND: every lookup of
** a row by the key a JSON object gives goes through here, so that a NOCASE
** key is matched by its text everywhere (table_key_match). */
void table_key_where(sqlite3_str *s, SyncTable *t, const char *lhs, int param) {
  for (int i = 0; i < t->nPk; i++) {
    char *rhs = sqlite3_mprintf("sync_val(?%d -> '$.\"%q\"')", param, t->cols[t->pk[i]]);
    if (i) sqlite3_str_appendall(s, " AND ");
    if (rhs) table_key_match(s, t, i, lhs, rhs);
    sqlite3_free(rhs);
  }
}

static int is_pk(SyncTable *t, int col) {
  for (int i = 0; i < t->nPk; i++)
    if (t->pk[i] == col) return 1;
  return 0;
}

/* Appends an upsert's " ON CONFLICT(key) DO ...": every column but the
** key's set from excluded, each only when ?1 (a JSON object) names it
** unless whole. The key parts whose collation is not BINARY are set too, so
** that the row takes the key text the server gives (its 'a@x' over the
** local 'A@x'); a table with nothing else to set does nothing. */
void table_upsert_tail(sqlite3_str *s, SyncTable *t, int whole) {
  sqlite3_str_appendall(s, " ON CONFLICT(");
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(s, "%s\"%w\"", i ? "," : "", t->cols[t->pk[i]]);
  sqlite3_str_appendall(s, ") DO ");
  int n = 0;
  for (int i = 0; i < t->nCol; i++) {
    const char *col = t->cols[i];
    if (is_pk(t, i)) continue;
    sqlite3_str_appendall(s, n++ ? "," : "UPDATE SET ");
    if (whole)
      sqlite3_str_appendf(s, "\"%w\" = excluded.\"%w\"", col, col);
    else
      sqlite3_str_appendf(
          s, "\"%w\" = CASE WHEN (?1 -> '$.\"%q\"') IS NULL THEN \"%w\" ELSE excluded.\"%w\" END",
          col, col, col, col);
  }
  for (int i = 0; i < t->nPk; i++) {
    const char *col = t->cols[t->pk[i]];
    if (!t->pkColl[i]) continue;
    sqlite3_str_appendall(s, n++ ? "," : "UPDATE SET ");
    sqlite3_str_appendf(s, "\"%w\" = excluded.\"%w\"", col, col);
  }
  if (!n) sqlite3_str_appendall(s, "NOTHING");
}

static int prepare(SyncCtx *c, sqlite3_str *s, sqlite3_stmt **pOut) {
  char *sql = sqlite3_str_finish(s);
  if (!sql) return SQLITE_NOMEM;
  int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, pOut, 0);
  sqlite3_free(sql);
  return rc;
}

static int build_statements(SyncCtx *c, SyncTable *t) {
  sqlite3_str *s = sqlite3_str_new(c->db);
  int nonPk = t->nCol - t->nPk;

  /* upsert: ?1 data */
  sqlite3_str_appendf(s, "INSERT INTO main.\"%w\"(", t->name);
  for (int i = 0; i < t->nCol; i++)
    sqlite3_str_appendf(s, "%s\"%w\"", i ? "," : "", t->cols[i]);
  sqlite3_str_appendall(s, ") VALUES(");
  for (int i = 0; i < t->nCol; i++)
    sqlite3_str_appendf(
        s, "%sCASE WHEN (?1 -> '$.\"%q\"') IS NULL THEN (%s) ELSE sync_val(?1 -> '$.\"%q\"') END",
        i ? "," : "", t->cols[i], t->dflt[i] ? t->dflt[i] : "NULL", t->cols[i]);
  sqlite3_str_appendall(s, ")");
  table_upsert_tail(s, t, 0);
  int rc = prepare(c, s, &t->upsert);

  /* update: ?1 data, ?2 key */
  if (rc == SQLITE_OK) {
    s = sqlite3_str_new(c->db);
    sqlite3_str_appendf(s, "UPDATE main.\"%w\" SET ", t->name);
    if (nonPk == 0) sqlite3_str_appendf(s, "\"%w\" = \"%w\"", t->cols[t->pk[0]], t->cols[t->pk[0]]);
    for (int i = 0, n = 0; i < t->nCol; i++) {
      if (is_pk(t, i)) continue;
      sqlite3_str_appendf(s,
                          "%s\"%w\" = CASE WHEN (?1 -> '$.\"%q\"') IS NULL THEN \"%w\" ELSE "
                          "sync_val(?1 -> '$.\"%q\"') END",
                          n++ ? "," : "", t->cols[i], t->cols[i], t->cols[i], t->cols[i]);
    }
    sqlite3_str_appendall(s, " WHERE ");
    table_key_where(s, t, "", 2);
    rc = prepare(c, s, &t->update);
  }
  /* del / exists / row: ?1 key */
  if (rc == SQLITE_OK) {
    s = sqlite3_str_new(c->db);
    sqlite3_str_appendf(s, "DELETE FROM main.\"%w\" WHERE ", t->name);
    table_key_where(s, t, "", 1);
    rc = prepare(c, s, &t->del);
  }
  if (rc == SQLITE_OK) {
    s = sqlite3_str_new(c->db);
    sqlite3_str_appendf(s, "SELECT 1 FROM main.\"%w\" WHERE ", t->name);
    table_key_where(s, t, "", 1);
    rc = prepare(c, s, &t->exists);
  }
  if (rc == SQLITE_OK) {
    s = sqlite3_str_new(c->db);
    sqlite3_str_appendall(s, "SELECT ");
    for (int i = 0; i < t->nCol; i++)
      sqlite3_str_appendf(s, "%s\"%w\"", i ? "," : "", t->cols[i]);
    sqlite3_str_appendf(s, " FROM main.\"%w\" WHERE ", t->name);
    table_key_where(s, t, "", 1);
    rc = prepare(c, s, &t->row);
  }
  return rc;
}

/* t->server from sync_tracked.server_columns (track.c): the columns whose
** values the server owns, never sent. A database whose sync_tracked has no
** such column yet (sync_init and sync_track add it) has none. */
static int load_server(SyncCtx *c, SyncTable *t) {
  sqlite3_stmt *s = 0;
  if (sqlite3_prepare_v2(c->db,
                         "SELECT j.value FROM main.sync_tracked AS k, json_each(k.server_columns) "
                         "AS j WHERE k.name = ?1 AND j.type = 'text'",
                         -1, &s, 0) != SQLITE_OK)
    return SQLITE_OK;
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(s, 0);
    if (!t->server && (t->server = sqlite3_malloc64((sqlite3_uint64)t->nCol + 1)))
      memset(t->server, 0, (size_t)t->nCol + 1);
    if (!t->server) {
      rc = SQLITE_NOMEM;
      break;
    }
    for (int i = 0; name && i < t->nCol; i++)
      if (sqlite3_stricmp(t->cols[i], name) == 0 && !is_pk(t, i)) t->server[i] = 1;
  }
  sqlite3_finalize(s);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* t->pkColl from the key's index (none for a rowid key: an integer). */
static int load_coll(SyncCtx *c, SyncTable *t) {
  t->pkColl = sqlite3_malloc64((sqlite3_uint64)t->nPk);
  if (!t->pkColl) return SQLITE_NOMEM;
  memset(t->pkColl, 0, (size_t)t->nPk);
  sqlite3_stmt *s = 0;
  int rc =
      sqlite3_prepare_v2(c->db,
                         "SELECT x.name, x.coll FROM pragma_index_list(?1, 'main') AS l JOIN "
                         "pragma_index_xinfo(l.name, 'main') AS x WHERE l.origin = 'pk' AND x.key",
                         -1, &s, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *col = (const char *)sqlite3_column_text(s, 0);
    const char *coll = (const char *)sqlite3_column_text(s, 1);
    for (int i = 0; col && coll && i < t->nPk; i++)
      if (sqlite3_stricmp(t->cols[t->pk[i]], col) == 0)
        t->pkColl[i] = sqlite3_stricmp(coll, "BINARY") != 0;
  }
  sqlite3_finalize(s);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Reads the table's columns and key. Fails with a message in *pzErr for a
** missing table, a view or virtual table, a table without PRIMARY KEY, the
** extension's own tables, and column names JSON paths cannot address. */
static int table_load(SyncCtx *c, const char *name, SyncTable **pOut, char **pzErr) {
  sqlite3_stmt *s = 0;
  int rc =
      sqlite3_prepare_v2(c->db,
                         "SELECT name, CASE WHEN type='view' THEN 'a view' WHEN sql LIKE "
                         "'CREATE VIRTUAL%' THEN 'a virtual table' END FROM main.sqlite_master "
                         "WHERE type IN ('table','view') AND name=?1 COLLATE NOCASE",
                         -1, &s, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  char *canonical = 0;
  if (sqlite3_step(s) == SQLITE_ROW) {
    if (sqlite3_column_type(s, 1) != SQLITE_NULL)
      *pzErr = sqlite3_mprintf("\"%s\" is %s, not a table", name, sqlite3_column_text(s, 1));
    else
      canonical = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
  } else {
    *pzErr = sqlite3_mprintf("no such table \"%s\"", name);
  }
  sqlite3_finalize(s);
  if (!canonical) return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  if (sqlite3_strnicmp(canonical, "sync_", 5) == 0 ||
      sqlite3_strnicmp(canonical, "sqlite_", 7) == 0) {
    *pzErr = sqlite3_mprintf("\"%s\" is an internal table and cannot be tracked", canonical);
    sqlite3_free(canonical);
    return SQLITE_ERROR;
  }

  SyncTable *t = sqlite3_malloc64(sizeof *t);
  if (!t) {
    sqlite3_free(canonical);
    return SQLITE_NOMEM;
  }
  memset(t, 0, sizeof *t);
  t->name = canonical;
  rc = sqlite3_prepare_v2(c->db,
                          "SELECT name, dflt_value, pk FROM pragma_table_xinfo(?1, 'main') "
                          "WHERE hidden = 0 ORDER BY cid",
                          -1, &s, 0);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(s, 1, canonical, -1, SQLITE_STATIC);
    int cap = 0;
    while (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
      if (t->nCol == cap) {
        cap = cap ? cap * 2 : 8;
        char **cols = sqlite3_realloc64(t->cols, sizeof(char *) * (sqlite3_uint64)cap);
        if (cols) t->cols = cols;
        char **dflt = sqlite3_realloc64(t->dflt, sizeof(char *) * (sqlite3_uint64)cap);
        if (dflt) t->dflt = dflt;
        int *pk = sqlite3_realloc64(t->pk, sizeof(int) * (sqlite3_uint64)cap);
        if (pk) t->pk = pk;
        if (!cols || !dflt || !pk) {
          rc = SQLITE_NOMEM;
          break;
        }
      }
      const char *col = (const char *)sqlite3_column_text(s, 0);
      const char *dflt = (const char *)sqlite3_column_text(s, 1);
      int pkPos = sqlite3_column_int(s, 2);
      t->cols[t->nCol] = sqlite3_mprintf("%s", col);
      t->dflt[t->nCol] = dflt ? sqlite3_mprintf("%s", dflt) : 0;
      t->pk[t->nCol] = pkPos;
      t->nCol++;
      if (!t->cols[t->nCol - 1] || (dflt && !t->dflt[t->nCol - 1])) rc = SQLITE_NOMEM;
      if (strchr(col, '"')) {
        *pzErr = sqlite3_mprintf("column name '%s' in \"%s\" contains a double quote, which "
                                 "JSON paths cannot address",
                                 col, canonical);
        rc = SQLITE_ERROR;
      }
    }
    sqlite3_finalize(s);
  }
  if (rc == SQLITE_OK) {
    /* pk[] held each column's position in the key; turn it into the list of
    ** key columns in key order. */
    int *pos = t->pk, n = 0;
    for (int i = 0; i < t->nCol; i++)
      n += pos[i] > 0;
    int *order = sqlite3_malloc64(sizeof(int) * (sqlite3_uint64)(n ? n : 1));
    if (!order) rc = SQLITE_NOMEM;
    for (int i = 0; order && i < t->nCol; i++)
      if (pos[i] > 0) order[pos[i] - 1] = i;
    sqlite3_free(pos);
    t->pk = order;
    t->nPk = n;
    if (rc == SQLITE_OK && n == 0) {
      *pzErr = sqlite3_mprintf("table \"%s\" has no PRIMARY KEY", canonical);
      rc = SQLITE_ERROR;
    }
  }
  if (rc == SQLITE_OK) rc = load_coll(c, t);
  if (rc == SQLITE_OK) rc = load_server(c, t);
  if (rc == SQLITE_OK) rc = build_statements(c, t);
  if (rc != SQLITE_OK) {
    if (!*pzErr && rc != SQLITE_NOMEM) *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(c->db));
    table_free(t);
    return rc;
  }
  *pOut = t;
  return SQLITE_OK;
}

static int schema_changed(SyncCtx *c) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_SCHEMA_VER);
  if (!s) return sqlite3_errcode(c->db);
  int v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
  sqlite3_reset(s);
  if (v != c->schemaVersion) {
    table_cache_clear(c);
    c->schemaVersion = v;
  }
  return SQLITE_OK;
}

int table_is_tracked(SyncCtx *c, const char *name) {
  sqlite3_stmt *s = ctx_stmt(c, STMT_TRACKED);
  if (!s) return 0;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  int yes = sqlite3_step(s) == SQLITE_ROW;
  sqlite3_reset(s);
  return yes;
}

/* Finds the table, building it on first use. With tracked set, a table that
** is not tracked is an error ("table \"x\" is not tracked"). The SyncTable
** belongs to the cache: valid until the schema changes. */
int table_get(SyncCtx *c, const char *name, int tracked, SyncTable **pOut, char **pzErr) {
  int rc = schema_changed(c);
  if (rc != SQLITE_OK) return rc;
  if (tracked && !table_is_tracked(c, name)) {
    *pzErr = sqlite3_mprintf("table \"%s\" is not tracked", name);
    return SQLITE_ERROR;
  }
  for (SyncTable *t = c->tables; t; t = t->next) {
    if (sqlite3_stricmp(t->name, name) == 0) {
      *pOut = t;
      return SQLITE_OK;
    }
  }
  SyncTable *t = 0;
  rc = ctx_anchor(c);
  if (rc == SQLITE_OK) rc = table_load(c, name, &t, pzErr);
  if (rc != SQLITE_OK) return rc;
  t->next = c->tables;
  c->tables = t;
  *pOut = t;
  return SQLITE_OK;
}

/* Runs one of t's write statements with ?1=a and ?2=b (b may be NULL).
** Returns SQLITE_OK or the error code (message in sqlite3_errmsg). */
int table_write(sqlite3_stmt *s, const char *a, const char *b) {
  sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
  if (b) sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* The current row of key pkJson as exact JSON, or *pOut NULL when absent. */
int table_row_json(SyncCtx *c, SyncTable *t, const char *pkJson, char **pOut) {
  sqlite3_stmt *s = t->row;
  sqlite3_bind_text(s, 1, pkJson, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  *pOut = 0;
  if (rc == SQLITE_ROW) {
    sqlite3_str *out = sqlite3_str_new(c->db);
    value_append_row(out, s);
    *pOut = sqlite3_str_finish(out);
    rc = *pOut ? SQLITE_OK : SQLITE_NOMEM;
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  }
  sqlite3_reset(s);
  return rc;
}

/* Appends the assignment to column col of t of a value no row of t holds
** (text and blobs get a random suffix, numbers one past the column's
** maximum): a row parked out of the way of a UNIQUE index until the write
** that follows gives it its real values again (inbox.c, guard.c). A NULL
** gets an integer, which a STRICT INTEGER column takes (a REAL failed the
** write). A maximum at the end of its range (an integer of 2^63-1, whose
** plus one is a REAL, or a REAL near 1e308, whose double is Inf) would give
** every park of a page the same value, so the minimum's side is taken
** then, and with both ends held a random integer (as for text). */
static void park_value(sqlite3_str *s, SyncTable *t, const char *col) {
  sqlite3_str_appendf(
      s,
      "\"%w\" = CASE typeof(\"%w\") WHEN 'text' THEN \"%w\" || '~' || hex(randomblob(8))"
      " WHEN 'blob' THEN \"%w\" || randomblob(8)"
      " WHEN 'real' THEN (SELECT CASE WHEN abs(max(\"%w\") * 1.0) < 1e300"
      " THEN abs(max(\"%w\") * 1.0) * 2 + 1.5 WHEN abs(min(\"%w\") * 1.0) < 1e300"
      " THEN -abs(min(\"%w\") * 1.0) * 2 - 1.5 ELSE random() END FROM main.\"%w\""
      " WHERE typeof(\"%w\") IN ('integer','real'))"
      " ELSE (SELECT CASE WHEN max(\"%w\") IS NULL OR max(\"%w\") < 9223372036854775807"
      " THEN CAST(max(\"%w\") AS INTEGER) + 1 WHEN min(\"%w\") > -9223372036854775808"
      " THEN CAST(min(\"%w\") AS INTEGER) - 1 ELSE random() END FROM main.\"%w\""
      " WHERE typeof(\"%w\") IN ('integer','real')) END",
      col, col, col, col, col, col, col, col, t->name, col, col, col, col, col, col, t->name, col);
}

/* Appends park_value for each column of t that cols (nCol flags)
** marks, comma-separated; returns how many. */
int table_park_set(sqlite3_str *s, SyncTable *t, const unsigned char *cols) {
  int n = 0;
  for (int i = 0; i < t->nCol; i++) {
    if (!cols[i]) continue;
    if (n++) sqlite3_str_appendall(s, ",");
    park_value(s, t, t->cols[i]);
  }
  return n;
}

/* Runs park statement s (?1 = a), built of table_park_set. A CHECK
** constraint the parked value breaks is ignored for the park only (a parked
** value is never seen; the rewrite that follows is checked). The pragma is
** set only then: it expires every statement of the connection, and a
** statement of the caller's that reads a table the page staging then writes
** would abort. */
int table_park_run(SyncCtx *c, sqlite3_stmt *s, const char *a) {
  int rc = table_write(s, a, 0);
  if ((rc & 0xff) != SQLITE_CONSTRAINT ||
      sqlite3_extended_errcode(c->db) != SQLITE_CONSTRAINT_CHECK)
    return rc;
  sqlite3_stmt *q = 0;
  int was = 0;
  rc = sqlite3_prepare_v2(c->db, "PRAGMA ignore_check_constraints", -1, &q, 0);
  if (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) was = sqlite3_column_int(q, 0);
  sqlite3_finalize(q);
  if (rc == SQLITE_OK && !was) rc = ctx_exec(c, "PRAGMA ignore_check_constraints=ON");
  if (rc == SQLITE_OK) rc = table_write(s, a, 0);
  if (!was) ctx_exec(c, "PRAGMA ignore_check_constraints=OFF");
  return rc;
}
