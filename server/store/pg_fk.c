/*
** pg_fk.c: a push batch's deferred foreign keys checked at its end on
** PostgreSQL, and the rows at fault found (pg_fk.h). The check, SET
** CONSTRAINTS ALL IMMEDIATE, stops at the first broken reference, naming
** its key but not the mutation that wrote it. So each row the batch wrote is looked up
** by key, one query per table (fk_sql.c): the row, when one of its
** DEFERRABLE foreign keys (the others were checked at each statement) has
** every column set and no parent row holds those values. A key MATCH FULL
** is judged as MATCH SIMPLE: a row it refuses for some of its columns
** NULL is not named here, and push.c then runs the batch strict.
*/
#include "pg_fk.h"

#include <stdlib.h>
#include <string.h>

#include "fk_sql.h"
#include "pg_sql.h"
#include "pg_values.h"

/* Each column of t's deferrable foreign keys ($2 false), or of the
** deferrable ones referring to t ($2 true): the key, its name, the other
** table's schema and name, the child's and the parent's column. */
static const char fk_list[] =
    "SELECT co.oid, co.conname, CASE WHEN $2 THEN n.nspname ELSE pn.nspname END,"
    " CASE WHEN $2 THEN cl.relname ELSE pc.relname END, a.attname, pa.attname"
    " FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid"
    " JOIN pg_namespace n ON n.oid = cl.relnamespace"
    " JOIN pg_class pc ON pc.oid = co.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace"
    " CROSS JOIN LATERAL unnest(co.conkey, co.confkey) WITH ORDINALITY AS k(att, patt, i)"
    " JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.att"
    " JOIN pg_attribute pa ON pa.attrelid = co.confrelid AND pa.attnum = k.patt"
    " WHERE co.contype = 'f' AND co.condeferrable AND CASE WHEN $2"
    " THEN pn.nspname = current_schema() AND pc.relname = $1"
    " ELSE n.nspname = current_schema() AND cl.relname = $1 END ORDER BY co.oid, k.i";

/* fk_dialect's: the key's values cast to their columns' types, as a write's are */
static void key_value(sqlite3_str *sql, const catalog_table *t, int k) {
  pgsql_value(sql, &t->cols[t->pk[k]], 1, 2 + k);
}

static const fk_dialect pg_fk = {pgsql_pk_where, key_value, 0};

/* -1, *err set from why unless it is (why is freed). */
static int fail(char *why, char **err) {
  if (*err) return sqlite3_free(why), -1;
  *err = why ? why : wire_errf("out of memory");
  return -1;
}

/* w's row or deleted key as it stands: the reason PostgreSQL gives when
** sql (fk_sql_refers's or fk_sql_orphans's over keys) finds it at fault. */
static int judge(dialect_conn *c, const char *sql, const PGresult *keys, dialect_written *w,
                 char **err) {
  const catalog_table *t = w->t;
  char *key = 0, *why = 0;
  /* a key as stored reads back: a refusal here is a failure */
  if (pgval_rewrite(c->probe, t, w->pk, &key, &why, err) != DIALECT_OK) return fail(why, err);
  const char **p = sqlite3_malloc64(sizeof *p * (t->n_pk + 1));
  if (!p) return sqlite3_free(key), *err = wire_errf("out of memory"), -1;
  p[0] = key;
  for (int k = 0; k < t->n_pk; k++)
    p[1 + k] = t->cols[t->pk[k]].key;
  PGresult *r = 0;
  dialect_result rc = pgc_run(c, sql, 1 + t->n_pk, p, &r, &why, err);
  sqlite3_free(p);
  sqlite3_free(key);
  if (rc != DIALECT_OK) return fail(why, err);
  int i = PQntuples(r) ? atoi(PQgetvalue(r, 0, 0)) : -1;
  PQclear(r);
  /* PostgreSQL's own words for it */
  if (i >= 0 &&
      !(w->reason = w->deleted ? wire_errf("update or delete on table \"%s\" violates"
                                           " foreign key constraint \"%s\" on table \"%s\"",
                                           t->name, PQgetvalue(keys, i, 1), PQgetvalue(keys, i, 3))
                               : wire_errf("insert or update on table \"%s\" violates"
                                           " foreign key constraint \"%s\"",
                                           t->name, PQgetvalue(keys, i, 1))))
    return *err = wire_errf("out of memory"), -1;
  return 0;
}

/* The rows of w[0..n) of w[0]'s table, written or deleted as w[0] is
** (seen: those judged). */
static int judge_table(dialect_conn *c, dialect_written *w, int n, char *seen, char **err) {
  const catalog_table *t = w->t;
  const char *p[2] = {t->name, w->deleted ? "true" : "false"};
  PGresult *keys = pgc_query(c, fk_list, 2, p, err);
  if (!keys) return -1;
  int nk = PQntuples(keys), none = 1, rc = 0;
  fk_col *k = sqlite3_malloc64(sizeof *k * (nk + 1));
  char *sql = 0;
  for (int i = 0; k && i < nk; i++)
    k[i] = (fk_col){PQgetvalue(keys, i, 0), PQgetvalue(keys, i, 2), PQgetvalue(keys, i, 3),
                    PQgetvalue(keys, i, 4), PQgetvalue(keys, i, 5)};
  if (k && nk) sql = (w->deleted ? fk_sql_orphans : fk_sql_refers)(t, 0, k, nk, &pg_fk, &none);
  if (!k || (!sql && !none)) rc = -1, *err = wire_errf("out of memory");
  for (int j = 0; rc == 0 && j < n; j++) {
    if (w[j].t != t || w[j].deleted != w->deleted) continue;
    seen[j] = 1;
    if (sql) rc = judge(c, sql, keys, &w[j], err);
  }
  sqlite3_free(sql);
  sqlite3_free(k);
  PQclear(keys);
  return rc;
}

/* Give each row of w[0..n) that refers to no row, and each key deleted
** that rows still refer to, PostgreSQL's reason. 0, or -1 with *err. */
static int find(dialect_conn *c, dialect_written *w, int n, char **err) {
  char *seen = sqlite3_malloc64(n + 1);
  if (!seen) return *err = wire_errf("out of memory"), -1;
  memset(seen, 0, n + 1);
  int rc = 0;
  for (int i = 0; rc == 0 && i < n; i++)
    if (!seen[i]) rc = judge_table(c, w + i, n - i, seen + i, err);
  sqlite3_free(seen);
  return rc;
}

/* The deferred constraints checked now: a key change's children may refer
** to the new row only once the batch has written it. A failure names
** neither the rows nor the mutations at fault: back at the savepoint taken
** before the check, the rows of w that refer to no row are found
** (find), then the batch is rolled back for push.c to run again. Where
** that fails (the query: the strict run still refuses the right
** mutations), no row is named; only a broken connection is an error. */
int pg_fk_dangling(dialect_conn *c, dialect_written *w, int n, char **err) {
  if (!c->fk_end) return 0;
  char *why = 0;
  int failed = pgc_exec(c, "SAVEPOINT fk; SET CONSTRAINTS ALL IMMEDIATE", &why);
  sqlite3_free(why);
  if (!failed) return 0;
  c->careful = 1; /* the run that follows may refuse a mutation: savepoints */
  why = 0;
  if (!c->broken && (pgc_exec(c, "ROLLBACK TO SAVEPOINT fk", &why) || find(c, w, n, &why)))
    fk_sql_none(w, n, why);
  return c->broken || pgc_exec(c, "ROLLBACK", err) ? -1 : 1;
}
