/*
** batchcut.c: where a push batch ends.
**
** A key changed under ON UPDATE CASCADE is queued as its children's
** updates (or, for a child whose key holds the reference, their deletes and
** inserts) to the new key, then the old row's delete, then the new row's
** insert: SQLite runs the cascade before the parent's AFTER trigger. The
** server checks a batch's foreign keys at its end (docs/PROTOCOL.md), so a
** batch cut between a child and its new parent would have the child
** refused, and the parent's delete would then cascade it away on the
** server. A batch of `limit` mutations therefore ends later when one of
** them refers to a row whose insert comes after it: up to that insert, and
** again for what the added mutations refer to, at most max(limit, 100) ids
** further (ids are given in order and never reused, so that bounds the
** rows); a batch halved to one mutation is never moved, so a server's size
** limit is still met one mutation at a time. outbox_batch asks only when a
** batch is full, with the batch's rows still in the page cache.
**
** The reference is matched as the outbox writes keys: the parent's key
** object built from the child's data (json_object over the values, for a
** foreign key onto the parent's whole primary key; text and integers, the
** keys foreign keys use, print the same way). A column an update left out
** (it did not change) has the value the row had then: the last earlier
** mutation of the key that wrote it, else the server image, else the row
** as it is now. The row now alone misled when a later mutation deleted
** the row or changed the column (a task moved by its project's key change,
** then deleted): the batch was cut before the new parent.
*/
#include "batchcut.h"
#include "table.h"

/* One column of a foreign key: fk id, parent table, child and parent column
** (NULL: the parent's key column at the same position). */
typedef struct FkCol {
  int id;
  char *parent, *from, *to;
} FkCol;

/* Appends the value of child column col a mutation x of it refers with: its
** data's, or for an update that left the column out, the value it had then
** (see the file's comment). */
static void ref_value(sqlite3_str *q, SyncTable *child, const char *col) {
  sqlite3_str_appendf(q,
                      "coalesce(x.data ->> '$.\"%q\"', (SELECT e.data ->> '$.\"%q\"'"
                      " FROM main.sync_outbox AS e WHERE e.tbl = x.tbl AND e.pk = x.pk"
                      " AND e.id < x.id AND e.data ->> '$.\"%q\"' IS NOT NULL"
                      " ORDER BY e.id DESC LIMIT 1), (SELECT s.row ->> '$.\"%q\"'"
                      " FROM main.sync_shadow AS s WHERE s.tbl = x.tbl AND s.pk = x.pk),"
                      " (SELECT r.\"%w\" FROM main.\"%w\" AS r",
                      col, col, col, col, col, child->name);
  for (int i = 0; i < child->nPk; i++)
    sqlite3_str_appendf(q, " %s r.\"%w\" = x.pk ->> '$.\"%q\"'", i ? "AND" : "WHERE",
                        child->cols[child->pk[i]], child->cols[child->pk[i]]);
  sqlite3_str_appendall(q, "))");
}

/* Appends one term for the foreign key cols[0..n) of child when it refers
** to the whole primary key of a tracked table. */
static int fk_term(SyncCtx *c, SyncTable *child, const FkCol *cols, int n, sqlite3_str *q,
                   int *pTerms) {
  SyncTable *parent = 0;
  char *why = 0;
  int rc = table_get(c, cols[0].parent, 1, &parent, &why);
  sqlite3_free(why);
  if (rc == SQLITE_NOMEM) return rc;
  if (rc != SQLITE_OK || n != parent->nPk) return SQLITE_OK;
  const char **from = sqlite3_malloc64(sizeof *from * (sqlite3_uint64)n);
  if (!from) return SQLITE_NOMEM;
  for (int i = 0; i < n; i++) {
    const char *pc = parent->cols[parent->pk[i]];
    from[i] = 0;
    for (int j = 0; j < n; j++)
      if (sqlite3_stricmp(cols[j].to ? cols[j].to : parent->cols[parent->pk[j]], pc) == 0)
        from[i] = cols[j].from;
    if (!from[i]) {
      sqlite3_free(from);
      return SQLITE_OK;
    }
  }
  sqlite3_str_appendf(q,
                      "%sSELECT max(p.id) AS m FROM main.sync_outbox AS x JOIN main.sync_outbox"
                      " AS p ON p.tbl = %Q AND p.op = 'insert' AND p.id > ?2 AND p.id <= ?3"
                      " AND p.pk = json_object(",
                      (*pTerms)++ ? " UNION ALL " : "", parent->name);
  for (int i = 0; i < n; i++) {
    sqlite3_str_appendf(q, "%s%Q, ", i ? "," : "", parent->cols[parent->pk[i]]);
    ref_value(q, child, from[i]);
  }
  /* +x.tbl: the batch's range of ids, not every mutation of the table */
  sqlite3_str_appendf(q,
                      ") WHERE +x.tbl = %Q AND x.op IN ('insert', 'update') AND x.id > ?1"
                      " AND x.id <= ?2",
                      child->name);
  sqlite3_free(from);
  return SQLITE_OK;
}

/* Appends the terms of every foreign key of tracked table child onto a
** tracked table. */
static int fk_terms(SyncCtx *c, const char *child, sqlite3_str *q, int *pTerms) {
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(c->db,
                              "SELECT f.id, k.name, f.\"from\", f.\"to\" FROM"
                              " pragma_foreign_key_list(?1, 'main') AS f JOIN main.sync_tracked"
                              " AS k ON k.name = f.\"table\" COLLATE NOCASE ORDER BY f.id, f.seq",
                              -1, &s, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(s, 1, child, -1, SQLITE_STATIC);
  FkCol *cols = 0;
  int n = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    FkCol *more = sqlite3_realloc64(cols, sizeof *cols * (sqlite3_uint64)(n + 1));
    if (!more) {
      rc = SQLITE_NOMEM;
      break;
    }
    cols = more;
    const char *to = (const char *)sqlite3_column_text(s, 3);
    FkCol *f = &cols[n++];
    f->id = sqlite3_column_int(s, 0);
    f->parent = sqlite3_mprintf("%s", sqlite3_column_text(s, 1));
    f->from = sqlite3_mprintf("%s", sqlite3_column_text(s, 2));
    f->to = to ? sqlite3_mprintf("%s", to) : 0;
    if (!f->parent || !f->from || (to && !f->to)) {
      rc = SQLITE_NOMEM;
      break;
    }
  }
  sqlite3_finalize(s);
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  SyncTable *t = 0;
  char *why = 0;
  if (rc == SQLITE_OK && n) rc = table_get(c, child, 1, &t, &why);
  sqlite3_free(why);
  for (int i = 0, j; rc == SQLITE_OK && i < n; i = j) {
    for (j = i; j < n && cols[j].id == cols[i].id; j++) {
    }
    rc = fk_term(c, t, cols + i, j - i, q, pTerms);
  }
  for (int i = 0; i < n; i++) {
    sqlite3_free(cols[i].parent);
    sqlite3_free(cols[i].from);
    sqlite3_free(cols[i].to);
  }
  sqlite3_free(cols);
  return rc;
}

int cut_extend(SyncCtx *c, sqlite3_int64 limit, sqlite3_int64 after, sqlite3_int64 top,
               sqlite3_int64 *pTop) {
  *pTop = top;
  if (limit < 2) return SQLITE_OK;
  /* ids are given in order and never reused: a bound in ids bounds rows */
  sqlite3_int64 cap = top + (limit > 100 ? limit : 100);
  /* First the cheap question: does the window after the batch insert a row
  ** of a table another tracked table refers to at all? */
  sqlite3_stmt *s = 0;
  int rc = sqlite3_prepare_v2(
      c->db,
      "SELECT 1 FROM main.sync_outbox WHERE id > ?1 AND id <= ?2 AND op = 'insert' AND lower(tbl)"
      " IN (SELECT lower(f.\"table\") FROM main.sync_tracked AS k,"
      " pragma_foreign_key_list(k.name, 'main') AS f) LIMIT 1",
      -1, &s, 0);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(s, 1, top);
  sqlite3_bind_int64(s, 2, cap);
  rc = sqlite3_step(s);
  sqlite3_finalize(s);
  if (rc != SQLITE_ROW) return rc == SQLITE_DONE ? SQLITE_OK : rc;
  rc = sqlite3_prepare_v2(c->db, "SELECT name FROM main.sync_tracked ORDER BY name", -1, &s, 0);
  sqlite3_str *q = sqlite3_str_new(0);
  sqlite3_str_appendall(q, "SELECT max(m) FROM (");
  int terms = 0;
  while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    char *name = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
    rc = name ? fk_terms(c, name, q, &terms) : SQLITE_NOMEM;
    sqlite3_free(name);
  }
  sqlite3_finalize(s);
  sqlite3_str_appendall(q, ")");
  char *sql = sqlite3_str_finish(q);
  if (rc == SQLITE_DONE) rc = sql ? SQLITE_OK : SQLITE_NOMEM;
  if (rc != SQLITE_OK || !terms) {
    sqlite3_free(sql);
    return rc;
  }
  rc = sqlite3_prepare_v2(c->db, sql, -1, &s, 0);
  sqlite3_free(sql);
  /* each round takes the mutations the last one added: what they refer to */
  for (sqlite3_int64 from = after; rc == SQLITE_OK;) {
    sqlite3_bind_int64(s, 1, from);
    sqlite3_bind_int64(s, 2, top);
    sqlite3_bind_int64(s, 3, cap);
    sqlite3_int64 more = 0;
    if ((rc = sqlite3_step(s)) == SQLITE_ROW) more = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    if (more <= top) break;
    from = top, top = more;
  }
  sqlite3_finalize(s);
  if (rc == SQLITE_OK) *pTop = top;
  return rc;
}
