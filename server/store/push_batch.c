/*
** push_batch.c: a batch's mutations in one go (push_batch.h). push.c
** applies a batch one mutation at a time, each statement's answer read
** before the next is sent: on PostgreSQL a round trip per mutation, the
** time the server mostly sat idle. A dialect with write_batch takes the
** statements of all of them at once.
**
** It only serves where the answers of one go are the answers of the run
** one at a time: without rules (their checks read the row before and after
** each write), for mutations none of which is a replay, names an unknown
** table or column (a schema reload may be due) or gives the key in data in
** another text than in pk (same_key reads it back). Then each mutation
** runs the statement apply_one would, in the same order and transaction:
** a refusal of the values is known before anything is sent, as there; a
** statement that fails, an update that finds no row or a row written under
** another key than pk's are refusals (or reads) that need a savepoint or a
** statement more: the transaction is rolled back and push.c runs the batch
** again one at a time, so every outcome is the one that run gives.
*/
#include "push_batch.h"

#include <string.h>

#include "push_keys.h"

/* Whether an insert's data gives a key column in another text than pk:
** same_key's question (then it reads the row by data's key). 1, 0, or -1
** when out of memory. */
static int key_differs(const store *s, const catalog_table *t, const store_mutation *m) {
  if (m->op != STORE_INSERT || !m->data) return 0;
  jspan *v = sqlite3_malloc64(sizeof *v * 2 * t->n_cols);
  if (!v || column_values(&s->cat, t, m->pk, v) ||
      column_values(&s->cat, t, m->data, v + t->n_cols))
    return sqlite3_free(v), -1;
  int differ = 0;
  for (int k = 0; k < t->n_pk; k++) {
    jspan a = v[t->pk[k]], b = v[t->n_cols + t->pk[k]];
    if (b.z && (a.n != b.n || memcmp(a.z, b.z, a.n) != 0)) differ = 1;
  }
  sqlite3_free(v);
  return differ;
}

/* One mutation of the batch: its keys checked, its write to send. */
typedef struct one {
  const catalog_table *t;
  dialect_cols cols;
  int *buf;     /* cols' two lists and check_keys' used */
  char *reason; /* refused by check_keys: not sent */
  int w;        /* its index in the writes sent */
} one;

/* Check every mutation, as apply_one would before its statements: 1 when
** the batch can go in one, 0 when not, -1 (*err). */
static int prepare(store *s, const store_mutation *m, int n, const int *order, char *const *doomed,
                   long long last, one *x, char **err) {
  for (int k = 0; k < n; k++) {
    const store_mutation *mu = &m[order[k]];
    if (mu->id <= last || doomed[order[k]]) return 0;
    last = mu->id;
    const catalog_table *t = x[k].t = catalog_table_find(&s->cat, mu->table);
    if (!t) return 0;
    int *buf = x[k].buf = sqlite3_malloc64(sizeof *buf * 3 * (t->n_cols + 1));
    if (!buf) return *err = wire_errf("out of memory"), -1;
    x[k].cols = (dialect_cols){buf, 0, buf + t->n_cols + 1, 0};
    int *used = buf + 2 * (t->n_cols + 1), unknown = 0;
    memset(used, 0, sizeof *used * (t->n_cols + 1));
    dialect_result r = check_keys(&s->cat, t, mu, &x[k].cols, used, 0, &unknown, &x[k].reason);
    if (unknown) return 0;
    if (r == DIALECT_FATAL) return *err ? -1 : (*err = wire_errf("out of memory"), -1);
    int differ = r == DIALECT_OK ? key_differs(s, t, mu) : 0;
    if (differ < 0) return *err = wire_errf("out of memory"), -1;
    if (differ) return 0;
  }
  return 1;
}

/* m's outcome o out of its write w (sent, and not refused before), as
** apply_rows makes it; -1 (*err). */
static int outcome(store *s, dialect_conn *c, const catalog_table *t, const store_mutation *m,
                   dialect_write *w, wire_outcome *o, char **err) {
  const dialect *d = s->d;
  int read = m->op == STORE_UPDATE && w->cols->n_set == 0;
  if (read && !w->row)
    return (o->reason = wire_errf("no such row")) ? 0 : (*err = wire_errf("out of memory"), -1);
  o->applied = 1;
  o->row = m->op == STORE_DELETE ? 0 : w->row;
  o->pk = w->pk;
  w->row = w->pk = 0;
  if (!read && w->changed &&
      d->log_change(c, t->name, o->pk, o->row, m->op == STORE_INSERT, &o->version, err))
    return -1;
  return 0;
}

int push_batch(store *s, dialect_conn *c, const char *client, const store_mutation *m, int n,
               const int *order, char *const *doomed, long long *last, wire_outcome *res,
               int *n_changed, int *n_deleted, char **err) {
  const dialect *d = s->d;
  if (!d->write_batch || d->log_touched || s->rules || n < 2) return 0;
  one *x = sqlite3_malloc64(sizeof *x * n);
  dialect_write *w = sqlite3_malloc64(sizeof *w * n);
  int rc = x && w ? 0 : (*err = wire_errf("out of memory"), -1), nw = 0;
  if (x) memset(x, 0, sizeof *x * n);
  if (w) memset(w, 0, sizeof *w * n);
  if (rc == 0) rc = prepare(s, m, n, order, doomed, *last, x, err);
  for (int k = 0; rc == 1 && k < n; k++) {
    x[k].w = x[k].reason ? -1 : nw;
    if (!x[k].reason) w[nw++] = (dialect_write){x[k].t, &m[order[k]], &x[k].cols, 0, 0, 0, 0};
  }
  if (rc == 1) {
    dialect_result r = nw ? d->write_batch(c, w, nw, err) : DIALECT_OK;
    rc = r == DIALECT_OK ? 1 : r == DIALECT_AGAIN ? -3 : -1;
  }
  /* an update that found no row is refused after the batch wrote: its
  ** savepoint is needed (the dialect's settle rolls the batch back) */
  for (int i = 0; rc == 1 && i < nw; i++) {
    if (w[i].reason || w[i].m->op != STORE_UPDATE || !w[i].cols->n_set || w[i].changed) continue;
    char *reason = 0;
    dialect_result r = d->settle ? d->settle(c, DIALECT_REJECTED, &reason, err) : DIALECT_FATAL;
    rc = r == DIALECT_AGAIN ? -3 : -1;
    if (rc == -1 && !*err) *err = wire_errf("an update found no row in a batch run in one go");
  }
  for (int k = 0; rc == 1 && k < n; k++) {
    const store_mutation *mu = &m[order[k]];
    wire_outcome *o = &res[order[k]];
    dialect_write *wk = x[k].w < 0 ? 0 : &w[x[k].w];
    memset(o, 0, sizeof *o);
    if (!wk || wk->reason) {
      o->reason = wk ? wk->reason : x[k].reason;
      if (wk) wk->reason = 0;
      x[k].reason = 0;
    } else if (outcome(s, c, x[k].t, mu, wk, o, err)) {
      rc = -1;
      break;
    }
    if (!o->pk && !(o->pk = sqlite3_mprintf("%s", mu->pk))) {
      rc = -1, *err = wire_errf("out of memory");
      break;
    }
    if (d->record(c, client, mu->id, o, x[k].t->name, err)) {
      rc = -1;
      break;
    }
    *last = mu->id;
    if (o->version) {
      (*n_changed)++;
      if (!o->row) (*n_deleted)++;
    }
  }
  for (int k = 0; x && k < n; k++) {
    sqlite3_free(x[k].buf);
    sqlite3_free(x[k].reason);
  }
  for (int i = 0; w && i < nw; i++) {
    sqlite3_free(w[i].reason);
    sqlite3_free(w[i].row);
    sqlite3_free(w[i].pk);
  }
  sqlite3_free(x);
  sqlite3_free(w);
  return rc == 1 ? n : rc;
}
