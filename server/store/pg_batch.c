/*
** pg_batch.c: the PostgreSQL dialect's write_batch (dialect.h, pg_batch.h):
** the row statements of a whole batch in one libpq pipeline. One mutation
** at a time, each statement waited a round trip for the one before; here
** they go as they are built and PostgreSQL runs them back to back, and
** the answers are read once all are sent.
**
** The statements are the ones pg_write_row and pg_read_row run, with the
** same parameters, in the same order, in the same transaction: what they
** do to the database is what the one-at-a-time run does, and so are the
** rows they answer. Whatever that run would do besides (a refusal after a
** write, which needs the savepoints; a row written whose key is not pk's,
** which needs a read of pk) makes write_batch roll back and leave the
** batch to that run.
*/
#include "pg_batch.h"

#include <stdlib.h>
#include <string.h>

#include "pg_sql.h"
#include "pg_values.h"

/* What the answers need of a statement sent. */
typedef struct sent_one {
  int sent; /* 0: refused before it was sent (w->reason), or not reached */
  int prep; /* a prepare went before it */
  int read; /* an update naming no column to set: the read of its row */
} sent_one;

/* Build and send w's statement, as pg_write_row (or, for an update naming
** no column to set, pg_read_row) builds it. 0 (sent, or refused with
** w->reason), or -1 with *err. */
static int send_one(dialect_conn *c, dialect_write *w, sent_one *s, char **err) {
  const catalog_table *t = w->t;
  const store_mutation *m = w->m;
  char *key = 0, *data = 0, *z = 0;
  const char **p = 0;
  int np = 0, rc = -1;
  s->read = m->op == STORE_UPDATE && w->cols->n_set == 0;
  dialect_result r = pgval_rewrite(c->probe, t, m->pk, &key, &w->reason, err);
  if (r == DIALECT_OK && m->data && !s->read)
    r = pgval_rewrite(c->probe, t, m->data, &data, &w->reason, err);
  if (r == DIALECT_REJECTED) {
    rc = 0;
  } else if (r == DIALECT_OK && s->read) {
    if ((p = sqlite3_malloc64(sizeof *p * (t->n_pk + 1)))) {
      p[0] = key;
      for (int k = 0; k < t->n_pk; k++)
        p[1 + k] = t->cols[t->pk[k]].key;
      rc = pgc_batch_send(c, t->read_sql, 1 + t->n_pk, p, &s->prep, err);
      s->sent = rc == 0;
    }
  } else if (r == DIALECT_OK) {
    p = sqlite3_malloc64(sizeof *p * (2 * t->n_cols + 3));
    z = p ? pgsql_write(t, m->op, w->cols, p, &np) : 0;
    if (z) {
      p[0] = data;
      p[1] = key;
      p[2] = t->name; /* the own table, for pgsql_touch_function */
      rc = pgc_batch_send(c, z, np, p, &s->prep, err);
      s->sent = rc == 0;
    }
  }
  if (rc && r == DIALECT_OK && !*err) *err = wire_errf("out of memory");
  sqlite3_free(z);
  sqlite3_free(p);
  sqlite3_free(key);
  sqlite3_free(data);
  return rc;
}

/* w's answer r, read as pg_write_row and pg_read_row read theirs: OK, or
** AGAIN when the row written is not the one pk names (pg_read_row would
** have to read it), or FATAL when out of memory. */
static dialect_result take(dialect_write *w, const sent_one *s, PGresult *r, char **err) {
  const catalog_table *t = w->t;
  if (s->read) {
    if (PQntuples(r) > 0) {
      w->row = pgsql_row(t, r, 0, 0, 0);
      w->pk = pgsql_row(t, r, 0, t->n_cols, 1);
    }
  } else {
    w->changed = atoi(PQcmdTuples(r)) > 0;
    if (w->m->op == STORE_DELETE && w->changed) {
      w->pk = pgsql_row(t, r, 0, 0, 1);
    } else if (w->changed) {
      if (PQgetvalue(r, 0, t->n_cols + t->n_pk)[0] != 't') return DIALECT_AGAIN;
      w->row = pgsql_row(t, r, 0, 0, 0);
      w->pk = pgsql_row(t, r, 0, t->n_cols, 1);
    }
  }
  int want_row = s->read ? PQntuples(r) > 0 : w->changed && w->m->op != STORE_DELETE;
  if ((want_row && (!w->row || !w->pk)) || (w->changed && !w->pk))
    return *err = wire_errf("out of memory"), DIALECT_FATAL;
  return DIALECT_OK;
}

dialect_result pg_write_batch(dialect_conn *c, dialect_write *w, int n, char **err) {
  sent_one *s = sqlite3_malloc64(sizeof *s * (n + 1));
  if (!s) return *err = wire_errf("out of memory"), DIALECT_FATAL;
  memset(s, 0, sizeof *s * (n + 1));
  pgc_written_clear(c);
  if (pgc_batch_begin(c, err)) return sqlite3_free(s), DIALECT_FATAL;
  int bad = 0, forget = 0;
  for (int i = 0; !bad && i < n; i++)
    bad = send_one(c, &w[i], &s[i], err);
  char *e = 0;
  if (!c->broken && pgc_batch_sync(c, &e)) {
    if (!bad) *err = e, e = 0;
    bad = 1;
  }
  sqlite3_free(e);
  if (c->broken) {
    /* the pipeline itself failed: the connection goes, and the batch */
    sqlite3_free(s);
    return DIALECT_FATAL;
  }
  dialect_result rc = bad ? DIALECT_FATAL : DIALECT_OK;
  /* every answer is read, the failed and skipped ones too */
  for (int i = 0; i < n; i++) {
    if (!s[i].sent) continue;
    int prep_bad = 0;
    PGresult *r = pgc_batch_result(c, s[i].prep, &prep_bad);
    forget |= prep_bad;
    ExecStatusType st = PQresultStatus(r);
    if (rc == DIALECT_OK && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      /* the first failure: the others were skipped */
      pgc_note_failure(c, r);
      if (pgsql_fatal(r)) {
        *err = wire_errf("PostgreSQL: %s", r ? PQresultErrorMessage(r) : PQerrorMessage(c->pg));
        rc = DIALECT_FATAL;
      } else {
        /* a refusal after writes: its savepoint is needed (pg_settle) */
        c->careful = 1;
        rc = DIALECT_AGAIN;
      }
    } else if (rc == DIALECT_OK) {
      rc = take(&w[i], &s[i], r, err);
    }
    PQclear(r);
  }
  pgc_batch_end(c);
  sqlite3_free(s);
  if (rc == DIALECT_OK) {
    c->dirty = 1;
    return DIALECT_OK;
  }
  /* rolled back here for AGAIN (for FATAL, push.c's reusable does) */
  if (rc == DIALECT_AGAIN && pgc_exec(c, "ROLLBACK", err)) rc = DIALECT_FATAL;
  if (forget && rc == DIALECT_AGAIN) pgc_forget(c);
  if (forget && rc != DIALECT_AGAIN) c->broken = 1;
  return rc;
}
