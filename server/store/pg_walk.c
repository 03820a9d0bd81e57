/*
** pg_walk.c: an initial sync's walk under rules on PostgreSQL (pg_walk.h;
** docs/RULES.md, "Initial sync"): each table's readable keys in key order
** by the query pgsql_walk builds, then their latest changes in one
** statement. pull.c's move-in reads the rows a membership opens with it.
*/
#include "pg_walk.h"

#include <stdio.h>
#include <stdlib.h>

#include <libpq-fe.h>

#include "pg_conn.h"
#include "pg_sql.h"
#include "value.h"

/* One query of a table of a walk: its readable keys (pgsql_walk) after the
** key after (NULL: from the first), up to lim of them, then their changes
** in one statement, into p; *n the keys read. */
static int walk_query(void *conn, const void *walk, const char *after, int limit, wire_page *p,
                      int *n_read, char **err) {
  dialect_conn *c = conn;
  const dialect_walk *w = walk;
  const catalog_table *t = w->t;
  char lim[32];
  snprintf(lim, sizeof lim, "%d", limit);
  const char **q = sqlite3_malloc64(sizeof *q * ((size_t)w->n_vals + 2));
  char *sql = pgsql_walk(w, after != 0);
  if (!q || !sql) {
    sqlite3_free(q);
    sqlite3_free(sql);
    return *err = wire_errf("out of memory"), -1;
  }
  q[0] = after;
  for (int k = 0; k < w->n_vals; k++)
    q[1 + k] = w->vals[k];
  q[1 + w->n_vals] = lim;
  PGresult *keys = pgc_query(c, sql, w->n_vals + 2, q, err);
  sqlite3_free(sql);
  sqlite3_free(q);
  if (!keys) {
    /* a position of the wrong type ({"id":"x"} for an integer key) */
    if (after && c->data_error) p->walk_bad_position = 1;
    return -1;
  }
  int n = PQntuples(keys), bad = 0;
  *n_read = n;
  char **pk = sqlite3_malloc64(sizeof *pk * ((size_t)n + 1));
  sqlite3_str *list = sqlite3_str_new(0);
  sqlite3_str_appendchar(list, 1, '[');
  for (int i = 0; !bad && pk && i < n; i++) {
    bad = !(pk[i] = pgsql_row(t, keys, i, 0, 1));
    if (i) sqlite3_str_appendchar(list, 1, ',');
    if (!bad) value_append_string(list, pk[i], -1);
  }
  PQclear(keys);
  sqlite3_str_appendchar(list, 1, ']');
  char *json = sqlite3_str_finish(list);
  PGresult *r = 0;
  if (!pk || bad || !json) {
    *err = wire_errf("out of memory");
  } else if (n) {
    const char *q2[2] = {t->name, json};
    /* one index lookup per key, whatever the plan of the prepared statement
    ** guesses of the array (LIMIT keeps the lateral select from being
    ** pulled up into a join it may run as a scan of the log); the row of
    ** an upsert only, the version of any change (a key too long for a
    ** cursor is named by it, wire.h) */
    r = pgc_query(c,
                  "SELECT CASE WHEN c.op = 'upsert' THEN c.row END, c.version"
                  " FROM json_array_elements_text($2::json) WITH ORDINALITY AS k(pk, n)"
                  " LEFT JOIN LATERAL (SELECT op, row, version FROM _syncd_changes"
                  " WHERE tbl = $1 AND pk = k.pk LIMIT 1) AS c ON true ORDER BY k.n",
                  2, q2, err);
  }
  for (int i = 0; r && i < n && i < PQntuples(r); i++)
    wire_page_walk(p, t->name, pk[i], PQgetisnull(r, i, 0) ? 0 : PQgetvalue(r, i, 0),
                   PQgetisnull(r, i, 1) ? 0 : atoll(PQgetvalue(r, i, 1)));
  int ok = !n || r;
  PQclear(r);
  for (int i = 0; pk && i < n; i++)
    sqlite3_free(pk[i]);
  sqlite3_free(pk);
  sqlite3_free(json);
  return ok ? 0 : -1;
}

int pg_walk_rows(dialect_conn *c, const dialect_walk *w, int n, wire_page *p, char **err) {
  for (int i = 0; i < n && !p->has_more; i++)
    if (wire_page_walk_table(p, walk_query, c, &w[i], w[i].after, err)) return -1;
  return 0;
}

int pg_walk_key(dialect_conn *c, const char *table, long long version, long long after,
                const char *hash, char **pk, char **err) {
  /* the key's change is at version (one lookup by the log's index on
  ** version), or it changed since the cursor was made: after both, in
  ** version order by that index (tbl || '': never all of the table's log
  ** by its key), so the changes since the cursor, which its walk reads at
  ** its end anyway. The hash as wire_key_hash's, of the pk's UTF-8 bytes */
  static const char *const sql[2] = {
      "SELECT pk FROM _syncd_changes WHERE version = $2::bigint AND tbl = $1"
      " AND left(encode(sha256(convert_to(pk, 'UTF8')), 'hex'), " WIRE_HASH_HEX_SQL ") = $3",
      "SELECT pk FROM _syncd_changes WHERE version > $2::bigint AND tbl || '' = $1"
      " AND left(encode(sha256(convert_to(pk, 'UTF8')), 'hex'), " WIRE_HASH_HEX_SQL ") = $3"
      " ORDER BY version LIMIT 1"};
  char vz[32];
  const char *q[3] = {table, vz, hash};
  *pk = 0;
  for (int i = 0; i < 2; i++) {
    snprintf(vz, sizeof vz, "%lld", i && after > version ? after : version);
    PGresult *r = pgc_query(c, sql[i], 3, q, err);
    if (!r) return -1;
    int n = PQntuples(r);
    if (n && !(*pk = sqlite3_mprintf("%s", PQgetvalue(r, 0, 0))))
      *err = wire_errf("pg_walk_key: out of memory");
    PQclear(r);
    if (n) return *pk ? 0 : -1;
  }
  return 1;
}
