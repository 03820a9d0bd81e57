/*
** cascade.c: what deleting a local row would take with it. The engine
** moves rows aside (a refused insert's row, a pending row hiding its edit,
** a holder in the way of the server's row), and a delete that cascades, or
** sets NULL, through a foreign key acts on the rows that refer to it. Those
** may be the server's, delivered by a pull that never sends them again:
** the delete must not take them. Rows only this client has (pending
** inserts) may go: their mutations stay queued for the server to judge.
*/
#include "cascade.h"
#include "capture.h"
#include "value.h"

#include <string.h>

/* 1 when the key has pending mutations and no server row as image: a row
** only this client has (a pending insert), which may go with a cascade
** (its mutations stay queued for the server to judge). */
static int local_only(SyncCtx *c, SyncTable *t, const char *pk, int *pYes) {
  *pYes = 0;
  sqlite3_stmt *s = ctx_stmt(c, STMT_HAS_PENDING);
  if (!s) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s), pending = rc == SQLITE_ROW;
  sqlite3_reset(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
  if (!pending) return SQLITE_OK;
  if (!(s = ctx_stmt(c, STMT_SHADOW_GET))) return sqlite3_errcode(c->db);
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, pk, -1, SQLITE_STATIC);
  rc = sqlite3_step(s);
  *pYes = rc == SQLITE_DONE || (rc == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_NULL);
  sqlite3_reset(s);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int server_refs(SyncCtx *c, SyncTable *t, const char *pk, int depth, int *pYes);

void cascade_not_self(sqlite3_str *s, SyncTable *t, const char *child) {
  if (!child || sqlite3_stricmp(child, t->name) != 0 || !t->nPk) return;
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(s, "%sx.\"%w\" IS NOT p.\"%w\"", i ? " OR " : " AND (", t->cols[t->pk[i]],
                        t->cols[t->pk[i]]);
  sqlite3_str_appendchar(s, 1, ')');
}

/* The foreign keys that refer to table ?1: child table, key id, child
** column, parent column (the parent's key column when not named), one row
** per column. */
#define FK_LIST_SQL                                                                                \
  "SELECT m.name, f.id, f.\"from\", coalesce(f.\"to\", (SELECT name FROM"                          \
  " pragma_table_info(f.\"table\") WHERE pk = f.seq + 1)) FROM main.sqlite_schema AS m"            \
  " JOIN pragma_foreign_key_list(m.name) AS f WHERE m.type = 'table'"                              \
  " AND f.\"table\" = ?1 COLLATE NOCASE ORDER BY m.name, f.id, f.seq"

/* server_refs for the rows of table child (NULL when not tracked, name
** cname) that refer through the foreign key whose conditions are match
** ("x.from = p.to AND ...") to the row of key pk of t. */
static int child_refs(SyncCtx *c, SyncTable *t, const char *cname, const char *match,
                      const char *pk, int depth, int *pYes) {
  SyncTable *child = 0;
  char *why = 0;
  int rc = table_get(c, cname, 1, &child, &why);
  sqlite3_free(why);
  if (rc == SQLITE_NOMEM) return rc;
  if (rc != SQLITE_OK) child = 0;
  sqlite3_str *q = sqlite3_str_new(0);
  sqlite3_str_appendall(q, "SELECT ");
  for (int i = 0; child && i < child->nPk; i++)
    sqlite3_str_appendf(q, "%sx.\"%w\" AS \"%w\"", i ? "," : "", child->cols[child->pk[i]],
                        child->cols[child->pk[i]]);
  sqlite3_str_appendf(q, "%s FROM main.\"%w\" AS x, main.\"%w\" AS p WHERE %s", child ? "" : "1",
                      cname, t->name, match);
  sqlite3_str_appendall(q, " AND ");
  table_key_where(q, t, "p.", 1);
  cascade_not_self(q, t, cname);
  char *sql = sqlite3_str_finish(q);
  sqlite3_stmt *s = 0;
  rc = sql ? sqlite3_prepare_v2(c->db, sql, -1, &s, 0) : SQLITE_NOMEM;
  sqlite3_free(sql);
  if (rc == SQLITE_OK) sqlite3_bind_text(s, 1, pk, -1, SQLITE_STATIC);
  int step = SQLITE_DONE;
  while (rc == SQLITE_OK && !*pYes && (step = sqlite3_step(s)) == SQLITE_ROW) {
    /* A row of a table that is not synced is this client's own data. */
    if (!child || depth >= 8) {
      *pYes = 1;
      break;
    }
    sqlite3_str *k = sqlite3_str_new(0);
    value_append_row(k, s);
    char *key = sqlite3_str_finish(k), *canon = 0;
    int mine = 0;
    rc = key ? capture_canon_pk(c, child, key, -1, &canon, &why) : SQLITE_NOMEM;
    sqlite3_free(why);
    why = 0;
    if (rc == SQLITE_OK) rc = local_only(c, child, canon, &mine);
    if (rc == SQLITE_OK && !mine) *pYes = 1;
    if (rc == SQLITE_OK && mine) rc = server_refs(c, child, canon, depth + 1, pYes);
    sqlite3_free(key);
    sqlite3_free(canon);
  }
  if (rc == SQLITE_OK && step != SQLITE_ROW && step != SQLITE_DONE) rc = sqlite3_errcode(c->db);
  sqlite3_finalize(s);
  return rc;
}

/* *pYes 1 when deleting the row of key pk of t would take, through its
** foreign keys (cascades, SET NULL, or a refusal), a row this client does
** not hold alone: a server row (nothing pending, or a server image), or a
** row of a table that is not synced, directly or through rows only this
** client has (local_only, followed down). Such rows may be the server's,
** which no pull sends again once delivered. */
static int server_refs(SyncCtx *c, SyncTable *t, const char *pk, int depth, int *pYes) {
  sqlite3_stmt *q = 0;
  int rc = sqlite3_prepare_v2(c->db, FK_LIST_SQL, -1, &q, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(q, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_str *match = 0;
  char *child = 0;
  int id = -1;
  /* One foreign key per group of rows, checked when the next one starts. */
  for (int more = 1; rc == SQLITE_OK && more && !*pYes;) {
    more = sqlite3_step(q) == SQLITE_ROW;
    const char *name = more ? (const char *)sqlite3_column_text(q, 0) : 0;
    int fid = more ? sqlite3_column_int(q, 1) : -1;
    if (match && (!more || fid != id || strcmp(name, child) != 0)) {
      char *m = sqlite3_str_finish(match);
      match = 0;
      rc = m ? child_refs(c, t, child, m, pk, depth, pYes) : SQLITE_NOMEM;
      sqlite3_free(m);
    }
    if (!more || rc != SQLITE_OK) break;
    const char *from = (const char *)sqlite3_column_text(q, 2);
    const char *to = (const char *)sqlite3_column_text(q, 3);
    if (!name || !from || !to) continue;
    if (!match) {
      sqlite3_free(child);
      child = sqlite3_mprintf("%s", name);
      match = sqlite3_str_new(0);
      id = fid;
      if (!child) rc = SQLITE_NOMEM;
    } else {
      sqlite3_str_appendall(match, " AND ");
    }
    sqlite3_str_appendf(match, "x.\"%w\" = p.\"%w\"", from, to);
  }
  sqlite3_free(sqlite3_str_finish(match));
  sqlite3_free(child);
  sqlite3_finalize(q);
  return rc;
}

/* Builds t->referred: one EXISTS per foreign key that refers to t, OR-ed,
** over t's row of key ?1 (NULL when no foreign key refers to t). */
static int referred_prepare(SyncCtx *c, SyncTable *t) {
  sqlite3_stmt *q = 0;
  int rc = sqlite3_prepare_v2(c->db, FK_LIST_SQL, -1, &q, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(q, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_str *s = sqlite3_str_new(c->db);
  sqlite3_str_appendall(s, "SELECT 0");
  int id = -1, n = 0;
  char *child = 0;
  while (sqlite3_step(q) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(q, 0);
    const char *from = (const char *)sqlite3_column_text(q, 2);
    const char *to = (const char *)sqlite3_column_text(q, 3);
    int fid = sqlite3_column_int(q, 1);
    if (!name || !from || !to) continue;
    if (child && fid == id && strcmp(name, child) == 0) {
      sqlite3_str_appendf(s, " AND x.\"%w\" = p.\"%w\"", from, to);
      continue;
    }
    cascade_not_self(s, t, child);
    if (child) sqlite3_str_appendall(s, ")");
    sqlite3_free(child);
    child = sqlite3_mprintf("%s", name);
    id = fid, n++;
    sqlite3_str_appendf(s, " OR EXISTS (SELECT 1 FROM main.\"%w\" AS x WHERE x.\"%w\" = p.\"%w\"",
                        name, from, to);
  }
  cascade_not_self(s, t, child);
  if (child) sqlite3_str_appendall(s, ")");
  sqlite3_free(child);
  rc = sqlite3_finalize(q);
  sqlite3_str_appendf(s, " FROM main.\"%w\" AS p WHERE ", t->name);
  table_key_where(s, t, "p.", 1);
  char *sql = sqlite3_str_finish(s);
  if (rc == SQLITE_OK && !sql) rc = SQLITE_NOMEM;
  if (rc == SQLITE_OK && n)
    rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &t->referred, 0);
  sqlite3_free(sql);
  if (rc == SQLITE_OK) t->referredKnown = 1;
  return rc;
}

int cascade_referred(SyncCtx *c, SyncTable *t, const char *pk, int *pYes) {
  *pYes = 0;
  int rc = t->referredKnown ? SQLITE_OK : referred_prepare(c, t);
  if (rc != SQLITE_OK || !t->referred) return rc;
  sqlite3_bind_text(t->referred, 1, pk, -1, SQLITE_STATIC);
  rc = sqlite3_step(t->referred);
  *pYes = rc == SQLITE_ROW && sqlite3_column_int(t->referred, 0);
  rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
  sqlite3_reset(t->referred);
  return rc;
}

int cascade_reaches_server(SyncCtx *c, SyncTable *t, const char *pk, int *pYes) {
  *pYes = 0;
  /* Without enforced foreign keys a delete takes nothing with it: no walk
  ** of every table's foreign keys, and the row may go as it did before. */
  int fk = 0;
  if (sqlite3_db_config(c->db, SQLITE_DBCONFIG_ENABLE_FKEY, -1, &fk) != SQLITE_OK || !fk)
    return SQLITE_OK;
  return server_refs(c, t, pk, 0, pYes);
}
