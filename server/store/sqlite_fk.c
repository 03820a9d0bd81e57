/*
** sqlite_fk.c: the rows of a push batch that refer to rows that do not
** exist at its end (sqlite_fk.h). A push defers foreign keys to the batch's
** end, where SQLite only counts the references left broken; PRAGMA
** foreign_key_check would name them, but it reads every row of every
** child table, and a client could have it run at every push. So each row
** the batch wrote is looked up by its key, one query per table: the row,
** when one of its foreign keys has every column set and no parent row
** holds those values.
**
** The parent is matched as SQLite's own check matches it in most schemas
** (the parent column's collation; affinities as a comparison of the two
** columns applies them). A row named wrongly costs its writer a refusal
** the strict run might not have made; a row missed leaves the batch broken
** again, and push.c then runs it strict.
*/
#include "sqlite_fk.h"

#include <string.h>

#include "sqlite_sql.h"
#include "sqlite_stmt.h"

/* Each foreign key column of t with its parent's table and column, one key
** after another; the parent column NULL when neither the key nor the
** parent's primary key names it. */
static const char fk_list[] =
    "SELECT f.id, f.\"table\", f.\"from\", coalesce(f.\"to\", (SELECT p.name FROM"
    " pragma_table_info(f.\"table\", 'main') p WHERE p.pk = f.seq + 1))"
    " FROM pragma_foreign_key_list(?1, 'main') f ORDER BY f.id, f.seq";

/* The query of t's row keyed ?1 (paths ?2 on) that refers to no row: its
** text in *sql, NULL when t has no foreign key it can judge. 0, or -1
** with *err. */
static int dangling_sql(sqlite3 *db, const catalog_table *t, char **sql, char **err) {
  sqlite3_stmt *st;
  *sql = 0;
  if (sqlite_stmt_get(db, fk_list, &st) != SQLITE_OK)
    return *err = wire_errf("%s", sqlite3_errmsg(db)), -1;
  sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
  /* each key: "(set AND NOT EXISTS (parent))", its parts built apart */
  sqlite3_str *out = sqlite3_str_new(db), *set = sqlite3_str_new(db), *match = sqlite3_str_new(db);
  int rc, n_keys = 0, id = -1, judged = 0;
  for (;;) {
    rc = sqlite3_step(st);
    int next = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -2;
    if (next != id && id >= 0 && judged) {
      sqlite3_str_appendf(out, "%s(%s AND NOT EXISTS (SELECT 1 %s))", n_keys++ ? " OR " : "",
                          sqlite3_str_value(set), sqlite3_str_value(match));
    }
    if (rc != SQLITE_ROW) break;
    const char *parent = (const char *)sqlite3_column_text(st, 1);
    const char *from = (const char *)sqlite3_column_text(st, 2);
    const char *to = (const char *)sqlite3_column_text(st, 3);
    if (next != id) {
      id = next, judged = 1;
      sqlite3_str_reset(set);
      sqlite3_str_reset(match);
      sqlite3_str_appendf(match, "FROM \"main\".\"%w\" AS p WHERE ", parent);
    } else {
      sqlite3_str_appendall(set, " AND ");
      sqlite3_str_appendall(match, " AND ");
    }
    if (!to) judged = 0;
    sqlite3_str_appendf(set, "c.\"%w\" IS NOT NULL", from);
    sqlite3_str_appendf(match, "p.\"%w\" = c.\"%w\"", to ? to : "", from);
  }
  sqlite_stmt_put(st);
  sqlite3_free(sqlite3_str_finish(set));
  sqlite3_free(sqlite3_str_finish(match));
  char *keys = sqlite3_str_finish(out);
  if (rc != SQLITE_DONE) {
    sqlite3_free(keys);
    return *err = wire_errf("%s", sqlite3_errmsg(db)), -1;
  }
  if (!n_keys) return sqlite3_free(keys), 0;
  sqlite3_str *q = sqlite3_str_new(db);
  sqlite3_str_appendf(q, "SELECT 1 FROM \"main\".\"%w\" AS c", t->name);
  sqlite_sql_pk_where(q, t, 1, 2);
  sqlite3_str_appendf(q, " AND (%s)", keys ? keys : "");
  sqlite3_free(keys);
  *sql = sqlite3_str_finish(q);
  return *sql ? 0 : (*err = wire_errf("out of memory"), -1);
}

/* w[i] as it stands: reason copied when it refers to no row. */
static int judge(sqlite3 *db, const char *sql, dialect_written *w, const char *reason, char **err) {
  sqlite3_stmt *st;
  if (sqlite_stmt_get(db, sql, &st) != SQLITE_OK)
    return *err = wire_errf("%s", sqlite3_errmsg(db)), -1;
  sqlite3_bind_text(st, 1, w->pk, -1, SQLITE_STATIC);
  for (int k = 0; k < w->t->n_pk; k++)
    sqlite3_bind_text(st, 2 + k, w->t->cols[w->t->pk[k]].key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite_stmt_put(st);
  if (rc == SQLITE_ROW && !(w->reason = wire_errf("%s", reason)))
    return *err = wire_errf("out of memory"), -1;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return *err = wire_errf("%s", sqlite3_errmsg(db)), -1;
  return 0;
}

int sqlite_fk_find(sqlite3 *db, dialect_written *w, int n, const char *reason, char **err) {
  /* a table's query is built once, for all its rows of w */
  char *seen = sqlite3_malloc64(n + 1);
  if (!seen) return *err = wire_errf("out of memory"), -1;
  memset(seen, 0, n + 1);
  int rc = 0;
  for (int i = 0; rc == 0 && i < n; i++) {
    if (seen[i]) continue;
    char *sql = 0;
    rc = dangling_sql(db, w[i].t, &sql, err);
    for (int j = i; rc == 0 && j < n; j++) {
      if (w[j].t != w[i].t) continue;
      seen[j] = 1;
      if (sql) rc = judge(db, sql, &w[j], reason, err);
    }
    sqlite3_free(sql);
  }
  sqlite3_free(seen);
  return rc;
}
