/*
** sqlite_fk.c: the rows of a push batch that refer to rows that do not
** exist at its end, and the keys it deleted that rows still refer to
** (sqlite_fk.h). A push defers foreign keys to the batch's end, where
** SQLite only counts the references left broken; PRAGMA foreign_key_check
** would name them, but it reads every row of every child table, and a
** client could have it run at every push. So each row the batch wrote is
** looked up by its key, one query per table (fk_sql.c): the row, when one
** of its foreign keys has every column set and no parent row holds those
** values; and each key it deleted, when no row holds it and a row refers
** to it through a foreign key on the parent's primary key (one on other
** columns is not judged: their values went with the row).
**
** The parent is matched as SQLite's own check matches it in most schemas
** (the parent column's collation; affinities as a comparison of the two
** columns applies them, where SQLite applies the parent's to the child's
** value: a TEXT parent '07' is 7's on a comparison, not on the check). A
** row named wrongly costs its writer a refusal the strict run might not
** have made; a row missed leaves the batch broken again, and push.c then
** runs it strict.
*/
#include "sqlite_fk.h"

#include <string.h>

#include "fk_sql.h"
#include "sqlite_sql.h"
#include "sqlite_stmt.h"

/* Each foreign key column of t (refers), or of every table referring to t
** (referred), with the other table and the parent's column, one key after
** another; the parent column NULL when neither the key nor the parent's
** primary key names it. */
#define FK_TO                                                                                      \
  "coalesce(f.\"to\", (SELECT p.name FROM pragma_table_info(f.\"table\", 'main') p"                \
  " WHERE p.pk = f.seq + 1))"
static const char refers[] = "SELECT f.id, f.\"table\", f.\"from\", " FK_TO
                             " FROM pragma_foreign_key_list(?1, 'main') f ORDER BY f.id, f.seq";
static const char referred[] =
    "SELECT f.id || ' ' || m.name, m.name, f.\"from\", " FK_TO
    " FROM sqlite_schema m, pragma_foreign_key_list(m.name, 'main') f"
    " WHERE m.type = 'table' AND f.\"table\" = ?1 COLLATE NOCASE ORDER BY m.name, f.id, f.seq";

/* fk_dialect's: the key's values are read out of the JSON as a write's are */
static void key_value(sqlite3_str *sql, const catalog_table *t, int k) {
  (void)t;
  sqlite_sql_val(sql, 1, 2 + k);
}

static const fk_dialect sqlite_fk = {sqlite_sql_pk_where, key_value, 1};

/* The query that judges w's row (fk_sql_refers, or fk_sql_orphans for a
** delete): *sql, NULL when no foreign key of it can be judged. 0, or -1
** with *err. */
static int dangling_sql(sqlite3 *db, const dialect_written *w, char **sql, char **err) {
  sqlite3_stmt *st;
  *sql = 0;
  if (sqlite_stmt_get(db, w->deleted ? referred : refers, &st) != SQLITE_OK)
    return *err = wire_errf("%s", sqlite3_errmsg(db)), -1;
  sqlite3_bind_text(st, 1, w->t->name, -1, SQLITE_STATIC);
  /* the rows copied out of the statement into one buffer: each one's
  ** columns NUL-terminated, a NULL as "" after a "0" (a text after a "1") */
  sqlite3_str *text = sqlite3_str_new(0);
  int rc, n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    for (int i = 0; i < 4; i++) {
      const char *v = (const char *)sqlite3_column_text(st, i);
      sqlite3_str_appendchar(text, 1, v ? '1' : '0');
      sqlite3_str_appendall(text, v ? v : "");
      sqlite3_str_appendchar(text, 1, 0);
    }
    n++;
  }
  sqlite_stmt_put(st);
  char *z = sqlite3_str_finish(text);
  fk_col *k = sqlite3_malloc64(sizeof *k * (n + 1));
  if (rc != SQLITE_DONE || (n && !z) || !k) {
    if (rc == SQLITE_DONE)
      *err = wire_errf("out of memory");
    else
      *err = wire_errf("%s", sqlite3_errmsg(db));
    sqlite3_free(z);
    sqlite3_free(k);
    return -1;
  }
  const char *at = z;
  for (int i = 0; i < n; i++) {
    const char *f[4];
    for (int j = 0; j < 4; j++)
      f[j] = *at == '1' ? at + 1 : 0, at += strlen(at) + 1;
    k[i] = (fk_col){f[0], "main", f[1], f[2], f[3]};
  }
  int none = 1;
  if (n)
    *sql = (w->deleted ? fk_sql_orphans : fk_sql_refers)(w->t, "main", k, n, &sqlite_fk, &none);
  sqlite3_free(z);
  sqlite3_free(k);
  return *sql || none ? 0 : (*err = wire_errf("out of memory"), -1);
}

/* w's row or deleted key as it stands: reason copied when sql finds it at
** fault. */
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
    rc = dangling_sql(db, &w[i], &sql, err);
    for (int j = i; rc == 0 && j < n; j++) {
      if (w[j].t != w[i].t || w[j].deleted != w[i].deleted) continue;
      seen[j] = 1;
      if (sql) rc = judge(db, sql, &w[j], reason, err);
    }
    sqlite3_free(sql);
  }
  sqlite3_free(seen);
  return rc;
}
