/*
** rules_expr.c: the SQL subset of a rule (docs/RULES.md), checked against
** the catalog when syncd starts and written back out as SQL for either
** storage.
**
**   expr    := and ("OR" and)*
**   and     := not ("AND" not)*
**   not     := "NOT" not | cmp
**   cmp     := operand [op operand | "IS" ["NOT"] "NULL"
**                       | ["NOT"] "IN" "(" (select | operand ("," operand)*) ")"]
**   op      := "=" | "<>" | "!=" | "<" | "<=" | ">" | ">="
**   operand := column | :sub | :claim_NAME | 'text' | integer | NULL | TRUE
**              | FALSE | "(" expr ")"
**   select  := "SELECT" column "FROM" table "WHERE" expr   (no select inside)
**
** Nothing of the source text is copied out: every token is checked (a
** column must be one of the table's, a table a synced one) and written
** anew, identifiers double-quoted and qualified, literals re-quoted,
** parameters numbered in the dialect's own style (?N on SQLite, $N on
** PostgreSQL). Parameter 1 is kept for the row's key; the named ones
** follow in order of first use.
*/
#include "rules_expr.h"

#include <ctype.h>
#include <string.h>

#include "value.h"

#define RULES_MAX_DEPTH 64

typedef struct parser {
  const catalog *cat;
  const catalog_table *t;  /* the rule's table */
  const catalog_table *in; /* the table of the select being read, or NULL */
  const char *src, *p;
  int pg;
  sqlite3_str *out;
  rules_params *params;
  int depth; /* of nested parentheses and NOTs: the parser recurses */
  int neg;   /* NOTs above: a select met is not monotone (rules_expr.h) */
  char *err;
} parser;

/* Words that cannot be column names in a rule (written bare). */
static const char *const keywords[] = {"and",  "or",    "not",    "in",   "is",   "null",
                                       "true", "false", "select", "from", "where"};

static void fail(parser *ps, const char *what) {
  if (!ps->err)
    ps->err =
        sqlite3_mprintf("%s at offset %d (near \"%.20s\")", what, (int)(ps->p - ps->src), ps->p);
}

static void skip_ws(parser *ps) {
  while (*ps->p && isspace((unsigned char)*ps->p))
    ps->p++;
}

/* The bare word at p (letters, digits, _), its length; 0 when none. */
static int word_len(const char *p) {
  int n = 0;
  if (!isalpha((unsigned char)*p) && *p != '_') return 0;
  while (isalnum((unsigned char)p[n]) || p[n] == '_')
    n++;
  return n;
}

/* Consume keyword kw (case-insensitive, whole word) when it is next. */
static int accept_kw(parser *ps, const char *kw) {
  skip_ws(ps);
  int n = word_len(ps->p);
  if (n != (int)strlen(kw) || sqlite3_strnicmp(ps->p, kw, n) != 0) return 0;
  ps->p += n;
  return 1;
}

static int accept(parser *ps, const char *punct) {
  skip_ws(ps);
  size_t n = strlen(punct);
  if (strncmp(ps->p, punct, n) != 0) return 0;
  ps->p += n;
  return 1;
}

static int is_keyword(const char *p, int n) {
  for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
    if ((int)strlen(keywords[i]) == n && sqlite3_strnicmp(p, keywords[i], n) == 0) return 1;
  return 0;
}

/* An identifier (bare, or "quoted" with "" for a quote) into a new
** string; NULL when there is none. */
static char *identifier(parser *ps) {
  skip_ws(ps);
  if (*ps->p == '"') {
    sqlite3_str *s = sqlite3_str_new(0);
    const char *q = ps->p + 1;
    for (; *q; q++) {
      if (*q == '"' && q[1] != '"') break;
      if (*q == '"') q++;
      sqlite3_str_appendchar(s, 1, *q);
    }
    char *z = sqlite3_str_finish(s);
    if (*q != '"' || !z || !*z) {
      sqlite3_free(z);
      return 0;
    }
    ps->p = q + 1;
    return z;
  }
  int n = word_len(ps->p);
  if (!n || is_keyword(ps->p, n)) return 0;
  char *z = sqlite3_mprintf("%.*s", n, ps->p);
  ps->p += n;
  return z;
}

/* A column of the table in scope, written out qualified. */
static void column(parser *ps) {
  const char *at = ps->p;
  char *name = identifier(ps);
  const catalog_table *t = ps->in ? ps->in : ps->t;
  int c = name ? catalog_column_find(ps->cat, t, name) : -1;
  skip_ws(ps);
  if (name && *ps->p == '(') {
    ps->p = at;
    skip_ws(ps);
    sqlite3_free(name);
    return fail(ps, "function calls are not allowed");
  }
  if (c < 0) {
    ps->p = at;
    skip_ws(ps);
    char *msg = name ? sqlite3_mprintf("no column %s in table %s", name, t->name)
                     : sqlite3_mprintf("expected a column, a parameter or a literal");
    fail(ps, msg ? msg : "out of memory");
    sqlite3_free(msg);
  } else {
    sqlite3_str_appendf(ps->out, "\"%w\".\"%w\"", ps->in ? "_syncd_in" : t->name, t->cols[c].name);
    /* the row's own columns a read rule names are what a move-out keeps
    ** of the row's former values (rules_store.c) */
    rules_params *pp = ps->params;
    int k = 0;
    while (!ps->in && k < pp->n_cols && pp->cols[k] != c)
      k++;
    if (!ps->in && k == pp->n_cols) {
      if (pp->n_cols == RULES_MAX_COLS)
        fail(ps, "too many distinct columns");
      else
        pp->cols[pp->n_cols++] = c;
    }
  }
  sqlite3_free(name);
}

/* :sub or :claim_NAME, numbered by first use from 2 on. */
static void parameter(parser *ps) {
  const char *name = ps->p + 1;
  int n = word_len(name);
  int ok = n == 3 && strncmp(name, "sub", 3) == 0;
  ok = ok || (n > 6 && strncmp(name, "claim_", 6) == 0);
  if (!ok) return fail(ps, "unknown parameter (only :sub and :claim_NAME)");
  rules_params *pp = ps->params;
  int k = 0;
  while (k < pp->n && !((int)strlen(pp->names[k]) == n && strncmp(pp->names[k], name, n) == 0))
    k++;
  if (k == pp->n) {
    if (pp->n == RULES_MAX_PARAMS) return fail(ps, "too many distinct parameters");
    if (!(pp->names[pp->n++] = sqlite3_mprintf("%.*s", n, name))) return fail(ps, "out of memory");
  }
  sqlite3_str_appendf(ps->out, ps->pg ? "$%d" : "?%d", k + 2);
  ps->p = name + n;
}

static void expr(parser *ps);

static void operand(parser *ps) {
  skip_ws(ps);
  const char *p = ps->p;
  if (*p == ':') return parameter(ps);
  if (*p == '\'') {
    const char *q = p + 1;
    sqlite3_str *s = sqlite3_str_new(0);
    for (; *q; q++) {
      if (*q == '\'' && q[1] != '\'') break;
      if (*q == '\'') q++;
      sqlite3_str_appendchar(s, 1, *q);
    }
    char *z = sqlite3_str_finish(s);
    if (*q != '\'' || !z) {
      sqlite3_free(z);
      return fail(ps, "unterminated string");
    }
    sqlite3_str_appendf(ps->out, "%Q", z);
    sqlite3_free(z);
    ps->p = q + 1;
    return;
  }
  if (isdigit((unsigned char)*p) || (*p == '-' && isdigit((unsigned char)p[1]))) {
    int n = *p == '-';
    while (isdigit((unsigned char)p[n]))
      n++;
    if (n > 18 || isalnum((unsigned char)p[n]) || p[n] == '.')
      return fail(ps, "only integers of up to 18 digits are allowed");
    sqlite3_str_appendf(ps->out, "%.*s", n, p);
    ps->p = p + n;
    return;
  }
  if (accept_kw(ps, "null")) return sqlite3_str_appendall(ps->out, "NULL");
  if (accept_kw(ps, "true")) return sqlite3_str_appendall(ps->out, "TRUE");
  if (accept_kw(ps, "false")) return sqlite3_str_appendall(ps->out, "FALSE");
  if (accept(ps, "(")) {
    sqlite3_str_appendchar(ps->out, 1, '(');
    expr(ps);
    if (!accept(ps, ")")) return fail(ps, "expected )");
    sqlite3_str_appendchar(ps->out, 1, ')');
    return;
  }
  column(ps);
}

/* SELECT col FROM table WHERE expr, after the "(" of IN. */
static void select_in(parser *ps) {
  if (ps->in) return fail(ps, "a select inside a select is not allowed");
  skip_ws(ps);
  const char *col_at = ps->p;
  char *col = identifier(ps);
  if (!col) return fail(ps, "expected a column after SELECT");
  if (!accept_kw(ps, "from")) return sqlite3_free(col), fail(ps, "expected FROM");
  skip_ws(ps);
  const char *tab_at = ps->p;
  char *tab = identifier(ps);
  const catalog_table *in = tab ? catalog_table_find(ps->cat, tab) : 0;
  if (!in) {
    ps->p = tab_at;
    sqlite3_free(col);
    sqlite3_free(tab);
    return fail(ps, "expected a synced table after FROM");
  }
  sqlite3_free(tab);
  if (ps->params->n_selects == RULES_MAX_PARAMS)
    return sqlite3_free(col), fail(ps, "too many selects");
  ps->params->selects[ps->params->n_selects++] = in;
  int c = catalog_column_find(ps->cat, in, col);
  sqlite3_free(col);
  if (c < 0) {
    ps->p = col_at;
    return fail(ps, "no such column in the selected table");
  }
  ps->params->sel_col[ps->params->n_selects - 1] = c;
  sqlite3_str_appendf(ps->out, "SELECT \"_syncd_in\".\"%w\" FROM \"%w\" AS \"_syncd_in\" WHERE ",
                      in->cols[c].name, in->name);
  if (!accept_kw(ps, "where")) return fail(ps, "expected WHERE");
  ps->in = in;
  const char *where = ps->p;
  ps->params->where[ps->params->n_selects - 1] = sqlite3_str_length(ps->out);
  expr(ps);
  ps->params->where_end[ps->params->n_selects - 1] = sqlite3_str_length(ps->out);
  ps->in = 0;
  /* what a change of the selected table must match to concern a user
  ** (rules.c, concern) */
  char **w = &ps->params->wheres[ps->params->n_selects - 1];
  if (!ps->err && !(*w = sqlite3_mprintf("%.*s", (int)(ps->p - where), where)))
    fail(ps, "out of memory");
}

/* The selects from first on sit in an operand a comparison reads as a
** value: not monotone. */
static void compared(parser *ps, int first) {
  for (int k = first; k < ps->params->n_selects; k++)
    ps->params->mono[k] = 0;
}

static void cmp(parser *ps) {
  skip_ws(ps);
  int param = *ps->p == ':';
  int atom = sqlite3_str_length(ps->out), first = ps->params->n_selects;
  operand(ps);
  static const char *const ops[] = {"<=", ">=", "<>", "!=", "=", "<", ">"};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (accept(ps, ops[i])) {
      sqlite3_str_appendf(ps->out, " %s ", strcmp(ops[i], "!=") == 0 ? "<>" : ops[i]);
      operand(ps);
      return compared(ps, first);
    }
  if (accept_kw(ps, "is")) {
    compared(ps, first);
    int neg = accept_kw(ps, "not");
    if (!accept_kw(ps, "null")) return fail(ps, "expected NULL after IS");
    /* PostgreSQL infers a parameter's type from what it meets; NULL has none */
    if (param && ps->pg) sqlite3_str_appendall(ps->out, "::text");
    return sqlite3_str_appendall(ps->out, neg ? " IS NOT NULL" : " IS NULL");
  }
  const char *at = ps->p;
  int neg = accept_kw(ps, "not");
  if (!accept_kw(ps, "in")) {
    if (neg) ps->p = at;
    return;
  }
  compared(ps, first);
  sqlite3_str_appendall(ps->out, neg ? " NOT IN (" : " IN (");
  if (!accept(ps, "(")) return fail(ps, "expected ( after IN");
  int k = ps->params->n_selects;
  if (accept_kw(ps, "select")) {
    select_in(ps);
  } else {
    operand(ps);
    while (!ps->err && accept(ps, ",")) {
      sqlite3_str_appendall(ps->out, ", ");
      operand(ps);
    }
    compared(ps, k);
  }
  if (!accept(ps, ")")) return fail(ps, "expected )");
  sqlite3_str_appendchar(ps->out, 1, ')');
  if (k < ps->params->n_selects) {
    ps->params->atom[k] = atom;
    ps->params->atom_end[k] = sqlite3_str_length(ps->out);
    ps->params->mono[k] = !neg && !ps->neg;
  }
}

static void not_expr(parser *ps) {
  if (++ps->depth > RULES_MAX_DEPTH) return fail(ps, "nested too deeply");
  if (accept_kw(ps, "not")) {
    sqlite3_str_appendall(ps->out, "NOT ");
    ps->neg++;
    not_expr(ps);
    ps->neg--;
  } else {
    cmp(ps);
  }
  ps->depth--;
}

static void and_expr(parser *ps) {
  not_expr(ps);
  while (!ps->err && accept_kw(ps, "and")) {
    sqlite3_str_appendall(ps->out, " AND ");
    not_expr(ps);
  }
}

static void expr(parser *ps) {
  and_expr(ps);
  while (!ps->err && accept_kw(ps, "or")) {
    sqlite3_str_appendall(ps->out, " OR ");
    and_expr(ps);
  }
}

char *rules_expr_compile(const catalog *cat, const catalog_table *t, const char *src, int pg,
                         rules_params *params, char **err) {
  parser ps = {cat, t, 0, src, src, pg, sqlite3_str_new(0), params, 0, 0, 0};
  sqlite3_str_appendchar(ps.out, 1, '(');
  expr(&ps);
  skip_ws(&ps);
  if (!ps.err && *ps.p) fail(&ps, "unexpected text (the rule's SQL subset is in docs/RULES.md)");
  sqlite3_str_appendchar(ps.out, 1, ')');
  char *sql = sqlite3_str_finish(ps.out);
  if (!ps.err && !sql) ps.err = sqlite3_mprintf("out of memory");
  if (ps.err) {
    sqlite3_free(sql);
    *err = ps.err;
    return 0;
  }
  return sql;
}
