/*
** sqlite_walk.c: an initial sync's walk under rules on SQLite (dialect.h,
** read_page with a walk; docs/RULES.md, "Initial sync"): the page query that reads a
** table's readable rows in key order with their latest change, and the
** SQL function _syncd_key it joins them to the change log with.
*/
#include "sqlite_walk.h"

#include <string.h>

#include "value.h"

/* The page query of one table of a walk: the key as the change log
** prints it (_syncd_key, below), the row of its change (NULL: none, or a
** delete) and the version of its change (NULL: none; a key too long for a
** cursor is named by it, wire.h), for the rows of w->t after ?1's key (when after) that pass
** w->cond (?2 on), in key order; ?N+2 the table's name, ?N+3 the limit.
** The rows are w->t's outer loop: with an index on the rule's columns
** then the key, they come in the index's order and the query stops at the
** limit (no sort; docs/RULES.md shows the plan). When w->sorted, the keys
** are sorted first, alone, and only the limit's worth joined to the log. */
static char *walk_sql(const dialect_walk *w, int after) {
  const catalog_table *t = w->t;
  /* the key's columns from the table itself, or from the sorted keys */
  const char *from = w->sorted ? "_syncd_k" : t->name;
  sqlite3_str *key = sqlite3_str_new(0), *s = sqlite3_str_new(0);
  sqlite3_str_appendall(key, "_syncd_key(");
  for (int k = 0; k < t->n_pk; k++) {
    sqlite3_str_appendf(key, "%s%Q, \"%w\".", k ? ", " : "", t->cols[t->pk[k]].name, from);
    if (w->sorted)
      sqlite3_str_appendf(key, "k%d", k);
    else
      sqlite3_str_appendf(key, "\"%w\"", t->cols[t->pk[k]].name);
  }
  sqlite3_str_appendall(key, ")");
  const char *pk = sqlite3_str_value(key);
  sqlite3_str_appendf(s,
                      "SELECT coalesce(c.pk, %s), CASE WHEN c.op = 'upsert' THEN c.row END,"
                      " c.version FROM ",
                      pk);
  if (w->sorted) {
    sqlite3_str_appendall(s, "(SELECT ");
    for (int k = 0; k < t->n_pk; k++)
      sqlite3_str_appendf(s, "%s\"%w\".\"%w\" AS k%d", k ? ", " : "", t->name,
                          t->cols[t->pk[k]].name, k);
    sqlite3_str_appendf(s, " FROM \"%w\" WHERE %s", t->name, w->cond);
  } else {
    sqlite3_str_appendf(s,
                        "\"%w\" LEFT JOIN _syncd_changes AS c ON c.tbl = ?%d AND c.pk = %s"
                        " WHERE %s",
                        t->name, w->n_vals + 2, pk, w->cond);
  }
  for (int k = 0; k < t->n_pk; k++)
    sqlite3_str_appendf(s, " AND \"%w\".\"%w\" IS NOT NULL", t->name, t->cols[t->pk[k]].name);
  if (after) {
    sqlite3_str_appendall(s, " AND (");
    for (int k = 0; k < t->n_pk; k++)
      sqlite3_str_appendf(s, "%s\"%w\".\"%w\"", k ? ", " : "", t->name, t->cols[t->pk[k]].name);
    sqlite3_str_appendall(s, ") > (");
    for (int k = 0; k < t->n_pk; k++)
      sqlite3_str_appendf(s, "%ssync_val(?1 -> %Q)", k ? ", " : "", t->cols[t->pk[k]].key);
    sqlite3_str_appendall(s, ")");
  }
  sqlite3_str_appendall(s, " ORDER BY ");
  for (int k = 0; k < t->n_pk; k++)
    sqlite3_str_appendf(s, "%s\"%w\".\"%w\"", k ? ", " : "", t->name, t->cols[t->pk[k]].name);
  sqlite3_str_appendf(s, " LIMIT ?%d", w->n_vals + 3);
  if (w->sorted) {
    sqlite3_str_appendf(s,
                        ") AS _syncd_k LEFT JOIN _syncd_changes AS c ON c.tbl = ?%d AND c.pk = %s"
                        " ORDER BY ",
                        w->n_vals + 2, pk);
    for (int k = 0; k < t->n_pk; k++)
      sqlite3_str_appendf(s, "%s_syncd_k.k%d", k ? ", " : "", k);
  }
  int bad = sqlite3_str_errcode(key) != SQLITE_OK;
  sqlite3_free(sqlite3_str_finish(key));
  char *z = sqlite3_str_finish(s);
  if (bad) sqlite3_free(z), z = 0;
  return z;
}

/* The page query of w after the key after (NULL: from the first) for up to
** lim rows, into p; *n the rows read. 0, or -1 with *err. */
static int walk_query(void *conn, const void *walk, const char *after, int lim, wire_page *p,
                      int *n, char **err) {
  sqlite3 *db = conn;
  const dialect_walk *w = walk;
  char *sql = walk_sql(w, after != 0);
  sqlite3_stmt *q = 0;
  if (!sql) return *err = wire_errf("out of memory"), -1;
  int step = sqlite3_prepare_v2(db, sql, -1, &q, 0);
  sqlite3_free(sql);
  if (step == SQLITE_OK) {
    sqlite3_bind_text(q, 1, after, -1, SQLITE_STATIC);
    for (int k = 0; k < w->n_vals; k++)
      sqlite3_bind_text(q, 2 + k, w->vals[k], -1, SQLITE_STATIC);
    sqlite3_bind_text(q, w->n_vals + 2, w->t->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, w->n_vals + 3, lim);
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
      (*n)++;
      wire_page_walk(p, w->t->name, (const char *)sqlite3_column_text(q, 0),
                     (const char *)sqlite3_column_text(q, 1), sqlite3_column_int64(q, 2));
    }
  }
  if (step != SQLITE_DONE) *err = wire_errf("%s", sqlite3_errmsg(db));
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

/* _syncd_key('name1', value1, ...): the pk object of a row as the change
** log writes it (row_pk_json), so that a walk's page query can find a
** row's change by its key. It runs once a row: the texts
** go one after the other into one buffer of the connection (copied out
** by SQLite at once), renewed past KEYS_MAX, rather than one allocation
** each; the buffer goes with the connection (keys_free). */
#define KEYS_MAX 65536

static void walk_key(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  sqlite3_str **keys = sqlite3_user_data(ctx);
  if (!*keys || sqlite3_str_length(*keys) > KEYS_MAX) {
    sqlite3_free(sqlite3_str_finish(*keys));
    *keys = sqlite3_str_new(0);
  }
  sqlite3_str *out = *keys;
  int at = sqlite3_str_length(out);
  sqlite3_str_appendchar(out, 1, '{');
  for (int i = 0; i + 1 < argc; i += 2) {
    if (i) sqlite3_str_appendchar(out, 1, ',');
    value_append_string(out, (const char *)sqlite3_value_text(argv[i]), -1);
    sqlite3_str_appendchar(out, 1, ':');
    value_append_json(out, argv[i + 1]);
  }
  sqlite3_str_appendchar(out, 1, '}');
  if (sqlite3_str_errcode(out) != SQLITE_OK) {
    sqlite3_free(sqlite3_str_finish(out));
    *keys = 0;
    sqlite3_result_error_nomem(ctx);
    return;
  }
  sqlite3_result_text(ctx, sqlite3_str_value(out) + at, sqlite3_str_length(out) - at,
                      SQLITE_TRANSIENT);
}

static void keys_free(void *keys) {
  sqlite3_free(sqlite3_str_finish(*(sqlite3_str **)keys));
  sqlite3_free(keys);
}

int sqlite_walk_register(sqlite3 *db) {
  sqlite3_str **keys = sqlite3_malloc64(sizeof *keys);
  if (!keys) return SQLITE_NOMEM;
  *keys = 0;
  return sqlite3_create_function_v2(db, "_syncd_key", -1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, keys,
                                    walk_key, 0, 0, keys_free);
}
