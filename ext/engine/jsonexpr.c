/*
** jsonexpr.c: the SQL that the capture triggers write row values as JSON
** with, and what they need to know of a tracked table to write less of it.
**
** Values are written as JSON by SQL alone: SQLite has no base64 function, so
** a BLOB is stored as {"$hex":"..."} (turned into {"$base64":...} on the
** way out), and json_object() prints only 15 digits of a REAL, so REALs go
** through printf('%!.17g') with a check that the text reads back to the same
** double, trying the neighbouring 17-digit decimals when it does not (SQLite's
** printf is off by one unit in the last digit for some huge magnitudes).
**
** -0.0: SQLite's printf, json_quote and CAST AS TEXT all print it as 0.0, and
** no core SQL function shows the sign of a zero (division by zero is NULL).
** Only a column without affinity can hold -0.0 (a REAL, NUMERIC or INTEGER
** column stores a whole REAL as an integer, and reads it back as +0.0), so
** such a column gets one more branch, atan2(x,-1) < 0, when the SQLite that
** runs sync_track has the math functions (SQLITE_ENABLE_MATH_FUNCTIONS, on
** in the amalgamation's default build since 3.35). A key part does not: -0.0
** and 0.0 are the same key to SQLite, so a key's zero is written 0.0.
**
** Speed: these expressions run on every write the app makes, and SQLite
** allocates a register per expression node of a trigger program on every
** statement that fires it, so a column gets only the branches for what it
** can hold (jx_shape_read's kind).
*/
#include "jsonexpr.h"

#include <string.h>

#include "uniqexpr.h"

const char jx_ctrl[] = "coalesce((SELECT applying FROM sync_control),0)=0";
const char jx_last_id[] =
    "(SELECT max(coalesce((SELECT max(id) FROM sync_outbox),0),last_id) FROM sync_control)";
const char jx_next_id[] =
    "(SELECT max(coalesce((SELECT max(id) FROM sync_outbox),0),last_id)+1 FROM sync_control)";

/* A REAL expression x as JSON number text that reads back exactly:
** printf('%!.17g') when it reads back, else the first of the neighbouring
** 17-digit decimals that does (one subquery, run only when printf misses,
** over a VALUES list: its column name cannot capture a name used in x). */
static void real_text(sqlite3_str *s, const char *x, int negZero) {
  char *q = sqlite3_mprintf("printf('%%!.16e',%s)", x);
  char *m = sqlite3_mprintf("CAST(replace(substr(%s,1,instr(%s,'e')-1),'.','') AS INTEGER)", q, q);
  char *e = sqlite3_mprintf("(CAST(substr(%s,instr(%s,'e')+1) AS INTEGER)-16)", q, q);
  sqlite3_str_appendall(s, "CASE ");
  if (negZero)
    sqlite3_str_appendf(
        s, "WHEN %s = 0 THEN CASE WHEN atan2(%s,-1) < 0 THEN '-0.0' ELSE '0.0' END ", x, x);
  sqlite3_str_appendf(s,
                      "WHEN %s = 9e999 THEN '1e999' WHEN %s = -9e999 THEN '-1e999' WHEN "
                      "CAST(printf('%%!.17g',%s) AS REAL) = %s THEN printf('%%!.17g',%s) ELSE "
                      "coalesce((SELECT (%s+column1)||'e'||%s FROM (VALUES(1),(-1),(2),(-2)) "
                      "WHERE CAST((%s+column1)||'e'||%s AS REAL) = %s), printf('%%!.17g',%s)) END",
                      x, x, x, x, x, m, e, m, e, x, x);
  sqlite3_free(q);
  sqlite3_free(m);
  sqlite3_free(e);
}

void jx_value(sqlite3_str *s, const char *x, int kind) {
  int negZero = kind & NEG_ZERO;
  switch (kind & MAY_ANY) {
  case MAY_ANY:
    sqlite3_str_appendf(s, "CASE typeof(%s) WHEN 'real' THEN json(", x);
    real_text(s, x, negZero);
    sqlite3_str_appendf(s, ") WHEN 'blob' THEN json_object('$hex',hex(%s)) ELSE %s END", x, x);
    break;
  case MAY_REAL:
    sqlite3_str_appendf(s, "CASE WHEN typeof(%s) = 'real' THEN json(", x);
    real_text(s, x, negZero);
    sqlite3_str_appendf(s, ") ELSE %s END", x);
    break;
  case MAY_BLOB:
    sqlite3_str_appendf(
        s, "CASE WHEN typeof(%s) = 'blob' THEN json_object('$hex',hex(%s)) ELSE %s END", x, x, x);
    break;
  default:
    sqlite3_str_appendall(s, x);
  }
}

void jx_same(sqlite3_str *s, const char *col, int kind, const char *a, const char *b) {
  /* BINARY: under the column's own collation (NOCASE, RTRIM) 'Y' IS 'y',
  ** and a change of case alone would never be sent */
  sqlite3_str_appendf(s, "%s.\"%w\" IS %s.\"%w\" COLLATE BINARY", a, col, b, col);
  if (!(kind & EXACT)) return;
  sqlite3_str_appendf(s, " AND typeof(%s.\"%w\") = typeof(%s.\"%w\")", a, col, b, col);
  if (kind & NEG_ZERO)
    sqlite3_str_appendf(s,
                        " AND (%s.\"%w\" IS NULL OR %s.\"%w\" <> 0 OR atan2(%s.\"%w\",-1) = "
                        "atan2(%s.\"%w\",-1))",
                        b, col, b, col, a, col, b, col);
}

/* SQLite calls a function with at most 127 arguments (SQLITE_MAX_FUNCTION_ARG
** by default), so an object of more than 63 members is json_object of the
** first 63, then json_insert of 63 more at a time. */
#define JX_PAIRS 63

void jx_object(sqlite3_str *s, int n, JxNameFn name, JxValueFn value, void *arg) {
  for (int i = JX_PAIRS; i < n; i += JX_PAIRS)
    sqlite3_str_appendall(s, "json_insert(");
  sqlite3_str_appendall(s, "json_object(");
  for (int i = 0; i < n; i++) {
    if (i && i % JX_PAIRS == 0) sqlite3_str_appendall(s, ")");
    if (i < JX_PAIRS)
      sqlite3_str_appendf(s, "%s'%q',", i ? "," : "", name(i, arg));
    else
      sqlite3_str_appendf(s, ",'$.\"%q\"',", name(i, arg));
    value(s, i, arg);
  }
  sqlite3_str_appendall(s, ")");
}

void jx_remove(sqlite3_str *s, const char *obj, int n, JxValueFn path, void *arg) {
  /* As jx_object: json_remove of 126 paths at a time. */
  for (int i = 0; i < n; i += 2 * JX_PAIRS)
    sqlite3_str_appendall(s, "json_remove(");
  sqlite3_str_appendall(s, obj);
  for (int i = 0; i < n; i++) {
    if (i && i % (2 * JX_PAIRS) == 0) sqlite3_str_appendall(s, ")");
    sqlite3_str_appendall(s, ",");
    path(s, i, arg);
  }
  if (n) sqlite3_str_appendall(s, ")");
}

typedef struct ObjectArg {
  SyncTable *t;
  const int *kind, *idx;
  const char *prefix;
} ObjectArg;

static const char *object_name(int i, void *arg) {
  ObjectArg *a = arg;
  return a->t->cols[a->idx ? a->idx[i] : i];
}

static void object_value(sqlite3_str *s, int i, void *arg) {
  ObjectArg *a = arg;
  int col = a->idx ? a->idx[i] : i;
  char *x = sqlite3_mprintf("%s.\"%w\"", a->prefix, a->t->cols[col]);
  if (x) jx_value(s, x, a->kind ? a->kind[col] : MAY_ANY);
  sqlite3_free(x);
}

/* json_object of the columns listed in idx (n of them) read from prefix. */
static void object_expr(sqlite3_str *s, SyncTable *t, const int *kind, const int *idx, int n,
                        const char *prefix) {
  ObjectArg a = {t, kind, idx, prefix};
  jx_object(s, n, object_name, object_value, &a);
}

void jx_key(sqlite3_str *s, SyncTable *t, const int *kind, const char *prefix) {
  object_expr(s, t, kind, t->pk, t->nPk, prefix);
}

void jx_row(sqlite3_str *s, SyncTable *t, const int *kind, const char *prefix) {
  object_expr(s, t, kind, 0, t->nCol, prefix);
}

/* Column i of those jx_data sends (t->server left out). Trigger texts are
** built once per tracking, so a scan per member costs nothing that counts. */
static int sent_col(SyncTable *t, int i) {
  int col = 0;
  for (;; col++)
    if (!t->server[col] && i-- == 0) return col;
}

static const char *data_name(int i, void *arg) {
  ObjectArg *a = arg;
  return a->t->cols[sent_col(a->t, i)];
}

static void data_value(sqlite3_str *s, int i, void *arg) {
  ObjectArg *a = arg;
  int col = sent_col(a->t, i);
  char *x = sqlite3_mprintf("%s.\"%w\"", a->prefix, a->t->cols[col]);
  if (x) jx_value(s, x, a->kind ? a->kind[col] : MAY_ANY);
  sqlite3_free(x);
}

void jx_data(sqlite3_str *s, SyncTable *t, const int *kind, const char *prefix) {
  if (!t->server) return jx_row(s, t, kind, prefix);
  int n = 0;
  for (int i = 0; i < t->nCol; i++)
    n += !t->server[i];
  ObjectArg a = {t, kind, 0, prefix};
  jx_object(s, n, data_name, data_value, &a);
}

/* Column col of row b as a value: b."col", NULL when b is NULL, or with
** json set, sync_val(b -> '$."col"') (b a JSON object parameter). */
static void value_of(sqlite3_str *s, const char *b, int json, const char *col) {
  if (!b)
    sqlite3_str_appendall(s, "NULL");
  else if (json)
    sqlite3_str_appendf(s, "sync_val(%s -> '$.\"%q\"')", b, col);
  else
    sqlite3_str_appendf(s, "%s.\"%w\"", b, col);
}

static void uniq_match(sqlite3_str *s, SyncTable *t, const JxUniq *u, const char *a, const char *b,
                       int json) {
  for (int i = 0; i < u->n; i++) {
    if (u->col[i] < 0) {
      /* the expression over a one-row subquery that names b's columns as
      ** the table does, so the index's text reads them unqualified; a
      ** generated column is read from a as it is (its index is used), and
      ** its value for b computed */
      if (u->gen && u->gen[i])
        sqlite3_str_appendf(s, "%s%s.\"%w\"", i ? " AND " : "", a, u->gen[i]);
      else
        sqlite3_str_appendf(s, "%s(%s)", i ? " AND " : "", u->expr[i]);
      sqlite3_str_appendf(s, " = (SELECT %s FROM (SELECT ", u->expr[i]);
      int n = 0;
      for (int j = 0; j < t->nCol; j++) {
        if (!u->used[j]) continue;
        sqlite3_str_appendall(s, n++ ? "," : "");
        value_of(s, b, json, t->cols[j]);
        sqlite3_str_appendf(s, " AS \"%w\"", t->cols[j]);
      }
      sqlite3_str_appendall(s, n ? "))" : "1))");
    } else {
      const char *col = t->cols[u->col[i]];
      sqlite3_str_appendf(s, "%s%s.\"%w\" = ", i ? " AND " : "", a, col);
      value_of(s, b, json, col);
    }
    if (u->coll[i]) sqlite3_str_appendf(s, " COLLATE \"%w\"", u->coll[i]);
  }
  if (u->where) sqlite3_str_appendf(s, " AND (%s)", u->where);
}

void jx_uniq_match(sqlite3_str *s, SyncTable *t, const JxUniq *u, const char *a, const char *b) {
  uniq_match(s, t, u, a, b, 0);
}

void jx_uniq_match_json(sqlite3_str *s, SyncTable *t, const JxUniq *u, const char *a,
                        const char *param) {
  uniq_match(s, t, u, a, param, 1);
}

void jx_uniq_reads(SyncTable *t, const JxUniq *u, unsigned char *cols) {
  for (int i = 0; i < u->n; i++) {
    if (u->col[i] >= 0)
      cols[u->col[i]] = 1;
    else
      ux_refs(t, u->expr[i], cols);
  }
}

static void uniq_free(JxUniq *u) {
  for (int j = 0; j < u->n; j++) {
    sqlite3_free(u->coll[j]);
    if (u->expr) sqlite3_free(u->expr[j]);
    if (u->gen) sqlite3_free(u->gen[j]);
  }
  sqlite3_free(u->col);
  sqlite3_free(u->coll);
  sqlite3_free(u->expr);
  sqlite3_free(u->gen);
  sqlite3_free(u->where);
  sqlite3_free(u->used);
  memset(u, 0, sizeof *u);
}

void jx_shape_free(JxShape *sh) {
  for (int i = 0; i < sh->nUniq; i++)
    uniq_free(&sh->uniq[i]);
  sqlite3_free(sh->uniq);
  sqlite3_free(sh->kind);
  sqlite3_free(sh->nullKey);
  memset(sh, 0, sizeof *sh);
}

static int col_index(SyncTable *t, const char *name) {
  for (int i = 0; name && i < t->nCol; i++)
    if (sqlite3_stricmp(t->cols[i], name) == 0) return i;
  return -1;
}

/* The CREATE text of table or index name, sqlite3_malloc'd; NULL when
** there is none or memory ran out. */
static char *schema_sql(SyncCtx *c, const char *type, const char *name) {
  sqlite3_stmt *s = 0;
  char *sql = 0;
  if (sqlite3_prepare_v2(c->db, "SELECT sql FROM main.sqlite_schema WHERE type = ?1 AND name = ?2",
                         -1, &s, 0) == SQLITE_OK) {
    sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) sql = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
  }
  sqlite3_finalize(s);
  return sql;
}

/* The expressions and WHERE of u, index idx of t, from its text, and the
** generation expression of each generated column part from t's; 0 when
** one cannot be read, or when the lookup the triggers would make of it does
** not prepare (an expression naming the rowid or another generated column,
** say): the index is left out. */
static int uniq_exprs(SyncCtx *c, SyncTable *t, JxUniq *u, const char *idx, int partial) {
  sqlite3_stmt *s = 0;
  /* an index of columns alone (generated ones) may be a UNIQUE constraint's,
  ** which has no text */
  int text = partial;
  for (int i = 0; i < u->n; i++)
    text |= u->col[i] < 0 && !u->gen[i];
  char *sql = text ? schema_sql(c, "index", idx) : 0;
  u->expr = sqlite3_malloc64(sizeof(char *) * (sqlite3_uint64)u->n);
  u->used = sqlite3_malloc64((sqlite3_uint64)t->nCol + 1);
  int ok = (sql || !text) && u->expr && u->used;
  if (ok && text)
    ok = ux_parse(sql, u->n, u->expr, &u->where) == SQLITE_OK;
  else if (ok)
    memset(u->expr, 0, sizeof(char *) * (size_t)u->n);
  sqlite3_free(sql);
  if (!ok) {
    sqlite3_free(u->expr), u->expr = 0;
    return 0;
  }
  sql = 0;
  memset(u->used, 0, (size_t)t->nCol + 1);
  for (int i = 0; ok && i < u->n; i++) {
    if (u->gen[i]) {
      if (!sql) sql = schema_sql(c, "table", t->name);
      sqlite3_free(u->expr[i]);
      u->expr[i] = sql ? ux_generated(sql, u->gen[i]) : 0;
      ok = u->expr[i] != 0;
    }
    if (u->col[i] >= 0)
      sqlite3_free(u->expr[i]), u->expr[i] = 0;
    else if (ok)
      ux_refs(t, u->expr[i], u->used);
  }
  sqlite3_free(sql);
  if (!ok) return 0;
  if (u->where) ux_refs(t, u->where, u->used);
  sqlite3_str *q = sqlite3_str_new(0);
  sqlite3_str_appendf(q, "SELECT 1 FROM main.\"%w\" AS o WHERE ", t->name);
  jx_uniq_match(q, t, u, "o", 0);
  char *z = sqlite3_str_finish(q);
  ok = z && sqlite3_prepare_v2(c->db, z, -1, &s, 0) == SQLITE_OK;
  sqlite3_finalize(s);
  sqlite3_free(z);
  return ok;
}

/* Appends unique index idx of t to sh->uniq (at slot 0 when it is the
** primary key's), unless its expressions (a generated column's included)
** cannot be read. */
static int uniq_add(SyncCtx *c, SyncTable *t, JxShape *sh, const char *idx, int isPk, int partial) {
  sqlite3_stmt *s = 0;
  /* seqno, cid, name, desc, coll, key: PRAGMA statements, not the pragma_
  ** table functions, as inbox.c reads this inside a page's savepoint */
  char *sql = sqlite3_mprintf("PRAGMA main.index_xinfo(\"%w\")", idx);
  int rc = sql ? sqlite3_prepare_v2(c->db, sql, -1, &s, 0) : SQLITE_NOMEM;
  sqlite3_free(sql);
  if (rc != SQLITE_OK) return rc;
  JxUniq u;
  memset(&u, 0, sizeof u);
  int ok = 1, cap = 0, exprs = 0;
  while (ok && rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
    if (!sqlite3_column_int(s, 5)) continue;
    int cid = sqlite3_column_int(s, 1);
    const char *name = (const char *)sqlite3_column_text(s, 2);
    int col = cid == -2 ? -1 : col_index(t, name);
    /* a column of the table that t->cols leaves out is a generated one */
    int gen = col < 0 && cid >= 0;
    if (col < 0 && cid == -1) {
      ok = 0;
      break;
    }
    exprs += col < 0;
    if (u.n == cap) {
      cap = cap ? 2 * cap : 4;
      int *pc = sqlite3_realloc64(u.col, sizeof(int) * (sqlite3_uint64)cap);
      if (pc) u.col = pc;
      char **pl = sqlite3_realloc64(u.coll, sizeof(char *) * (sqlite3_uint64)cap);
      if (pl) u.coll = pl;
      char **pg = sqlite3_realloc64(u.gen, sizeof(char *) * (sqlite3_uint64)cap);
      if (pg) u.gen = pg;
      if (!pc || !pl || !pg) {
        rc = SQLITE_NOMEM;
        break;
      }
    }
    u.col[u.n] = col;
    u.gen[u.n] = gen ? sqlite3_mprintf("%s", name) : 0;
    u.coll[u.n] = sqlite3_mprintf("%s", sqlite3_column_text(s, 4));
    if (!u.coll[u.n++] || (gen && !u.gen[u.n - 1])) rc = SQLITE_NOMEM;
  }
  sqlite3_finalize(s);
  if (rc == SQLITE_OK && ok && u.n && (exprs || partial)) ok = uniq_exprs(c, t, &u, idx, partial);
  JxUniq *all = 0;
  if (rc == SQLITE_OK && ok && u.n) {
    all = sqlite3_realloc64(sh->uniq, sizeof(JxUniq) * (sqlite3_uint64)(sh->nUniq + 1));
    if (!all) rc = SQLITE_NOMEM;
  }
  if (all) {
    sh->uniq = all;
    if (isPk) {
      uniq_free(&sh->uniq[0]);
      sh->uniq[0] = u;
    } else {
      sh->uniq[sh->nUniq++] = u;
    }
    return SQLITE_OK;
  }
  uniq_free(&u);
  return rc;
}

/* sh->uniq: the key first (the columns of t->pk; an INTEGER PRIMARY KEY has
** no index and compares as an integer), then the key's own index in its
** place when there is one (it says the collations), then each UNIQUE index. */
static int uniq_read(SyncCtx *c, SyncTable *t, JxShape *sh) {
  sh->uniq = sqlite3_malloc64(sizeof(JxUniq));
  if (!sh->uniq) return SQLITE_NOMEM;
  sh->nUniq = 1;
  JxUniq *k = &sh->uniq[0];
  memset(k, 0, sizeof *k);
  k->n = t->nPk;
  k->col = sqlite3_malloc64(sizeof(int) * (sqlite3_uint64)t->nPk);
  k->coll = sqlite3_malloc64(sizeof(char *) * (sqlite3_uint64)t->nPk);
  if (!k->col || !k->coll) {
    k->n = 0;
    return SQLITE_NOMEM;
  }
  for (int i = 0; i < t->nPk; i++) {
    k->col[i] = t->pk[i];
    k->coll[i] = 0;
  }
  sqlite3_stmt *s = 0;
  /* seq, name, unique, origin, partial */
  char *sql = sqlite3_mprintf("PRAGMA main.index_list(\"%w\")", t->name);
  int rc = sql ? sqlite3_prepare_v2(c->db, sql, -1, &s, 0) : SQLITE_NOMEM;
  sqlite3_free(sql);
  if (rc != SQLITE_OK) return rc;
  while (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
    const char *origin = (const char *)sqlite3_column_text(s, 3);
    if (sqlite3_column_int(s, 2))
      rc = uniq_add(c, t, sh, (const char *)sqlite3_column_text(s, 1),
                    origin && strcmp(origin, "pk") == 0, sqlite3_column_int(s, 4));
  }
  sqlite3_finalize(s);
  return rc;
}

int jx_uniq_read(SyncCtx *c, SyncTable *t, JxShape *sh) {
  memset(sh, 0, sizeof *sh);
  return uniq_read(c, t, sh);
}

/* Whether this SQLite has the math functions (atan2 for the sign of zero). */
static int has_math(SyncCtx *c) {
  sqlite3_stmt *s = 0;
  int ok = sqlite3_prepare_v2(c->db, "SELECT atan2(0,-1)", -1, &s, 0) == SQLITE_OK;
  sqlite3_finalize(s);
  return ok;
}

/* The column kinds of t, from the declared types: a column with TEXT
** affinity turns every number into text before NEW sees it or the row is
** stored, a rowid alias holds only integers, and a STRICT table's INT,
** INTEGER and TEXT columns hold nothing else. Every column gets MAY_ANY when
** the types cannot be read. Also which key parts may be NULL: those of a
** table with a rowid, not the rowid itself, not declared NOT NULL. */
static int kinds_read(SyncCtx *c, SyncTable *t, JxShape *sh) {
  sh->kind = sqlite3_malloc64(sizeof(int) * (sqlite3_uint64)t->nCol);
  sh->nullKey = sqlite3_malloc64(sizeof(int) * (sqlite3_uint64)t->nPk);
  if (!sh->kind || !sh->nullKey) return SQLITE_NOMEM;
  for (int i = 0; i < t->nCol; i++)
    sh->kind[i] = MAY_ANY;
  for (int i = 0; i < t->nPk; i++)
    sh->nullKey[i] = 0;
  sqlite3_stmt *s = 0;
  int strict = 0, pkIndex = 0, math = has_math(c);
  if (sqlite3_prepare_v2(c->db,
                         "SELECT strict, wr FROM pragma_table_list(?1) WHERE schema = 'main'", -1,
                         &s, 0) == SQLITE_OK) {
    sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) {
      strict = sqlite3_column_int(s, 0);
      sh->rowid = !sqlite3_column_int(s, 1);
    }
  }
  sqlite3_finalize(s);
  /* An INTEGER PRIMARY KEY is a rowid alias unless the key has its own index
  ** (WITHOUT ROWID, or the INTEGER PRIMARY KEY DESC quirk). */
  if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM pragma_index_list(?1, 'main') WHERE origin = 'pk'",
                         -1, &s, 0) == SQLITE_OK) {
    sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    pkIndex = sqlite3_step(s) != SQLITE_DONE;
  } else {
    pkIndex = 1;
  }
  sqlite3_finalize(s);
  if (sqlite3_prepare_v2(c->db,
                         "SELECT upper(type), \"notnull\" FROM pragma_table_xinfo(?1, 'main') "
                         "WHERE hidden = 0 ORDER BY cid",
                         -1, &s, 0) != SQLITE_OK) {
    sqlite3_finalize(s);
    return SQLITE_OK;
  }
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  for (int i = 0; i < t->nCol && sqlite3_step(s) == SQLITE_ROW; i++) {
    const char *ty = (const char *)sqlite3_column_text(s, 0);
    int alias = 0, key = -1;
    if (!ty) ty = "";
    for (int j = 0; j < t->nPk; j++)
      if (t->pk[j] == i) key = j;
    if (strict) {
      if (!strcmp(ty, "INT") || !strcmp(ty, "INTEGER") || !strcmp(ty, "TEXT"))
        sh->kind[i] = 0;
      else if (!strcmp(ty, "REAL"))
        sh->kind[i] = MAY_REAL;
      else if (!strcmp(ty, "BLOB"))
        sh->kind[i] = MAY_BLOB;
      else
        sh->kind[i] = MAY_ANY | EXACT | NEG_ZERO;
    } else if (strstr(ty, "INT")) {
      alias = !strcmp(ty, "INTEGER") && t->nPk == 1 && key == 0 && !pkIndex;
      if (alias) sh->kind[i] = 0;
    } else if (strstr(ty, "CHAR") || strstr(ty, "CLOB") || strstr(ty, "TEXT")) {
      sh->kind[i] = MAY_BLOB;
    } else if (!*ty || strstr(ty, "BLOB")) {
      sh->kind[i] = MAY_ANY | EXACT | NEG_ZERO;
    }
    if (key >= 0 || !math) sh->kind[i] &= ~NEG_ZERO;
    if (key >= 0) sh->nullKey[key] = sh->rowid && !alias && !sqlite3_column_int(s, 1);
  }
  sqlite3_finalize(s);
  return SQLITE_OK;
}

int jx_shape_read(SyncCtx *c, SyncTable *t, JxShape *sh) {
  memset(sh, 0, sizeof *sh);
  int rc = kinds_read(c, t, sh);
  /* A column named rowid hides the rowid under that name; with all three
  ** names taken, the triggers treat the table as one without a rowid. */
  static const char *const names[] = {"rowid", "_rowid_", "oid"};
  for (int i = 0; sh->rowid && !sh->rid && i < 3; i++)
    if (col_index(t, names[i]) < 0) sh->rid = names[i];
  if (!sh->rid) sh->rowid = 0;
  if (rc == SQLITE_OK) rc = uniq_read(c, t, sh);
  return rc;
}
