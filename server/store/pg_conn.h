/*
** pg_conn.h: a connection of the PostgreSQL dialect and how its statements
** run (pg_conn.c), shared by dialect_pg.c, pg_log.c and pg_fk.c only.
*/
#ifndef SYNCD_PG_CONN_H
#define SYNCD_PG_CONN_H

#include <libpq-fe.h>
#include <sqlite3.h>

#include "dialect.h"
#include "listen_pg.h"

/* Statements prepared per connection at most (the writes vary with the
** columns a mutation names); beyond, they run unprepared. */
#define STMT_CACHE_MAX 64
/* Tables per connection known to take no run of inserts in one statement;
** beyond, such a table is tried again (and refused again) at each batch. */
#define NO_SET_MAX 16

struct dialect_db {
  char *url;
  const catalog *cat;       /* the store's, once load_catalog filled it */
  long long max_tombstones; /* set by setup's compact, before other threads: for touched_log */
  listen_pg *listener;      /* NULL: no one to wake */
  char me[17];              /* this process's NOTIFY payload: its listener skips them */
  unsigned schema_gen;      /* bumped by use_catalog: a table's columns may have changed */
  int deferrable_fks;       /* the schema has a DEFERRABLE foreign key (load_catalog) */
};

struct dialect_conn {
  PGconn *pg;
  dialect_db *owner;
  int open;             /* savepoint m is open (released by the next one or COMMIT) */
  int careful;          /* this push runs each mutation in a savepoint (pg_settle) */
  int fk_end;           /* this push defers the deferrable constraints to its end */
  int dirty;            /* a write ran since the mutation began */
  int flushed;          /* changes were written before commit (for a replay) */
  int begin_pending;    /* BEGIN is to be sent with the next statement */
  int set_last, notify; /* commit writes last_z as the client's last id, NOTIFYs */
  char last_z[32];
  int broken;                  /* the connection is not to be used again (pgc_pipeline) */
  int conflict;                /* a statement since begin lost a conflict (note_failure) */
  int data_error;              /* the last failed statement's SQLSTATE was of class 22 */
  int fk_error;                /* a statement since the savepoint broke a foreign key (23503) */
  sqlite3_str *outcomes;       /* outcomes recorded but not written yet (a JSON array) */
  const char *client;          /* whose outcomes: the push's, set by client_last */
  const char *user[2];         /* set_user's sub and claims, sent by client_last */
  sqlite3 *values;             /* in-memory, for sync_val's rules on values */
  sqlite3_stmt *probe;         /* "SELECT ?1" there, for pgval_rewrite */
  char *stmts[STMT_CACHE_MAX]; /* the texts prepared on pg, as "s<index>" */
  int n_stmts;
  unsigned stmt_gen; /* the owner's schema_gen the statements were prepared under */
  /* tables whose runs of inserts go one statement each (pg_set.c's guard
  ** said so), as known under the owner's schema_gen no_set_gen */
  const catalog_table *no_set[NO_SET_MAX];
  int n_no_set;
  unsigned no_set_gen;
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
  const char *const *purge; /* the steps that go with it (dialect.h compact) */
  int n_purge;
  /* The changes logged but not written yet: JSON objects, comma-separated
  ** (log_mark: its length at the savepoint). */
  char *log;
  size_t log_len, log_cap, log_mark;
  /* The row the last insert or update wrote (w_key: its mutation's pk),
  ** for the read of that key which follows. */
  const catalog_table *w_table;
  char *w_key, *w_row, *w_pk;
};

/* Forget the row the last write kept (pg_write_row). */
void pgc_written_clear(dialect_conn *c);

/* Note a failed r on c: a lost conflict makes pg_conflicted true. */
void pgc_note_failure(dialect_conn *c, const PGresult *r);

/* Run a parameterless command (several allowed) on pg (c: whose failure to
** note, or NULL); 0 or -1 with *err. pgc_exec: on c's. */
int pgc_exec_on(PGconn *pg, dialect_conn *c, const char *sql, char **err);
int pgc_exec(dialect_conn *c, const char *sql, char **err);

/* sql with params (types NULL: inferred) as a statement prepared on c the
** first time its text runs there; its result, failed or not. */
PGresult *pgc_prepared(dialect_conn *c, const char *sql, int n, const Oid *types,
                       const char *const *params);

/* pgc_prepared with text parameters: the result, or NULL with *err unless
** it succeeded; pgc_command when the result is not read (0 or -1). */
PGresult *pgc_query(dialect_conn *c, const char *sql, int n, const char *const *params, char **err);
int pgc_command(dialect_conn *c, const char *sql, int n, const char *const *params, char **err);

/* One statement of a pipeline: params as pgc_query's; out (NULL: not
** read) gets its result. */
typedef struct pgc_step {
  const char *sql;
  int n;
  const char *const *params;
  PGresult **out;
} pgc_step;

/* Run steps in order in one round trip (libpq's pipeline mode), each
** prepared as pgc_prepared would; 0, or -1 with *err from the first that
** failed (the later ones do not run). */
#define PGC_PIPELINE_MAX 8
int pgc_pipeline(dialect_conn *c, const pgc_step *steps, int n, char **err);

/* A pipeline of any length, for a batch's row statements (pg_batch.c):
** pgc_batch_begin, then pgc_batch_send each statement (every parameter
** text, prepared on first use as pgc_run's; *prep: a prepare went with
** it), pgc_batch_sync, then pgc_batch_result for each statement sent, in
** order (the caller clears it; *bad when its prepare failed: the answer
** is the prepare's), and
** pgc_batch_end. 0, or -1 when the pipeline failed (c is then broken;
** *err). */
int pgc_batch_begin(dialect_conn *c, char **err);
int pgc_batch_send(dialect_conn *c, const char *sql, int n, const char *const *params, int *prep,
                   char **err);
int pgc_batch_sync(dialect_conn *c, char **err);
PGresult *pgc_batch_result(dialect_conn *c, int prep, int *bad);
void pgc_batch_end(dialect_conn *c);

/* Forget every statement prepared on c (after a failed prepare, which
** left a name in the cache that PostgreSQL does not hold), outside a
** transaction. */
void pgc_forget(dialect_conn *c);

/* A row statement, every parameter text: DIALECT_OK with *out, else
** DIALECT_FATAL (*err) or DIALECT_REJECTED with the message as *reason. */
dialect_result pgc_run(dialect_conn *c, const char *sql, int n, const char *const *params,
                       PGresult **out, char **reason, char **err);

#endif
