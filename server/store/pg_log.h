/*
** pg_log.h: the change log of the PostgreSQL dialect (pg_log.c), for
** dialect_pg.c. Each returns 0, or -1 with *err.
*/
#ifndef SYNCD_PG_LOG_H
#define SYNCD_PG_LOG_H

#include "pg_conn.h"

/* The low bits of a placeholder version: the change's number in its
** transaction. */
#define PLACEHOLDER_N 0xffffff

/* Have commit write the real version of change n to *version (which
** holds n's placeholder meanwhile). */
int pglog_ref_add(dialect_conn *c, long long *version, int n, char **err);

/* dialect.h's log_change: gathered, written by pglog_flush. */
int pglog_change(dialect_conn *c, const char *table, const char *pk, const char *row, int fresh,
                 long long *version, char **err);

/* Write the changes gathered (before anything reads _syncd_changes). */
int pglog_flush(dialect_conn *c, char **err);

/* What commit sends of the change log, kept until its pipeline ran. */
typedef struct pglog_commit {
  char *json, *compact;
  char n[32], lo[32], hi[32], off[32];
  const char *p_flush[1], *p_versions[3], *p_compact[1];
  PGresult *versions;
} pglog_commit;

/* Append to steps (room for 3 more; *n counts them) the write of the
** changes gathered, the versions they get (taking the _syncd_state lock to
** commit) and the purge of tombstones beyond c->compact. */
int pglog_commit_steps(dialect_conn *c, pglog_commit *k, pgc_step *steps, int *n, char **err);

/* After the pipeline (ok: it succeeded): hand out the versions; free k. */
int pglog_commit_done(dialect_conn *c, pglog_commit *k, int ok, char **err);

#endif
