/*
** sqlite_walk.c: an initial sync's walk under rules on SQLite (dialect.h,
** read_page with a walk; docs/RULES.md, "Initial sync"): the page query that
** reads a table's readable rows in key order from the table itself, and
** the lookup of a key a cursor names by reference.
*/
#include "sqlite_walk.h"

#include <string.h>

#include "sqlite_row.h"
#include "value.h"

/* Append the key columns of t ("t"."k1", ...). */
static void key_list(sqlite3_str *s, const catalog_table *t) {
  for (int k = 0; k < t->n_pk; k++)
    sqlite3_str_appendf(s, "%s\"%w\".\"%w\"", k ? ", " : "", t->name, t->cols[t->pk[k]].name);
}

/* The page query of one table of a walk: every column of the rows of w->t
** (in the table's order, named as the change log's rows name them) after
** ?1's key (when after) that pass w->cond (?2 on), in key order; ?N+2 the
** limit. The rows come from the table itself, not from the change log,
** where each would be one more lookup, on a page of its own when the
** user's rows are few among many; an index that holds the whole row
** spares even the table's (docs/RULES.md). With an index on the rule's columns then the key, they
*come in the
** index's order and the query stops at the limit (no sort). When
** w->sorted, the keys are sorted first, alone, and only the limit's worth
** of rows read. */
static char *walk_sql(const dialect_walk *w, int after) {
  const catalog_table *t = w->t;
  /* the rows from the table itself, or the sorted keys' rows by key */
  sqlite3_str *s = sqlite3_str_new(0);
  sqlite3_str_appendall(s, "SELECT ");
  for (int c = 0; c < t->n_cols; c++)
    sqlite3_str_appendf(s, "%s\"%w\".\"%w\" AS \"%w\"", c ? ", " : "", t->name, t->cols[c].name,
                        t->cols[c].name);
  sqlite3_str_appendf(s, " FROM ");
  if (w->sorted) {
    sqlite3_str_appendall(s, "(SELECT ");
    for (int k = 0; k < t->n_pk; k++)
      sqlite3_str_appendf(s, "%s\"%w\".\"%w\" AS k%d", k ? ", " : "", t->name,
                          t->cols[t->pk[k]].name, k);
  }
  sqlite3_str_appendf(s, "%s\"%w\" WHERE %s", w->sorted ? " FROM " : "", t->name, w->cond);
  for (int k = 0; k < t->n_pk; k++)
    sqlite3_str_appendf(s, " AND \"%w\".\"%w\" IS NOT NULL", t->name, t->cols[t->pk[k]].name);
  if (after) {
    sqlite3_str_appendall(s, " AND (");
    key_list(s, t);
    sqlite3_str_appendall(s, ") > (");
    for (int k = 0; k < t->n_pk; k++)
      sqlite3_str_appendf(s, "%ssync_val(?1 -> %Q)", k ? ", " : "", t->cols[t->pk[k]].key);
    sqlite3_str_appendall(s, ")");
  }
  sqlite3_str_appendall(s, " ORDER BY ");
  key_list(s, t);
  sqlite3_str_appendf(s, " LIMIT ?%d", w->n_vals + 2);
  if (w->sorted) {
    sqlite3_str_appendf(s, ") AS _syncd_k JOIN \"%w\" ON ", t->name);
    for (int k = 0; k < t->n_pk; k++)
      sqlite3_str_appendf(s, "%s\"%w\".\"%w\" = _syncd_k.k%d", k ? " AND " : "", t->name,
                          t->cols[t->pk[k]].name, k);
    sqlite3_str_appendall(s, " ORDER BY ");
    for (int k = 0; k < t->n_pk; k++)
      sqlite3_str_appendf(s, "%s_syncd_k.k%d", k ? ", " : "", k);
  }
  return sqlite3_str_finish(s);
}

/* The version of the change of table's key pk in the log (0: none), which
** names a key too long for a cursor (wire.h): looked up for such keys only.
** 0, or -1 with *err. */
static int logged_version(sqlite3 *db, const char *table, const char *pk, long long *version,
                          char **err) {
  sqlite3_stmt *q = 0;
  int step = sqlite3_prepare_v2(db, "SELECT version FROM _syncd_changes WHERE tbl = ?1 AND pk = ?2",
                                -1, &q, 0);
  if (step == SQLITE_OK) {
    sqlite3_bind_text(q, 1, table, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, pk, -1, SQLITE_STATIC);
    step = sqlite3_step(q);
  }
  *version = step == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
  if (step != SQLITE_ROW && step != SQLITE_DONE) *err = wire_errf("%s", sqlite3_errmsg(db));
  sqlite3_finalize(q);
  return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : -1;
}

/* The page query of w after the key after (NULL: from the first) for up to
** lim rows, into p; *n the rows read. Each row's key and row are printed
** into two buffers reused row after row. 0, or -1 with *err. */
static int walk_query(void *conn, const void *walk, const char *after, int lim, wire_page *p,
                      int *n, char **err) {
  sqlite3 *db = conn;
  const dialect_walk *w = walk;
  const catalog_table *t = w->t;
  size_t nt = strlen(t->name);
  char *sql = walk_sql(w, after != 0);
  sqlite3_stmt *q = 0;
  if (!sql) return *err = wire_errf("out of memory"), -1;
  int step = sqlite3_prepare_v2(db, sql, -1, &q, 0);
  sqlite3_free(sql);
  sqlite3_str *pk = sqlite3_str_new(0), *row = sqlite3_str_new(0);
  if (step == SQLITE_OK) {
    sqlite3_bind_text(q, 1, after, -1, SQLITE_STATIC);
    for (int k = 0; k < w->n_vals; k++)
      sqlite3_bind_text(q, 2 + k, w->vals[k], -1, SQLITE_STATIC);
    sqlite3_bind_int(q, w->n_vals + 2, lim);
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
      sqlite3_str_reset(pk);
      sqlite3_str_reset(row);
      sqlite_pk_append(pk, t, q, -1);
      value_append_row(row, q);
      if (sqlite3_str_errcode(pk) || sqlite3_str_errcode(row)) {
        step = SQLITE_NOMEM;
        break;
      }
      long long version = 0;
      if (nt + (size_t)sqlite3_str_length(pk) > WIRE_WALK_MAX &&
          logged_version(db, t->name, sqlite3_str_value(pk), &version, err)) {
        step = SQLITE_ABORT;
        break;
      }
      (*n)++;
      wire_page_walk(p, t->name, sqlite3_str_value(pk), sqlite3_str_value(row), version);
    }
  }
  if (step == SQLITE_NOMEM)
    *err = wire_errf("out of memory");
  else if (step != SQLITE_DONE && !*err)
    *err = wire_errf("%s", sqlite3_errmsg(db));
  sqlite3_free(sqlite3_str_finish(pk));
  sqlite3_free(sqlite3_str_finish(row));
  sqlite3_finalize(q);
  return step == SQLITE_DONE ? 0 : -1;
}

int sqlite_walk_page(sqlite3 *db, const dialect_walk *w, int n, wire_page *p, char **err) {
  for (int i = 0; i < n && !p->has_more; i++)
    if (wire_page_walk_table(p, walk_query, db, &w[i], w[i].after, err)) return -1;
  return 0;
}

int sqlite_walk_key(sqlite3 *db, const char *table, long long version, long long after,
                    const char *hash, char **pk, char **err) {
  /* the key's change is at version (one lookup by the log's index on
  ** version), or it changed since the cursor was made: after both, read
  ** by that index too (+tbl: never all of the table's log by its key), so
  ** the changes since the cursor, which its walk reads at its end anyway */
  static const char *const sql[2] = {
      "SELECT pk FROM _syncd_changes WHERE version = ?2 AND tbl = ?1",
      "SELECT pk FROM _syncd_changes WHERE version > ?2 AND +tbl = ?1 ORDER BY version"};
  int step = SQLITE_DONE;
  char h[WIRE_HASH_HEX + 1];
  *pk = 0;
  for (int i = 0; i < 2 && step == SQLITE_DONE; i++) {
    sqlite3_stmt *q = 0;
    step = sqlite3_prepare_v2(db, sql[i], -1, &q, 0);
    if (step == SQLITE_OK) {
      sqlite3_bind_text(q, 1, table, -1, SQLITE_STATIC);
      sqlite3_bind_int64(q, 2, i && after > version ? after : version);
    }
    while (step == SQLITE_OK && (step = sqlite3_step(q)) == SQLITE_ROW) {
      const char *z = (const char *)sqlite3_column_text(q, 0);
      if (!z || wire_key_hash(z, h))
        step = SQLITE_NOMEM;
      else if (strcmp(h, hash) != 0)
        step = SQLITE_OK; /* another key: read on */
      else if (!(*pk = sqlite3_mprintf("%s", z)))
        step = SQLITE_NOMEM;
    }
    sqlite3_finalize(q);
  }
  if (*pk) return 0;
  if (step == SQLITE_DONE) return 1;
  *err = wire_errf("sqlite_walk_key: the key a cursor names in %s: %s", table,
                   step == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(db));
  return -1;
}
