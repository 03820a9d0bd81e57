/*
** push.c: the one push algorithm (store_push in store.h), for every
** storage dialect.
**
** A batch runs in ONE transaction: the client's last processed id is read
** and held, mutations go in id order, each in its own savepoint; an id at
** or below the last one is answered from its recorded outcome, never
** applied again; every other one is applied or refused, and its outcome
** recorded. Then the last id moves, old outcomes are pruned, tombstones
** compacted, other processes notified, and the transaction commits.
**
** A refusal that ends the whole transaction (SQLite's RAISE(ROLLBACK) in a
** trigger, DIALECT_ENDED) makes the batch start again, that mutation now
** refused unrun: each retry refuses one more, so it ends. A dialect whose
** savepoints cost a round trip may run without them and, at the first
** refusal that wrote, roll back and ask (DIALECT_AGAIN) for the batch
** again, then with them.
**
** Foreign keys are checked once, at the batch's end, where the dialect can
** (fk_dangling): the mutations of a key change come as the children's
** updates to the new key, then the old row's delete, then the new row's
** insert (as the client's ON UPDATE CASCADE ran), and checked one at a time
** the children's would be refused, the delete's cascade then taking them.
** A batch that leaves one broken runs again without the mutations at
** fault, where the dialect names them (fk_end): the writes of rows that
** refer to no row, or the deletes of rows others still refer to; so a key
** change in the same batch as a child of a parent gone, or as a parent's
** delete under a child another client added, is still applied.
** Where it names none, or the batch is still broken after PUSH_FK_ROUNDS
** runs, the batch runs strict, each mutation held to them at once, so that
** only the ones that break them are refused.
**
** Where a dialect checks a foreign key at each statement all the same
** (fk_refused: PostgreSQL's keys that are not DEFERRABLE), a write it
** refuses for one is put off to the batch's end, with the later mutations
** of its row, and refused only if it fails there too ("Putting off").
**
** A dialect with write_batch may take the statements of a whole batch at
** once (push_batch.c): tried first, and left for the run above, one
** mutation at a time, whenever its answers could differ from that run's.
**
** A batch that fails on a conflict with a concurrent transaction (the
** dialect's conflicted: a deadlock, a serialization failure) is rolled back
** and run again whole, after a short jittered pause, up to
** STORE_PUSH_TRIES times; then the push answers STORE_BUSY (503), never
** STORE_ERROR, as the client only has to try again later.
*/
#include "jscan.h"
#include "push_batch.h"
#include "push_keys.h"
#include "rules_store.h"
#include "store_impl.h"
#include "value.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An insert took its key from data where data names key columns: refuse
** it when that key is not pk's (the row read back by pk, o->pk, would be
** another one). The same text is the same key; a different text (7 and
** 7.0) is judged by the database: the key data names, read back, must be
** o->pk. */
static dialect_result same_key(const store *s, dialect_conn *c, const catalog_table *t,
                               const store_mutation *m, wire_outcome *o, char **err) {
  jspan *v = sqlite3_malloc64(sizeof *v * 2 * t->n_cols);
  if (!v || column_values(&s->cat, t, m->pk, v) ||
      column_values(&s->cat, t, m->data, v + t->n_cols)) {
    sqlite3_free(v);
    return *err = wire_errf("out of memory"), DIALECT_FATAL;
  }
  int differ = 0;
  for (int k = 0; k < t->n_pk; k++) {
    jspan a = v[t->pk[k]], b = v[t->n_cols + t->pk[k]];
    if (b.z && (a.n != b.n || memcmp(a.z, b.z, a.n) != 0)) differ = 1;
  }
  dialect_result r = DIALECT_OK;
  if (differ) {
    sqlite3_str *key = sqlite3_str_new(0);
    sqlite3_str_appendchar(key, 1, '{');
    for (int k = 0; k < t->n_pk; k++) {
      jspan b = v[t->n_cols + t->pk[k]], val = b.z ? b : v[t->pk[k]];
      if (k) sqlite3_str_appendchar(key, 1, ',');
      value_append_string(key, t->cols[t->pk[k]].name, -1);
      sqlite3_str_appendchar(key, 1, ':');
      sqlite3_str_append(key, val.z, val.n);
    }
    sqlite3_str_appendchar(key, 1, '}');
    char *z = sqlite3_str_finish(key), *row = 0, *pk = 0;
    r = z ? s->d->read_row(c, t, z, &row, &pk, &o->reason, err)
          : (*err = wire_errf("out of memory"), DIALECT_FATAL);
    if (r == DIALECT_OK && (!pk || strcmp(pk, o->pk) != 0))
      r = DIALECT_REJECTED, o->reason = wire_errf("the row's key does not match pk");
    sqlite3_free(z);
    sqlite3_free(row);
    sqlite3_free(pk);
  }
  sqlite3_free(v);
  return r;
}

/* The write rule on the row keyed by pk (as stored): DIALECT_REJECTED
** "permission denied" when it fails. */
static dialect_result allowed(const store *s, dialect_conn *c, const rules_table *rt,
                              const char *pk, const store_user *u, char **reason, char **err) {
  int yes = 0;
  if (rules_check_row(s, c, rt, 1, pk, u, &yes, err)) return DIALECT_FATAL;
  if (yes) return DIALECT_OK;
  return (*reason = wire_errf("permission denied")) ? DIALECT_REJECTED : DIALECT_FATAL;
}

/* Under rules: the row m names, as it is before m, must pass the write
** rule (a row that does not exist is left to the write to refuse). */
static dialect_result allowed_before(const store *s, dialect_conn *c, const catalog_table *t,
                                     const rules_table *rt, const store_mutation *m,
                                     const store_user *u, char **reason, char **err) {
  char *row = 0, *pk = 0;
  dialect_result r = s->d->read_row(c, t, m->pk, &row, &pk, reason, err);
  if (r == DIALECT_OK && row) r = allowed(s, c, rt, pk, u, reason, err);
  sqlite3_free(row);
  sqlite3_free(pk);
  return r;
}

/* The row statements of m on t, inside its savepoint; rt: t's rule when
** rules are on (the write check before and after). */
static dialect_result apply_rows(const store *s, dialect_conn *c, const catalog_table *t,
                                 const rules_table *rt, const store_user *u,
                                 const store_mutation *m, const dialect_cols *cols, wire_outcome *o,
                                 int *others, char **err) {
  const dialect *d = s->d;
  char *del_pk = 0;
  int changed = 0;
  dialect_result r = DIALECT_OK;
  if (rt && m->op != STORE_INSERT) r = allowed_before(s, c, t, rt, m, u, &o->reason, err);
  if (r == DIALECT_OK && m->op == STORE_UPDATE && cols->n_set == 0) {
    /* nothing to set: only the row's existence matters */
    r = d->read_row(c, t, m->pk, &o->row, &o->pk, &o->reason, err);
    if (r == DIALECT_OK && !o->row) r = DIALECT_REJECTED, o->reason = wire_errf("no such row");
  } else if (r == DIALECT_OK) {
    r = d->write_row(c, t, m, cols, &changed, &del_pk, &o->reason, err);
    if (r == DIALECT_OK && m->op == STORE_UPDATE && !changed)
      r = DIALECT_REJECTED, o->reason = wire_errf("no such row");
  }
  if (r == DIALECT_OK && changed && m->op != STORE_DELETE) {
    r = d->read_row(c, t, m->pk, &o->row, &o->pk, &o->reason, err);
    if (r == DIALECT_OK && !o->row)
      r = DIALECT_REJECTED, o->reason = wire_errf("the row's key does not match pk");
    else if (r == DIALECT_OK && m->op == STORE_INSERT)
      r = same_key(s, c, t, m, o, err);
    if (r == DIALECT_OK && rt) r = allowed(s, c, rt, o->pk, u, &o->reason, err);
  }
  if (r == DIALECT_OK && changed) {
    const char *pk = m->op == STORE_DELETE ? del_pk : o->pk;
    if (d->log_change(c, t->name, pk, o->row, m->op == STORE_INSERT, &o->version, err))
      r = DIALECT_FATAL;
    if (m->op == STORE_DELETE) o->pk = del_pk, del_pk = 0;
  }
  if (r == DIALECT_OK && d->log_touched &&
      d->log_touched(c, &s->cat, t, changed ? o->pk : 0, &others[0], &others[1], err))
    r = DIALECT_FATAL;
  sqlite3_free(del_pk);
  return r;
}

/* A name m carries is none of the catalog's: *stale 1 when the schema
** changed since the catalog was read (the name may be new), so the batch
** runs again after a reload rather than refuse it. *stale -1: the batch
** runs after a reload already, the name is refused. 0, or -1 with *err. */
static int unknown_name(store *s, dialect_conn *c, int *stale, char **err) {
  return *stale < 0 ? 0 : store_schema_stale(s, c, stale, err);
}

/* Apply m to t (NULL: m names no synced table) in its own savepoint; fills
** o, and others with the other rows it changed and deleted (cascades,
** triggers). Returns 0, or -1 when the batch must fail (*err set, or
** *stale 1: see unknown_name), or -2 when m's refusal ended the whole
** transaction (o->reason says why), or -3 when the dialect rolled the
** batch back to run it again. *fk: refused for a foreign key checked at
** once (the dialect's fk_refused). */
static int apply_one(store *s, dialect_conn *c, const catalog_table *t, const store_user *u,
                     const store_mutation *m, wire_outcome *o, int *others, int *stale, int *fk,
                     char **err) {
  const dialect *d = s->d;
  memset(o, 0, sizeof *o);
  *fk = 0;
  if (!t && (unknown_name(s, c, stale, err) || *stale > 0)) return -1;
  if (!t) {
    o->reason = wire_errf("no such table: %s", m->table);
    o->pk = sqlite3_mprintf("%s", m->pk);
    return o->reason && o->pk ? 0 : (*err = wire_errf("out of memory"), -1);
  }
  /* under rules, a table without one is not synced: refused like a write
  ** the rule forbids */
  const rules_table *rt = s->rules ? rules_find(s->rules, t) : 0;
  if (s->rules && !rt) {
    o->reason = wire_errf("permission denied");
    o->pk = sqlite3_mprintf("%s", m->pk);
    return o->reason && o->pk ? 0 : (*err = wire_errf("out of memory"), -1);
  }
  /* cols' two lists and check_keys' used, in one allocation */
  int *buf = sqlite3_malloc64(sizeof *buf * 3 * (t->n_cols + 1));
  if (!buf) return *err = wire_errf("out of memory"), -1;
  dialect_cols cols = {buf, 0, buf + t->n_cols + 1, 0};
  int *used = buf + 2 * (t->n_cols + 1);
  memset(used, 0, sizeof *used * (t->n_cols + 1));
  if (d->savepoint(c, err)) return sqlite3_free(buf), -1;
  int unknown = 0;
  dialect_result r =
      check_keys(&s->cat, t, m, &cols, used, rt ? rt->server : 0, &unknown, &o->reason);
  if (unknown && (unknown_name(s, c, stale, err) || *stale > 0)) return sqlite3_free(buf), -1;
  if (r == DIALECT_OK) r = apply_rows(s, c, t, rt, u, m, &cols, o, others, err);
  sqlite3_free(buf);
  if (d->settle) r = d->settle(c, r, &o->reason, err);
  if (r == DIALECT_ENDED) return -2;
  if (r == DIALECT_AGAIN) return -3;
  if (r == DIALECT_FATAL) return *err ? -1 : (*err = wire_errf("out of memory"), -1);
  if (r == DIALECT_REJECTED) {
    *fk = d->fk_refused && d->fk_refused(c);
    sqlite3_free(o->row);
    o->row = 0;
    o->version = 0;
    if (!o->reason) return *err = wire_errf("out of memory"), -1;
    if (d->rollback_to(c, err)) return -1;
  }
  o->applied = r == DIALECT_OK;
  if (!o->pk && !(o->pk = sqlite3_mprintf("%s", m->pk)))
    return *err = wire_errf("out of memory"), -1;
  return d->release ? d->release(c, err) : 0;
}

/* Under rules, an applied row its writer may not read (a todo handed to
** another user, a message sent to one) is answered as none: the writer's
** copy goes, as a reader's does when the row moves out (docs/RULES.md).
** m's own pk serves a replayed outcome, which carries none (the rule
** compares values, not their text). */
static int hide_unreadable(const store *s, dialect_conn *c, const store_mutation *m,
                           const store_user *u, wire_outcome *o, char **err) {
  const catalog_table *t =
      s->rules && o->applied && o->row ? catalog_table_find(&s->cat, m->table) : 0;
  const rules_table *rt = t ? rules_find(s->rules, t) : 0;
  int yes = 1;
  if (rt && rules_check_row(s, c, rt, 0, o->pk ? o->pk : m->pk, u, &yes, err)) return -1;
  o->hidden = !yes;
  return 0;
}

/* Runs of a batch that left a foreign key broken, refusing the writes of
** rows that refer to no row, before it runs strict. */
#define PUSH_FK_ROUNDS 4

/* At the batch's end (its mutations up to first were replays): 0 when no
** foreign key is left broken. Else the dialect rolled it back, and 1: it
** runs again without the mutations at fault, refused unrun with the
** dialect's reason in doomed: each row's last writer where rows the batch
** wrote refer to no row, else the deletes of keys rows still refer to (a
** child written after its parent's delete is the one at fault); or strict
** once none is found or after PUSH_FK_ROUNDS runs (*fk counts them). -1
** (*err). */
static int fk_end(store *s, dialect_conn *c, const store_mutation *m, int n, const int *order,
                  const wire_outcome *res, char **doomed, long long first, int *fk, char **err) {
  dialect_written *w = sqlite3_malloc64(sizeof *w * n);
  int *at = sqlite3_malloc64(sizeof *at * n), nw = 0, named = 0;
  if (!w || !at) {
    sqlite3_free(w);
    sqlite3_free(at);
    return *err = wire_errf("out of memory"), -1;
  }
  for (int k = 0; k < n; k++) {
    const store_mutation *mu = &m[order[k]];
    const wire_outcome *o = &res[order[k]];
    int deleted = mu->op == STORE_DELETE;
    if (mu->id <= first || (k && mu->id == m[order[k - 1]].id) || !o->applied || !o->version ||
        (!deleted && !o->row))
      continue;
    at[nw] = order[k];
    w[nw++] = (dialect_written){catalog_table_find(&s->cat, mu->table), o->pk, deleted, 0};
  }
  int broken = s->d->fk_dangling(c, w, nw, err), writes = 0;
  for (int i = 0; i < nw; i++)
    writes |= w[i].reason && !w[i].deleted;
  for (int i = 0; i < nw; i++) {
    int later = 0;
    for (int j = i + 1; w[i].reason && j < nw && !later; j++)
      later = w[j].t == w[i].t && w[j].deleted == w[i].deleted && strcmp(w[j].pk, w[i].pk) == 0;
    if (broken > 0 && w[i].reason && !later && !(writes && w[i].deleted) &&
        *fk + 1 < PUSH_FK_ROUNDS)
      doomed[at[i]] = w[i].reason, w[i].reason = 0, named = 1;
    sqlite3_free(w[i].reason);
  }
  sqlite3_free(w);
  sqlite3_free(at);
  if (broken > 0) *fk = named ? *fk + 1 : PUSH_FK_ROUNDS;
  return broken;
}

/* Putting off. A write that breaks a foreign key checked at once
** (fk_refused: PostgreSQL's keys that are not DEFERRABLE) may only come
** before its parent: a key change's children precede the new row, as the
** client's ON UPDATE CASCADE wrote them. Refused there, the old row's
** delete would then take the children with it. So such a write is put
** off and runs once more after the rest of the batch, and with it every
** later mutation of the same row, in their order; refused again, it is
** refused. A mutation whose id another of the batch shares is never put
** off (a replay of itself). */

/* Whether order[k]'s id is another mutation's of the batch too. */
static int shares_id(const store_mutation *m, int n, const int *order, int k) {
  long long id = m[order[k]].id;
  return (k && m[order[k - 1]].id == id) || (k + 1 < n && m[order[k + 1]].id == id);
}

/* Whether order[k] names a row an earlier mutation put off (positions in
** order off[0..n_off)) names too. */
static int row_put_off(const store_mutation *m, const int *order, const int *off, int n_off,
                       int k) {
  const store_mutation *mu = &m[order[k]];
  for (int j = 0; j < n_off; j++) {
    const store_mutation *o = &m[order[off[j]]];
    if (strcmp(o->table, mu->table) == 0 && strcmp(o->pk, mu->pk) == 0) return 1;
  }
  return 0;
}

/* One try at a batch, in one transaction. Returns 0 (committed), -1 (failed,
** *err set), or i + 1 when m[i] ended the transaction itself: its reason is
** moved to doomed[i], and the caller tries again, refusing m[i] unrun (1
** too when the dialect asked for the batch again, or when it left a
** foreign key broken: fk_end). -1 with *stale 1: the
** schema changed (apply_one). *fast: try the batch in one go first
** (push_batch.c); cleared when that asked for the batch again. *fk: the
** runs that left a foreign key broken (fk_end); at PUSH_FK_ROUNDS, foreign
** keys are held at each mutation. */
static int attempt(store *s, dialect_conn *c, const store_user *u, const char *client,
                   const store_mutation *m, int n, const int *order, wire_outcome *res,
                   char **doomed, int *n_changed, int *stale, int *fast, int *fk, char **err) {
  const dialect *d = s->d;
  long long last = 0;
  int n_deleted = 0, strict = *fk >= PUSH_FK_ROUNDS || !d->fk_dangling;
  if (d->begin(c, strict ? DIALECT_PUSH_STRICT : DIALECT_PUSH, err) ||
      d->set_user(c, u ? u->sub : 0, u ? u->claims : 0, err) ||
      d->client_last(c, client, &last, err))
    return -1;
  long long first = last;
  int done =
      *fast ? push_batch(s, c, client, m, n, order, doomed, &last, res, n_changed, &n_deleted, err)
            : 0;
  if (done == -3) return *fast = 0, 1;
  if (done < 0) return -1;
  /* The mutations put off (positions in order), run after the rest: k
  ** from n on (see "Putting off" above). */
  int *off = 0, n_off = 0;
  for (int k = done; k < n + n_off; k++) {
    int i = k < n ? order[k] : order[off[k - n]];
    const store_mutation *mu = &m[i];
    wire_outcome *o = &res[i];
    if (k < n && mu->id <= last) {
      if (d->replay(c, client, mu->id, o, err) || hide_unreadable(s, c, mu, u, o, err))
        return sqlite3_free(off), -1;
      continue;
    }
    int first_run = k < n && !shares_id(m, n, order, k);
    if (first_run && n_off && row_put_off(m, order, off, n_off, k)) {
      off[n_off++] = k;
      continue;
    }
    const catalog_table *t = catalog_table_find(&s->cat, mu->table);
    int rc = 0, others[2] = {0, 0}, fk_now = 0;
    if (doomed[i]) {
      o->reason = sqlite3_mprintf("%s", doomed[i]);
      o->pk = sqlite3_mprintf("%s", mu->pk);
      if (!o->reason || !o->pk) rc = -1, *err = wire_errf("out of memory");
    } else {
      rc = apply_one(s, c, t, u, mu, o, others, stale, &fk_now, err);
    }
    if (rc == 0 && fk_now && first_run && mu->op != STORE_DELETE) {
      if (!off && !(off = sqlite3_malloc64(sizeof *off * n)))
        return *err = wire_errf("out of memory"), -1;
      wire_outcome_clear(o);
      off[n_off++] = k;
      continue;
    }
    if (rc == 0 && !o->applied) others[0] = others[1] = 0; /* rolled back with it */
    if (rc == -3) return sqlite3_free(off), *fast = 0, 1;  /* the next try takes savepoints */
    if (rc == -2) {
      doomed[i] = o->reason;
      o->reason = 0;
      return sqlite3_free(off), i + 1;
    }
    if (rc || d->record(c, client, mu->id, o, t ? t->name : mu->table, err) ||
        hide_unreadable(s, c, mu, u, o, err))
      return sqlite3_free(off), -1;
    if (mu->id > last) last = mu->id;
    if (o->version) {
      (*n_changed)++;
      if (!o->row) n_deleted++;
    }
    *n_changed += others[0];
    n_deleted += others[1];
  }
  sqlite3_free(off);
  if (!strict) {
    int broken = fk_end(s, c, m, n, order, res, doomed, first, fk, err);
    if (broken) return broken;
  }
  /* Finding the cutoff of the outcomes kept walks STORE_KEEP_OUTCOMES index
  ** entries: done when the last id crosses a multiple of STORE_PRUNE_EVERY,
  ** not on every push (which made a push's cost grow with the outcomes
  ** kept), so a client keeps at most STORE_PRUNE_EVERY + a batch more. */
  if (d->client_set_last(c, client, last, err) ||
      (first / STORE_PRUNE_EVERY != last / STORE_PRUNE_EVERY &&
       d->prune(c, client, STORE_KEEP_OUTCOMES, err)) ||
      (n_deleted && s->max_tombstones > 0 &&
       d->compact(c, s->max_tombstones, s->rules ? s->rules->purge : 0,
                  s->rules ? s->rules->n_purge : 0, err)) ||
      (*n_changed && d->notify && d->notify(c, err)))
    return -1;
  return d->commit(c, err) ? -1 : 0;
}

/* Before the next try of a batch that lost a conflict: a jittered pause
** that grows with the tries, so the transactions that collided do not
** collide again in step. */
static void conflict_pause(int tries) {
  unsigned r;
  sqlite3_randomness(sizeof r, &r);
  long ms = (5L << tries) + r % (5U << tries);
  struct timespec t = {ms / 1000, ms % 1000 * 1000000L};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

static int cmp_by_id(const void *a, const void *b, void *arg) {
  const store_mutation *m = arg;
  long long x = m[*(const int *)a].id, y = m[*(const int *)b].id;
  if (x != y) return x < y ? -1 : 1;
  return *(const int *)a - *(const int *)b;
}

int store_push(store *s, const char *client, const store_mutation *m, int n, char **json,
               int *n_changed, char **err) {
  return store_push_as(s, 0, client, m, n, json, n_changed, err);
}

int store_push_as(store *s, const store_user *u, const char *client, const store_mutation *m, int n,
                  char **json, int *n_changed, char **err) {
  *json = 0;
  *n_changed = 0;
  if (n == 0) {
    *json = wire_results(m, 0, 0);
    return *json ? STORE_OK : (*err = wire_errf("out of memory"), STORE_ERROR);
  }
  dialect_conn *c = store_schema_enter(s, 1, err);
  if (!c) return STORE_ERROR;
  int *order = sqlite3_malloc64(sizeof *order * n);
  wire_outcome *res = sqlite3_malloc64(sizeof *res * n);
  char **doomed = sqlite3_malloc64(sizeof *doomed * n);
  int rc = order && res && doomed ? 1 : -1;
  if (rc < 0) {
    *err = wire_errf("out of memory");
  } else {
    memset(res, 0, sizeof *res * n);
    memset(doomed, 0, sizeof *doomed * n);
    /* id order, stable for equal ids: a repeated id is then answered from
    ** the first one's outcome */
    for (int i = 0; i < n; i++)
      order[i] = i;
    qsort_r(order, n, sizeof *order, cmp_by_id, (void *)m);
  }
  int tries = 0, busy = 0, stale = 0, fast = 1, fk = 0;
  while (rc > 0) {
    for (int i = 0; i < n; i++)
      wire_outcome_clear(&res[i]);
    *n_changed = 0;
    rc = attempt(s, c, u, client, m, n, order, res, doomed, n_changed, &stale, &fast, &fk, err);
    if (rc < 0 && stale > 0) {
      /* a name the catalog lacks, the schema changed: once more after a
      ** reload, where such a name is refused */
      store_schema_leave(s, c);
      store_schema_reload(s);
      stale = -1;
      rc = (c = store_schema_enter(s, 1, err)) ? 1 : -1;
      continue;
    }
    if (rc < 0 && s->d->conflicted && s->d->conflicted(c)) {
      /* a connection that cannot even roll back is a failure of its own */
      if (++tries == STORE_PUSH_TRIES) {
        busy = 1;
      } else if (s->d->reusable(c)) {
        fprintf(stderr, "syncd: push conflict, try %d of %d next: %s\n", tries + 1,
                STORE_PUSH_TRIES, *err ? *err : "?");
        sqlite3_free(*err);
        *err = 0;
        rc = 1;
        conflict_pause(tries);
      }
    }
  }
  if (rc == 0 && !(*json = wire_results(m, res, n))) rc = -1, *err = wire_errf("out of memory");
  if (rc) *n_changed = 0;
  for (int i = 0; res && doomed && i < n; i++) {
    wire_outcome_clear(&res[i]);
    sqlite3_free(doomed[i]);
  }
  sqlite3_free(doomed);
  sqlite3_free(res);
  sqlite3_free(order);
  if (c) store_schema_leave(s, c);
  return rc == 0 ? STORE_OK : busy ? STORE_BUSY : STORE_ERROR;
}
