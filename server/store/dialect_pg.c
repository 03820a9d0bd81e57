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
** Round trips: statements are prepared once per connection; a mutation's
** savepoint is released by the next one's "RELEASE SAVEPOINT m; SAVEPOINT
** m" (or COMMIT), outcomes are written in one statement per batch, and a
** pull without pending_from is one statement.
**
** Fan-out: each push that changed rows runs NOTIFY syncd_changes; one
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
#include "pg_sql.h"
#include "pg_values.h"

#define SETUP_LOCK_KEY "7395412001"

/* Statements prepared per connection at most (the writes vary with the
** columns a mutation names); beyond, they run unprepared. */
#define STMT_CACHE_MAX 64

struct dialect_db {
  char *url;
  const catalog *cat;       /* the store's, once load_catalog filled it */
  long long max_tombstones; /* set by setup's compact, before other threads: for touched_log */
  listen_pg *listener;      /* NULL: no one to wake */
};

struct dialect_conn {
  PGconn *pg;
  dialect_db *owner;
  int open;                    /* savepoint m is open (released by the next one or COMMIT) */
  int conflict;                /* a statement since begin lost a conflict (note_failure) */
  sqlite3_str *outcomes;       /* outcomes recorded but not written yet (a JSON array) */
  const char *client;          /* whose outcomes: the push's, set by client_last */
  sqlite3 *values;             /* in-memory, for sync_val's rules on values */
  sqlite3_stmt *probe;         /* "SELECT ?1" there, for pgval_rewrite */
  char *stmts[STMT_CACHE_MAX]; /* the texts prepared on pg, as "s<index>" */
  int n_stmts;
  /* The n-th change (from 1) logged by the open transaction holds
  ** placeholder(c, n) until commit gives it base + n. refs: the callers'
  ** versions to write then (log_change's, and a replay's that read a
  ** placeholder). mark: n_logged at the savepoint. compact: the
  ** max_tombstones to purge to at commit (0: none). Reset by begin. */
  struct version_ref {
    long long *version;
    int n;
  } * refs;
  int n_refs, cap_refs, n_logged, mark;
  long long compact;
};

/* ---- statements ---- */

/* pg_conflicted tells push.c, which runs the batch again. */
static void note_failure(dialect_conn *c, const PGresult *r) {
  if (pgsql_conflict(r)) c->conflict = 1;
}

/* Run a parameterless command (several allowed) on pg; 0 or -1 with *err. */
static int exec_on(PGconn *pg, dialect_conn *c, const char *sql, char **err) {
  PGresult *r = PQexec(pg, sql);
  ExecStatusType st = PQresultStatus(r);
  int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok) *err = wire_errf("PostgreSQL: %s", PQerrorMessage(pg));
  if (!ok && c) note_failure(c, r);
  PQclear(r);
  return ok ? 0 : -1;
}

static int exec(dialect_conn *c, const char *sql, char **err) {
  return exec_on(c->pg, c, sql, err);
}

/* Run sql with params (types NULL: inferred) as a statement prepared on c
** the first time its text runs there: PostgreSQL then parses and plans it
** once per connection, not once per call. A failed prepare is returned as
** the result, so the caller sees its error as the statement's. */
static PGresult *prepared(dialect_conn *c, const char *sql, int n, const Oid *types,
                          const char *const *params) {
  char name[16];
  int i = 0;
  while (i < c->n_stmts && strcmp(c->stmts[i], sql) != 0)
    i++;
  snprintf(name, sizeof name, "s%d", i);
  if (i == c->n_stmts && i < STMT_CACHE_MAX) {
    PGresult *r = PQprepare(c->pg, name, sql, n, types);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) return r;
    PQclear(r);
    if ((c->stmts[i] = sqlite3_mprintf("%s", sql))) c->n_stmts++;
  }
  if (i < c->n_stmts) return PQexecPrepared(c->pg, name, n, params, 0, 0, 0);
  return PQexecParams(c->pg, sql, n, types, params, 0, 0, 0);
}

/* A prepared statement with text parameters; NULL (and *err) unless the
** status is a success. */
static PGresult *query(dialect_conn *c, const char *sql, int n, const char *const *params,
                       char **err) {
  PGresult *r = prepared(c, sql, n, 0, params);
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
  *err = wire_errf("PostgreSQL: %s", PQerrorMessage(c->pg));
  note_failure(c, r);
  PQclear(r);
  return 0;
}

/* query() for a statement whose result is not read. */
static int command(dialect_conn *c, const char *sql, int n, const char *const *params, char **err) {
  PGresult *r = query(c, sql, n, params, err);
  PQclear(r);
  return r ? 0 : -1;
}

/* ---- the database and its connections ---- */

static int pg_open(const char *target, dialect_db **out, char **err) {
  dialect_db *d = sqlite3_malloc64(sizeof *d);
  if (d) {
    memset(d, 0, sizeof *d);
    d->url = sqlite3_mprintf("%s", target);
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
      !exec_on(
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
  if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) PQclear(PQexec(c->pg, "ROLLBACK"));
  sqlite3_str_reset(c->outcomes);
  c->open = 0;
  return PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

static int pg_conflicted(dialect_conn *c) {
  return c->conflict;
}

static int pg_listen(dialect_db *d, void (*on_change)(void *), void *arg, char **err) {
  return (d->listener = listen_pg_start(d->url, on_change, arg, err)) ? 0 : -1;
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
static int flush(dialect_conn *c, char **err) {
  if (sqlite3_str_length(c->outcomes) == 0) return 0;
  sqlite3_str_appendchar(c->outcomes, 1, ']');
  if (sqlite3_str_errcode(c->outcomes) != SQLITE_OK) return *err = wire_errf("out of memory"), -1;
  const char *p[2] = {c->client, sqlite3_str_value(c->outcomes)};
  int rc = command(c,
                   "INSERT INTO _syncd_outcomes(client_id, id, status, reason, tbl, pk)"
                   " SELECT $1, x.id, x.status, x.reason, x.tbl, x.pk FROM json_to_recordset($2)"
                   " AS x(id bigint, status text, reason text, tbl text, pk text)"
                   " ON CONFLICT (client_id, id) DO UPDATE"
                   " SET status = excluded.status, reason = excluded.reason,"
                   " tbl = excluded.tbl, pk = excluded.pk",
                   2, p, err);
  sqlite3_str_reset(c->outcomes);
  return rc;
}

static int pg_begin(dialect_conn *c, int what, char **err) {
  const char *p[1] = {SETUP_LOCK_KEY};
  c->open = c->conflict = 0;
  c->n_logged = c->mark = c->n_refs = 0;
  c->compact = 0;
  sqlite3_str_reset(c->outcomes);
  /* setup: several syncd may start at once. push: deferred constraints
  ** would only fail at COMMIT, failing the whole batch on every retry, so
  ** each mutation is held to them at once. */
  if (what == DIALECT_SETUP)
    return exec(c, "BEGIN", err) ||
                   command(c, "SELECT pg_advisory_xact_lock($1::bigint)", 1, p, err)
               ? -1
               : 0;
  return exec(c, "BEGIN; SET CONSTRAINTS ALL IMMEDIATE", err);
}

static int versions_assign(dialect_conn *c, char **err);
static int compact_now(dialect_conn *c, char **err);
static int touched_log(dialect_conn *c, char **err);

static int pg_commit(dialect_conn *c, char **err) {
  c->open = 0;
  if (touched_log(c, err) || versions_assign(c, err) || (c->compact && compact_now(c, err)))
    return -1;
  return flush(c, err) || exec(c, "COMMIT", err) ? -1 : 0;
}

static int pg_savepoint(dialect_conn *c, char **err) {
  if (exec(c, c->open ? "RELEASE SAVEPOINT m; SAVEPOINT m" : "SAVEPOINT m", err)) return -1;
  c->open = 1;
  c->mark = c->n_logged;
  return 0;
}

static int pg_rollback_to(dialect_conn *c, char **err) {
  c->n_logged = c->mark;
  while (c->n_refs && c->refs[c->n_refs - 1].n > c->mark)
    c->n_refs--;
  return exec(c, "ROLLBACK TO SAVEPOINT m", err);
}

/* ---- opening: schema, catalog, db id, backfill ---- */

static int pg_setup(dialect_conn *c, const char *schema_sql, char **err) {
  PGresult *r = query(c, "SELECT to_regclass('_syncd_state') IS NULL", 0, 0, err);
  if (!r) return -1;
  int fresh = PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  if (fresh && schema_sql && exec(c, schema_sql, err)) return -1;
  return exec(c, pgsql_internal_ddl, err);
}

/* Every table of the current schema with a primary key, but ours and a
** partitioned table's partitions (their rows are the partitioned table's,
** synced under its name). */
static int pg_load_catalog(dialect_conn *c, catalog *cat, char **err) {
  PGresult *r = query(
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
  /* under setup's lock, so syncd processes starting together do not race */
  sqlite3_str *sql = sqlite3_str_new(0);
  sqlite3_str_appendall(sql, pgsql_touch_function);
  for (int i = 0; i < cat->n_tables; i++)
    pgsql_touch_trigger(sql, &cat->tables[i]);
  char *z = sqlite3_str_finish(sql);
  bad = !z ? (*err = wire_errf("out of memory"), -1) : exec(c, z, err);
  sqlite3_free(z);
  c->owner->cat = cat;
  return bad;
}

static int pg_read_db_id(dialect_conn *c, char *id, int size, int *found, char **err) {
  PGresult *r = query(c, "SELECT db_id FROM _syncd_state", 0, 0, err);
  if (!r) return -1;
  *found = PQntuples(r) == 1;
  if (*found) snprintf(id, size, "%s", PQgetvalue(r, 0, 0));
  PQclear(r);
  return 0;
}

static int pg_write_db_id(dialect_conn *c, const char *id, char **err) {
  const char *p[1] = {id};
  return command(c, "INSERT INTO _syncd_state VALUES(1, $1, 0, 0)", 1, p, err);
}

static int pg_scan(dialect_conn *c, const catalog_table *t,
                   int (*each)(void *, const char *, const char *, char **), void *arg,
                   char **err) {
  sqlite3_str *sql = sqlite3_str_new(0);
  /* every column then the key's, as read_sql */
  sqlite3_str_appendall(sql, "SELECT ");
  pgsql_columns(sql, t, 0);
  sqlite3_str_appendall(sql, ",");
  pgsql_columns(sql, t, 1);
  sqlite3_str_appendall(sql, " FROM ");
  pgsql_ident(sql, t->name);
  char *z = sqlite3_str_finish(sql);
  PGresult *r = z ? query(c, z, 0, 0, err) : 0;
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

/* Run sql with params; DIALECT_OK with *out, else the failure classified:
** DIALECT_FATAL (*err) or DIALECT_REJECTED with the message as *reason. */
static dialect_result run(dialect_conn *c, const char *sql, int n, const char *const *params,
                          PGresult **out, char **reason, char **err) {
  /* All text: an insert whose data carries the key never mentions $2, and
  ** PostgreSQL cannot infer the type of an unused parameter. */
  Oid *types = sqlite3_malloc64(sizeof *types * (n + 1));
  if (!types) return *err = wire_errf("out of memory"), DIALECT_FATAL;
  for (int i = 0; i < n; i++)
    types[i] = 25; /* TEXTOID */
  PGresult *r = prepared(c, sql, n, types, params);
  sqlite3_free(types);
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    *out = r;
    return DIALECT_OK;
  }
  int fatal = pgsql_fatal(r);
  note_failure(c, r);
  const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  if (fatal)
    *err = wire_errf("PostgreSQL: %s", PQerrorMessage(c->pg));
  else
    *reason = wire_errf("%s", msg ? msg : PQerrorMessage(c->pg));
  PQclear(r);
  return fatal ? DIALECT_FATAL : DIALECT_REJECTED;
}

static dialect_result pg_read_row(dialect_conn *c, const catalog_table *t, const char *pk,
                                  char **row, char **pk_out, char **reason, char **err) {
  *row = *pk_out = 0;
  char *key = 0;
  dialect_result rc = pgval_rewrite(c->probe, t, pk, &key, reason, err);
  if (rc != DIALECT_OK) return rc;
  const char **p = sqlite3_malloc64(sizeof *p * (t->n_pk + 1));
  if (!p) return sqlite3_free(key), *err = wire_errf("out of memory"), DIALECT_FATAL;
  p[0] = key;
  for (int k = 0; k < t->n_pk; k++)
    p[1 + k] = t->cols[t->pk[k]].key;
  PGresult *r;
  rc = run(c, t->read_sql, 1 + t->n_pk, p, &r, reason, err);
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

/* Build and run the write of m: $1 = data, $2 = pk, $3.. = column names.
** For a delete, *del_pk gets the deleted row's key as stored. */
static dialect_result pg_write_row(dialect_conn *c, const catalog_table *t, const store_mutation *m,
                                   const dialect_cols *cols, int *changed, char **del_pk,
                                   char **reason, char **err) {
  char *key = 0, *data = 0;
  dialect_result rc = pgval_rewrite(c->probe, t, m->pk, &key, reason, err);
  if (rc == DIALECT_OK && m->data) rc = pgval_rewrite(c->probe, t, m->data, &data, reason, err);
  const char **p = rc == DIALECT_OK ? sqlite3_malloc64(sizeof *p * (2 * t->n_cols + 3)) : 0;
  int *used = p ? sqlite3_malloc64(sizeof *used * (t->n_cols + 1)) : 0;
  if (!p || !used) {
    sqlite3_free(p);
    sqlite3_free(key);
    sqlite3_free(data);
    if (rc == DIALECT_OK) *err = wire_errf("out of memory"), rc = DIALECT_FATAL;
    return rc;
  }
  memset(used, 0, sizeof *used * (t->n_cols + 1));
  /* $3: the own row, for pgsql_touch_function to tell from the others */
  char *ownz = pgsql_own(t, m->pk);
  p[0] = data;
  p[1] = key;
  p[2] = ownz;
  int np = 3;
  sqlite3_str *sql = sqlite3_str_new(0);
  if (m->op == STORE_INSERT) {
    /* every column present in data, plus key columns only pk carries */
    sqlite3_str *vals = sqlite3_str_new(0);
    sqlite3_str_appendall(sql, "INSERT INTO ");
    pgsql_ident(sql, t->name);
    sqlite3_str_appendall(sql, "(");
    for (int j = 0; j < cols->n_data + t->n_pk; j++) {
      int from_pk = j >= cols->n_data, i = from_pk ? t->pk[j - cols->n_data] : cols->data[j];
      if (from_pk && used[i]) continue;
      used[i] = 1;
      if (np > 3) sqlite3_str_appendchar(sql, 1, ','), sqlite3_str_appendchar(vals, 1, ',');
      pgsql_ident(sql, t->cols[i].name);
      p[np++] = t->cols[i].key;
      pgsql_value(vals, &t->cols[i], from_pk ? 2 : 1, np);
    }
    char *v = sqlite3_str_finish(vals);
    sqlite3_str_appendf(sql, ") SELECT %s FROM %s", v ? v : "", pgsql_set_own);
    sqlite3_free(v);
  } else if (m->op == STORE_UPDATE) {
    sqlite3_str_appendall(sql, "UPDATE ");
    pgsql_ident(sql, t->name);
    sqlite3_str_appendall(sql, " SET ");
    for (int j = 0; j < cols->n_set; j++) {
      const catalog_col *col = &t->cols[cols->set[j]];
      if (j) sqlite3_str_appendchar(sql, 1, ',');
      pgsql_ident(sql, col->name);
      sqlite3_str_appendall(sql, " = ");
      p[np++] = col->key;
      pgsql_value(sql, col, 1, np);
    }
    sqlite3_str_appendf(sql, " FROM %s", pgsql_set_own);
    pgsql_pk_where(sql, t, 2, np + 1);
    for (int k = 0; k < t->n_pk; k++)
      p[np++] = t->cols[t->pk[k]].key;
  } else {
    sqlite3_str_appendall(sql, "DELETE FROM ");
    pgsql_ident(sql, t->name);
    sqlite3_str_appendf(sql, " USING %s", pgsql_set_own);
    pgsql_pk_where(sql, t, 2, np + 1);
    for (int k = 0; k < t->n_pk; k++)
      p[np++] = t->cols[t->pk[k]].key;
    sqlite3_str_appendall(sql, " RETURNING ");
    pgsql_columns(sql, t, 1);
  }
  char *z = sqlite3_str_finish(sql);
  PGresult *r = 0;
  rc = z && ownz ? run(c, z, np, p, &r, reason, err) : DIALECT_FATAL;
  if (!z || !ownz) *err = wire_errf("out of memory");
  sqlite3_free(z);
  sqlite3_free(ownz);
  sqlite3_free(key);
  sqlite3_free(data);
  sqlite3_free(p);
  sqlite3_free(used);
  if (rc != DIALECT_OK) return rc;
  *changed = atoi(PQcmdTuples(r)) > 0;
  if (m->op == STORE_DELETE && *changed && !(*del_pk = pgsql_row(t, r, 0, 0, 1)))
    *err = wire_errf("out of memory"), rc = DIALECT_FATAL;
  PQclear(r);
  return rc;
}

/* ---- the change log ---- */

/* Versions are given at commit, not as changes are logged: the one-row
** _syncd_state lock that keeps versions committed in order is then held
** for the commit's two round trips, not for the rest of the batch, so
** pushes of different clients overlap. Until then a change holds a
** placeholder, negative (below every real version, and never served: the
** transaction is not committed) and unique across backends: the backend's
** pid, then the change's number in the low 24 bits. */
#define PLACEHOLDER_N 0xffffff

static long long placeholder(dialect_conn *c, int n) {
  return -((long long)PQbackendPID(c->pg) << 24 | n);
}

/* Have commit write the real version of change n to *version. */
static int version_ref_add(dialect_conn *c, long long *version, int n, char **err) {
  if (c->n_refs == c->cap_refs) {
    int cap = c->cap_refs ? 2 * c->cap_refs : 64;
    struct version_ref *more = sqlite3_realloc64(c->refs, sizeof *more * cap);
    if (!more) return *err = wire_errf("out of memory"), -1;
    c->refs = more;
    c->cap_refs = cap;
  }
  c->refs[c->n_refs++] = (struct version_ref){version, n};
  *version = placeholder(c, n);
  return 0;
}

static int pg_log_change(dialect_conn *c, const char *table, const char *pk, const char *row,
                         long long *version, char **err) {
  int n = c->n_logged + 1;
  char ph[32];
  snprintf(ph, sizeof ph, "%lld", placeholder(c, n));
  const char *p[5] = {table, pk, row ? "upsert" : "delete", row, ph};
  if (command(c,
              "INSERT INTO _syncd_changes(tbl, pk, op, row, version)"
              " VALUES($1, $2, $3, $4, $5::bigint) ON CONFLICT (tbl, pk) DO UPDATE"
              " SET op = excluded.op, row = excluded.row, version = excluded.version",
              5, p, err))
    return -1;
  c->n_logged = n;
  return version ? version_ref_add(c, version, n, err) : 0;
}

/* Give the changes logged real versions, in the order they were logged
** (a row changed twice keeps the later one), taking the _syncd_state lock
** to commit. */
static int versions_assign(dialect_conn *c, char **err) {
  if (c->n_logged == 0) return 0;
  /* the range holds this backend's placeholders only, and none is ever
  ** committed: what it holds is this transaction's (16777215: PLACEHOLDER_N) */
  char n[32], lo[32], hi[32];
  snprintf(n, sizeof n, "%d", c->n_logged);
  snprintf(lo, sizeof lo, "%lld", placeholder(c, c->n_logged));
  snprintf(hi, sizeof hi, "%lld", placeholder(c, 1));
  const char *p[3] = {n, lo, hi};
  PGresult *r = query(c,
                      "WITH v AS (UPDATE _syncd_state SET version = version + $1::bigint"
                      " RETURNING version - $1::bigint AS base),"
                      " u AS (UPDATE _syncd_changes ch SET version = v.base + (-ch.version & "
                      "16777215) FROM v WHERE ch.version BETWEEN $2::bigint AND $3::bigint)"
                      " SELECT base FROM v",
                      3, p, err);
  if (!r) return -1;
  int one = PQntuples(r) == 1;
  long long base = one ? atoll(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  if (!one) return *err = wire_errf("no _syncd_state row"), -1;
  for (int i = 0; i < c->n_refs; i++)
    *c->refs[i].version = base + c->refs[i].n;
  c->n_logged = c->n_refs = 0;
  return 0;
}

/* Log the rows pg_temp._syncd_touched recorded (pgsql_touch_function) as
** they stand at commit, after the batch's own: each key is printed as
** pgsql_row prints it, then read back (gone: a delete). A refused
** mutation's records went with its savepoint. */
static int touched_log(dialect_conn *c, char **err) {
  const catalog *cat = c->owner->cat;
  if (!cat) return 0;
  PGresult *r = query(c,
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
    PGresult *k = z ? query(c, z, 1, p, err) : 0;
    if (k && PQntuples(k) == 1) pk = pgsql_row(t, k, 0, 0, 1);
    bad = !pk || pg_read_row(c, t, pk, &row, &canon, &reason, err) != DIALECT_OK ||
          pg_log_change(c, t->name, canon ? canon : pk, row, 0, err);
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
static int pg_compact(dialect_conn *c, long long max_tombstones, char **err) {
  (void)err;
  if (c->owner->max_tombstones != max_tombstones) c->owner->max_tombstones = max_tombstones;
  c->compact = max_tombstones;
  return 0;
}

static int compact_now(dialect_conn *c, char **err) {
  char off[32];
  snprintf(off, sizeof off, "%lld", c->compact);
  const char *p[1] = {off};
  return command(c,
                 "WITH h AS (SELECT version FROM _syncd_changes WHERE op = 'delete'"
                 " ORDER BY version DESC LIMIT 1 OFFSET $1::bigint),"
                 " d AS (DELETE FROM _syncd_changes WHERE (tbl, pk) IN (SELECT tbl, pk"
                 " FROM _syncd_changes WHERE op = 'delete' AND version <= (SELECT version FROM h)"
                 " FOR UPDATE SKIP LOCKED))"
                 " UPDATE _syncd_state SET horizon = greatest(horizon, (SELECT version FROM h))"
                 " WHERE EXISTS (SELECT 1 FROM h)",
                 1, p, err);
}

static int pg_notify(dialect_conn *c, char **err) {
  return exec(c, "NOTIFY syncd_changes", err);
}

/* ---- clients ---- */

/* The client's row, created at 0 when new, stays locked to commit: pushes
** of one client serialize. */
static int pg_client_last(dialect_conn *c, const char *client, long long *last, char **err) {
  const char *p[1] = {client};
  c->client = client;
  PGresult *r = query(c,
                      "INSERT INTO _syncd_clients(client_id, last_id) VALUES($1, 0)"
                      " ON CONFLICT (client_id) DO UPDATE SET last_id = _syncd_clients.last_id"
                      " RETURNING last_id",
                      1, p, err);
  if (!r) return -1;
  *last = PQntuples(r) == 1 ? atoll(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  return 0;
}

static int pg_client_set_last(dialect_conn *c, const char *client, long long last, char **err) {
  char lastz[32];
  snprintf(lastz, sizeof lastz, "%lld", last);
  const char *p[2] = {client, lastz};
  return command(c, "UPDATE _syncd_clients SET last_id = $2 WHERE client_id = $1", 2, p, err);
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
  if (flush(c, err)) return -1;
  PGresult *r = query(c,
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
    if (o->version < 0 && version_ref_add(c, &o->version, -o->version & PLACEHOLDER_N, err))
      rc = -1;
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
  return command(c,
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
  PGresult *r = query(
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

static int pg_read_page(dialect_conn *c, const char *client, long long after, int all,
                        const char *tables, long long pending_from, wire_page *p, char **err) {
  char afterz[32], limz[32], fromz[32], lastz[32];
  snprintf(afterz, sizeof afterz, "%lld", after);
  snprintf(limz, sizeof limz, "%d", p->limit + 1);
  if (!p->rejected) return read_page_single(c, client, afterz, all, tables, limz, p, err);
  PGresult *r;
  if (exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err) ||
      read_page_single(c, client, afterz, all, tables, limz, p, err))
    return -1;
  snprintf(fromz, sizeof fromz, "%lld", pending_from);
  snprintf(lastz, sizeof lastz, "%lld", p->last_id);
  const char *q[3] = {client, fromz, lastz};
  if (!(r = query(c,
                  "SELECT id, reason FROM _syncd_outcomes WHERE client_id = $1"
                  " AND id >= $2::bigint AND id <= $3::bigint AND status = 'rejected' ORDER BY id",
                  3, q, err)))
    return -1;
  for (int i = 0; i < PQntuples(r); i++)
    wire_page_rejected(p, atoll(PQgetvalue(r, i, 0)),
                       PQgetisnull(r, i, 1) ? 0 : PQgetvalue(r, i, 1));
  PQclear(r);
  return exec(c, "COMMIT", err);
}

static int pg_head(dialect_conn *c, long long *version, char **err) {
  PGresult *r = query(c, "SELECT version FROM _syncd_state", 0, 0, err);
  if (!r) return -1;
  int one = PQntuples(r) == 1;
  if (one) *version = atoll(PQgetvalue(r, 0, 0));
  PQclear(r);
  return one ? 0 : (*err = wire_errf("no _syncd_state row"), -1);
}

static int pg_snapshot(dialect_conn *c, int end, char **err) {
  return exec(c, end ? "COMMIT" : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
}

/* No release (the next savepoint or COMMIT releases m in its round trip) and
** no settle: a refusal never ends a PostgreSQL transaction (the savepoint
** takes it) and deferred constraints are checked at once (pg_begin). */
const dialect dialect_pg = {
    .pool_max = 16,
    .fold_case = 0,
    .open = pg_open,
    .listen = pg_listen,
    .close = pg_close,
    .connect = pg_connect,
    .reusable = pg_reusable,
    .conflicted = pg_conflicted,
    .disconnect = pg_disconnect,
    .begin = pg_begin,
    .commit = pg_commit,
    .savepoint = pg_savepoint,
    .rollback_to = pg_rollback_to,
    .setup = pg_setup,
    .load_catalog = pg_load_catalog,
    .read_db_id = pg_read_db_id,
    .write_db_id = pg_write_db_id,
    .scan = pg_scan,
    .read_row = pg_read_row,
    .write_row = pg_write_row,
    .log_change = pg_log_change,
    .compact = pg_compact,
    .notify = pg_notify,
    .client_last = pg_client_last,
    .client_set_last = pg_client_set_last,
    .record = pg_record,
    .replay = pg_replay,
    .prune = pg_prune,
    .read_page = pg_read_page,
    .head = pg_head,
    .snapshot = pg_snapshot,
};
