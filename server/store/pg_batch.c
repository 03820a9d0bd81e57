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
** rows they answer; but a run of consecutive inserts into one table naming
** the same columns is one statement (pg_set.c), whose rows answer as those
** statements' would where the table lets nothing tell them apart (its
** guard). Whatever that run would do besides (a refusal after a write,
** which needs the savepoints; a row written whose key is not pk's, which
** needs a read of pk; a table the guard refuses) makes write_batch roll
** back and leave the batch to that run.
*/
#include "pg_batch.h"

#include <stdlib.h>
#include <string.h>

#include "pg_set.h"
#include "pg_sql.h"
#include "pg_values.h"

/* What the answers need of a statement sent. */
typedef struct sent_one {
  int sent; /* 0: refused before it was sent (w->reason), not reached, or
            ** in a run another's statement wrote */
  int prep; /* a prepare went before it */
  int read; /* an update naming no column to set: the read of its row */
  int run;  /* the inserts its statement wrote, this one first (pg_set.c) */
} sent_one;

/* w's key and data as pgval_rewrite rewrites them (an update naming no
** column to set reads by key alone): OK, REJECTED with w->reason, or
** FATAL. */
static dialect_result rewrite(dialect_conn *c, dialect_write *w, int read, char **key, char **data,
                              char **err) {
  dialect_result r = pgval_rewrite(c->probe, w->t, w->m->pk, key, &w->reason, err);
  if (r == DIALECT_OK && w->m->data && !read)
    r = pgval_rewrite(c->probe, w->t, w->m->data, data, &w->reason, err);
  return r;
}

/* Whether a and b name the same columns to write, in any order. */
static int same_cols(const dialect_cols *a, const dialect_cols *b) {
  if (a->n_data != b->n_data) return 0;
  for (int i = 0; i < a->n_data; i++) {
    int found = 0;
    for (int j = 0; !found && j < b->n_data; j++)
      found = a->data[i] == b->data[j];
    if (!found) return 0;
  }
  return 1;
}

/* Whether t's runs of inserts go one statement each on c. */
static int no_set(const dialect_conn *c, const catalog_table *t) {
  for (int i = 0; i < c->n_no_set; i++)
    if (c->no_set[i] == t) return 1;
  return 0;
}

/* The inserts from w[0] on that one statement of pg_set.c can write: into
** the same table, naming the same columns, none refused before. */
static int run_length(const dialect_conn *c, const dialect_write *w, int n) {
  if (w[0].m->op != STORE_INSERT || w[0].reason || no_set(c, w[0].t)) return 1;
  int k = 1;
  while (k < n && w[k].m->op == STORE_INSERT && !w[k].reason && w[k].t == w[0].t &&
         same_cols(w[k].cols, w[0].cols))
    k++;
  return k;
}

/* Send the statement of the run w[0..k) (pgset_insert): 0, or -1 with
** *err. */
static int send_run(dialect_conn *c, const dialect_write *w, int k, char *const *key,
                    char *const *data, sent_one *s, char **err) {
  const catalog_table *t = w[0].t;
  sqlite3_str *ds = sqlite3_str_new(0), *ks = sqlite3_str_new(0);
  for (int i = 0; i < k; i++) {
    sqlite3_str_appendall(ds, i ? "," : "[");
    sqlite3_str_appendall(ds, data[i] ? data[i] : "{}");
    sqlite3_str_appendall(ks, i ? "," : "[");
    sqlite3_str_appendall(ks, key[i]);
  }
  sqlite3_str_appendchar(ds, 1, ']');
  sqlite3_str_appendchar(ks, 1, ']');
  char *da = sqlite3_str_finish(ds), *ka = sqlite3_str_finish(ks);
  /* $3: the own table, for pgsql_touch_function */
  char *own = da && ka ? pgsql_own(t) : 0;
  char *z = own ? pgset_insert(t, w[0].cols) : 0;
  const char *p[3] = {da, ka, own};
  int rc = z ? pgc_batch_send(c, z, 3, p, &s->prep, err) : -1;
  s->sent = rc == 0;
  s->run = k;
  if (rc && !*err) *err = wire_errf("out of memory");
  sqlite3_free(z);
  sqlite3_free(own);
  sqlite3_free(da);
  sqlite3_free(ka);
  return rc;
}

/* Send w's statement, as pg_write_row (or, for an update naming no column
** to set, pg_read_row) builds it, out of its rewritten key and data: 0, or
** -1 with *err. */
static int send_one(dialect_conn *c, dialect_write *w, const char *key, const char *data,
                    sent_one *s, char **err) {
  const catalog_table *t = w->t;
  char *z = 0, *own = 0;
  const char **p = sqlite3_malloc64(sizeof *p * (2 * t->n_cols + 3));
  int np = 0, rc = -1;
  if (p && s->read) {
    p[0] = key;
    for (int k = 0; k < t->n_pk; k++)
      p[1 + k] = t->cols[t->pk[k]].key;
    rc = pgc_batch_send(c, t->read_sql, 1 + t->n_pk, p, &s->prep, err);
  } else if (p && (own = pgsql_own(t)) && (z = pgsql_write(t, w->m->op, w->cols, p, &np))) {
    p[0] = data;
    p[1] = key;
    p[2] = own; /* the own table, for pgsql_touch_function */
    rc = pgc_batch_send(c, z, np, p, &s->prep, err);
  }
  s->sent = rc == 0;
  s->run = 1;
  if (rc && !*err) *err = wire_errf("out of memory");
  sqlite3_free(z);
  sqlite3_free(own);
  sqlite3_free(p);
  return rc;
}

/* Rewrite every write's values, then send the statements: a run of
** inserts pg_set.c can write in one, the others one each. 0 (sent, or
** refused with w->reason), or -1 with *err. */
static int send_all(dialect_conn *c, dialect_write *w, int n, sent_one *s, char **err) {
  char **key = sqlite3_malloc64(sizeof *key * 2 * (n + 1)), **data = key ? key + n + 1 : 0;
  if (!key) return *err = wire_errf("out of memory"), -1;
  memset(key, 0, sizeof *key * 2 * (n + 1));
  int bad = 0;
  for (int i = 0; !bad && i < n; i++) {
    s[i].read = w[i].m->op == STORE_UPDATE && w[i].cols->n_set == 0;
    dialect_result r = rewrite(c, &w[i], s[i].read, &key[i], &data[i], err);
    bad = r == DIALECT_FATAL ? (*err ? -1 : (*err = wire_errf("out of memory"), -1)) : 0;
  }
  for (int i = 0, k = 1; !bad && i < n; i += k) {
    k = run_length(c, w + i, n - i);
    if (k > 1)
      bad = send_run(c, w + i, k, key + i, data + i, &s[i], err);
    else if (!w[i].reason)
      bad = send_one(c, &w[i], key[i], data[i], &s[i], err);
  }
  for (int i = 0; i < n; i++)
    sqlite3_free(key[i]), sqlite3_free(data[i]);
  sqlite3_free(key);
  return bad;
}

/* The answer r of the run w[0..k): every row written under pk's key, or
** AGAIN (one was not: pg_read_row or a refusal would have to say what it
** was; or the table took none, and its next runs go one statement each),
** or FATAL when out of memory. */
static dialect_result take_run(dialect_conn *c, dialect_write *w, int k, PGresult *r, char **err) {
  const catalog_table *t = w[0].t;
  if (PQntuples(r) != k) return DIALECT_AGAIN;
  if (PQgetvalue(r, 0, PQnfields(r) - 1)[0] != 't') {
    if (c->n_no_set < NO_SET_MAX) c->no_set[c->n_no_set++] = t;
    return DIALECT_AGAIN;
  }
  for (int i = 0; i < k; i++)
    if (PQgetisnull(r, i, t->n_cols + t->n_pk)) return DIALECT_AGAIN;
  for (int i = 0; i < k; i++) {
    w[i].changed = 1;
    w[i].row = pgsql_row(t, r, i, 0, 0);
    w[i].pk = pgsql_row(t, r, i, t->n_cols, 1);
    if (!w[i].row || !w[i].pk) return *err = wire_errf("out of memory"), DIALECT_FATAL;
  }
  return DIALECT_OK;
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
  unsigned gen = __atomic_load_n(&c->owner->schema_gen, __ATOMIC_ACQUIRE);
  if (gen != c->no_set_gen) c->no_set_gen = gen, c->n_no_set = 0;
  if (pgc_batch_begin(c, err)) return sqlite3_free(s), DIALECT_FATAL;
  int bad = send_all(c, w, n, s, err), forget = 0;
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
      rc = s[i].run > 1 ? take_run(c, &w[i], s[i].run, r, err) : take(&w[i], &s[i], r, err);
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
