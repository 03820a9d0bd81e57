/*
** fp_sqlite.c: the fingerprint cache on SQLite storage (fp_dialect.h).
**
** Written keys are recorded by three triggers per table (AFTER INSERT,
** UPDATE, DELETE), persistent and in plain SQL, so the sqlite3 shell or any
** other program writing the file fires them too. They record the key's
** values themselves (k0..k7, typed as stored: a key is never printed by
** SQL, whose JSON would differ from the wire's), once per key (the UNIQUE
** index; writers are serialized, so no drain can miss a key this skips).
** A REPLACE deletes the row holding a UNIQUE value without firing its
** delete triggers (unless recursive_triggers is on), so two BEFORE
** triggers (INSERT, UPDATE) record the keys of the rows each UNIQUE index
** would find. A cache writer takes BEGIN IMMEDIATE, so it sees every
** committed write and none lands until it commits.
*/
#include "fp_dialect.h"
#include "sqlite_row.h"
#include "sqlite_stmt.h"
#include "wire.h"

#include <sqlite3.h>
#include <string.h>

#define MAX_KEYS 8

static const char ddl[] =
    "CREATE TABLE IF NOT EXISTS _syncd_fp_tables(tbl TEXT PRIMARY KEY, sig TEXT NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _syncd_fp_rows(tbl TEXT NOT NULL, pk TEXT NOT NULL,"
    " kh INTEGER NOT NULL, h INTEGER NOT NULL, PRIMARY KEY(tbl, pk)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS _syncd_fp_rows_kh ON _syncd_fp_rows(tbl, kh, h);"
    "CREATE TABLE IF NOT EXISTS _syncd_fp_buckets(tbl TEXT NOT NULL, b INTEGER NOT NULL,"
    " n INTEGER NOT NULL, s INTEGER NOT NULL, PRIMARY KEY(tbl, b)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _syncd_fp_dirty(tbl TEXT NOT NULL, k0, k1, k2, k3, k4, k5, k6,"
    " k7, UNIQUE(tbl, k0, k1, k2, k3, k4, k5, k6, k7));";

static int fail(sqlite3 *db, char **err) {
  *err = wire_errf("%s", sqlite3_errmsg(db));
  return -1;
}

/* The cache runs the same few statements per key: kept prepared. */
static int get(sqlite3 *db, const char *sql, sqlite3_stmt **st, char **err) {
  return sqlite_stmt_get(db, sql, st) == SQLITE_OK ? 0 : fail(db, err);
}

static int exec(sqlite3 *db, const char *sql, char **err) {
  return sqlite3_exec(db, sql, 0, 0, 0) == SQLITE_OK ? 0 : fail(db, err);
}

static int fs_setup(void *h, char **err) {
  return exec(h, ddl, err);
}

static int fs_begin(void *h, int mode, const catalog_table *t, char **err) {
  (void)t;
  return exec(h, mode == FP_READ ? "BEGIN" : "BEGIN IMMEDIATE", err);
}

static int fs_commit(void *h, char **err) {
  return exec(h, "COMMIT", err);
}

static int fs_query(void *h, const char *sql, int n, const char *const *params,
                    int (*each)(void *, const char *const *, char **), void *arg, char **err) {
  sqlite3 *db = h;
  sqlite3_stmt *st;
  if (get(db, sql, &st, err)) return -1;
  for (int i = 0; i < n; i++)
    sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_STATIC);
  const char *cols[8];
  int nc = sqlite3_column_count(st), rc, bad = 0;
  if (nc > 8) nc = 8;
  while (!bad && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    for (int i = 0; i < nc; i++)
      cols[i] = (const char *)sqlite3_column_text(st, i);
    bad = each && each(arg, cols, err);
  }
  if (!bad && rc != SQLITE_DONE) bad = fail(db, err);
  sqlite_stmt_put(st);
  return bad ? -1 : 0;
}

/* A key already recorded is skipped by an upsert clause, not OR IGNORE: the
** triggers a foreign key's action fires (an ON DELETE SET NULL) run under
** OR ABORT, which overrides their own OR clauses, and the push's write
** failed ("UNIQUE constraint failed: _syncd_fp_dirty..."). The WHERE keeps
** the parser from reading ON as a join's. */
#define SKIP_RECORDED " ON CONFLICT DO NOTHING;"

/* Append the statement recording the key of `row` (new or old) of t;
** where: the rows of t to record (NULL: that row itself). */
static void append_record(sqlite3_str *sql, const catalog_table *t, const char *row,
                          const char *where) {
  sqlite3_str_appendf(sql, " INSERT INTO _syncd_fp_dirty SELECT %Q", t->name);
  for (int k = 0; k < MAX_KEYS; k++) {
    if (k >= t->n_pk)
      sqlite3_str_appendall(sql, ", 0");
    else if (where)
      sqlite3_str_appendf(sql, ", \"%w\"", t->cols[t->pk[k]].name);
    else
      sqlite3_str_appendf(sql, ", %s.\"%w\"", row, t->cols[t->pk[k]].name);
  }
  if (where) sqlite3_str_appendf(sql, " FROM \"%w\" WHERE %s", t->name, where);
  sqlite3_str_appendf(sql, "%s" SKIP_RECORDED, where ? "" : " WHERE true");
}

/* The condition finding the rows a new row would replace under each UNIQUE
** index of t but its key (an index on an expression is left out), or
** NULL for none: REPLACE deletes them without firing their triggers. */
static int unique_where(sqlite3 *db, const catalog_table *t, char **where, char **err) {
  sqlite3_stmt *st;
  *where = 0;
  if (get(db,
          "SELECT il.name, group_concat(format('\"%w\" COLLATE \"%w\" = new.\"%w\"', x.name,"
          " x.coll, x.name), ' AND '), min(x.cid) FROM pragma_index_list(?1) il,"
          " pragma_index_xinfo(il.name) x WHERE il.\"unique\" AND il.origin <> 'pk' AND x.key"
          " GROUP BY il.name ORDER BY il.name",
          &st, err))
    return -1;
  sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_str *out = sqlite3_str_new(0);
  int rc, n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (sqlite3_column_int(st, 2) < 0) continue;
    sqlite3_str_appendf(out, "%s(%s)", n++ ? " OR " : "", sqlite3_column_text(st, 1));
  }
  sqlite_stmt_put(st);
  char *z = sqlite3_str_finish(out);
  if (rc != SQLITE_DONE) return sqlite3_free(z), fail(db, err);
  if (n && !z) return *err = wire_errf("out of memory"), -1;
  *where = n ? z : (sqlite3_free(z), (char *)0);
  return 0;
}

/* t's triggers, each as sqlite_schema keeps its text: AFTER INSERT,
** UPDATE, DELETE record the keys written, and with UNIQUE indexes BEFORE
** INSERT and UPDATE the keys of the rows a REPLACE would delete. */
static const char *const names[] = {"i", "u", "d", "bi", "bu"};

static int trigger_sql(sqlite3 *db, const catalog_table *t, char *sql[5], char **err) {
  char *where;
  memset(sql, 0, sizeof *sql * 5);
  if (unique_where(db, t, &where, err)) return -1;
  static const char *const what[] = {"AFTER INSERT", "AFTER UPDATE", "AFTER DELETE",
                                     "BEFORE INSERT", "BEFORE UPDATE"};
  int bad = 0;
  for (int i = 0; i < (where ? 5 : 3); i++) {
    sqlite3_str *out = sqlite3_str_new(0);
    sqlite3_str_appendf(out, "CREATE TRIGGER \"_syncd_fp_%s %w\" %s ON \"%w\" BEGIN", names[i],
                        t->name, what[i], t->name);
    if (i == 0 || i == 1) append_record(out, t, "new", 0);
    if (i == 2) append_record(out, t, "old", 0);
    if (i == 1) {
      /* an update records its old key only when it moved the row */
      sqlite3_str *moved = sqlite3_str_new(0);
      for (int k = 0; k < t->n_pk; k++) {
        const char *name = t->cols[t->pk[k]].name;
        sqlite3_str_appendf(moved, "%sold.\"%w\" IS NOT new.\"%w\"", k ? " OR " : "", name, name);
      }
      char *m = sqlite3_str_finish(moved);
      sqlite3_str_appendf(out, " INSERT INTO _syncd_fp_dirty SELECT %Q", t->name);
      for (int k = 0; k < MAX_KEYS; k++) {
        if (k < t->n_pk)
          sqlite3_str_appendf(out, ", old.\"%w\"", t->cols[t->pk[k]].name);
        else
          sqlite3_str_appendall(out, ", 0");
      }
      sqlite3_str_appendf(out, " WHERE %s" SKIP_RECORDED, m ? m : "1");
      sqlite3_free(m);
    }
    if (i >= 3) append_record(out, t, 0, where);
    sqlite3_str_appendall(out, " END");
    bad |= !(sql[i] = sqlite3_str_finish(out));
  }
  sqlite3_free(where);
  if (bad) {
    for (int i = 0; i < 5; i++)
      sqlite3_free(sql[i]);
    return *err = wire_errf("out of memory"), -1;
  }
  return 0;
}

/* Drop every trigger of ours on t, also those made under another name of
** it (a table renamed keeps its triggers, which record under the old one). */
static int drop_all(sqlite3 *db, const catalog_table *t, char **err) {
  sqlite3_stmt *st;
  if (get(db,
          "SELECT group_concat(format('DROP TRIGGER main.\"%w\";', name), '') FROM sqlite_schema"
          " WHERE type = 'trigger' AND tbl_name = ?1 AND name GLOB '_syncd_fp_*'",
          &st, err))
    return -1;
  sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  const unsigned char *drops = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : 0;
  char *z = drops ? sqlite3_mprintf("%s", drops) : 0;
  sqlite_stmt_put(st);
  if (rc != SQLITE_ROW) return fail(db, err);
  if (drops && !z) return *err = wire_errf("out of memory"), -1;
  int bad = z ? exec(db, z, err) : 0;
  sqlite3_free(z);
  return bad;
}

static int fs_watch(void *h, const catalog_table *t, int make, int *yes, char **err) {
  sqlite3 *db = h;
  char *sql[5];
  if (trigger_sql(db, t, sql, err)) return -1;
  sqlite3_stmt *st = 0;
  int bad = make ? drop_all(db, t, err) : 0;
  *yes = 1;
  for (int i = 0; !bad && make && i < 5; i++)
    if (sql[i]) bad = exec(db, sql[i], err);
  /* each as it was made: a trigger goes with its table (missing, the table
  ** was made again since) and its text with the table's UNIQUE indexes */
  if (!bad)
    bad = get(db,
              "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1"
              " AND name = '_syncd_fp_' || ?2 || ' ' || ?1 AND sql IS ?3",
              &st, err);
  for (int i = 0; !bad && i < 5; i++) {
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, names[i], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, sql[i], -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    /* an absent BEFORE trigger is as wanted when there is no index */
    if (rc == SQLITE_ROW)
      *yes &= sqlite3_column_int(st, 0) == (sql[i] || i < 3);
    else
      bad = fail(db, err);
    sqlite3_reset(st);
  }
  if (st) sqlite_stmt_put(st);
  for (int i = 0; i < 5; i++)
    sqlite3_free(sql[i]);
  return bad ? -1 : 0;
}

static int fs_dirty(void *h, const catalog_table *t,
                    int (*each)(void *, const char *, const char *, const char *, char **),
                    void *arg, char **err) {
  sqlite3 *db = h;
  sqlite3_str *keys = sqlite3_str_new(0), *read = sqlite3_str_new(0);
  sqlite3_str_appendall(keys, "SELECT DISTINCT ");
  sqlite3_str_appendall(read, "SELECT ");
  for (int c = 0; c < t->n_cols; c++)
    sqlite3_str_appendf(read, "%s\"%w\"", c ? "," : "", t->cols[c].name);
  sqlite3_str_appendf(read, " FROM \"%w\"", t->name);
  for (int k = 0; k < t->n_pk; k++) {
    sqlite3_str_appendf(keys, "%sk%d", k ? "," : "", k);
    /* IS: SQLite lets a key part be NULL */
    sqlite3_str_appendf(read, "%s\"%w\" IS ?%d", k ? " AND " : " WHERE ", t->cols[t->pk[k]].name,
                        k + 1);
  }
  sqlite3_str_appendall(keys, " FROM _syncd_fp_dirty WHERE tbl = ?1");
  char *zk = sqlite3_str_finish(keys), *zr = sqlite3_str_finish(read);
  sqlite3_stmt *ks = 0, *rs = 0;
  int bad = !zk || !zr ? (*err = wire_errf("out of memory"), -1)
                       : get(db, zk, &ks, err) || get(db, zr, &rs, err);
  sqlite3_free(zk);
  sqlite3_free(zr);
  if (!bad) sqlite3_bind_text(ks, 1, t->name, -1, SQLITE_STATIC);
  int rc = SQLITE_DONE;
  while (!bad && (rc = sqlite3_step(ks)) == SQLITE_ROW) {
    for (int k = 0; k < t->n_pk; k++)
      sqlite3_bind_value(rs, k + 1, sqlite3_column_value(ks, k));
    char *key = sqlite_pk_json(t, ks, 0), *pk = 0, *row = 0;
    int rrc = sqlite3_step(rs);
    if (rrc == SQLITE_ROW) {
      row = sqlite_row_json(rs);
      pk = sqlite_pk_json(t, rs, -1);
    }
    if (rrc != SQLITE_ROW && rrc != SQLITE_DONE)
      bad = fail(db, err);
    else if (!key || (rrc == SQLITE_ROW && (!pk || !row)))
      bad = (*err = wire_errf("out of memory"), -1);
    else
      bad = each(arg, key, pk, row, err);
    sqlite3_reset(rs);
    sqlite3_free(key);
    sqlite3_free(pk);
    sqlite3_free(row);
  }
  if (!bad && rc != SQLITE_DONE) bad = fail(db, err);
  if (ks) sqlite_stmt_put(ks);
  if (rs) sqlite_stmt_put(rs);
  if (bad) return -1;
  const char *p[1] = {t->name};
  return fs_query(db, "DELETE FROM _syncd_fp_dirty WHERE tbl = $1", 1, p, 0, 0, err);
}

const fp_dialect fp_sqlite = {
    .max_keys = MAX_KEYS,
    .put_rows_sql = "INSERT INTO _syncd_fp_rows(tbl, pk, kh, h)"
                    " SELECT $1, value ->> 0, value ->> 1, value ->> 2 FROM json_each($2)",
    .put_buckets_sql =
        "INSERT INTO _syncd_fp_buckets(tbl, b, n, s)"
        " SELECT $1, value ->> 0, value ->> 1, value ->> 2 FROM json_each($2)"
        " WHERE true ON CONFLICT(tbl, b) DO UPDATE SET n = excluded.n, s = excluded.s",
    .get_rows_sql = "SELECT pk, kh, h FROM _syncd_fp_rows WHERE tbl = $1"
                    " AND pk IN (SELECT value FROM json_each($2))",
    .del_rows_sql = "DELETE FROM _syncd_fp_rows WHERE tbl = $1"
                    " AND pk IN (SELECT value FROM json_each($2))",
    .in_names = "tbl IN (SELECT value FROM json_each($1))",
    .setup = fs_setup,
    .begin = fs_begin,
    .commit = fs_commit,
    .query = fs_query,
    .watch = fs_watch,
    .dirty = fs_dirty,
};
