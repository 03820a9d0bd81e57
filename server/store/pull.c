/*
** pull.c: the one pull algorithm (store_pull and store_head in store.h),
** for every storage dialect. The dialect reads the state, the changes after
** the cursor, the client's last id and its rejected outcomes in one
** snapshot (wire_page); the cursor's checks and the page's shape are here.
** Under --rules, a table without a rule is never sent, and each change of
** the others passes the user's read rule first (read_filter).
*/
#include "store_impl.h"

#include <stdlib.h>
#include <string.h>

#include "rules_store.h"
#include "value.h"

/* What the read rules need while a page is read (read_filter). */
typedef struct reader {
  store *s;
  dialect_conn *c;
  const store_user *u;
  int after_cursor;                  /* an increment, not a page of an initial sync */
  long long after;                   /* the increment's cursor */
  wire_page *p;                      /* the page being read */
  long long snap;                    /* a later page of an initial sync: the head it began at */
  int moved;                         /* a membership change the user may be concerned by */
  const catalog_table *const *asked; /* the tables the pull sends, n_asked */
  int n_asked;
  char **err;
} reader;

/* Move-in (docs/RULES.md): a row of membership table rt, keyed by pk,
** that concerns the user came in after the cursor (or, in an initial
** sync's pages past the head it began at, after that head), so rows of the
** tables the pull sends may have become readable through it alone, with
** no change of their own. When its key did not exist at the cursor (the
** change log's gap, dialect.h: then it closes nothing the client holds or
** an earlier page sent) and every select
** from rt's table is monotone (rules_expr.h), the rows it opens (rules.h,
** via) go into the page ahead of its own change: WIRE_KEEP. When they do
** not fit in what is left of the page, WIRE_STOP ends the page before the
** change, so the next page begins with it; when even a whole page cannot
** hold them, or the row may have closed rows, the pull answers moved and
** the client resyncs (rd->moved). WIRE_FAIL with *rd->err. */
static int move_in(reader *rd, const rules_table *rt, const char *pk) {
  int yes = 0;
  long long since = rd->after_cursor ? rd->after : rd->snap;
  if (rules_new_since(rd->s, rd->c, rt->t->name, pk, since, &yes, rd->err)) return WIRE_FAIL;
  if (!yes) return rd->moved = 1, WIRE_KEEP;
  dialect_walk *w = sqlite3_malloc64(sizeof *w * ((size_t)rd->n_asked + 1));
  if (!w) return *rd->err = wire_errf("out of memory"), WIRE_FAIL;
  int n = 0, bad = 0;
  for (int i = 0; i < rd->n_asked && !bad && !rd->moved; i++) {
    const rules_table *into = rules_find(rd->s->rules, rd->asked[i]);
    int j = 0;
    while (into && j < into->n_via && into->via_from[j] != rt->t)
      j++;
    if (!into || j == into->n_via) continue;
    if (!into->via[j]) {
      rd->moved = 1;
      break;
    }
    const rules_params *rp = &into->read_params;
    dialect_walk *x = &w[n++];
    memset(x, 0, sizeof *x);
    x->t = into->t;
    x->cond = into->via[j];
    x->sorted = 1;
    x->vals = sqlite3_malloc64(sizeof *x->vals * ((size_t)rp->n + 1));
    bad = !x->vals;
    if (!bad) {
      bad = rules_values(rp, rd->u ? rd->u->sub : 0, rd->u ? rd->u->claims : 0, x->vals) != 0;
      x->n_vals = bad ? 0 : rp->n + 1;
      bad = bad || !(x->vals[rp->n] = sqlite3_mprintf("%s", pk));
    }
  }
  int rc = WIRE_KEEP;
  if (bad) {
    *rd->err = wire_errf("out of memory");
    rc = WIRE_FAIL;
  } else if (n && !rd->moved) {
    wire_page *p = rd->p, opened;
    int room = p->limit - p->n_seen - 1; /* the change itself follows */
    wire_page_start(&opened, room > 0 ? room : 0, 0);
    wire_page_walk_start(&opened);
    if (rd->s->d->walk_rows(rd->c, w, n, &opened, rd->err)) {
      rc = WIRE_FAIL;
    } else if (sqlite3_str_errcode(opened.out) != SQLITE_OK) {
      *rd->err = wire_errf("out of memory");
      rc = WIRE_FAIL;
    } else if (!opened.has_more) {
      wire_page_take(p, &opened);
    } else if (p->n_seen) {
      rc = WIRE_STOP;
    } else {
      rd->moved = 1;
    }
    wire_page_drop(&opened);
  }
  for (int i = 0; i < n; i++) {
    for (int k = 0; k < w[i].n_vals; k++)
      sqlite3_free(w[i].vals[k]);
    sqlite3_free(w[i].vals);
  }
  sqlite3_free(w);
  return rc;
}

/* Under rules, a change the user may not read is left out: the live row
** is judged as it is when checked, a delete by the values the row had
** (rules_gone_readable: sent when none were kept). After a cursor, a row
** the user may not read now but could read before it changed (a former
** value kept by push.c passes the rule) is sent as a delete: move-out. So
** is one an initial sync meets again above the head it began at: an
** earlier page may have sent it. */
static int read_filter(void *arg, const char *table, const char *pk, const char *row,
                       long long version) {
  reader *rd = arg;
  const catalog_table *t = catalog_table_find(&rd->s->cat, table);
  const rules_table *rt = t ? rules_judged(rd->s->rules, t) : 0;
  if (!rt) return WIRE_SKIP;
  /* a membership of this user came or went (it matches, or matched, the
  ** WHERE of a select of the user's read rules: rules_concerns): rows of
  ** other tables may have become readable or stopped being so, without a
  ** change of their own. An initial sync's later pages run past the head
  ** it began at: such a change above it may concern rows an earlier page
  ** passed over or sent, so it ends that sync like an increment's.
  ** Another user's membership changes nothing here. The membership table
  ** may be one the pull does not send (tables_json), or has no rule */
  int concerns = 0;
  if (rt->membership && !rd->moved && (rd->after_cursor || (rd->snap && version > rd->snap)) &&
      rules_concerns(rd->s, rd->c, rt, pk, row != 0, rd->u, &concerns, rd->err))
    return WIRE_FAIL;
  if (concerns && row) {
    int in = move_in(rd, rt, pk);
    if (in != WIRE_KEEP) return in;
  } else {
    rd->moved |= concerns;
  }
  int asked = 0;
  while (asked < rd->n_asked && rd->asked[asked] != t)
    asked++;
  if (rt->hidden || asked == rd->n_asked) return WIRE_SKIP;
  int yes = 0, was = 0;
  if (row ? rules_check_row(rd->s, rd->c, rt, 0, pk, rd->u, &yes, rd->err)
          : rules_gone_readable(rd->s, rd->c, rt, pk, rd->u, &yes, rd->err))
    return WIRE_FAIL;
  if (row && !yes && (rd->after_cursor || (rd->snap && version > rd->snap)) &&
      rules_was_readable(rd->s, rd->c, rt, pk, rd->u, &was, rd->err))
    return WIRE_FAIL;
  return yes ? WIRE_KEEP : was ? WIRE_GONE : WIRE_SKIP;
}

void store_page_clear(store_page *page) {
  sqlite3_free(page->json);
  sqlite3_free(page->cursor);
  memset(page, 0, sizeof *page);
}

/* The value of hex digit c, or -1. */
static int hex(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* The synced tables `tables` names (store_pull_tables) as a JSON array of
** their names as logged; NULL when out of memory. A malformed escape stays
** as written, so that name matches no table. *unknown: a name is no table
** of cat. The tables, each once, also into list (room for cat->n_tables),
** *n of them. Under rules the array goes on with the membership tables
** their read rules select from, if not asked for: their changes are read
** to be judged (read_filter), never sent. */
static char *tables_json(const catalog *cat, const rules *r, const char *tables, int *unknown,
                         const catalog_table **list, int *n_list) {
  sqlite3_str *out = sqlite3_str_new(0), *name = sqlite3_str_new(0);
  int n = 0;
  sqlite3_str_appendchar(out, 1, '[');
  for (const char *p = tables;; p++) {
    if (*p && *p != ',') {
      int hi = *p == '%' ? hex(p[1]) : -1, lo = hi >= 0 ? hex(p[2]) : -1;
      if (lo >= 0)
        sqlite3_str_appendchar(name, 1, (char)(hi << 4 | lo)), p += 2;
      else
        sqlite3_str_appendchar(name, 1, *p);
      continue;
    }
    const char *z = sqlite3_str_value(name);
    const catalog_table *t = z ? catalog_table_find(cat, z) : 0;
    if (!t) *unknown = 1;
    if (t && (!r || rules_find(r, t))) {
      if (n++) sqlite3_str_appendchar(out, 1, ',');
      value_append_string(out, t->name, -1);
      int k = 0;
      while (k < *n_list && list[k] != t)
        k++;
      if (k == *n_list) list[(*n_list)++] = t;
    }
    sqlite3_str_reset(name);
    if (!*p) break;
  }
  /* each membership table once: those not asked for are listed past the
  ** asked ones in list, which *n_list does not count */
  int n_judged = *n_list;
  for (int i = 0; r && i < *n_list; i++) {
    const rules_params *rp = &rules_find(r, list[i])->read_params;
    for (int k = 0; k < rp->n_selects; k++) {
      int j = 0;
      while (j < n_judged && list[j] != rp->selects[k])
        j++;
      if (j < n_judged) continue;
      list[n_judged++] = rp->selects[k];
      if (n++) sqlite3_str_appendchar(out, 1, ',');
      value_append_string(out, rp->selects[k]->name, -1);
    }
  }
  sqlite3_str_appendchar(out, 1, ']');
  int bad = sqlite3_str_errcode(name) != SQLITE_OK;
  sqlite3_free(sqlite3_str_finish(name));
  char *json = sqlite3_str_finish(out);
  if (bad) sqlite3_free(json);
  return bad ? 0 : json;
}

int store_pull(store *s, const char *client, const char *cursor, int limit, long long pending_from,
               store_page *page, char **err) {
  return store_pull_tables(s, client, cursor, limit, pending_from, 0, page, err);
}

int store_pull_tables(store *s, const char *client, const char *cursor, int limit,
                      long long pending_from, const char *tables, store_page *page, char **err) {
  return store_pull_as(s, 0, client, cursor, limit, pending_from, tables, page, err);
}

static int by_name(const void *a, const void *b) {
  return strcmp((*(const catalog_table *const *)a)->name, (*(const catalog_table *const *)b)->name);
}

/* An initial sync under rules walks the tables it sends in the order of
** their names, each one's readable rows in key order (dialect.h,
** read_page with a walk): the rule is part of the page query, which an
** index on the rule's columns then the key serves, so a page reads only
** rows the user may read. The walk begins at the head h of its first page; its
** continuation cursors carry h and the last row's table and key. A row
** changed after h may have been passed by the walk (or sent, then made
** unreadable), and a deleted one is not met: once every table is walked,
** the page goes on with the changes above h, as any initial sync's later
** pages, through read_filter (move-out, moved), in a snapshot of its own.
** From (cursor: at) table wtable after key wpk; list: the n tables sent. */
static int walk_page(store *s, dialect_conn *c, const store_user *u, const char *client,
                     long long pending_from, const char *only, const catalog_table **list, int n,
                     const char *wtable, const char *wpk, long long snap, wire_page *p, reader *rd,
                     char **err) {
  qsort(list, (size_t)n, sizeof *list, by_name);
  dialect_walk *w = sqlite3_malloc64(sizeof *w * ((size_t)n + 1));
  if (!w) return *err = wire_errf("out of memory"), -1;
  int m = 0, bad = 0;
  for (int i = 0; i < n && !bad; i++) {
    int at = wtable ? strcmp(list[i]->name, wtable) : 1;
    if (at < 0) continue;
    const rules_table *rt = rules_find(s->rules, list[i]);
    dialect_walk *x = &w[m++];
    memset(x, 0, sizeof *x);
    x->t = list[i];
    x->cond = rt->read;
    x->after = at == 0 ? wpk : 0;
    x->sorted = rt->read_params.n_selects > 0;
    x->n_vals = rt->read_params.n;
    x->vals = sqlite3_malloc64(sizeof *x->vals * ((size_t)x->n_vals + 1));
    bad =
        !x->vals || rules_values(&rt->read_params, u ? u->sub : 0, u ? u->claims : 0, x->vals) != 0;
    if (bad && x->vals) x->n_vals = 0;
  }
  if (bad) *err = wire_errf("out of memory");
  wire_page_walk_start(p);
  int rc = bad || s->d->read_page(c, client, 0, 0, 0, w, m, pending_from, p, err);
  for (int i = 0; i < m; i++) {
    for (int k = 0; k < w[i].n_vals; k++)
      sqlite3_free(w[i].vals[k]);
    sqlite3_free(w[i].vals);
  }
  sqlite3_free(w);
  if (rc) return -1;
  p->snap = wtable ? snap : p->head;
  if (p->has_more) return 0;
  /* every table walked: the changes above the walk's head follow */
  wire_page_walk_end(p, p->snap);
  if (p->rejected) sqlite3_str_reset(p->rejected);
  rd->snap = p->snap;
  rd->p = p;
  p->filter = read_filter, p->filter_arg = rd;
  long long head = p->head;
  if (s->d->read_page(c, client, p->snap, 1, only, 0, 0, pending_from, p, err) || p->failed)
    return -1;
  /* the walk's snapshot and this one: the head cannot have gone back */
  if (p->head < head) p->head = head;
  return 0;
}

int store_pull_as(store *s, const store_user *u, const char *client, const char *cursor, int limit,
                  long long pending_from, const char *tables, store_page *page, char **err) {
  long long after = 0, snap = 0;
  char *wtable = 0, *wpk = 0;
  memset(page, 0, sizeof *page);
  int walk = s->has_rules; /* read without the schema lock: a flag set once */
  if (cursor) {
    int rc = wire_cursor_parse_walk(cursor, s->db_id, &after, &snap, &wtable, &wpk);
    if (rc == STORE_ERROR) *err = wire_errf("out of memory");
    if (rc != STORE_OK) return rc;
    /* a walk that cannot go on (syncd restarted without rules): its rows
    ** below the head were not all sent, so the client starts over */
    if (wtable && !walk) {
      sqlite3_free(wtable);
      sqlite3_free(wpk);
      return STORE_EXPIRED;
    }
  }
  walk = walk && (!cursor || wtable);
  /* the catalog and rules, read again when a table asked for may be new
  ** (a pull's rows do not depend on the catalog, only which tables go) */
  dialect_conn *c = 0;
  char *only = 0;
  const catalog_table **list = 0;
  int n_list = 0, failed = 0;
  for (int pass = 0; pass < 2; pass++) {
    if (!(c = store_schema_enter(s, 0, err))) {
      sqlite3_free(wtable);
      sqlite3_free(wpk);
      return STORE_ERROR;
    }
    /* under rules, only the tables with a rule are ever sent */
    char *all = s->rules && !tables ? rules_table_list(s->rules) : 0;
    int unknown = 0, stale = 0;
    list = sqlite3_malloc64(sizeof *list * ((size_t)s->cat.n_tables + 1));
    n_list = 0;
    only = list && (tables || all)
               ? tables_json(&s->cat, s->rules, tables ? tables : all, &unknown, list, &n_list)
               : 0;
    sqlite3_free(all);
    if (!list || ((tables || s->rules) && !only)) {
      failed = 1;
      *err = wire_errf("out of memory");
      break;
    }
    if (!unknown || pass || (failed = store_schema_stale(s, c, &stale, err)) || !stale) break;
    sqlite3_free(only);
    sqlite3_free(list);
    store_schema_leave(s, c);
    store_schema_reload(s);
  }
  if (failed) {
    sqlite3_free(only);
    sqlite3_free(list);
    sqlite3_free(wtable);
    sqlite3_free(wpk);
    store_schema_leave(s, c);
    return STORE_ERROR;
  }
  wire_page p;
  wire_page_start(&p, limit, pending_from > 0);
  /* an initial sync's pages bring the memberships up to its head (snap) */
  reader rd = {s, c, u, cursor && !snap, after, 0, snap, 0, list, n_list, err};
  int rc = STORE_ERROR, read;
  if (walk) {
    read = walk_page(s, c, u, client, pending_from, only, list, n_list, wtable, wpk, snap, &p, &rd,
                     err);
  } else {
    if (s->rules) p.filter = read_filter, p.filter_arg = &rd, rd.p = &p;
    read = s->d->read_page(c, client, after, cursor != 0, only, 0, 0, pending_from, &p, err) ||
           p.failed;
    p.snap = cursor ? snap : p.head;
  }
  if (read && p.walk_bad_position) {
    sqlite3_free(*err);
    *err = 0;
    rc = STORE_BAD_CURSOR;
  } else if (!read) {
    /* An initial sync pages through live rows by version, so its cursor
    ** falls below the horizon as soon as tombstones are purged. Its
    ** continuation carries the head h its first page read: a row it sent
    ** can only have been deleted after h, so the deletes it may need are
    ** the ones above max(after, h), and purged ones stop below the
    ** horizon. Any other cursor below the horizon misses deletes; one
    ** above the head names versions this database never had. */
    long long needs = snap > after ? snap : after;
    if (cursor && (needs < p.horizon || after > p.head || snap > p.head))
      rc = STORE_EXPIRED;
    else if (rd.moved)
      rc = STORE_MOVED;
    else
      rc = wire_page_finish(&p, s->db_id, page, err);
  }
  wire_page_drop(&p);
  store_schema_leave(s, c);
  sqlite3_free(only);
  sqlite3_free(list);
  sqlite3_free(wtable);
  sqlite3_free(wpk);
  return rc;
}

int store_head(store *s, char **cursor, char **err) {
  dialect_conn *c = pool_get(&s->pool, err);
  if (!c) return STORE_ERROR;
  long long version;
  int rc = STORE_ERROR;
  if (!s->d->head(c, &version, err)) {
    *cursor = wire_cursor(s->db_id, version);
    rc = *cursor ? STORE_OK : (*err = wire_errf("out of memory"), STORE_ERROR);
  }
  pool_put(&s->pool, c);
  return rc;
}
