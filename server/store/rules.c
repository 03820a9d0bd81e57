/*
** rules.c: the rules file of syncd --rules FILE (docs/RULES.md):
**
**   {"tables": {"todos": {"read": "owner = :sub", "write": "owner = :sub",
**                         "server_columns": ["owner", "updated_at"]}}}
**
** Each table named must be a synced one; read and write are expressions
** of the SQL subset rules_expr.c compiles (absent: false); server_columns
** name columns outside the primary key. Keys this version does not know
** are ignored, so a newer file still loads; anything it knows and cannot
** use stops syncd with a message naming the table and the fault. A table
** without a rule is not synced at all (rules_find answers NULL).
**
** For each rule, a check selecting whether one row (keyed by parameter 1,
** the key as JSON) passes it, rendered for the store's dialect; and for a
** read rule that names its row's columns, the statements that keep their
** former values in _syncd_was_<table> and check them (was_sql: move-out,
** docs/RULES.md).
*/
#include "rules.h"

#include <stdio.h>
#include <string.h>

#include "jscan.h"
#include "pg_sql.h"
#include "sqlite_api.h"

static char *text(jspan v) {
  if (strcmp(jscan_type(v), "text") != 0) return 0;
  int nul = 0;
  char *z = jscan_text(v, &nul);
  if (z && nul) sqlite3_free(z), z = 0;
  return z;
}

/* "<alias>.<each key column of t> = <its value in the key JSON src> AND "
** (src: parameter 1 unless given), the key as the store prints it: a
** BLOB is {"$base64": ...}, which sync_val reads on SQLite (and
** pgsql_key_value on PostgreSQL) */
static void key_match_from(sqlite3_str *s, const catalog_table *t, const char *alias, int pg,
                           const char *src) {
  for (int k = 0; k < t->n_pk; k++) {
    const catalog_col *c = &t->cols[t->pk[k]];
    if (pg) {
      sqlite3_str_appendf(s, "\"%w\".\"%w\" = ", alias, c->name);
      pgsql_key_value(s, t, t->pk[k], src ? src : "$1");
      sqlite3_str_appendall(s, " AND ");
    } else {
      sqlite3_str_appendf(s, "\"%w\".\"%w\" = sync_val(%s -> %Q) AND ", alias, c->name,
                          src ? src : "?1", c->key);
    }
  }
}

static void key_match(sqlite3_str *s, const catalog_table *t, const char *alias, int pg) {
  key_match_from(s, t, alias, pg, 0);
}

/* SELECT EXISTS(the row of t keyed by parameter 1 AND cond). */
static char *check_sql(const catalog_table *t, const char *cond, int pg) {
  sqlite3_str *s = sqlite3_str_new(0);
  sqlite3_str_appendf(s, "SELECT EXISTS(SELECT 1 FROM \"%w\" WHERE ", t->name);
  key_match(s, t, t->name, pg);
  sqlite3_str_appendf(s, "%s)", cond);
  return sqlite3_str_finish(s);
}

/* cols[0..n) with each of more[0..m) not in it yet appended: the new n. */
static int add_cols(int *cols, int n, const int *more, int m) {
  for (int i = 0; i < m; i++) {
    int k = 0;
    while (k < n && cols[k] != more[i])
      k++;
    if (k == n) cols[n++] = more[i];
  }
  return n;
}

/* The columns _syncd_was_<t> holds: t's key, then the other columns read
** or concern names and those read rules select from t, each once; into
** cols (room for t->n_pk + 2 * RULES_MAX_COLS + RULES_MAX_PARAMS), their
** number. */
static int was_columns(const rules_table *rt, int *cols) {
  const catalog_table *t = rt->t;
  int n = add_cols(cols, 0, t->pk, t->n_pk);
  n = add_cols(cols, n, rt->read_params.cols, rt->read_params.n_cols);
  n = add_cols(cols, n, rt->concern_params.cols, rt->concern_params.n_cols);
  return add_cols(cols, n, rt->sel_cols, rt->n_sel_cols);
}

/* "<sep>"a"<sep>"b"..., each of cols prefixed by alias when not NULL. */
static void col_list(sqlite3_str *s, const catalog_table *t, const int *cols, int n,
                     const char *alias) {
  for (int i = 0; i < n; i++) {
    if (i) sqlite3_str_appendall(s, ", ");
    if (alias) sqlite3_str_appendf(s, "\"%w\".", alias);
    sqlite3_str_appendf(s, "\"%w\"", t->cols[cols[i]].name);
  }
}

/* " AND "-joined "<a>c IS <b>c" over cols (NULL equal to NULL), which
** begin with t's key (was_columns); a and b are prefixes as written
** ("old.", "\"_syncd_was_t\"."). PostgreSQL's IS NOT DISTINCT FROM uses
** no index, so the key's columns, never NULL, are compared with =: with
** it alone every write of the table scanned all the values kept */
static void same_in(sqlite3_str *s, const catalog_table *t, const int *cols, int n, const char *a,
                    const char *b, int pg) {
  for (int i = 0; i < n; i++)
    sqlite3_str_appendf(s, "%s%s\"%w\" %s %s\"%w\"", i ? " AND " : "", a, t->cols[cols[i]].name,
                        !pg           ? "IS"
                        : i < t->n_pk ? "="
                                      : "IS NOT DISTINCT FROM",
                        b, t->cols[cols[i]].name);
}

/* "EXISTS(a former value of the row keyed by parameter 1 AND cond)": cond's
** columns are written qualified by t's name, which the copy takes. */
static void was_exists(sqlite3_str *s, const catalog_table *t, const char *was, const char *cond,
                       int pg) {
  sqlite3_str_appendf(s, "EXISTS(SELECT 1 FROM \"%w\" AS \"%w\" WHERE ", was, t->name);
  key_match(s, t, t->name, pg);
  sqlite3_str_appendf(s, "%s)", cond);
}

/* Whether a former value of the row keyed by parameter 1 passes cond
** (into check), and the same or none is kept (into gone). */
static void was_pair(sqlite3_str *check, sqlite3_str *gone, const catalog_table *t, const char *was,
                     const char *cond, int pg) {
  sqlite3_str_appendall(check, "SELECT ");
  was_exists(check, t, was, cond, pg);
  sqlite3_str_appendall(gone, "SELECT NOT ");
  was_exists(gone, t, was, "true", pg);
  sqlite3_str_appendall(gone, " OR ");
  was_exists(gone, t, was, cond, pg);
}

/* PostgreSQL's trigger that keeps the former values of t's rows in was,
** whatever writes them (a push, a cascade, a trigger, another program):
** rt->was_trigger, the function and the trigger, made at startup
** (rules_store.c). An update or a delete keeps the values before it; an
** insert or an update drops the kept values equal to the row's now (they
** are not former ones). A reader of a kept value then gets a delete when
** the row moves away from it, or when its key comes back with other
** values after a delete (the change log keeps only the insert) (pull.c).
** The row is read through its JSON into was's row type, so a column the
** owner drops fails no write. SQLite keeps them in the TEMP triggers of
** syncd's own connections (sqlite_watch.c). */
static int was_trigger(rules_table *rt, const int *cols, int n, const char *was) {
  const catalog_table *t = rt->t;
  sqlite3_str *body = sqlite3_str_new(0);
  sqlite3_str_appendf(body,
                      " DECLARE _syncd_o \"%w\"; _syncd_n \"%w\"; BEGIN"
                      " IF TG_OP <> 'INSERT' THEN _syncd_o := jsonb_populate_record("
                      "NULL::\"%w\", to_jsonb(OLD)); END IF;"
                      " IF TG_OP <> 'DELETE' THEN _syncd_n := jsonb_populate_record("
                      "NULL::\"%w\", to_jsonb(NEW)); END IF;"
                      " IF TG_OP = 'UPDATE' AND _syncd_o IS NOT DISTINCT FROM _syncd_n THEN"
                      " RETURN NULL; END IF;"
                      " IF TG_OP <> 'INSERT' THEN INSERT INTO \"%w\" SELECT (_syncd_o).*"
                      " WHERE NOT EXISTS(SELECT 1 FROM \"%w\" AS _syncd_w WHERE ",
                      was, was, was, was, was, was);
  same_in(body, t, cols, n, "_syncd_w.", "_syncd_o.", 1);
  sqlite3_str_appendf(body,
                      "); END IF; IF TG_OP <> 'DELETE' THEN DELETE FROM \"%w\" AS _syncd_w"
                      " WHERE ",
                      was);
  same_in(body, t, cols, n, "_syncd_w.", "_syncd_n.", 1);
  sqlite3_str_appendall(body, "; END IF; RETURN NULL; END ");
  /* a dollar quote the body does not hold */
  char *z = sqlite3_str_finish(body), *tag = 0;
  for (int k = 0; z && (!tag || strstr(z, tag)); k++) {
    sqlite3_free(tag);
    if (!(tag = sqlite3_mprintf("$_syncd%d$", k))) break;
  }
  if (z && tag)
    rt->was_trigger[0] = sqlite3_mprintf("CREATE OR REPLACE FUNCTION \"%w\"() RETURNS trigger"
                                         " LANGUAGE plpgsql AS %s%s%s",
                                         was, tag, z, tag);
  sqlite3_free(z);
  sqlite3_free(tag);
  rt->was_trigger[1] = sqlite3_mprintf("CREATE OR REPLACE TRIGGER _syncd_was AFTER INSERT OR UPDATE"
                                       " OR DELETE ON \"%w\" FOR EACH ROW EXECUTE FUNCTION"
                                       " \"%w\"()",
                                       t->name, was);
  rt->n_was_trigger = 2;
  return rt->was_trigger[0] && rt->was_trigger[1] ? 0 : -1;
}

/* The was_* statements of rt (rules.h); 0, or -1 when out of memory. */
static int was_sql(rules_table *rt, int pg) {
  const catalog_table *t = rt->t;
  if (!rt->read_params.n_cols && !rt->concern_params.n_cols) return 0;
  int *cols =
      sqlite3_malloc64(sizeof *cols * ((size_t)t->n_pk + 2 * RULES_MAX_COLS + RULES_MAX_PARAMS));
  char *was = sqlite3_mprintf("_syncd_was_%s", t->name);
  if (!cols || !was) return sqlite3_free(cols), sqlite3_free(was), -1;
  int n = was_columns(rt, cols);
  sqlite3_str *s[9];
  for (int i = 0; i < 9; i++)
    s[i] = sqlite3_str_new(0);
  /* an empty copy of the columns, with their types; and the key's index */
  sqlite3_str_appendf(s[0], "CREATE TABLE IF NOT EXISTS \"%w\" AS SELECT ", was);
  col_list(s[0], t, cols, n, 0);
  sqlite3_str_appendf(s[0], " FROM \"%w\" WHERE false", t->name);
  sqlite3_str_appendf(s[4], "CREATE INDEX IF NOT EXISTS \"%w_key\" ON \"%w\"(", was, was);
  col_list(s[4], t, cols, t->n_pk, 0);
  sqlite3_str_appendall(s[4], ")");
  /* qualified: SQLite reads an unknown "name" alone as a string */
  sqlite3_str_appendall(s[1], "SELECT EXISTS(SELECT ");
  col_list(s[1], t, cols, n, was);
  sqlite3_str_appendf(s[1], " FROM \"%w\" WHERE false)", was);
  int trigger_bad = pg && was_trigger(rt, cols, n, was);
  /* the values of the keys whose tombstones the compaction purges (the
  ** horizon in parameter 2 on SQLite; on PostgreSQL a step of its purge,
  ** which names those tombstones "d", pg_log.c) */
  if (pg) {
    sqlite3_str_appendf(s[2],
                        "DELETE FROM \"%w\" AS \"w\" USING \"d\" WHERE \"d\".\"tbl\" = %Q AND ",
                        was, t->name);
    key_match_from(s[2], t, "w", pg, "\"d\".\"pk\"");
    sqlite3_str_appendall(s[2], "true");
  } else {
    sqlite3_str_appendf(s[2],
                        "DELETE FROM \"%w\" WHERE rowid IN (SELECT \"w\".rowid FROM _syncd_changes"
                        " AS \"d\" JOIN \"%w\" AS \"w\" ON ",
                        was, was);
    key_match_from(s[2], t, "w", pg, "\"d\".\"pk\"");
    sqlite3_str_appendf(s[2],
                        "true WHERE \"d\".op = 'delete' AND \"d\".version <= ?2"
                        " AND \"d\".tbl = %Q)",
                        t->name);
  }
  was_pair(s[3], s[7], t, was, rt->read_wide, pg);
  sqlite3_str_appendall(s[8], "SELECT ");
  was_exists(s[8], t, was, "true", pg);
  if (rt->concern) was_pair(s[5], s[6], t, was, rt->concern, pg);
  /* concern_remade: no value is kept for the key but the row's own now */
  int remade_bad = 0;
  if (rt->concern) {
    sqlite3_str *q = sqlite3_str_new(0);
    sqlite3_str_appendf(q, "SELECT NOT EXISTS(SELECT 1 FROM \"%w\" AS \"_syncd_w\" WHERE ", was);
    key_match(q, t, "_syncd_w", pg);
    sqlite3_str_appendf(q, "NOT EXISTS(SELECT 1 FROM \"%w\" WHERE ", t->name);
    key_match(q, t, t->name, pg);
    char *own = sqlite3_mprintf("\"%w\".", t->name);
    same_in(q, t, cols, n, "\"_syncd_w\".", own ? own : "", pg);
    sqlite3_free(own);
    sqlite3_str_appendall(q, "))");
    remade_bad = !(rt->concern_remade = sqlite3_str_finish(q));
  }
  int index_bad = 0;
  if (rt->concern && rt->concern_params.n_cols) {
    int by[RULES_MAX_COLS + RULES_MAX_PARAMS];
    int nb = add_cols(by, 0, rt->concern_params.cols, rt->concern_params.n_cols);
    nb = add_cols(by, nb, rt->sel_cols, rt->n_sel_cols);
    sqlite3_str *q = sqlite3_str_new(0);
    sqlite3_str_appendf(q, "CREATE INDEX IF NOT EXISTS \"%w_concern\" ON \"%w\"(", was, was);
    col_list(q, t, by, nb, 0);
    sqlite3_str_appendall(q, ")");
    index_bad = !(rt->was_concern_index = sqlite3_str_finish(q));
  }
  sqlite3_free(was);
  sqlite3_free(cols);
  char **out[9] = {&rt->was_create,   &rt->was_probe, &rt->was_purge,
                   &rt->was_check,    &rt->was_index, &rt->concern_was,
                   &rt->concern_gone, &rt->was_gone,  &rt->was_kept};
  int bad = remade_bad || trigger_bad || index_bad;
  for (int i = 0; i < 9; i++)
    if (!(*out[i] = sqlite3_str_finish(s[i])) && ((i != 5 && i != 6) || rt->concern)) bad = 1;
  if (!rt->read_params.n_cols) {
    sqlite3_free(rt->was_check), rt->was_check = 0;
    sqlite3_free(rt->was_gone), rt->was_gone = 0;
  }
  return bad ? -1 : 0;
}

/* rt's concern (rules.h) when a read rule selects from its table: the
** WHEREs of those selects, each as the rule wrote it, compiled again over
** rt's table as one expression. 0, or -1 with *err. */
static int concern(const catalog *cat, rules *r, rules_table *rt, int pg, char **err) {
  sqlite3_str *src = sqlite3_str_new(0);
  int n = 0;
  for (int i = 0; i < r->n; i++) {
    const rules_params *p = &r->tables[i].read_params;
    for (int k = 0; k < p->n_selects; k++) {
      if (p->selects[k] != rt->t) continue;
      sqlite3_str_appendf(src, "%s(%s)", n++ ? " OR " : "", p->wheres[k]);
      int c = 0;
      while (c < rt->n_sel_cols && rt->sel_cols[c] != p->sel_col[k])
        c++;
      if (c == rt->n_sel_cols && c < RULES_MAX_PARAMS)
        rt->sel_cols[rt->n_sel_cols++] = p->sel_col[k];
    }
  }
  char *z = sqlite3_str_finish(src), *why = 0;
  if (!n) return sqlite3_free(z), 0;
  rt->membership = 1;
  rt->concern = z ? rules_expr_compile(cat, rt->t, z, pg, &rt->concern_params, &why) : 0;
  sqlite3_free(z);
  if (rt->concern && (rt->concern_check = check_sql(rt->t, rt->concern, pg))) return 0;
  *err = sqlite3_mprintf("rules: table %s, the selects that read it: %s", rt->t->name,
                         why ? why : "out of memory");
  sqlite3_free(why);
  return -1;
}

/* rt's via and via_out (rules.h): the selects from each table, each
** restricted to the row keyed by the parameter after read's, ORed, AND
** read; for via_out the same selects read from the table's former values
** (_syncd_was_<table>, whose columns have the same names), AND NOT read.
** 0, or -1 when out of memory. */
static int via_sql(rules_table *rt, int pg) {
  const rules_params *p = &rt->read_params;
  char src[16];
  snprintf(src, sizeof src, pg ? "$%d" : "?%d", p->n + 2);
  for (int k = 0; k < p->n_selects; k++) {
    const catalog_table *m = p->selects[k];
    int i = 0;
    while (i < rt->n_via && rt->via_from[i] != m)
      i++;
    if (i < rt->n_via) continue;
    rt->via_from[rt->n_via++] = m;
    int mono = 1;
    for (int j = k; j < p->n_selects; j++)
      mono = mono && (p->selects[j] != m || p->mono[j]);
    if (!mono) continue; /* via stays NULL */
    /* the select's FROM as rules_expr.c writes it, and the former values' */
    char *from = sqlite3_mprintf("FROM \"%w\" AS \"_syncd_in\" WHERE ", m->name);
    char *was = sqlite3_mprintf("FROM \"_syncd_was_%w\" AS \"_syncd_in\" WHERE ", m->name);
    sqlite3_str *s[2] = {sqlite3_str_new(0), sqlite3_str_new(0)};
    int bad = !from || !was;
    for (int o = 0; !bad && o < 2; o++) {
      if (o) sqlite3_str_appendf(s[o], "NOT (%s) AND ", rt->read);
      sqlite3_str_appendchar(s[o], 1, '(');
      for (int j = k; j < p->n_selects; j++) {
        if (p->selects[j] != m) continue;
        if (j > k) sqlite3_str_appendall(s[o], " OR ");
        int n = p->where[j] - p->atom[j], nf = (int)strlen(from);
        if (o && (n < nf || memcmp(rt->read + p->where[j] - nf, from, (size_t)nf) != 0)) {
          bad = 1;
          break;
        }
        sqlite3_str_append(s[o], rt->read + p->atom[j], o ? n - nf : n);
        if (o) sqlite3_str_appendall(s[o], was);
        sqlite3_str_appendchar(s[o], 1, '(');
        sqlite3_str_append(s[o], rt->read + p->where[j], p->where_end[j] - p->where[j]);
        sqlite3_str_appendall(s[o], ") AND ");
        key_match_from(s[o], m, "_syncd_in", pg, src);
        sqlite3_str_appendall(s[o], "true");
        sqlite3_str_append(s[o], rt->read + p->where_end[j], p->atom_end[j] - p->where_end[j]);
      }
      sqlite3_str_appendchar(s[o], 1, ')');
      if (!o) sqlite3_str_appendf(s[o], " AND %s", rt->read);
    }
    sqlite3_free(from);
    sqlite3_free(was);
    char *z[2];
    for (int o = 0; o < 2; o++) {
      bad |= sqlite3_str_errcode(s[o]) != SQLITE_OK;
      z[o] = sqlite3_str_finish(s[o]);
    }
    if (bad) return sqlite3_free(z[0]), sqlite3_free(z[1]), -1;
    rt->via[rt->n_via - 1] = z[0];
    rt->via_out[rt->n_via - 1] = z[1];
  }
  return 0;
}

/* rt's read_wide (rules.h): read with each select from a table that
** keeps former values reading them too. 0, or -1 when out of memory. */
static int read_wide(const rules *r, rules_table *rt) {
  const rules_params *p = &rt->read_params;
  sqlite3_str *s = sqlite3_str_new(0);
  int at = 0, bad = 0;
  for (int j = 0; !bad && j < p->n_selects; j++) {
    const rules_table *m = rules_judged(r, p->selects[j]);
    if (!m || (!m->read_params.n_cols && !m->concern_params.n_cols)) continue;
    int *cols = sqlite3_malloc64(sizeof *cols *
                                 ((size_t)m->t->n_pk + 2 * RULES_MAX_COLS + RULES_MAX_PARAMS));
    char *from = sqlite3_mprintf("FROM \"%w\" AS \"_syncd_in\" WHERE ", m->t->name);
    int nf = from ? (int)strlen(from) : 0;
    bad = !cols || !from || p->where[j] - nf < at ||
          memcmp(rt->read + p->where[j] - nf, from, (size_t)nf) != 0;
    if (!bad) {
      int n = was_columns(m, cols);
      sqlite3_str_append(s, rt->read + at, p->where[j] - nf - at);
      sqlite3_str_appendall(s, "FROM (SELECT ");
      col_list(s, m->t, cols, n, 0);
      sqlite3_str_appendf(s, " FROM \"%w\" UNION ALL SELECT ", m->t->name);
      col_list(s, m->t, cols, n, 0);
      sqlite3_str_appendf(s, " FROM \"_syncd_was_%w\") AS \"_syncd_in\" WHERE ", m->t->name);
      at = p->where[j];
    }
    sqlite3_free(cols);
    sqlite3_free(from);
  }
  sqlite3_str_appendall(s, rt->read + at);
  bad |= sqlite3_str_errcode(s) != SQLITE_OK;
  char *z = sqlite3_str_finish(s);
  if (bad) return sqlite3_free(z), -1;
  rt->read_wide = z;
  return 0;
}

/* The expression src (or "false" when absent) of one rule into its SQL
** and check; 0, or -1 with *err. */
static int compile(const catalog *cat, rules_table *rt, jspan src, const char *what, int pg,
                   char **expr, char **check, rules_params *params, char **err) {
  char *z = src.z ? text(src) : sqlite3_mprintf("false");
  if (!z) {
    *err = sqlite3_mprintf("rules: table %s: %s must be a string", rt->t->name, what);
    return -1;
  }
  char *why = 0;
  *expr = rules_expr_compile(cat, rt->t, z, pg, params, &why);
  sqlite3_free(z);
  if (!*expr) {
    *err =
        sqlite3_mprintf("rules: table %s, %s: %s", rt->t->name, what, why ? why : "out of memory");
    sqlite3_free(why);
    return -1;
  }
  if (!(*check = check_sql(rt->t, *expr, pg))) return *err = sqlite3_mprintf("out of memory"), -1;
  return 0;
}

static int server_columns(const catalog *cat, rules_table *rt, jspan v, char **err) {
  const catalog_table *t = rt->t;
  if (!(rt->server = sqlite3_malloc64((size_t)t->n_cols + 1)))
    return *err = sqlite3_mprintf("out of memory"), -1;
  memset(rt->server, 0, (size_t)t->n_cols + 1);
  if (!v.z) return 0;
  if (strcmp(jscan_type(v), "array") != 0)
    return *err = sqlite3_mprintf("rules: table %s: server_columns must be an array", t->name), -1;
  const char *e = v.z + v.n, *p = jscan_ws(v.z + 1, e);
  while (p < e && *p != ']') {
    const char *end = jscan_skip(p, e);
    char *name = text((jspan){p, (int)(end - p)});
    int c = name ? catalog_column_find(cat, t, name) : -1;
    if (c < 0 || catalog_is_pk(t, c)) {
      *err = name ? sqlite3_mprintf("rules: table %s: server_columns: %s is %s", t->name, name,
                                    c < 0 ? "no column of it" : "a primary key column")
                  : sqlite3_mprintf("rules: table %s: server_columns must hold strings", t->name);
      sqlite3_free(name);
      return -1;
    }
    sqlite3_free(name);
    rt->server[c] = 1;
    p = jscan_ws(end, e);
    if (p < e && *p == ',') p = jscan_ws(p + 1, e);
  }
  return 0;
}

static int load_table(const catalog *cat, rules_table *rt, jspan v, int pg, char **err) {
  if (strcmp(jscan_type(v), "object") != 0)
    return *err = sqlite3_mprintf("rules: table %s: its rule must be an object", rt->t->name), -1;
  static const char *const names[] = {"read", "write", "server_columns"};
  jspan f[3];
  jscan_fields(v, names, 3, f);
  if (compile(cat, rt, f[0], "read", pg, &rt->read, &rt->read_check, &rt->read_params, err) ||
      compile(cat, rt, f[1], "write", pg, &rt->write, &rt->write_check, &rt->write_params, err))
    return -1;
  if (via_sql(rt, pg)) return *err = sqlite3_mprintf("out of memory"), -1;
  return server_columns(cat, rt, f[2], err);
}

rules *rules_load(const catalog *cat, const char *json, int pg, char **err) {
  size_t n = strlen(json);
  *err = 0;
  if (!jscan_document(json, json + n))
    return *err = sqlite3_mprintf("rules: the file is not valid JSON"), (rules *)0;
  const char *z = jscan_ws(json, json + n);
  jspan root = {z, (int)(jscan_skip(z, json + n) - z)};
  jspan tables =
      strcmp(jscan_type(root), "object") == 0 ? jscan_field(root, "tables") : (jspan){0, 0};
  if (strcmp(jscan_type(tables), "object") != 0)
    return *err = sqlite3_mprintf("rules: expected {\"tables\": {...}}"), (rules *)0;
  rules *r = sqlite3_malloc64(sizeof *r);
  if (r) memset(r, 0, sizeof *r);
  if (!r || !(r->tables = sqlite3_malloc64(sizeof *r->tables * ((size_t)cat->n_tables + 1)))) {
    sqlite3_free(r);
    return *err = sqlite3_mprintf("out of memory"), (rules *)0;
  }
  const char *p = tables.z, *e = tables.z + tables.n;
  jspan key, val;
  while (!*err && jscan_member(&p, e, &key, &val)) {
    int nul = 0;
    char *name = jscan_text((jspan){key.z - 1, key.n + 2}, &nul);
    const catalog_table *t = name && !nul ? catalog_table_find(cat, name) : 0;
    if (!t || rules_find(r, t)) {
      *err =
          sqlite3_mprintf("rules: %s %s", t ? "a second rule for table" : "no synced table named",
                          name ? name : "?");
    } else {
      rules_table *rt = &r->tables[r->n++];
      memset(rt, 0, sizeof *rt);
      rt->t = t;
      load_table(cat, rt, val, pg, err);
    }
    sqlite3_free(name);
  }
  /* a table a read rule selects from without a rule of its own (members
  ** kept by the application's backend, say) is never synced, but its
  ** changes move rows in and out as a synced one's do */
  for (int i = 0, n = r->n; !*err && i < n; i++)
    for (int k = 0; !*err && k < r->tables[i].read_params.n_selects; k++) {
      const catalog_table *t = r->tables[i].read_params.selects[k];
      if (rules_judged(r, t)) continue;
      rules_table *rt = &r->tables[r->n++];
      memset(rt, 0, sizeof *rt);
      rt->t = t;
      rt->hidden = 1;
      load_table(cat, rt, (jspan){"{}", 2}, pg, err);
    }
  for (int j = 0; !*err && j < r->n; j++)
    concern(cat, r, &r->tables[j], pg, err);
  for (int j = 0; !*err && j < r->n; j++)
    if (read_wide(r, &r->tables[j]) || was_sql(&r->tables[j], pg))
      *err = sqlite3_mprintf("out of memory");
  if (!*err && r->n && !(r->purge = sqlite3_malloc64(sizeof *r->purge * (size_t)r->n)))
    *err = sqlite3_mprintf("out of memory");
  for (int i = 0; !*err && i < r->n; i++)
    if (r->tables[i].was_purge) r->purge[r->n_purge++] = r->tables[i].was_purge;
  if (*err) rules_free(r), r = 0;
  return r;
}

const rules_table *rules_judged(const rules *r, const catalog_table *t) {
  for (int i = 0; r && i < r->n; i++)
    if (r->tables[i].t == t) return &r->tables[i];
  return 0;
}

const rules_table *rules_find(const rules *r, const catalog_table *t) {
  const rules_table *rt = rules_judged(r, t);
  return rt && !rt->hidden ? rt : 0;
}

int rules_values(const rules_params *p, const char *sub, const char *claims, char **vals) {
  jspan obj = {0, 0};
  if (claims) obj = (jspan){jscan_ws(claims, claims + strlen(claims)), 0};
  if (obj.z) obj.n = (int)(jscan_skip(obj.z, obj.z + strlen(obj.z)) - obj.z);
  for (int i = 0; i < p->n; i++) {
    vals[i] = 0;
    const char *name = p->names[i];
    if (strcmp(name, "sub") == 0) {
      if (sub && !(vals[i] = sqlite3_mprintf("%s", sub))) return -1;
      continue;
    }
    jspan v = obj.z ? jscan_field(obj, name + 6) : (jspan){0, 0};
    const char *type = jscan_type(v);
    if (strcmp(type, "text") == 0)
      vals[i] = text(v);
    else if (strcmp(type, "integer") == 0 || strcmp(type, "real") == 0)
      vals[i] = sqlite3_mprintf("%.*s", v.n, v.z);
    else if (strcmp(type, "true") == 0 || strcmp(type, "false") == 0)
      vals[i] = sqlite3_mprintf("%d", type[0] == 't');
    else
      continue;
    if (!vals[i] && strcmp(type, "text") != 0) return -1;
  }
  return 0;
}

char *rules_table_list(const rules *r) {
  sqlite3_str *s = sqlite3_str_new(0);
  for (int i = 0, n = 0; i < r->n; i++) {
    if (r->tables[i].hidden) continue;
    if (n++) sqlite3_str_appendchar(s, 1, ',');
    for (const unsigned char *p = (const unsigned char *)r->tables[i].t->name; *p; p++)
      if (*p == ',' || *p == '%')
        sqlite3_str_appendf(s, "%%%02X", *p);
      else
        sqlite3_str_appendchar(s, 1, (char)*p);
  }
  int bad = sqlite3_str_errcode(s) != SQLITE_OK;
  char *z = sqlite3_str_finish(s);
  return bad ? (sqlite3_free(z), (char *)0) : z ? z : sqlite3_mprintf("");
}

static void params_free(rules_params *p) {
  for (int i = 0; i < p->n; i++)
    sqlite3_free(p->names[i]);
  for (int i = 0; i < p->n_selects; i++)
    sqlite3_free(p->wheres[i]);
}

void rules_free(rules *r) {
  if (!r) return;
  for (int i = 0; i < r->n; i++) {
    rules_table *rt = &r->tables[i];
    sqlite3_free(rt->read);
    sqlite3_free(rt->write);
    sqlite3_free(rt->read_check);
    sqlite3_free(rt->read_wide);
    sqlite3_free(rt->write_check);
    sqlite3_free(rt->server);
    sqlite3_free(rt->was_create);
    sqlite3_free(rt->was_index);
    sqlite3_free(rt->was_concern_index);
    sqlite3_free(rt->was_probe);
    for (int k = 0; k < 3; k++)
      sqlite3_free(rt->was_trigger[k]);
    sqlite3_free(rt->was_purge);
    sqlite3_free(rt->was_check);
    sqlite3_free(rt->was_gone);
    sqlite3_free(rt->was_kept);
    sqlite3_free(rt->concern);
    sqlite3_free(rt->concern_check);
    sqlite3_free(rt->concern_was);
    sqlite3_free(rt->concern_gone);
    sqlite3_free(rt->concern_remade);
    for (int k = 0; k < rt->n_via; k++)
      sqlite3_free(rt->via[k]), sqlite3_free(rt->via_out[k]);
    params_free(&rt->read_params);
    params_free(&rt->write_params);
    params_free(&rt->concern_params);
  }
  sqlite3_free(r->tables);
  sqlite3_free(r->purge);
  sqlite3_free(r);
}
