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
  int after_cursor;            /* an increment, not a page of an initial sync */
  long long since;             /* the client had every change as of it (0: not known): move_in */
  wire_page *p;                /* the page being read */
  long long snap;              /* a later page of an initial sync: the head it began at */
  int moved;                   /* a membership change the user may be concerned by */
  const catalog_table **asked; /* the tables the pull sends, n_asked */
  int n_asked;
  char **err;
} reader;

static int by_name(const void *a, const void *b) {
  return strcmp((*(const catalog_table *const *)a)->name, (*(const catalog_table *const *)b)->name);
}

/* The walk (dialect.h) of the tables list[0..n), in the order of their
** names (list sorted so), after table wtable's key wpk (NULL: from the
** first), into w (room for n), *m of them: each table's readable rows, or
** with `in` (a membership table) the rows its row keyed by inpk opens
** (rules.h, via), or with out those a former value of it opened that are
** not readable now (via_out), the tables none of whose selects read `in`
** left out. 0; 1 when a select from `in` is not monotone (the move cannot
** be walked), or `in` keeps no former values; -1 when out of memory. Free
** with walks_free. */
static int walks(const store *s, const store_user *u, const catalog_table **list, int n,
                 const char *wtable, const char *wpk, const catalog_table *in, const char *inpk,
                 int out, dialect_walk *w, int *m) {
  qsort(list, (size_t)n, sizeof *list, by_name);
  *m = 0;
  if (out && !rules_judged(s->rules, in)->was_create) return 1;
  for (int i = 0; i < n; i++) {
    int at = wtable ? strcmp(list[i]->name, wtable) : 1;
    if (at < 0) continue;
    const rules_table *rt = rules_find(s->rules, list[i]);
    int j = 0;
    while (in && j < rt->n_via && rt->via_from[j] != in)
      j++;
    if (in && j == rt->n_via) continue;
    if (in && !(out ? rt->via_out[j] : rt->via[j])) return 1;
    const rules_params *rp = &rt->read_params;
    dialect_walk *x = &w[(*m)++];
    memset(x, 0, sizeof *x);
    x->t = list[i];
    x->cond = !in ? rt->read : out ? rt->via_out[j] : rt->via[j];
    x->after = at == 0 ? wpk : 0;
    x->sorted = rp->n_selects > 0;
    x->vals = sqlite3_malloc64(sizeof *x->vals * ((size_t)rp->n + 2));
    if (!x->vals) return -1;
    memset(x->vals, 0, sizeof *x->vals * ((size_t)rp->n + 2));
    x->n_vals = rp->n + (in != 0);
    if (rules_values(rp, u ? u->sub : 0, u ? u->claims : 0, x->vals)) return -1;
    if (in && !(x->vals[rp->n] = sqlite3_mprintf("%s", inpk))) return -1;
  }
  return 0;
}

static void walks_free(dialect_walk *w, int m) {
  for (int i = 0; i < m; i++) {
    for (int k = 0; w[i].vals && k < w[i].n_vals; k++)
      sqlite3_free(w[i].vals[k]);
    sqlite3_free(w[i].vals);
  }
  sqlite3_free(w);
}

/* One walk of move_out into page p: the rows membership table rt's row
** keyed by pk opens now, or (out) those a former value of it opened that
** the user may not read now. 0; 1 when it cannot be walked; -1 with *err. */
static int walk_moved(reader *rd, const rules_table *rt, const char *pk, int out, wire_page *p) {
  dialect_walk *w = sqlite3_malloc64(sizeof *w * ((size_t)rd->n_asked + 1));
  /* its rows are read in the snapshot of the page they go into */
  p->head = rd->p->head;
  int n = 0,
      bad = w ? walks(rd->s, rd->u, rd->asked, rd->n_asked, 0, 0, rt->t, pk, out, w, &n) : -1;
  if (bad < 0) *rd->err = wire_errf("out of memory");
  if (!bad && n && rd->s->d->walk_rows(rd->c, w, n, p, rd->err)) bad = -1;
  if (!bad && sqlite3_str_errcode(p->out) != SQLITE_OK)
    bad = -1, *rd->err = wire_errf("out of memory");
  walks_free(w, n);
  return bad;
}

/* walked, the rows a change of membership table rt's row keyed by pk,
** at version, moves in or out (closing: its move-out's walk of the rows
** it closed had more), into the page ahead of that change: all of them
** (WIRE_KEEP), none when the page holds others (WIRE_STOP: the next page
** begins with the change), or what a whole page holds, the change, and
** a cursor that walks on through the rest before going on after the
** change (wire_page_move_in: WIRE_KEEP). */
static int take_moved(reader *rd, const rules_table *rt, const char *pk, long long version,
                      const wire_page *walked, int closing) {
  wire_page *p = rd->p;
  if (walked->has_more && p->n_seen) return WIRE_STOP;
  /* a table's name too long for a cursor cannot be walked over pages (a
  ** long key is named by reference, wire.h) */
  if (walked->has_more && strlen(rt->t->name) > WIRE_WALK_MAX) return rd->moved = 1, WIRE_KEEP;
  wire_page_take(p, walked);
  if (!walked->has_more) return WIRE_KEEP;
  if (wire_page_move_in(p, rt->t->name, pk, version, walked, closing)) {
    *rd->err = wire_errf("out of memory");
    return WIRE_FAIL;
  }
  p->has_more = 1;
  p->limit = p->n_seen + 1; /* the page ends with the change */
  return WIRE_KEEP;
}

/* Move-out through membership (docs/RULES.md): a row of membership table
** rt, keyed by pk, its change at version, concerns the user and may have
** closed rows: it was deleted, or (live) its key existed at the cursor
** with other values, and a value of it is kept (otherwise what it was is
** not known: moved). The rows of the tables the pull sends that a former
** value of it opened and the user may not read now go into the page as
** deletes, then (live) those it opens now (rules.h, via), ahead of its own
** change (take_moved). A select from rt's table that is not monotone makes
** the pull answer moved, and the client resyncs (rd->moved). WIRE_FAIL
** with *rd->err. */
static int move_out(reader *rd, const rules_table *rt, const char *pk, int live,
                    long long version) {
  /* no value kept: what the row was is not known (a write the triggers
  ** did not see, or the same values deleted and made again) */
  int kept = 0;
  if (rules_was_kept(rd->s, rd->c, rt, pk, &kept, rd->err)) return WIRE_FAIL;
  if (!kept) return rd->moved = 1, WIRE_KEEP;
  wire_page *p = rd->p, moved;
  int room = p->limit - p->n_seen - 1; /* the change itself follows */
  wire_page_start(&moved, room > 0 ? room : 0, 0);
  wire_page_walk_start(&moved);
  moved.gone = version;
  int bad = walk_moved(rd, rt, pk, 1, &moved), closing = moved.has_more;
  moved.gone = 0;
  if (!bad && live && !closing) {
    wire_page_walk_restart(&moved);
    bad = walk_moved(rd, rt, pk, 0, &moved);
  }
  int rc = bad < 0 ? WIRE_FAIL
           : bad   ? (rd->moved = 1, WIRE_KEEP)
                   : take_moved(rd, rt, pk, version, &moved, closing);
  wire_page_drop(&moved);
  return rc;
}

/* Move-in (docs/RULES.md): a row of membership table rt, keyed by pk, its
** change at version, concerns the user and came in after the cursor (or,
** in an initial sync's pages past the head it began at, after that head),
** so rows of the tables the pull sends may have become readable through it
** alone, with no change of their own. When its key did not exist at the
** cursor (the change log's gap, dialect.h: then it closes nothing the
** client holds or an earlier page sent) and every select from rt's table
** is monotone (rules_expr.h), the rows it opens (rules.h, via) go into the
** page ahead of its own change (take_moved). A key that existed is a
** move-out's (move_out). A select that is not monotone makes the pull
** answer moved, and the client resyncs (rd->moved). WIRE_FAIL with
** *rd->err. */
static int move_in(reader *rd, const rules_table *rt, const char *pk, long long version) {
  int yes = 0;
  if (rules_new_since(rd->s, rd->c, rt->t->name, pk, rd->since, &yes, rd->err)) return WIRE_FAIL;
  if (!yes) return move_out(rd, rt, pk, 1, version);
  wire_page *p = rd->p, opened;
  int room = p->limit - p->n_seen - 1; /* the change itself follows */
  wire_page_start(&opened, room > 0 ? room : 0, 0);
  wire_page_walk_start(&opened);
  int bad = walk_moved(rd, rt, pk, 0, &opened);
  int rc = bad < 0 ? WIRE_FAIL
           : bad   ? (rd->moved = 1, WIRE_KEEP)
                   : take_moved(rd, rt, pk, version, &opened, 0);
  wire_page_drop(&opened);
  return rc;
}

/* Under rules, a change the user may not read is left out: the live row
** is judged as it is when checked, a delete by the values the row had
** (rules_gone_readable: sent when none were kept). After a cursor, a row
** the user may not read now but could read before it changed (a former
** value kept by the storage's triggers passes the rule) is sent as a delete: move-out. So
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
      rules_concerns(rd->s, rd->c, rt, pk, row != 0, rd->since, rd->u, &concerns, rd->err))
    return WIRE_FAIL;
  if (concerns) {
    int in = row ? move_in(rd, rt, pk, version) : move_out(rd, rt, pk, 0, version);
    if (in != WIRE_KEEP) return in;
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
** From (cursor: at) table wtable after key wpk; list: the n tables sent.
** A move-in walked over pages (move_in) is the same walk of the rows that
** the row keyed by inpk of membership table `in` opens, snap being the
** version of that row's change, after which the page then goes on as an
** increment; a move-out's (out) walks the rows it closed first, sent as
** deletes, then those it opens from the first. 0; 1 when that move cannot
** be walked (moved); -1. */
static int walk_page(store *s, dialect_conn *c, const store_user *u, const char *client,
                     long long pending_from, const char *only, const catalog_table **list, int n,
                     const char *wtable, const char *wpk, long long snap, const catalog_table *in,
                     const char *inpk, int out, wire_page *p, reader *rd, char **err) {
  dialect_walk *w = sqlite3_malloc64(sizeof *w * ((size_t)n + 1));
  int m = 0, bad = w ? walks(s, u, list, n, wtable, wpk, in, inpk, out, w, &m) : -1;
  if (bad < 0) *err = wire_errf("out of memory");
  wire_page_walk_start(p);
  p->gone = out ? snap : 0;
  int rc = bad || s->d->read_page(c, client, 0, 0, 0, w, m, pending_from, p, err);
  p->gone = 0;
  walks_free(w, m);
  if (bad > 0) return 1;
  if (rc) return -1;
  if (out && !p->has_more) {
    /* the rows it closed are walked: those it opens, from the first */
    wire_page_walk_restart(p);
    w = sqlite3_malloc64(sizeof *w * ((size_t)n + 1));
    m = 0, bad = w ? walks(s, u, list, n, 0, 0, in, inpk, 0, w, &m) : -1;
    if (bad < 0) *err = wire_errf("out of memory");
    rc = bad || (m && s->d->walk_rows(c, w, m, p, err));
    walks_free(w, m);
    if (bad > 0) return 1;
    if (rc) return -1;
    out = 0;
  }
  if (in && p->has_more && wire_page_move_in(p, in->name, inpk, snap, p, out))
    return *err = wire_errf("out of memory"), -1;
  if (!in) p->snap = wtable ? snap : p->head;
  if (p->has_more) return 0;
  /* every table walked: the changes above the walk's head (a move-in:
  ** above its membership's change) follow */
  wire_page_walk_end(p, in ? snap : p->snap);
  if (p->rejected) sqlite3_str_reset(p->rejected);
  if (!in) rd->snap = rd->since = p->snap;
  rd->p = p;
  p->filter = read_filter, p->filter_arg = rd;
  long long head = p->head;
  if (s->d->read_page(c, client, in ? snap : p->snap, 1, only, 0, 0, pending_from, p, err) ||
      p->failed)
    return -1;
  /* the walk's snapshot and this one: the head cannot have gone back */
  if (p->head < head) p->head = head;
  return 0;
}

/* A cursor's key of table named by reference (wire.h, WIRE_WALK_MAX; after:
** the cursor's version), *pk made the key's JSON in its place: 0; 1 when
** no change of table holds that key any more (the cursor expired: only a
** purge of tombstones or a crafted cursor does that); -1 with *err. */
static int key_named(store *s, dialect_conn *c, const char *table, long long after, char **pk,
                     char **err) {
  long long version;
  char hash[WIRE_HASH_HEX + 1], *key = 0;
  if (!*pk || !wire_key_ref(*pk, &version, hash)) return 0;
  int rc = s->d->walk_key(c, table, version, after, hash, &key, err);
  if (rc == 0) sqlite3_free(*pk), *pk = key;
  return rc;
}

/* store_pull_as once; *reread 1 when reading the page failed under rules,
** where walks read the tables' columns as the catalog has them. */
static int pull_as(store *s, const store_user *u, const char *client, const char *cursor, int limit,
                   long long pending_from, const char *tables, store_page *page, int *reread,
                   char **err) {
  long long after = 0, snap = 0, from = -1;
  char *wtable = 0, *wpk = 0, *itable = 0, *ipk = 0;
  int iout = 0;
  memset(page, 0, sizeof *page);
  int walk = s->has_rules; /* read without the schema lock: a flag set once */
  if (cursor) {
    int rc = wire_cursor_parse_walk(cursor, s->db_id, &after, &snap, &wtable, &wpk, &itable, &ipk,
                                    &from, &iout);
    if (rc == STORE_ERROR) *err = wire_errf("out of memory");
    if (rc != STORE_OK) return rc;
    /* a walk that cannot go on (syncd restarted without rules): its rows
    ** below the head were not all sent, so the client starts over */
    if ((wtable || itable) && !walk) {
      sqlite3_free(wtable);
      sqlite3_free(wpk);
      sqlite3_free(itable);
      sqlite3_free(ipk);
      return STORE_EXPIRED;
    }
  }
  walk = walk && (!cursor || wtable || itable);
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
      sqlite3_free(itable);
      sqlite3_free(ipk);
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
  /* a long key named by reference: found before the page is read */
  int named = failed ? 0 : key_named(s, c, wtable, after, &wpk, err);
  if (!failed && !named) named = key_named(s, c, itable, after, &ipk, err);
  if (failed || named) {
    sqlite3_free(only);
    sqlite3_free(list);
    sqlite3_free(wtable);
    sqlite3_free(wpk);
    sqlite3_free(itable);
    sqlite3_free(ipk);
    store_schema_leave(s, c);
    return failed || named < 0 ? STORE_ERROR : STORE_EXPIRED;
  }
  /* a move-in's membership table: one of the catalog a select reads */
  const catalog_table *in = itable ? catalog_table_find(&s->cat, itable) : 0;
  const rules_table *irt = in ? rules_judged(s->rules, in) : 0;
  wire_page p;
  wire_page_start(&p, limit, pending_from > 0);
  /* an initial sync's pages bring the memberships up to its head (snap).
  ** An increment's pages with more to come carry the cursor they began at
  ** (wire.h, "f"): a page can pass a delete that a later change of the key
  ** replaced before the client read it, so the client had every change
  ** as of that first cursor only (move_in); after a move-in's walk it is
  ** not known (0); an initial sync's is the head it began at (walk_page
  ** sets it on the first page) */
  long long since = from >= 0 ? from : itable ? 0 : snap ? snap : after;
  reader rd = {s, c, u, cursor && !snap, since, 0, snap, 0, list, n_list, err};
  int rc = STORE_ERROR, read;
  /* a move-in the rules no longer allow (changed since): nothing is read,
  ** the client resyncs */
  int unread = itable && (!irt || !irt->membership);
  if (unread) {
    read = 0;
  } else if (walk) {
    read = walk_page(s, c, u, client, pending_from, only, list, n_list, wtable, wpk,
                     in ? after : snap, in, ipk, iout, &p, &rd, err);
    if (read > 0) read = 0, unread = 1;
  } else {
    if (s->rules) p.filter = read_filter, p.filter_arg = &rd, rd.p = &p;
    read = s->d->read_page(c, client, after, cursor != 0, only, 0, 0, pending_from, &p, err) ||
           p.failed;
    p.snap = cursor ? snap : p.head;
  }
  if (s->rules) p.from = rd.since;
  *reread = read && s->rules;
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
    if (unread)
      rc = STORE_MOVED;
    else if (cursor && (needs < p.horizon || after > p.head || snap > p.head))
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
  sqlite3_free(itable);
  sqlite3_free(ipk);
  return rc;
}

int store_pull_as(store *s, const store_user *u, const char *client, const char *cursor, int limit,
                  long long pending_from, const char *tables, store_page *page, char **err) {
  int reread = 0;
  int rc = pull_as(s, u, client, cursor, limit, pending_from, tables, page, &reread, err);
  /* a column dropped since the catalog was read (a pull checks the schema
  ** only when it names a table the catalog lacks): read again, once */
  if (rc == STORE_ERROR && reread && store_schema_reload(s)) {
    sqlite3_free(*err);
    *err = 0;
    rc = pull_as(s, u, client, cursor, limit, pending_from, tables, page, &reread, err);
  }
  return rc;
}

int store_pull_group(store *s, const store_user *u, const char *const *clients, int n,
                     const char *cursor, int limit, const char *tables, store_page *page,
                     long long *last, char **err) {
  memset(page, 0, sizeof *page);
  if (n > 1) {
    sqlite3_str *list = sqlite3_str_new(0);
    for (int i = 0; i < n; i++) {
      sqlite3_str_appendchar(list, 1, i ? ',' : '[');
      value_append_string(list, clients[i], -1);
    }
    sqlite3_str_appendchar(list, 1, ']');
    int bad = sqlite3_str_errcode(list) != SQLITE_OK;
    char *json = sqlite3_str_finish(list);
    dialect_conn *c = bad || !json ? 0 : pool_get(&s->pool, err);
    if (c) {
      bad = s->d->client_lasts(c, json, last, n, err);
      pool_put(&s->pool, c);
    } else if (!*err) {
      *err = wire_errf("out of memory");
    }
    sqlite3_free(json);
    if (!c || bad) return STORE_ERROR;
  }
  int rc = store_pull_as(s, u, clients[0], cursor, limit, 0, tables, page, err);
  last[0] = page->last_id;
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
