/*
** fp_pg.c: the fingerprint cache on PostgreSQL storage (fp_dialect.h).
**
** Written keys are recorded by a row trigger per table, calling one
** plpgsql function with the table's name and key columns as arguments, so
** psql, COPY and every other writer fire it: it records the key as jsonb
** (the key columns of to_jsonb(OLD) and NEW), once per key. A TRUNCATE,
** which fires no row trigger, forgets the table's cache instead (a
** statement trigger on every member of a partitioned table's tree).
**
** Several syncd share the database: a cache writer locks _syncd_fp_tables
** (SHARE ROW EXCLUSIVE, which conflicts with itself) before its REPEATABLE
** READ snapshot begins (LOCK takes none), so cache writers take turns and
** each sees the last one's work. A trigger's insert of a key it finds
** recorded updates that row: a drain deleting the row either waits for the
** writer (and fails to serialize: the verify is run again) or the writer
** waits for the drain and records the key anew, so no key is lost.
*/
#include "fp_dialect.h"
#include "pg_conn.h"
#include "pg_sql.h"

#include <string.h>

static const char ddl[] =
    "CREATE TABLE IF NOT EXISTS _syncd_fp_tables(tbl text PRIMARY KEY, sig text NOT NULL);"
    "CREATE TABLE IF NOT EXISTS _syncd_fp_rows(tbl text NOT NULL, pk text NOT NULL,"
    " kh bigint NOT NULL, h bigint NOT NULL, PRIMARY KEY (tbl, pk));"
    "CREATE INDEX IF NOT EXISTS _syncd_fp_rows_kh ON _syncd_fp_rows(tbl, kh) INCLUDE (h, pk);"
    "CREATE TABLE IF NOT EXISTS _syncd_fp_buckets(tbl text NOT NULL, b int NOT NULL,"
    " n bigint NOT NULL, s bigint NOT NULL, PRIMARY KEY (tbl, b));"
    "CREATE TABLE IF NOT EXISTS _syncd_fp_dirty(tbl text NOT NULL, k jsonb NOT NULL,"
    " PRIMARY KEY (tbl, k));"
    /* search_path pinned: a writer with another one still records here */
    "CREATE OR REPLACE FUNCTION _syncd_fp_mark() RETURNS trigger LANGUAGE plpgsql"
    " SET search_path FROM CURRENT AS $f$"
    " DECLARE r jsonb; o jsonb; n jsonb;"
    " BEGIN"
    " IF TG_OP = 'TRUNCATE' THEN"
    " DELETE FROM _syncd_fp_tables WHERE tbl = TG_ARGV[0]; RETURN NULL; END IF;"
    " IF TG_OP <> 'INSERT' THEN r := to_jsonb(OLD); o := '{}';"
    " FOR i IN 1 .. TG_NARGS - 1 LOOP"
    " o := o || jsonb_build_object(TG_ARGV[i], r -> TG_ARGV[i]); END LOOP; END IF;"
    " IF TG_OP <> 'DELETE' THEN r := to_jsonb(NEW); n := '{}';"
    " FOR i IN 1 .. TG_NARGS - 1 LOOP"
    " n := n || jsonb_build_object(TG_ARGV[i], r -> TG_ARGV[i]); END LOOP; END IF;"
    " IF o IS NOT NULL AND o IS DISTINCT FROM n THEN"
    " INSERT INTO _syncd_fp_dirty VALUES (TG_ARGV[0], o)"
    " ON CONFLICT (tbl, k) DO UPDATE SET tbl = excluded.tbl; END IF;"
    " IF n IS NOT NULL THEN"
    " INSERT INTO _syncd_fp_dirty VALUES (TG_ARGV[0], n)"
    " ON CONFLICT (tbl, k) DO UPDATE SET tbl = excluded.tbl; END IF;"
    " RETURN NULL;"
    " END $f$;";

static int fp_setup(void *h, char **err) {
  return pgc_exec(h, ddl, err);
}

static int fp_begin(void *h, int mode, const catalog_table *t, char **err) {
  dialect_conn *c = h;
  c->conflict = 0;
  if (mode == FP_READ) return pgc_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
  sqlite3_str *sql = sqlite3_str_new(0);
  sqlite3_str_appendall(sql, "BEGIN ISOLATION LEVEL REPEATABLE READ;"
                             " LOCK TABLE _syncd_fp_tables IN SHARE ROW EXCLUSIVE MODE");
  if (mode == FP_BUILD) {
    sqlite3_str_appendall(sql, "; LOCK TABLE ");
    pgsql_ident(sql, t->name);
    sqlite3_str_appendall(sql, " IN SHARE ROW EXCLUSIVE MODE");
  }
  char *z = sqlite3_str_finish(sql);
  int rc = z ? pgc_exec(c, z, err) : (*err = wire_errf("out of memory"), -1);
  sqlite3_free(z);
  return rc;
}

static int fp_commit(void *h, char **err) {
  return pgc_exec(h, "COMMIT", err);
}

static int fp_query(void *h, const char *sql, int n, const char *const *params,
                    int (*each)(void *, const char *const *, char **), void *arg, char **err) {
  PGresult *r = pgc_query(h, sql, n, params, err);
  if (!r) return -1;
  const char *cols[8];
  int nc = PQnfields(r) < 8 ? PQnfields(r) : 8, bad = 0;
  for (int i = 0; each && !bad && i < PQntuples(r); i++) {
    for (int k = 0; k < nc; k++)
      cols[k] = PQgetisnull(r, i, k) ? 0 : PQgetvalue(r, i, k);
    bad = each(arg, cols, err);
  }
  PQclear(r);
  return bad ? -1 : 0;
}

static int is_true(void *arg, const char *const *cols, char **err) {
  (void)err;
  *(int *)arg = cols[0] && cols[0][0] == 't';
  return 0;
}

/* The TRUNCATE triggers go on every member of a partitioned table's tree,
** as a partition truncated by itself fires only its own; a partition
** attached since has none and one detached since still names the table,
** so the check below sees either (their rows came or went without a row
** trigger) and the cache is built again. */
static int fp_watch(void *h, const catalog_table *t, int make, int *yes, char **err) {
  dialect_conn *c = h;
  if (make) {
    sqlite3_str *sql = sqlite3_str_new(0);
    sqlite3_str_appendall(sql, "DROP TRIGGER IF EXISTS _syncd_fp ON ");
    pgsql_ident(sql, t->name);
    sqlite3_str_appendall(sql, "; CREATE TRIGGER _syncd_fp AFTER INSERT OR UPDATE OR DELETE ON ");
    pgsql_ident(sql, t->name);
    sqlite3_str_appendf(sql, " FOR EACH ROW EXECUTE FUNCTION _syncd_fp_mark(%Q", t->name);
    for (int k = 0; k < t->n_pk; k++)
      sqlite3_str_appendf(sql, ", %Q", t->cols[t->pk[k]].name);
    sqlite3_str_appendf(
        sql,
        "); DO $d$ DECLARE x regclass; n text := %Q; BEGIN"
        " FOR x IN SELECT g.tgrelid::regclass FROM pg_trigger g"
        " WHERE g.tgname = '_syncd_fp_truncate' AND g.tgargs = convert_to(n, 'UTF8') || '\\x00'"
        " LOOP EXECUTE format('DROP TRIGGER _syncd_fp_truncate ON %%s', x); END LOOP;"
        " FOR x IN SELECT format('%%I', n)::regclass UNION"
        " SELECT relid FROM pg_partition_tree(format('%%I', n)::regclass) LOOP"
        " EXECUTE format('DROP TRIGGER IF EXISTS _syncd_fp_truncate ON %%s', x);"
        " EXECUTE format('CREATE TRIGGER _syncd_fp_truncate AFTER TRUNCATE ON %%s"
        " FOR EACH STATEMENT EXECUTE FUNCTION _syncd_fp_mark(%%L)', x, n); END LOOP; END $d$",
        t->name);
    char *z = sqlite3_str_finish(sql);
    int rc = z ? pgc_exec(c, z, err) : (*err = wire_errf("out of memory"), -1);
    sqlite3_free(z);
    if (rc) return -1;
  }
  /* a trigger goes with its table: missing, the table was made again
  ** since (or someone dropped or disabled them) */
  const char *p[1] = {t->name};
  *yes = 0;
  return fp_query(
      c,
      "WITH r AS (SELECT to_regclass(format('%I', $1::text)) AS oid),"
      " m AS (SELECT oid AS relid FROM r UNION SELECT p.relid FROM r, pg_partition_tree(r.oid) p),"
      " t AS (SELECT g.tgrelid FROM pg_trigger g WHERE g.tgname = '_syncd_fp_truncate'"
      " AND g.tgenabled <> 'D' AND g.tgargs = convert_to($1::text, 'UTF8') || '\\x00'::bytea)"
      " SELECT (SELECT count(*) FROM m) = (SELECT count(*) FROM t)"
      " AND NOT EXISTS(SELECT 1 FROM m WHERE relid NOT IN (SELECT tgrelid FROM t))"
      " AND EXISTS(SELECT 1 FROM pg_trigger g, r WHERE g.tgrelid = r.oid"
      " AND g.tgname = '_syncd_fp' AND g.tgenabled <> 'D')",
      1, p, is_true, yes, err);
}

/* The keys recorded, each with the row under it now, in one statement:
** the key printed from the record as the table's own would be. */
static char *dirty_sql(const catalog_table *t) {
  sqlite3_str *sql = sqlite3_str_new(0);
  sqlite3_str_appendall(sql, "SELECT _syncd_kp.*, _syncd_rw.* FROM (SELECT DISTINCT k FROM"
                             " _syncd_fp_dirty WHERE tbl = $1) _syncd_d"
                             " CROSS JOIN LATERAL jsonb_populate_record(NULL::");
  pgsql_ident(sql, t->name);
  sqlite3_str_appendall(sql, ", _syncd_d.k) _syncd_k CROSS JOIN LATERAL (SELECT ");
  pgsql_columns(sql, t, 1);
  sqlite3_str_appendall(sql, " FROM jsonb_populate_record(NULL::");
  pgsql_ident(sql, t->name);
  sqlite3_str_appendall(sql, ", _syncd_d.k)) _syncd_kp LEFT JOIN LATERAL (SELECT ");
  pgsql_columns(sql, t, 0);
  sqlite3_str_appendchar(sql, 1, ',');
  pgsql_columns(sql, t, 1);
  sqlite3_str_appendall(sql, " FROM ");
  pgsql_ident(sql, t->name);
  for (int k = 0; k < t->n_pk; k++) {
    sqlite3_str_appendall(sql, k ? " AND " : " WHERE ");
    pgsql_ident(sql, t->cols[t->pk[k]].name);
    sqlite3_str_appendall(sql, " = _syncd_k.");
    pgsql_ident(sql, t->cols[t->pk[k]].name);
  }
  sqlite3_str_appendall(sql, ") _syncd_rw ON true");
  return sqlite3_str_finish(sql);
}

static int fp_dirty(void *h, const catalog_table *t,
                    int (*each)(void *, const char *, const char *, const char *, char **),
                    void *arg, char **err) {
  dialect_conn *c = h;
  const char *p[1] = {t->name};
  char *z = dirty_sql(t);
  PGresult *r = z ? pgc_query(c, z, 1, p, err) : 0;
  sqlite3_free(z);
  if (!r) return *err ? -1 : (*err = wire_errf("out of memory"), -1);
  int bad = 0, live = t->n_pk + t->n_cols;
  for (int i = 0; !bad && i < PQntuples(r); i++) {
    char *key = pgsql_row(t, r, i, 0, 1), *pk = 0, *row = 0;
    if (!PQgetisnull(r, i, live)) {
      row = pgsql_row(t, r, i, t->n_pk, 0);
      pk = pgsql_row(t, r, i, live, 1);
    }
    if (!key || (!PQgetisnull(r, i, live) && (!row || !pk)))
      bad = (*err = wire_errf("out of memory"), -1);
    else
      bad = each(arg, key, pk, row, err);
    sqlite3_free(key);
    sqlite3_free(pk);
    sqlite3_free(row);
  }
  PQclear(r);
  if (bad) return -1;
  return fp_query(c, "DELETE FROM _syncd_fp_dirty WHERE tbl = $1", 1, p, 0, 0, err);
}

const fp_dialect fp_pg = {
    .max_keys = 8,
    .put_rows_sql = "INSERT INTO _syncd_fp_rows(tbl, pk, kh, h) SELECT $1::text, x ->> 0,"
                    " (x ->> 1)::bigint, (x ->> 2)::bigint FROM jsonb_array_elements($2::jsonb) x",
    .put_buckets_sql = "INSERT INTO _syncd_fp_buckets(tbl, b, n, s) SELECT $1::text,"
                       " (x ->> 0)::int, (x ->> 1)::bigint, (x ->> 2)::bigint"
                       " FROM jsonb_array_elements($2::jsonb) x"
                       " ON CONFLICT (tbl, b) DO UPDATE SET n = excluded.n, s = excluded.s",
    .get_rows_sql = "SELECT pk, kh, h FROM _syncd_fp_rows WHERE tbl = $1::text"
                    " AND pk IN (SELECT jsonb_array_elements_text($2::jsonb))",
    .del_rows_sql = "DELETE FROM _syncd_fp_rows WHERE tbl = $1::text"
                    " AND pk IN (SELECT jsonb_array_elements_text($2::jsonb))",
    .in_names = "tbl IN (SELECT jsonb_array_elements_text($1::jsonb))",
    .setup = fp_setup,
    .begin = fp_begin,
    .commit = fp_commit,
    .query = fp_query,
    .watch = fp_watch,
    .dirty = fp_dirty,
};
