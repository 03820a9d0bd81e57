/*
** dialect_pg.c: the PostgreSQL dialect (dialect.h), for several syncd
** processes sharing one database (--pg URL). The internal tables live in
** the connection's current schema.
**
** Ordering: a push locks its client's row first (client_last), so pushes of
** one client serialize. Its changes carry placeholder versions until its
** commit takes the one-row _syncd_state lock, gives them real versions in
** order and holds the lock to COMMIT: versions are assigned and committed
** in order, so a reader never skips a version that commits late, and
** pushes of different clients overlap until then. The _syncd_state lock is
** always a push's last lock and, holding it, a push waits for no other
** (compact_now), so it closes no lock cycle; a cycle of the data rows
** themselves (two batches writing two rows in opposite orders) fails one
** push with 40P01, which pg_conflicted reports and push.c runs again.
** Pulls read in one REPEATABLE READ snapshot (or one statement).
**
** Values: each value of a pk or data object is mapped to the text its
** column's type reads exactly, or refused (pg_values.c); the rewritten
** object goes to PostgreSQL as json text and each column is read with ->>
** and cast to its type; rows are printed by column kind (pg_sql.c).
**
** Round trips: statements are prepared once per connection (pg_conn.c); a
** mutation is one statement, its row read back from its RETURNING; no
** savepoint until a refusal needs one (pg_settle); a batch without rules
** sends the statements of all its mutations in one pipeline (pg_batch.c,
** write_batch), the first refusal sending it one at a time; BEGIN goes with the
** client's row, and the changes (pg_log.c), versions, outcomes, last id,
** NOTIFY and COMMIT in one pipeline; a pull without pending_from is one
** statement.
**
** Fan-out: each push that changed rows notifies syncd_changes, its
** payload naming the syncd that pushed (dialect_db.me); one
** listener connection per syncd (listen_pg.c) calls on_change on every
** notification.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "value.h"
#include "dialect.h"
#include "listen_pg.h"
#include "pg_batch.h"
#include "pg_conn.h"
#include "pg_fk.h"
#include "pg_log.h"
#include "pg_sql.h"
#include "pg_values.h"
#include "pg_walk.h"

#define SETUP_LOCK_KEY "7395412001"

/* ---- the database and its connections ---- */

static int pg_open(const char *target, const store_config *cfg, dialect_db **out, char **err) {
  (void)cfg;
  dialect_db *d = sqlite3_malloc64(sizeof *d);
  if (d) {
    memset(d, 0, sizeof *d);
    d->url = sqlite3_mprintf("%s", target);
    unsigned char r[8];
    sqlite3_randomness(sizeof r, r);
    for (int i = 0; i < 8; i++)
      snprintf(d->me + 2 * i, 3, "%02x", r[i]);
  }
  if (!d || !d->url) {
    sqlite3_free(d);
    *err = wire_errf("out of memory");
    return -1;
  }
  *out = d;
  return 0;
}

static PGconn *pg_session(const char *url, char **err) {
  PGconn *c = PQconnectdb(url);
  if (PQstatus(c) == CONNECTION_OK &&
      !pgc_exec_on(
          c, 0,
          "SET extra_float_digits = 1; SET bytea_output = 'hex';"
          " SET client_encoding = 'UTF8'; SET client_min_messages = warning;"
          " CREATE TEMP TABLE IF NOT EXISTS _syncd_touched(tbl text NOT NULL, r jsonb NOT NULL)",
          err))
    return c;
  sqlite3_free(*err);
  *err = wire_errf("PostgreSQL: %s", PQerrorMessage(c));
  PQfinish(c);
  return 0;
}

static void pg_disconnect(dialect_conn *c) {
  PQfinish(c->pg);
  for (int i = 0; i < c->n_stmts; i++)
    sqlite3_free(c->stmts[i]);
  sqlite3_free(c->refs);
  sqlite3_free(c->log);
  pgc_written_clear(c);
  sqlite3_finalize(c->probe);
  sqlite3_close(c->values);
  sqlite3_free(sqlite3_str_finish(c->outcomes));
  sqlite3_free(c);
}

static dialect_conn *pg_connect(dialect_db *d, char **err) {
  dialect_conn *c = sqlite3_malloc64(sizeof *c);
  if (!c) return *err = wire_errf("out of memory"), (dialect_conn *)0;
  memset(c, 0, sizeof *c);
  c->outcomes = sqlite3_str_new(0);
  if (sqlite3_open_v2(":memory:", &c->values, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, 0) ||
      sqlite3_prepare_v2(c->values, "SELECT ?1", -1, &c->probe, 0)) {
    *err = wire_errf("%s", sqlite3_errmsg(c->values));
    pg_disconnect(c);
    return 0;
  }
  c->owner = d;
  if (!(c->pg = pg_session(d->url, err))) {
    pg_disconnect(c);
    return 0;
  }
  return c;
}

/* A broken connection, or one whose transaction cannot be ended, is
** dropped. */
static int pg_reusable(dialect_conn *c) {
  if (c->broken) return 0;
  if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) PQclear(PQexec(c->pg, "ROLLBACK"));
  sqlite3_str_reset(c->outcomes);
  c->open = c->careful = 0;
  c->log_len = c->log_mark = 0;
  pgc_written_clear(c);
  return PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

static int pg_conflicted(dialect_conn *c) {
  return c->conflict;
}

static int pg_fk_refused(dialect_conn *c) {
  return c->fk_error;
}

static int pg_listen(dialect_db *d, void (*on_change)(void *), void *arg, char **err) {
  return (d->listener = listen_pg_start(d->url, d->me, on_change, arg, err)) ? 0 : -1;
}

static void pg_close(dialect_db *d) {
  if (d->listener) listen_pg_stop(d->listener);
  sqlite3_free(d->url);
  sqlite3_free(d);
}

/* ---- transactions ---- */

/* Outcomes are recorded in one statement per batch, not one round trip per
** mutation: pg_record appends one to a JSON array, flush writes them
** (before any replay, which reads them, and at commit). */
static const char outcomes_sql[] =
    "INSERT INTO _syncd_outcomes(client_id, id, status, reason, tbl, pk)"
    " SELECT $1, x.id, x.status, x.reason, x.tbl, x.pk FROM json_to_recordset($2)"
    " AS x(id bigint, status text, reason text, tbl text, pk text)"
    " ON CONFLICT (client_id, id) DO UPDATE"
    " SET status = excluded.status, reason = excluded.reason,"
    " tbl = excluded.tbl, pk = excluded.pk";

/* Append the write of the outcomes recorded to steps (p: its two
** parameters, kept until the steps ran). */
static int flush_step(dialect_conn *c, const char **p, pgc_step *steps, int *n, char **err) {
  if (sqlite3_str_length(c->outcomes) == 0) return 0;
  sqlite3_str_appendchar(c->outcomes, 1, ']');
  if (sqlite3_str_errcode(c->outcomes) != SQLITE_OK) return *err = wire_errf("out of memory"), -1;
  p[0] = c->client;
  p[1] = sqlite3_str_value(c->outcomes);
  steps[(*n)++] = (pgc_step){outcomes_sql, 2, p, 0};
  return 0;
}

static int flush(dialect_conn *c, char **err) {
  const char *p[2];
  pgc_step step;
  int n = 0, rc = flush_step(c, p, &step, &n, err);
  if (rc == 0 && n) rc = pgc_pipeline(c, &step, n, err);
  sqlite3_str_reset(c->outcomes);
  return rc;
}

static int pg_begin(dialect_conn *c, int what, char **err) {
  const char *p[1] = {SETUP_LOCK_KEY};
  c->open = c->conflict = 0;
  c->n_logged = c->mark = c->n_refs = 0;
  c->compact = 0;
  c->purge = 0, c->n_purge = 0;
  c->log_len = c->log_mark = 0;
  c->set_last = c->notify = c->begin_pending = c->flushed = 0;
  c->user[0] = c->user[1] = 0;
  pgc_written_clear(c);
  sqlite3_str_reset(c->outcomes);
  /* setup: several syncd may start at once */
  if (what == DIALECT_SETUP)
    return pgc_exec(c, "BEGIN", err) ||
                   pgc_command(c, "SELECT pg_advisory_xact_lock($1::bigint)", 1, p, err)
               ? -1
               : 0;
  /* sent with client_last's statement, in one round trip */
  c->begin_pending = 1;
  c->fk_end = what == DIALECT_PUSH && c->owner->deferrable_fks;
  return 0;
}

static int touched_log(dialect_conn *c, char **err);

/* Everything a commit writes goes in one pipeline: the changes, their
** versions, the purge, the outcomes, the client's last id, the NOTIFY and
** COMMIT (the rows touched besides the batch's own are read first). */
static int pg_commit(dialect_conn *c, char **err) {
  c->open = 0;
  pgc_written_clear(c);
  if (touched_log(c, err)) return -1;
  pgc_step steps[PGC_PIPELINE_MAX];
  const char *po[2], *pl[2] = {c->client, c->last_z}, *me[1] = {c->owner->me};
  pglog_commit k;
  int n = 0;
  if (pglog_commit_steps(c, &k, steps, &n, err) || flush_step(c, po, steps, &n, err))
    return pglog_commit_done(c, &k, 0, err);
  if (c->set_last)
    steps[n++] =
        (pgc_step){"UPDATE _syncd_clients SET last_id = $2 WHERE client_id = $1", 2, pl, 0};
  /* the payload names this syncd, which wakes its own streams itself */
  if (c->notify) steps[n++] = (pgc_step){"SELECT pg_notify('syncd_changes', $1)", 1, me, 0};
  steps[n++] = (pgc_step){"COMMIT", 0, 0, 0};
  int ok = pgc_pipeline(c, steps, n, err) == 0;
  sqlite3_str_reset(c->outcomes);
  c->set_last = c->notify = 0;
  if (pglog_commit_done(c, &k, ok, err)) return -1;
  c->careful = 0;
  return 0;
}

/* A savepoint costs a round trip per mutation, and almost every mutation
** is applied: a push runs without them until a mutation is refused after
** it wrote (or the refusal aborted the transaction); pg_settle then rolls
** the batch back and push.c runs it again, each mutation in a savepoint. */
static int pg_savepoint(dialect_conn *c, char **err) {
  if (c->careful && pgc_exec(c, c->open ? "RELEASE SAVEPOINT m; SAVEPOINT m" : "SAVEPOINT m", err))
    return -1;
  c->open = c->careful;
  c->mark = c->n_logged;
  c->log_mark = c->log_len;
  c->dirty = 0;
  c->fk_error = 0;
  pgc_written_clear(c);
  return 0;
}

static int pg_rollback_to(dialect_conn *c, char **err) {
  c->n_logged = c->mark;
  c->log_len = c->log_mark;
  pgc_written_clear(c);
  while (c->n_refs && c->refs[c->n_refs - 1].n > c->mark)
    c->n_refs--;
  /* without a savepoint, pg_settle let only a refusal that wrote nothing through */
  return c->open ? pgc_exec(c, "ROLLBACK TO SAVEPOINT m", err) : 0;
}

static dialect_result pg_settle(dialect_conn *c, dialect_result r, char **reason, char **err) {
  (void)reason;
  if (r != DIALECT_REJECTED || c->careful ||
      (!c->dirty && PQtransactionStatus(c->pg) == PQTRANS_INTRANS))
    return r;
  c->careful = 1;
  return pgc_exec(c, "ROLLBACK", err) ? DIALECT_FATAL : DIALECT_AGAIN;
}

/* ---- opening: schema, catalog, db id, backfill ---- */

static int pg_setup(dialect_conn *c, const char *schema_sql, char **err) {
  PGresult *r = pgc_query(c, "SELECT to_regclass('_syncd_state') IS NULL", 0, 0, err);
  if (!r) return -1;
  int fresh = PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  if (fresh && schema_sql && pgc_exec(c, schema_sql, err)) return -1;
  return pgc_exec(c, pgsql_internal_ddl, err);
}

/* Every table of the current schema with a primary key, but ours and a
** partitioned table's partitions (their rows are the partitioned table's,
** synced under its name). */
static int pg_load_catalog(dialect_conn *c, catalog *cat, char **err) {
  PGresult *r = pgc_query(
      c,
      /* a cast to "character" is one to char(1): bpchar is its unbounded name */
      "SELECT cl.relname, a.attname, CASE a.atttypid WHEN 'bpchar'::regtype THEN 'bpchar'"
      " ELSE format_type(a.atttypid, NULL) END,"
      " nullif(format_type(a.atttypid, a.atttypmod), format_type(a.atttypid, NULL)),"
      " coalesce(bt.typname, t.typname),"
      " coalesce((SELECT k.n FROM unnest(i.indkey) WITH ORDINALITY k(att, n)"
      " WHERE k.att = a.attnum), 0)"
      " FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace"
      " JOIN pg_index i ON i.indrelid = cl.oid AND i.indisprimary"
      " JOIN pg_attribute a ON a.attrelid = cl.oid AND a.attnum > 0 AND NOT a.attisdropped"
      " JOIN pg_type t ON t.oid = a.atttypid"
      " LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype"
      " WHERE n.nspname = current_schema() AND cl.relkind IN ('r', 'p') AND NOT cl.relispartition"
      " AND cl.relname NOT LIKE '\\_syncd\\_%' ORDER BY cl.relname, a.attnum",
      0, 0, err);
  if (!r) return -1;
  catalog_table *t = 0;
  int bad = 0;
  for (int i = 0; !bad && i < PQntuples(r); i++) {
    const char *name = PQgetvalue(r, i, 0);
    if (!t || strcmp(t->name, name) != 0) bad = !(t = catalog_add_table(cat, name));
    if (!bad)
      bad = catalog_add_column(t, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                               pgsql_kind(PQgetvalue(r, i, 4)), atoi(PQgetvalue(r, i, 5)));
    if (!bad && !PQgetisnull(r, i, 3))
      bad = !(t->cols[t->n_cols - 1].decl = sqlite3_mprintf("%s", PQgetvalue(r, i, 3)));
  }
  PQclear(r);
  if (bad || catalog_finish(cat, pgsql_table, err))
    return *err ? -1 : (*err = wire_errf("out of memory"), -1);
  r = pgc_query(c,
                "SELECT EXISTS (SELECT 1 FROM pg_constraint co JOIN pg_namespace n"
                " ON n.oid = co.connamespace WHERE co.contype = 'f' AND co.condeferrable"
                " AND n.nspname = current_schema())",
                0, 0, err);
  if (!r) return -1;
  c->owner->deferrable_fks = PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  /* under setup's lock, so syncd processes starting together do not race */
  sqlite3_str *sql = sqlite3_str_new(0);
  sqlite3_str_appendall(sql, pgsql_touch_function);
  for (int i = 0; !bad && i < cat->n_tables; i++)
    bad = pgsql_touch_trigger(sql, &cat->tables[i]);
  char *z = sqlite3_str_finish(sql);
  bad = bad || !z ? (*err = wire_errf("out of memory"), -1) : pgc_exec(c, z, err);
  sqlite3_free(z);
  c->owner->cat = cat;
  return bad;
}

static void pg_use_catalog(dialect_db *d, const catalog *cat) {
  d->cat = cat;
  __atomic_add_fetch(&d->schema_gen, 1, __ATOMIC_RELEASE);
}

/* The tables load_catalog reads, each with its name (a rename keeps the
** oid), a digest of its columns (names and types: what is added, dropped,
** renamed or retyped) and whether it has a primary key: one small read of
** the system catalogs, which is fresh in any transaction. */
static int pg_schema_stamp(dialect_conn *c, char **stamp, char **err) {
  PGresult *r = pgc_query(
      c,
      "SELECT coalesce(string_agg(format('%s:%s:%s:%s', cl.oid, md5(cl.relname),"
      " (SELECT md5(string_agg(format('%s %s %s', a.attname, a.atttypid, a.atttypmod), ','"
      " ORDER BY a.attnum)) FROM pg_attribute a WHERE a.attrelid = cl.oid AND a.attnum > 0"
      " AND NOT a.attisdropped),"
      " EXISTS(SELECT 1 FROM pg_index i WHERE i.indrelid = cl.oid AND i.indisprimary)),"
      " ',' ORDER BY cl.oid), '')"
      " FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace"
      " WHERE n.nspname = current_schema() AND cl.relkind IN ('r', 'p') AND NOT cl.relispartition"
      " AND cl.relname NOT LIKE '\\_syncd\\_%'",
      0, 0, err);
  if (!r) return -1;
  *stamp = sqlite3_mprintf("%s", PQgetvalue(r, 0, 0));
  PQclear(r);
  return *stamp ? 0 : (*err = wire_errf("out of memory"), -1);
}

static int pg_read_db_id(dialect_conn *c, char *id, int size, int *found, char **err) {
  PGresult *r = pgc_query(c, "SELECT db_id FROM _syncd_state", 0, 0, err);
  if (!r) return -1;
  *found = PQntuples(r) == 1;
  if (*found) snprintf(id, size, "%s", PQgetvalue(r, 0, 0));
  PQclear(r);
  return 0;
}

static int pg_write_db_id(dialect_conn *c, const char *id, char **err) {
  const char *p[1] = {id};
  return pgc_command(c, "INSERT INTO _syncd_state VALUES(1, $1, 0, 0)", 1, p, err);
}

static int pg_scan(dialect_conn *c, const catalog_table *t, const char *cond, char *const *vals,
                   int n_vals, int (*each)(void *, const char *, const char *, char **), void *arg,
                   char **err) {
  sqlite3_str *sql = sqlite3_str_new(0);
  /* every column then the key's, as read_sql */
  sqlite3_str_appendall(sql, "SELECT ");
  pgsql_columns(sql, t, 0);
  sqlite3_str_appendall(sql, ",");
  pgsql_columns(sql, t, 1);
  sqlite3_str_appendall(sql, " FROM ");
  pgsql_ident(sql, t->name);
  /* $1 is typed, so that PostgreSQL can prepare a statement that never reads it */
  if (cond) sqlite3_str_appendf(sql, " WHERE $1::text IS NULL AND (%s)", cond);
  char *z = sqlite3_str_finish(sql);
  const char **q = sqlite3_malloc64(sizeof *q * ((size_t)n_vals + 1));
  if (q) q[0] = 0;
  for (int k = 0; q && k < n_vals; k++)
    q[1 + k] = vals[k];
  PGresult *r = z && q ? pgc_query(c, z, cond ? n_vals + 1 : 0, q, err) : 0;
  sqlite3_free(q);
  sqlite3_free(z);
  if (!r) return *err ? -1 : (*err = wire_errf("out of memory"), -1);
  int bad = 0;
  for (int row = 0; !bad && row < PQntuples(r); row++) {
    char *rowz = pgsql_row(t, r, row, 0, 0), *pkz = pgsql_row(t, r, row, t->n_cols, 1);
    bad = !rowz || !pkz || each(arg, pkz, rowz, err);
    sqlite3_free(rowz);
    sqlite3_free(pkz);
  }
  PQclear(r);
  if (bad && !*err) *err = wire_errf("out of memory");
  return bad ? -1 : 0;
}

/* ---- rows ---- */

static dialect_result pg_read_row(dialect_conn *c, const catalog_table *t, const char *pk,
                                  char **row, char **pk_out, char **reason, char **err) {
  *row = *pk_out = 0;
  if (c->w_key && c->w_table == t && strcmp(c->w_key, pk) == 0) {
    *row = c->w_row;
    *pk_out = c->w_pk;
    c->w_row = c->w_pk = 0;
    pgc_written_clear(c);
    return DIALECT_OK;
  }
  pgc_written_clear(c);
  char *key = 0;
  dialect_result rc = pgval_rewrite(c->probe, t, pk, &key, reason, err);
  if (rc != DIALECT_OK) return rc;
  const char **p = sqlite3_malloc64(sizeof *p * (t->n_pk + 1));
  if (!p) return sqlite3_free(key), *err = wire_errf("out of memory"), DIALECT_FATAL;
  p[0] = key;
  for (int k = 0; k < t->n_pk; k++)
    p[1 + k] = t->cols[t->pk[k]].key;
  PGresult *r;
  rc = pgc_run(c, t->read_sql, 1 + t->n_pk, p, &r, reason, err);
  sqlite3_free(p);
  sqlite3_free(key);
  if (rc != DIALECT_OK) return rc;
  if (PQntuples(r) > 0) {
    *row = pgsql_row(t, r, 0, 0, 0);
    *pk_out = pgsql_row(t, r, 0, t->n_cols, 1);
    if (!*row || !*pk_out) {
      sqlite3_free(*row);
      sqlite3_free(*pk_out);
      *row = *pk_out = 0;
      *err = wire_errf("out of memory");
      rc = DIALECT_FATAL;
    }
  }
  PQclear(r);
  return rc;
}

/* Run the write of m (pgsql_write). For a delete, *del_pk gets the deleted
** row's key as stored; an insert's or update's row is kept for the read of
** the same key that follows it (pg_read_row). */
static dialect_result pg_write_row(dialect_conn *c, const catalog_table *t, const store_mutation *m,
                                   const dialect_cols *cols, int *changed, char **del_pk,
                                   char **reason, char **err) {
  char *key = 0, *data = 0;
  pgc_written_clear(c);
  dialect_result rc = pgval_rewrite(c->probe, t, m->pk, &key, reason, err);
  if (rc == DIALECT_OK && m->data) rc = pgval_rewrite(c->probe, t, m->data, &data, reason, err);
  const char **p = rc == DIALECT_OK ? sqlite3_malloc64(sizeof *p * (2 * t->n_cols + 3)) : 0;
  /* $3: the own table, for pgsql_touch_function */
  char *ownz = p ? pgsql_own(t) : 0;
  int np = 0;
  char *z = ownz ? pgsql_write(t, m->op, cols, p, &np) : 0;
  if (!z) {
    sqlite3_free(p);
    sqlite3_free(ownz);
    sqlite3_free(key);
    sqlite3_free(data);
    if (rc == DIALECT_OK) *err = wire_errf("out of memory"), rc = DIALECT_FATAL;
    return rc;
  }
  p[0] = data;
  p[1] = key;
  p[2] = ownz;
  PGresult *r = 0;
  c->dirty = 1;
  rc = pgc_run(c, z, np, p, &r, reason, err);
  sqlite3_free(z);
  sqlite3_free(ownz);
  sqlite3_free(key);
  sqlite3_free(data);
  sqlite3_free(p);
  if (rc != DIALECT_OK) return rc;
  *changed = atoi(PQcmdTuples(r)) > 0;
  if (m->op == STORE_DELETE && *changed && !(*del_pk = pgsql_row(t, r, 0, 0, 1)))
    *err = wire_errf("out of memory"), rc = DIALECT_FATAL;
  if (m->op != STORE_DELETE && *changed && PQgetvalue(r, 0, t->n_cols + t->n_pk)[0] == 't') {
    c->w_table = t;
    c->w_key = sqlite3_mprintf("%s", m->pk);
    c->w_row = pgsql_row(t, r, 0, 0, 0);
    c->w_pk = pgsql_row(t, r, 0, t->n_cols, 1);
    if (!c->w_key || !c->w_row || !c->w_pk)
      pgc_written_clear(c), *err = wire_errf("out of memory"), rc = DIALECT_FATAL;
  }
  PQclear(r);
  return rc;
}

/* Log the rows pg_temp._syncd_touched recorded (pgsql_touch_function) as
** they stand at commit, after the batch's own: each key is printed as
** pgsql_row prints it, then read back (gone: a delete). A refused
** mutation's records went with its savepoint. */
static int touched_log(dialect_conn *c, char **err) {
  const catalog *cat = c->owner->cat;
  if (!cat) return 0;
  PGresult *r = pgc_query(c,
                          "WITH d AS (DELETE FROM pg_temp._syncd_touched RETURNING tbl, r)"
                          " SELECT DISTINCT tbl, r::text FROM d",
                          0, 0, err);
  int bad = !r;
  for (int i = 0; !bad && i < PQntuples(r); i++) {
    const catalog_table *t = catalog_table_find(cat, PQgetvalue(r, i, 0));
    if (!t) continue;
    sqlite3_str *sql = sqlite3_str_new(0);
    pgsql_key_of_row(sql, t);
    char *z = sqlite3_str_finish(sql), *pk = 0, *row = 0, *canon = 0, *reason = 0;
    const char *p[1] = {PQgetvalue(r, i, 1)};
    PGresult *k = z ? pgc_query(c, z, 1, p, err) : 0;
    if (k && PQntuples(k) == 1) pk = pgsql_row(t, k, 0, 0, 1);
    bad = !pk || pg_read_row(c, t, pk, &row, &canon, &reason, err) != DIALECT_OK ||
          pglog_change(c, t->name, canon ? canon : pk, row, 0, 0, err);
    if (bad && !*err) *err = wire_errf("%s: %s", t->name, reason ? reason : "out of memory");
    if (!bad && !row) c->compact = c->owner->max_tombstones;
    PQclear(k);
    sqlite3_free(z);
    sqlite3_free(pk);
    sqlite3_free(row);
    sqlite3_free(canon);
    sqlite3_free(reason);
  }
  PQclear(r);
  return bad ? -1 : 0;
}

/* Tombstones are purged at commit, once the batch's own have versions.
** The purge holds the _syncd_state lock, which a push holding row locks
** waits for at its own commit: it skips the tombstones such a push has
** locked (it is writing them again, to be versioned above the horizon)
** rather than wait for it, so no lock cycle forms. */
static int pg_compact(dialect_conn *c, long long max_tombstones, const char *const *purge,
                      int n_purge, char **err) {
  (void)err;
  if (c->owner->max_tombstones != max_tombstones) c->owner->max_tombstones = max_tombstones;
  c->compact = max_tombstones;
  c->purge = purge, c->n_purge = n_purge;
  return 0;
}

/* Sent by commit. */
static int pg_notify(dialect_conn *c, char **err) {
  (void)err;
  c->notify = 1;
  return 0;
}

/* ---- clients ---- */

/* The client's row, created at 0 when new, stays locked to commit: pushes
** of one client serialize. */
static int pg_client_last(dialect_conn *c, const char *client, long long *last, char **err) {
  const char *p[1] = {client};
  c->client = client;
  /* after pg_begin: deferred constraints would only fail at COMMIT,
  ** failing the whole batch on every retry, so each mutation is held to
  ** them at once; or, where the schema has deferrable foreign keys, the
  ** batch's end is (pg_fk_dangling) */
  pgc_step steps[4] = {
      {"BEGIN", 0, 0, 0},
      {c->fk_end ? "SET CONSTRAINTS ALL DEFERRED" : "SET CONSTRAINTS ALL IMMEDIATE", 0, 0, 0}};
  PGresult *r = 0;
  int n = c->begin_pending ? 2 : 0;
  /* a push without a user sets nothing: the settings end with the
  ** transaction that set them */
  if (c->user[0])
    steps[n++] = (pgc_step){"SELECT set_config('syncd.sub', $1, true),"
                            " set_config('syncd.claims', $2, true)",
                            2, c->user, 0};
  steps[n++] = (pgc_step){"INSERT INTO _syncd_clients(client_id, last_id) VALUES($1, 0)"
                          " ON CONFLICT (client_id) DO UPDATE SET last_id = _syncd_clients.last_id"
                          " RETURNING last_id",
                          1, p, &r};
  c->begin_pending = 0;
  int rc = pgc_pipeline(c, steps, n, err);
  *last = rc == 0 && PQntuples(r) == 1 ? atoll(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  return rc;
}

static int pg_client_lasts(dialect_conn *c, const char *clients, long long *last, int n,
                           char **err) {
  const char *p[1] = {clients};
  PGresult *r = pgc_query(c,
                          "SELECT j.i - 1, c.last_id FROM json_array_elements_text($1::json)"
                          " WITH ORDINALITY AS j(id, i) JOIN _syncd_clients AS c"
                          " ON c.client_id = j.id",
                          1, p, err);
  if (!r) return -1;
  memset(last, 0, sizeof *last * (size_t)n);
  for (int k = 0; k < PQntuples(r); k++) {
    long long i = atoll(PQgetvalue(r, k, 0));
    if (i >= 0 && i < n) last[i] = atoll(PQgetvalue(r, k, 1));
  }
  PQclear(r);
  return 0;
}

/* Sent by client_last, in its round trip. */
static int pg_set_user(dialect_conn *c, const char *sub, const char *claims, char **err) {
  (void)err;
  c->user[0] = sub;
  c->user[1] = claims;
  return 0;
}

/* Written by commit (for the client client_last noted). */
static int pg_client_set_last(dialect_conn *c, const char *client, long long last, char **err) {
  (void)client;
  (void)err;
  snprintf(c->last_z, sizeof c->last_z, "%lld", last);
  c->set_last = 1;
  return 0;
}

static int pg_record(dialect_conn *c, const char *client, long long id, const wire_outcome *o,
                     const char *table, char **err) {
  (void)client; /* the push's, as client_last noted */
  (void)err;
  sqlite3_str *list = c->outcomes;
  sqlite3_str_appendf(
      list, "%s{\"id\":%lld,\"status\":\"%s\",\"reason\":", sqlite3_str_length(list) ? "," : "[",
      id, o->applied ? "applied" : "rejected");
  if (o->reason)
    value_append_string(list, o->reason, -1);
  else
    sqlite3_str_appendall(list, "null");
  sqlite3_str_appendall(list, ",\"tbl\":");
  value_append_string(list, table, -1);
  sqlite3_str_appendall(list, ",\"pk\":");
  value_append_string(list, o->pk, -1);
  sqlite3_str_appendchar(list, 1, '}');
  return 0;
}

static int pg_replay(dialect_conn *c, const char *client, long long id, wire_outcome *o,
                     char **err) {
  char ids[32];
  snprintf(ids, sizeof ids, "%lld", id);
  const char *p[2] = {client, ids};
  memset(o, 0, sizeof *o);
  if (flush(c, err) || pglog_flush(c, err)) return -1;
  PGresult *r = pgc_query(c,
                          "SELECT o.status, o.reason, ch.row, ch.version FROM _syncd_outcomes o"
                          " LEFT JOIN _syncd_changes ch ON ch.tbl = o.tbl AND ch.pk = o.pk"
                          " WHERE o.client_id = $1 AND o.id = $2",
                          2, p, err);
  if (!r) return -1;
  int rc = 0;
  if (PQntuples(r) > 0) {
    o->applied = strcmp(PQgetvalue(r, 0, 0), "applied") == 0;
    if (!PQgetisnull(r, 0, 1)) o->reason = sqlite3_mprintf("%s", PQgetvalue(r, 0, 1));
    if (!PQgetisnull(r, 0, 2)) o->row = sqlite3_mprintf("%s", PQgetvalue(r, 0, 2));
    if (!PQgetisnull(r, 0, 3)) o->version = atoll(PQgetvalue(r, 0, 3));
    /* changed earlier in this batch: only this transaction sees placeholders */
    if (o->version < 0 && pglog_ref_add(c, &o->version, -o->version & PLACEHOLDER_N, err)) rc = -1;
  } else {
    o->reason = wire_errf("mutation %lld is at or below this client's last processed id and its "
                          "outcome is no longer recorded",
                          id);
  }
  PQclear(r);
  return rc;
}

static int pg_prune(dialect_conn *c, const char *client, int keep, char **err) {
  char keepz[32];
  snprintf(keepz, sizeof keepz, "%d", keep);
  const char *p[2] = {client, keepz};
  /* the outcomes written so far of this batch count too */
  if (flush(c, err)) return -1;
  return pgc_command(c,
                     "DELETE FROM _syncd_outcomes WHERE client_id = $1 AND id <= (SELECT id FROM"
                     " _syncd_outcomes WHERE client_id = $1 ORDER BY id DESC LIMIT 1"
                     " OFFSET $2::bigint)",
                     2, p, err);
}

/* ---- reading ---- */

/* Append the changes of r's rows (columns tbl, pk, row, version from col
** on); a row whose version is NULL ends them (the one-statement read
** returns the state row alone when no change follows). */
static void page_changes(wire_page *p, const PGresult *r, int col) {
  for (int i = 0; i < PQntuples(r) && !PQgetisnull(r, i, col + 3); i++)
    wire_page_change(p, PQgetvalue(r, i, col), PQgetvalue(r, i, col + 1),
                     PQgetisnull(r, i, col + 2) ? 0 : PQgetvalue(r, i, col + 2),
                     atoll(PQgetvalue(r, i, col + 3)));
}

/* A page without rejected outcomes in one statement, so one snapshot and
** one round trip instead of five: every event stream pulls like this each
** time a push wakes it, and 200 streams made PostgreSQL the bottleneck of
** the fan-out. Row 0 carries the state and the client's last id; the
** changes follow (none: one row of NULLs from the outer join). */
static int read_page_single(dialect_conn *c, const char *client, const char *afterz, int all,
                            const char *tables, const char *limz, wire_page *p, char **err) {
  const char *q[5] = {client, afterz, limz, all ? "true" : "false", tables};
  PGresult *r = pgc_query(
      c,
      "SELECT st.version, st.horizon, (SELECT last_id FROM _syncd_clients"
      " WHERE client_id = $1), ch.tbl, ch.pk, ch.row, ch.version"
      " FROM _syncd_state st LEFT JOIN LATERAL (SELECT tbl, pk, row, version"
      " FROM _syncd_changes WHERE version > $2::bigint AND ($4::boolean OR"
      " op = 'upsert') AND ($5::json IS NULL OR tbl IN (SELECT json_array_elements_text($5::json)))"
      " ORDER BY version LIMIT $3::bigint) ch ON true"
      " ORDER BY ch.version",
      5, q, err);
  if (!r) return -1;
  if (PQntuples(r) < 1) {
    PQclear(r);
    *err = wire_errf("no _syncd_state row");
    return -1;
  }
  p->head = atoll(PQgetvalue(r, 0, 0));
  p->horizon = atoll(PQgetvalue(r, 0, 1));
  p->last_id = PQgetisnull(r, 0, 2) ? 0 : atoll(PQgetvalue(r, 0, 2));
  page_changes(p, r, 3);
  PQclear(r);
  return 0;
}

static int pg_read_walk(dialect_conn *c, const char *client, const dialect_walk *w, int n,
                        long long pending_from, wire_page *p, char **err);

static int pg_read_page(dialect_conn *c, const char *client, long long after, int all,
                        const char *tables, const dialect_walk *w, int n, long long pending_from,
                        wire_page *p, char **err) {
  if (w) return pg_read_walk(c, client, w, n, pending_from, p, err);
  char afterz[32], limz[32], fromz[32], lastz[32];
  snprintf(afterz, sizeof afterz, "%lld", after);
  snprintf(limz, sizeof limz, "%d", p->limit + 1);
  if (!p->rejected) return read_page_single(c, client, afterz, all, tables, limz, p, err);
  PGresult *r;
  if (pgc_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err) ||
      read_page_single(c, client, afterz, all, tables, limz, p, err))
    return -1;
  snprintf(fromz, sizeof fromz, "%lld", pending_from);
  snprintf(lastz, sizeof lastz, "%lld", p->last_id);
  const char *q[3] = {client, fromz, lastz};
  if (!(r = pgc_query(
            c,
            "SELECT id, reason FROM _syncd_outcomes WHERE client_id = $1"
            " AND id >= $2::bigint AND id <= $3::bigint AND status = 'rejected' ORDER BY id",
            3, q, err)))
    return -1;
  for (int i = 0; i < PQntuples(r); i++)
    wire_page_rejected(p, atoll(PQgetvalue(r, i, 0)),
                       PQgetisnull(r, i, 1) ? 0 : PQgetvalue(r, i, 1));
  PQclear(r);
  return pgc_exec(c, "COMMIT", err);
}

/* A walk's page (read_page with w): two round trips besides the tables',
** BEGIN with the state, the rejected outcomes with COMMIT. */
static int pg_read_walk(dialect_conn *c, const char *client, const dialect_walk *w, int n,
                        long long pending_from, wire_page *p, char **err) {
  char fromz[32], lastz[32];
  const char *q[3] = {client, fromz, lastz};
  PGresult *r = 0;
  pgc_step begin[2] = {{"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, 0, 0},
                       {"SELECT version, horizon, (SELECT last_id FROM _syncd_clients"
                        " WHERE client_id = $1) FROM _syncd_state",
                        1, q, &r}};
  if (pgc_pipeline(c, begin, 2, err) || PQntuples(r) != 1) {
    if (r && !*err) *err = wire_errf("no _syncd_state row");
    PQclear(r);
    return -1;
  }
  p->head = atoll(PQgetvalue(r, 0, 0));
  p->horizon = atoll(PQgetvalue(r, 0, 1));
  p->last_id = PQgetisnull(r, 0, 2) ? 0 : atoll(PQgetvalue(r, 0, 2));
  PQclear(r);
  r = 0;
  if (pg_walk_rows(c, w, n, p, err)) return -1;
  snprintf(fromz, sizeof fromz, "%lld", pending_from);
  snprintf(lastz, sizeof lastz, "%lld", p->last_id);
  pgc_step end[2] = {{"SELECT id, reason FROM _syncd_outcomes WHERE client_id = $1"
                      " AND id >= $2::bigint AND id <= $3::bigint AND status = 'rejected'"
                      " ORDER BY id",
                      3, q, &r},
                     {"COMMIT", 0, 0, 0}};
  int skip = !p->rejected;
  if (pgc_pipeline(c, end + skip, 2 - skip, err)) {
    PQclear(r);
    return -1;
  }
  for (int i = 0; r && i < PQntuples(r); i++)
    wire_page_rejected(p, atoll(PQgetvalue(r, i, 0)),
                       PQgetisnull(r, i, 1) ? 0 : PQgetvalue(r, i, 1));
  PQclear(r);
  return 0;
}

static int pg_head(dialect_conn *c, long long *version, char **err) {
  PGresult *r = pgc_query(c, "SELECT version FROM _syncd_state", 0, 0, err);
  if (!r) return -1;
  int one = PQntuples(r) == 1;
  if (one) *version = atoll(PQgetvalue(r, 0, 0));
  PQclear(r);
  return one ? 0 : (*err = wire_errf("no _syncd_state row"), -1);
}

/* One boolean a rule's check answers (rules_store.c). */
static int pg_select_bool(dialect_conn *c, const char *sql, const char *const *vals, int n,
                          int *yes, char **err) {
  PGresult *r = pgc_query(c, sql, n, vals, err);
  if (!r) return -1;
  *yes = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  return 0;
}

static void *pg_native(dialect_conn *c) {
  return c;
}

/* A read-only snapshot around head and scan (fingerprint.c). */
static int pg_snapshot(dialect_conn *c, int end, char **err) {
  return pgc_exec(c, end ? "COMMIT" : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
}

/* No release: the next savepoint or COMMIT releases m in its round trip. */
const dialect dialect_pg = {
    .pool_max = 16,
    .fold_case = 0,
    .open = pg_open,
    .listen = pg_listen,
    .close = pg_close,
    .connect = pg_connect,
    .reusable = pg_reusable,
    .conflicted = pg_conflicted,
    .fk_refused = pg_fk_refused,
    .disconnect = pg_disconnect,
    .begin = pg_begin,
    .commit = pg_commit,
    .savepoint = pg_savepoint,
    .rollback_to = pg_rollback_to,
    .settle = pg_settle,
    .fk_dangling = pg_fk_dangling,
    .setup = pg_setup,
    .load_catalog = pg_load_catalog,
    .use_catalog = pg_use_catalog,
    .schema_stamp = pg_schema_stamp,
    .read_db_id = pg_read_db_id,
    .write_db_id = pg_write_db_id,
    .scan = pg_scan,
    .read_row = pg_read_row,
    .write_row = pg_write_row,
    .write_batch = pg_write_batch,
    .walk_rows = pg_walk_rows,
    .walk_key = pg_walk_key,
    .log_change = pglog_change,
    .compact = pg_compact,
    .notify = pg_notify,
    .client_last = pg_client_last,
    .client_lasts = pg_client_lasts,
    .set_user = pg_set_user,
    .client_set_last = pg_client_set_last,
    .record = pg_record,
    .replay = pg_replay,
    .prune = pg_prune,
    .read_page = pg_read_page,
    .head = pg_head,
    .select_bool = pg_select_bool,
    .snapshot = pg_snapshot,
    .native = pg_native,
};
