/*
** pg_walk.c: an initial sync's walk under rules on PostgreSQL (pg_walk.h;
** docs/RULES.md, "Initial sync"): each table's readable rows in key order
** by the query pgsql_walk builds, from the table itself. pull.c's move-in
** reads the rows a membership opens with it.
*/
#include "pg_walk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pg_conn.h"
#include "pg_sql.h"
#include "value.h"

/* The version of the change of table's key pk in the log (0: none), which
** names a key too long for a cursor (wire.h): looked up for such keys only.
** 0, or -1 with *err. */
static int logged_version(dialect_conn *c, const char *table, const char *pk, long long *version,
                          char **err) {
  const char *q[2] = {table, pk};
  PGresult *r =
      pgc_query(c, "SELECT version FROM _syncd_changes WHERE tbl = $1 AND pk = $2", 2, q, err);
  if (!r) return -1;
  *version = PQntuples(r) ? atoll(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  return 0;
}

/* One query of a table of a walk: its readable rows (pgsql_walk) after the
** key after (NULL: from the first), up to lim of them, into p; *n the rows
** read. */
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
  PGresult *r = pgc_query(c, sql, w->n_vals + 2, q, err);
  sqlite3_free(sql);
  sqlite3_free(q);
  if (!r) {
    /* a position of the wrong type ({"id":"x"} for an integer key) */
    if (after && c->data_error) p->walk_bad_position = 1;
    return -1;
  }
  int n = PQntuples(r), bad = 0;
  *n_read = n;
  size_t nt = strlen(t->name);
  for (int i = 0; !bad && i < n; i++) {
    char *pk = pgsql_row(t, r, i, 0, 1), *row = pgsql_row(t, r, i, t->n_pk, 0);
    long long version = 0;
    if (!pk || !row)
      bad = 1, *err = wire_errf("out of memory");
    else if (nt + strlen(pk) > WIRE_WALK_MAX)
      bad = logged_version(c, t->name, pk, &version, err);
    if (!bad) wire_page_walk(p, t->name, pk, row, version);
    sqlite3_free(pk);
    sqlite3_free(row);
  }
  PQclear(r);
  return bad ? -1 : 0;
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
