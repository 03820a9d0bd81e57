/*
** pg_conn.c: how the PostgreSQL dialect's statements run on a connection
** (pg_conn.h): each text prepared once per connection, failures sorted
** into a mutation's refusals and the batch's failures.
*/
#include "pg_conn.h"

#include <stdio.h>
#include <string.h>

#include "pg_sql.h"

void pgc_written_clear(dialect_conn *c) {
  sqlite3_free(c->w_key);
  sqlite3_free(c->w_row);
  sqlite3_free(c->w_pk);
  c->w_key = c->w_row = c->w_pk = 0;
  c->w_table = 0;
}

/* pg_conflicted tells push.c, which runs the batch again. */
void pgc_note_failure(dialect_conn *c, const PGresult *r) {
  if (pgsql_conflict(r)) c->conflict = 1;
  const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  c->data_error = state && strncmp(state, "22", 2) == 0;
  c->fk_error = state && strcmp(state, "23503") == 0;
}

/* The statements c prepared read tables as they were: once the catalog
** changed (a table made again with other column types keeps its name, and
** the statement's text), PostgreSQL refuses to run them, so they go. */
static void stmts_fresh(dialect_conn *c) {
  unsigned gen = __atomic_load_n(&c->owner->schema_gen, __ATOMIC_ACQUIRE);
  if (gen == c->stmt_gen) return;
  c->stmt_gen = gen;
  if (c->n_stmts) pgc_forget(c);
}

/* Run a parameterless command (several allowed) on pg; 0 or -1 with *err. */
int pgc_exec_on(PGconn *pg, dialect_conn *c, const char *sql, char **err) {
  PGresult *r = PQexec(pg, sql);
  ExecStatusType st = PQresultStatus(r);
  int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok) *err = wire_errf("PostgreSQL: %s", PQerrorMessage(pg));
  if (!ok && c) pgc_note_failure(c, r);
  PQclear(r);
  return ok ? 0 : -1;
}

int pgc_exec(dialect_conn *c, const char *sql, char **err) {
  return pgc_exec_on(c->pg, c, sql, err);
}

/* Run sql with params (types NULL: inferred) as a statement prepared on c
** the first time its text runs there: PostgreSQL then parses and plans it
** once per connection, not once per call. A failed prepare is returned as
** the result, so the caller sees its error as the statement's. */
PGresult *pgc_prepared(dialect_conn *c, const char *sql, int n, const Oid *types,
                       const char *const *params) {
  stmts_fresh(c);
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

/* The index of sql in c's cache (c->n_stmts: not there). */
static int stmt_find(const dialect_conn *c, const char *sql) {
  int i = 0;
  while (i < c->n_stmts && strcmp(c->stmts[i], sql) != 0)
    i++;
  return i;
}

/* Send step s into the pipeline, prepared first when new and the cache has
** room: its slot is taken at once (a failed prepare marks c broken, so the
** cache never names a statement that does not exist). *prep: whether a
** prepare was sent. */
static int pipe_send(dialect_conn *c, const pgc_step *s, int *prep) {
  char name[16];
  int i = stmt_find(c, s->sql);
  snprintf(name, sizeof name, "s%d", i);
  *prep = 0;
  if (i == c->n_stmts && i < STMT_CACHE_MAX && (c->stmts[i] = sqlite3_mprintf("%s", s->sql))) {
    c->n_stmts++;
    *prep = 1;
    if (!PQsendPrepare(c->pg, name, s->sql, s->n, 0)) return -1;
  }
  if (i < c->n_stmts) return PQsendQueryPrepared(c->pg, name, s->n, s->params, 0, 0, 0) ? 0 : -1;
  return PQsendQueryParams(c->pg, s->sql, s->n, 0, s->params, 0, 0, 0) ? 0 : -1;
}

/* The next command's result, and the NULL that ends it. */
static PGresult *pipe_result(PGconn *pg) {
  PGresult *r = PQgetResult(pg);
  if (r) PQclear(PQgetResult(pg));
  return r;
}

int pgc_pipeline(dialect_conn *c, const pgc_step *steps, int n, char **err) {
  stmts_fresh(c);
  int prep[PGC_PIPELINE_MAX] = {0}, bad = n > PGC_PIPELINE_MAX || !PQenterPipelineMode(c->pg);
  for (int i = 0; !bad && i < n; i++)
    bad = pipe_send(c, &steps[i], &prep[i]);
  if (bad || !PQpipelineSync(c->pg)) {
    /* a connection that cannot take a pipeline is not used again */
    c->broken = 1;
    *err = wire_errf("PostgreSQL: %s", PQerrorMessage(c->pg));
    return -1;
  }
  /* every result is read, the failed and skipped ones too, up to the sync */
  for (int i = 0; i < n; i++) {
    PGresult *r = prep[i] ? pipe_result(c->pg) : 0;
    if (r && PQresultStatus(r) != PGRES_COMMAND_OK) c->broken = 1;
    PQclear(r);
    r = pipe_result(c->pg);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && !bad) {
      bad = 1;
      *err = wire_errf("PostgreSQL: %s", r ? PQresultErrorMessage(r) : PQerrorMessage(c->pg));
      pgc_note_failure(c, r);
    }
    if (steps[i].out)
      *steps[i].out = r;
    else
      PQclear(r);
  }
  PGresult *r;
  while ((r = PQgetResult(c->pg)) && PQresultStatus(r) != PGRES_PIPELINE_SYNC)
    PQclear(r);
  PQclear(r);
  if (!PQexitPipelineMode(c->pg)) c->broken = 1;
  return bad ? -1 : 0;
}

int pgc_batch_begin(dialect_conn *c, char **err) {
  stmts_fresh(c);
  if (PQenterPipelineMode(c->pg)) return 0;
  c->broken = 1;
  *err = wire_errf("PostgreSQL: %s", PQerrorMessage(c->pg));
  return -1;
}

/* As pgc_run prepares it: every parameter text (an unused one too). libpq
** copies the parameters into its buffer, and sends when the buffer fills
** (reading what PostgreSQL answers meanwhile, so neither side blocks). */
int pgc_batch_send(dialect_conn *c, const char *sql, int n, const char *const *params, int *prep,
                   char **err) {
  Oid *types = sqlite3_malloc64(sizeof *types * (n + 1));
  if (!types) return *err = wire_errf("out of memory"), -1;
  for (int i = 0; i < n; i++)
    types[i] = 25; /* TEXTOID */
  char name[16];
  int i = stmt_find(c, sql), ok = 1;
  snprintf(name, sizeof name, "s%d", i);
  *prep = 0;
  if (i == c->n_stmts && i < STMT_CACHE_MAX && (c->stmts[i] = sqlite3_mprintf("%s", sql))) {
    c->n_stmts++;
    *prep = 1;
    ok = PQsendPrepare(c->pg, name, sql, n, types);
  }
  if (ok && i < c->n_stmts)
    ok = PQsendQueryPrepared(c->pg, name, n, params, 0, 0, 0);
  else if (ok)
    ok = PQsendQueryParams(c->pg, sql, n, types, params, 0, 0, 0);
  sqlite3_free(types);
  if (ok) return 0;
  c->broken = 1;
  *err = wire_errf("PostgreSQL: %s", PQerrorMessage(c->pg));
  return -1;
}

int pgc_batch_sync(dialect_conn *c, char **err) {
  if (PQpipelineSync(c->pg)) return 0;
  c->broken = 1;
  *err = wire_errf("PostgreSQL: %s", PQerrorMessage(c->pg));
  return -1;
}

/* A failed prepare's answer stands for its statement's (which was
** skipped), as pgc_prepared returns it. */
PGresult *pgc_batch_result(dialect_conn *c, int prep, int *bad) {
  PGresult *p = prep ? pipe_result(c->pg) : 0;
  *bad = p && PQresultStatus(p) != PGRES_COMMAND_OK;
  if (!*bad) PQclear(p);
  PGresult *r = pipe_result(c->pg);
  if (!*bad) return r;
  PQclear(r);
  return p;
}

void pgc_batch_end(dialect_conn *c) {
  PGresult *r;
  while ((r = PQgetResult(c->pg)) && PQresultStatus(r) != PGRES_PIPELINE_SYNC)
    PQclear(r);
  PQclear(r);
  if (!PQexitPipelineMode(c->pg)) c->broken = 1;
}

void pgc_forget(dialect_conn *c) {
  PGresult *r = PQexec(c->pg, "DEALLOCATE ALL");
  if (PQresultStatus(r) != PGRES_COMMAND_OK) c->broken = 1;
  PQclear(r);
  for (int i = 0; i < c->n_stmts; i++)
    sqlite3_free(c->stmts[i]);
  c->n_stmts = 0;
}

/* A prepared statement with text parameters; NULL (and *err) unless the
** status is a success. */
PGresult *pgc_query(dialect_conn *c, const char *sql, int n, const char *const *params,
                    char **err) {
  PGresult *r = pgc_prepared(c, sql, n, 0, params);
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
  *err = wire_errf("PostgreSQL: %s", PQerrorMessage(c->pg));
  pgc_note_failure(c, r);
  PQclear(r);
  return 0;
}

/* pgc_query() for a statement whose result is not read. */
int pgc_command(dialect_conn *c, const char *sql, int n, const char *const *params, char **err) {
  PGresult *r = pgc_query(c, sql, n, params, err);
  PQclear(r);
  return r ? 0 : -1;
}

/* Run sql with params; DIALECT_OK with *out, else the failure classified:
** DIALECT_FATAL (*err) or DIALECT_REJECTED with the message as *reason. */
dialect_result pgc_run(dialect_conn *c, const char *sql, int n, const char *const *params,
                       PGresult **out, char **reason, char **err) {
  /* All text: an insert whose data carries the key never mentions $2, and
  ** PostgreSQL cannot infer the type of an unused parameter. */
  Oid *types = sqlite3_malloc64(sizeof *types * (n + 1));
  if (!types) return *err = wire_errf("out of memory"), DIALECT_FATAL;
  for (int i = 0; i < n; i++)
    types[i] = 25; /* TEXTOID */
  PGresult *r = pgc_prepared(c, sql, n, types, params);
  sqlite3_free(types);
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    *out = r;
    return DIALECT_OK;
  }
  int fatal = pgsql_fatal(r);
  pgc_note_failure(c, r);
  const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  if (fatal)
    *err = wire_errf("PostgreSQL: %s", PQerrorMessage(c->pg));
  else
    *reason = wire_errf("%s", msg ? msg : PQerrorMessage(c->pg));
  PQclear(r);
  return fatal ? DIALECT_FATAL : DIALECT_REJECTED;
}
