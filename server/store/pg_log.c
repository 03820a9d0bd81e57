/*
** pg_log.c: the change log of the PostgreSQL dialect (pg_log.h): changes
** gathered during a push and written in one statement, their versions
** given at commit, tombstones purged.
*/
#include "pg_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "value.h"

/* Versions are given at commit, not as changes are logged: the one-row
** _syncd_state lock that keeps versions committed in order is then held
** for the commit's two round trips, not for the rest of the batch, so
** pushes of different clients overlap. Until then a change holds a
** placeholder, negative (below every real version, and never served: the
** transaction is not committed) and unique across backends: the backend's
** pid, then the change's number in the low 24 bits. */
static long long placeholder(dialect_conn *c, int n) {
  return -((long long)PQbackendPID(c->pg) << 24 | n);
}

/* Have commit write the real version of change n to *version. */
int pglog_ref_add(dialect_conn *c, long long *version, int n, char **err) {
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

/* Changes are written in one statement per batch (log_flush), not one
** round trip per mutation. */
int pglog_change(dialect_conn *c, const char *table, const char *pk, const char *row, int fresh,
                 long long *version, char **err) {
  int n = c->n_logged + 1;
  sqlite3_str *e = sqlite3_str_new(0);
  sqlite3_str_appendall(e, c->log_len ? ",{\"t\":" : "{\"t\":");
  value_append_string(e, table, -1);
  sqlite3_str_appendall(e, ",\"k\":");
  value_append_string(e, pk, -1);
  sqlite3_str_appendall(e, ",\"r\":");
  if (row)
    value_append_string(e, row, -1);
  else
    sqlite3_str_appendall(e, "null");
  sqlite3_str_appendf(e, ",\"v\":%lld%s}", placeholder(c, n), fresh && row ? ",\"f\":true" : "");
  size_t len = (size_t)sqlite3_str_length(e);
  char *z = sqlite3_str_finish(e);
  if (z && c->log_len + len + 1 > c->log_cap) {
    size_t cap = 2 * (c->log_len + len + 1) + 4096;
    char *more = sqlite3_realloc64(c->log, cap);
    if (more) c->log = more, c->log_cap = cap;
  }
  if (!z || c->log_len + len + 1 > c->log_cap)
    return sqlite3_free(z), *err = wire_errf("out of memory"), -1;
  memcpy(c->log + c->log_len, z, len);
  c->log_len += len;
  sqlite3_free(z);
  c->n_logged = n;
  return version ? pglog_ref_add(c, version, n, err) : 0;
}

/* The write of the changes logged: a row changed twice keeps its later
** change (the lower placeholder), as row-by-row upserts did. Its gap
** (dialect.h): 0 for a fresh insert whose key has no log row (every row
** is logged, so it never existed, whatever else this batch did to it);
** the version of a committed delete it replaces (a placeholder's is this
** transaction's, so the key may have existed before it); else NULL. */
#define FLUSH_INTO                                                                                 \
  "INSERT INTO _syncd_changes(tbl, pk, op, row, version, gap)"                                     \
  " SELECT DISTINCT ON (x.t, x.k) x.t, x.k, CASE WHEN x.r IS NULL"                                 \
  " THEN 'delete' ELSE 'upsert' END, x.r, "
#define FLUSH_FROM                                                                                 \
  ", CASE WHEN x.f THEN 0 END"                                                                     \
  " FROM json_to_recordset($1::json) AS x(t text, k text, r text, v bigint, f boolean)"
#define FLUSH_CONFLICT                                                                             \
  " ORDER BY x.t, x.k, x.v ON CONFLICT (tbl, pk) DO UPDATE"                                        \
  " SET op = excluded.op, row = excluded.row, version = excluded.version,"                         \
  " gap = CASE WHEN _syncd_changes.op = 'delete' AND excluded.op = 'upsert'"                       \
  " AND _syncd_changes.version > 0 THEN _syncd_changes.version END"
static const char flush_sql[] = FLUSH_INTO "x.v" FLUSH_FROM FLUSH_CONFLICT;

/* Give the changes logged real versions, in the order they were logged
** (a row changed twice keeps the later one), taking the _syncd_state lock
** to commit. The range holds this backend's placeholders only, and none is
** ever committed: what it holds is this transaction's (16777215:
** PLACEHOLDER_N). */
static const char versions_sql[] =
    "WITH v AS (UPDATE _syncd_state SET version = version + $1::bigint"
    " RETURNING version - $1::bigint AS base),"
    " u AS (UPDATE _syncd_changes ch SET version = v.base + (-ch.version & "
    "16777215) FROM v WHERE ch.version BETWEEN $2::bigint AND $3::bigint)"
    " SELECT base FROM v";

/* The changes gathered ($1) written at once with their versions ($2 of
** them), as versions_sql gives them, when none was written before: each
** row is written once, not written and then renumbered. */
static const char write_versioned_sql[] =
    "WITH v AS (UPDATE _syncd_state SET version = version + $2::bigint"
    " RETURNING version - $2::bigint AS base),"
    " i AS (" FLUSH_INTO "v.base + (-x.v & 16777215)" FLUSH_FROM ", v" FLUSH_CONFLICT ")"
    " SELECT base FROM v";

/* Tombstones beyond $1, purged (d: their keys, for the steps that go with
** them, c->purge), raising the horizon. */
static const char compact_head[] =
    "WITH h AS (SELECT version FROM _syncd_changes WHERE op = 'delete'"
    " ORDER BY version DESC LIMIT 1 OFFSET $1::bigint),"
    " d AS (DELETE FROM _syncd_changes WHERE (tbl, pk) IN (SELECT tbl, pk"
    " FROM _syncd_changes WHERE op = 'delete' AND version <= (SELECT version FROM h)"
    " FOR UPDATE SKIP LOCKED) RETURNING tbl, pk)";
static const char compact_tail[] =
    " UPDATE _syncd_state SET horizon = greatest(horizon, (SELECT version FROM h))"
    " WHERE EXISTS (SELECT 1 FROM h)";

static char *compact_sql(const dialect_conn *c) {
  sqlite3_str *s = sqlite3_str_new(0);
  sqlite3_str_appendall(s, compact_head);
  for (int i = 0; i < c->n_purge; i++)
    sqlite3_str_appendf(s, ", \"p%d\" AS (%s)", i, c->purge[i]);
  sqlite3_str_appendall(s, compact_tail);
  return sqlite3_str_finish(s);
}

/* Append the write of the changes gathered to steps. */
static int flush_step(dialect_conn *c, pglog_commit *k, pgc_step *steps, int *n, char **err) {
  if (c->log_len == 0) return 0;
  if (!(k->json = sqlite3_mprintf("[%.*s]", (int)c->log_len, c->log)))
    return *err = wire_errf("out of memory"), -1;
  k->p_flush[0] = k->json;
  steps[(*n)++] = (pgc_step){flush_sql, 1, k->p_flush, 0};
  c->log_len = c->log_mark = 0;
  return 0;
}

int pglog_flush(dialect_conn *c, char **err) {
  pglog_commit k = {0};
  pgc_step step;
  int n = 0, rc = flush_step(c, &k, &step, &n, err);
  if (rc == 0 && n) rc = pgc_pipeline(c, &step, n, err);
  if (n) c->flushed = 1;
  sqlite3_free(k.json);
  return rc;
}

int pglog_commit_steps(dialect_conn *c, pglog_commit *k, pgc_step *steps, int *n, char **err) {
  memset(k, 0, sizeof *k);
  snprintf(k->n, sizeof k->n, "%d", c->n_logged);
  if (c->n_logged && !c->flushed && c->log_len) {
    if (!(k->json = sqlite3_mprintf("[%.*s]", (int)c->log_len, c->log)))
      return *err = wire_errf("out of memory"), -1;
    k->p_versions[0] = k->json, k->p_versions[1] = k->n;
    steps[(*n)++] = (pgc_step){write_versioned_sql, 2, k->p_versions, &k->versions};
    c->log_len = c->log_mark = 0;
  } else {
    if (flush_step(c, k, steps, n, err)) return -1;
    if (c->n_logged) {
      snprintf(k->lo, sizeof k->lo, "%lld", placeholder(c, c->n_logged));
      snprintf(k->hi, sizeof k->hi, "%lld", placeholder(c, 1));
      k->p_versions[0] = k->n, k->p_versions[1] = k->lo, k->p_versions[2] = k->hi;
      steps[(*n)++] = (pgc_step){versions_sql, 3, k->p_versions, &k->versions};
    }
  }
  if (c->compact) {
    snprintf(k->off, sizeof k->off, "%lld", c->compact);
    k->p_compact[0] = k->off;
    if (!(k->compact = compact_sql(c))) return *err = wire_errf("out of memory"), -1;
    steps[(*n)++] = (pgc_step){k->compact, 1, k->p_compact, 0};
  }
  return 0;
}

int pglog_commit_done(dialect_conn *c, pglog_commit *k, int ok, char **err) {
  sqlite3_free(k->json);
  sqlite3_free(k->compact);
  k->json = k->compact = 0;
  PGresult *r = k->versions;
  k->versions = 0;
  if (!r) return ok ? 0 : -1;
  int one = PQntuples(r) == 1;
  long long base = one ? atoll(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  if (!ok) return -1;
  if (!one) return *err = wire_errf("no _syncd_state row"), -1;
  for (int i = 0; i < c->n_refs; i++)
    *c->refs[i].version = base + c->refs[i].n;
  c->n_logged = c->n_refs = 0;
  return 0;
}
