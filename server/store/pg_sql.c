/*
** pg_sql.c: the SQL text and the row JSON of the PostgreSQL dialect
** (pg_sql.h): how a column's value is read out of a request's JSON as
** pg_values.c rewrote it (cast to the column's type, checked to read back
** as sent where the type could store it otherwise) and how a result row is
** printed back as exact JSON by column kind; the internal tables and the
** trigger that records rows a push changes besides its own; which errors
** fail a batch or lose a conflict. Used by dialect_pg.c only; it runs no
** statement itself.
*/
#include "pg_sql.h"

#include <stdio.h>
#include <string.h>

#include "value.h"

int pgsql_kind(const char *typname) {
  static const struct {
    const char *name;
    int kind;
  } kinds[] = {{"text", K_TEXT},       {"varchar", K_TEXT},  {"bpchar", K_TEXT},
               {"int2", K_INT2},       {"int4", K_INT4},     {"int8", K_INT8},
               {"oid", K_OID},         {"float4", K_FLOAT4}, {"float8", K_FLOAT8},
               {"numeric", K_NUMERIC}, {"bool", K_BOOL},     {"bytea", K_BYTEA}};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    if (strcmp(kinds[i].name, typname) == 0) return kinds[i].kind;
  }
  return K_OTHER;
}

/* A quoted identifier. */
void pgsql_ident(sqlite3_str *sql, const char *name) {
  sqlite3_str_appendchar(sql, 1, '"');
  for (const char *p = name; *p; p++) {
    if (*p == '"') sqlite3_str_appendchar(sql, 1, '"');
    sqlite3_str_appendchar(sql, 1, *p);
  }
  sqlite3_str_appendchar(sql, 1, '"');
}

/* The value of key $keyParam of the json in $jsonParam, cast to col's type
** (the type is format_type() without typmod, from the catalog, never from
** a request: an explicit cast to varchar(n) would truncate silently, an
** assignment refuses instead). pgval_rewrite made it the text the type
** reads exactly, but a type modifier (numeric's scale, char(n)'s padding)
** or a type's own input (a date, jsonb) may store another text: such a
** column's value goes through _syncd_exact, which refuses it unless it
** reads back as sent. */
void pgsql_value(sqlite3_str *sql, const catalog_col *col, int jsonParam, int keyParam) {
  char x[48], name[24];
  snprintf(x, sizeof x, "($%d::json ->> $%d::text)", jsonParam, keyParam);
  snprintf(name, sizeof name, "$%d::text", keyParam);
  pgsql_value_of(sql, col, x, name);
}

void pgsql_value_of(sqlite3_str *sql, const catalog_col *col, const char *x, const char *name) {
  if (col->kind == K_OTHER || (col->decl && (col->kind == K_TEXT || col->kind == K_NUMERIC)))
    sqlite3_str_appendf(sql, "_syncd_exact(%s, %Q, %s, %s)::%s", name,
                        col->decl ? col->decl : col->type, x,
                        col->kind == K_NUMERIC ? "true" : "false", col->type);
  else
    sqlite3_str_appendf(sql, "%s::%s", x, col->type);
}

/* The select list printing every column, or the key's (bytea as one-line
** base64). */
void pgsql_columns(sqlite3_str *sql, const catalog_table *t, int pkOnly) {
  int n = pkOnly ? t->n_pk : t->n_cols;
  for (int i = 0; i < n; i++) {
    const catalog_col *col = &t->cols[pkOnly ? t->pk[i] : i];
    if (i) sqlite3_str_appendchar(sql, 1, ',');
    if (col->kind == K_BYTEA) {
      sqlite3_str_appendall(sql, "translate(encode(");
      pgsql_ident(sql, col->name);
      sqlite3_str_appendall(sql, ", 'base64'), E'\\n', '')");
    } else if (col->kind == K_FLOAT4) {
      /* float4's shortest text is a float's, which reads back as another
      ** double: print the double it is */
      pgsql_ident(sql, col->name);
      sqlite3_str_appendall(sql, "::float8");
    } else {
      pgsql_ident(sql, col->name);
    }
  }
}

/* "<first>"p1" = <$pkParam's p1> AND ...": key names bound from $firstKey. */
static void pk_cond(sqlite3_str *sql, const catalog_table *t, int pkParam, int firstKey,
                    const char *first) {
  for (int k = 0; k < t->n_pk; k++) {
    const catalog_col *col = &t->cols[t->pk[k]];
    sqlite3_str_appendall(sql, k ? " AND " : first);
    pgsql_ident(sql, col->name);
    sqlite3_str_appendall(sql, " = ");
    pgsql_value(sql, col, pkParam, firstKey + k);
  }
}

void pgsql_pk_where(sqlite3_str *sql, const catalog_table *t, int pkParam, int firstKey) {
  pk_cond(sql, t, pkParam, firstKey, " WHERE ");
}

/* The row an insert or update wrote, as read_sql reads it, and whether its
** key is pk's ($2, key names from $firstKey): then it is the row a read by
** pk finds, and the push needs no read of its own. */
static void returning(sqlite3_str *sql, const catalog_table *t, int firstKey) {
  sqlite3_str_appendall(sql, " RETURNING ");
  pgsql_columns(sql, t, 0);
  sqlite3_str_appendall(sql, ",");
  pgsql_columns(sql, t, 1);
  pk_cond(sql, t, 2, firstKey, ", coalesce(");
  sqlite3_str_appendall(sql, ", false)");
}

char *pgsql_write(const catalog_table *t, int op, const dialect_cols *cols, const char **p,
                  int *np) {
  sqlite3_str *sql = sqlite3_str_new(0);
  int n = 3;
  if (op == STORE_INSERT) {
    /* every column present in data, plus key columns only pk carries */
    int *used = sqlite3_malloc64(sizeof *used * (t->n_cols + 1));
    sqlite3_str *vals = sqlite3_str_new(0);
    if (!used)
      return sqlite3_free(sqlite3_str_finish(vals)), sqlite3_free(sqlite3_str_finish(sql)),
             (char *)0;
    memset(used, 0, sizeof *used * (t->n_cols + 1));
    sqlite3_str_appendall(sql, "INSERT INTO ");
    pgsql_ident(sql, t->name);
    sqlite3_str_appendall(sql, "(");
    for (int j = 0; j < cols->n_data + t->n_pk; j++) {
      int from_pk = j >= cols->n_data, i = from_pk ? t->pk[j - cols->n_data] : cols->data[j];
      if (from_pk && used[i]) continue;
      used[i] = 1;
      if (n > 3) sqlite3_str_appendchar(sql, 1, ','), sqlite3_str_appendchar(vals, 1, ',');
      pgsql_ident(sql, t->cols[i].name);
      p[n++] = t->cols[i].key;
      pgsql_value(vals, &t->cols[i], from_pk ? 2 : 1, n);
    }
    sqlite3_free(used);
    char *v = sqlite3_str_finish(vals);
    sqlite3_str_appendf(sql, ") SELECT %s FROM %s", v ? v : "", pgsql_set_own);
    sqlite3_free(v);
    returning(sql, t, n + 1);
    for (int k = 0; k < t->n_pk; k++)
      p[n++] = t->cols[t->pk[k]].key;
  } else if (op == STORE_UPDATE) {
    sqlite3_str_appendall(sql, "UPDATE ");
    pgsql_ident(sql, t->name);
    sqlite3_str_appendall(sql, " SET ");
    for (int j = 0; j < cols->n_set; j++) {
      const catalog_col *col = &t->cols[cols->set[j]];
      if (j) sqlite3_str_appendchar(sql, 1, ',');
      pgsql_ident(sql, col->name);
      sqlite3_str_appendall(sql, " = ");
      p[n++] = col->key;
      pgsql_value(sql, col, 1, n);
    }
    sqlite3_str_appendf(sql, " FROM %s", pgsql_set_own);
    pgsql_pk_where(sql, t, 2, n + 1);
    returning(sql, t, n + 1);
    for (int k = 0; k < t->n_pk; k++)
      p[n++] = t->cols[t->pk[k]].key;
  } else {
    sqlite3_str_appendall(sql, "DELETE FROM ");
    pgsql_ident(sql, t->name);
    sqlite3_str_appendf(sql, " USING %s", pgsql_set_own);
    pgsql_pk_where(sql, t, 2, n + 1);
    for (int k = 0; k < t->n_pk; k++)
      p[n++] = t->cols[t->pk[k]].key;
    sqlite3_str_appendall(sql, " RETURNING ");
    pgsql_columns(sql, t, 1);
  }
  *np = n;
  return sqlite3_str_finish(sql);
}

/* The internal tables (dialect.h), made when missing. */
const char pgsql_internal_ddl[] =
    "CREATE TABLE IF NOT EXISTS _syncd_state(one int PRIMARY KEY CHECK (one = 1),"
    " db_id text NOT NULL, version bigint NOT NULL, horizon bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS _syncd_changes(tbl text NOT NULL, pk text NOT NULL,"
    " op text NOT NULL, row text, version bigint NOT NULL UNIQUE, PRIMARY KEY (tbl, pk));"
    /* a log made before the column (its keys' pasts unknown: NULL); the
    ** lock ALTER takes only then, not at every start beside another syncd */
    "DO $g$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid ="
    " '_syncd_changes'::regclass AND attname = 'gap' AND NOT attisdropped) THEN"
    " ALTER TABLE _syncd_changes ADD COLUMN gap bigint; END IF; END $g$;"
    "CREATE INDEX IF NOT EXISTS _syncd_tombstones ON _syncd_changes(version)"
    " WHERE op = 'delete';"
    "CREATE TABLE IF NOT EXISTS _syncd_clients(client_id text PRIMARY KEY,"
    " last_id bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS _syncd_outcomes(client_id text NOT NULL, id bigint NOT NULL,"
    " status text NOT NULL, reason text, tbl text, pk text, PRIMARY KEY (client_id, id));"
    /* pgsql_value's check of a value its column's type could store as
    ** another text (concat() prints with the type's output function,
    ** char(n)'s padding included, where a cast to text trims it). A numeric
    ** must keep its number, and its '.' exactly when sent with one, so that
    ** a real stays a real and an integer an integer. typ is the catalog's
    ** format_type(), never a request's. */
    "CREATE OR REPLACE FUNCTION _syncd_exact(col text, typ text, sent text, num boolean)"
    " RETURNS text LANGUAGE plpgsql AS $f$ DECLARE stored text; same boolean; BEGIN"
    " IF sent IS NULL THEN RETURN NULL; END IF;"
    " BEGIN"
    " IF num THEN"
    " EXECUTE format('SELECT ($1::%s)::text, $1::numeric = $1::%s', typ, typ)"
    " INTO stored, same USING sent;"
    " same := same AND (strpos(stored, '.') > 0) = (strpos(sent, '.') > 0);"
    " ELSE EXECUTE format('SELECT concat($1::%s)', typ) INTO stored USING sent;"
    " same := stored = sent; END IF;"
    " EXCEPTION WHEN data_exception THEN"
    " RAISE EXCEPTION USING ERRCODE = 'data_exception',"
    " MESSAGE = format('column %s is %s and cannot hold %s: %s', col, typ, to_json(sent), SQLERRM);"
    " END;"
    " IF NOT same THEN RAISE EXCEPTION USING ERRCODE = 'data_exception', MESSAGE = format("
    "'column %s is %s and cannot hold %s exactly (it would store %s)',"
    " col, typ, to_json(sent), to_json(stored)); END IF;"
    " RETURN sent; END $f$;";

/* Rows a push changes besides its mutations' own (a foreign key's
** cascade, a trigger's writes) are recorded by this row trigger function
** into the session's pg_temp._syncd_touched, only under a statement of
** syncd's (syncd.own is set). The statement's own rows never reach it:
** the trigger's WHEN (pgsql_touch_trigger) leaves out, as each row is
** written, the rows of the table syncd.own names written at trigger depth
** 0, which are the statement's own, however many it writes; a cascade's
** or a trigger's rows are written inside a trigger (depth 1 or more), the
** same table's too. A partition's rows are recorded under its partitioned
** table's name. */
const char pgsql_touch_function[] =
    "CREATE OR REPLACE FUNCTION _syncd_touch() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " DECLARE t text := TG_TABLE_NAME;"
    " BEGIN"
    " IF coalesce(current_setting('syncd.own', true), '') = '' THEN RETURN NULL; END IF;"
    " IF pg_partition_root(TG_RELID) IS NOT NULL THEN"
    " SELECT relname INTO t FROM pg_class WHERE oid = pg_partition_root(TG_RELID); END IF;"
    " IF TG_OP = 'UPDATE' THEN INSERT INTO pg_temp._syncd_touched VALUES (t, to_jsonb(OLD));"
    " END IF;"
    " INSERT INTO pg_temp._syncd_touched VALUES (t, CASE TG_OP WHEN 'DELETE' THEN to_jsonb(OLD)"
    " ELSE to_jsonb(NEW) END);"
    " RETURN NULL;"
    " END $f$;";

const char pgsql_set_own[] = "(SELECT set_config('syncd.own', $3, true)) _syncd_own";

/* JSON, as syncd.own held {"t":table,"k":pk} before: a syncd of that
** version sharing the database (its function back in place) then takes
** the rows as others' and logs them again, rather than failing to read it. */
char *pgsql_own(const catalog_table *t) {
  sqlite3_str *own = sqlite3_str_new(0);
  sqlite3_str_appendall(own, "{\"t\":");
  value_append_string(own, t->name, -1);
  sqlite3_str_appendchar(own, 1, '}');
  return sqlite3_str_finish(own);
}

/* The WHEN is evaluated as a row is written, not when the trigger fires at
** the statement's end (then every row fires at depth 1): a partition's
** clone of the trigger keeps the partitioned table's name, the one
** syncd.own holds. */
int pgsql_touch_trigger(sqlite3_str *sql, const catalog_table *t) {
  char *own = pgsql_own(t);
  if (!own) return -1;
  sqlite3_str_appendall(sql, "CREATE OR REPLACE TRIGGER _syncd_touch AFTER INSERT OR UPDATE OR"
                             " DELETE ON ");
  pgsql_ident(sql, t->name);
  sqlite3_str_appendf(sql,
                      " FOR EACH ROW WHEN (pg_trigger_depth() > 0 OR"
                      " current_setting('syncd.own', true) IS DISTINCT FROM %Q)"
                      " EXECUTE FUNCTION _syncd_touch();",
                      own);
  sqlite3_free(own);
  return 0;
}

void pgsql_key_of_row(sqlite3_str *sql, const catalog_table *t) {
  sqlite3_str_appendall(sql, "SELECT ");
  pgsql_columns(sql, t, 1);
  sqlite3_str_appendall(sql, " FROM jsonb_populate_record(NULL::");
  pgsql_ident(sql, t->name);
  sqlite3_str_appendall(sql, ", $1::jsonb)");
}

/* What every push needs of t, built once: the read of a row by key ($1 the
** pk object, $2.. its column names), every column then the key's. */
int pgsql_table(catalog_table *t) {
  for (int c = 0; c < t->n_cols; c++)
    if (!(t->cols[c].key = sqlite3_mprintf("%s", t->cols[c].name))) return -1;
  sqlite3_str *sql = sqlite3_str_new(0);
  sqlite3_str_appendall(sql, "SELECT ");
  pgsql_columns(sql, t, 0);
  sqlite3_str_appendall(sql, ",");
  pgsql_columns(sql, t, 1);
  sqlite3_str_appendall(sql, " FROM ");
  pgsql_ident(sql, t->name);
  pgsql_pk_where(sql, t, 1, 2);
  t->read_sql = sqlite3_str_finish(sql);
  return t->read_sql ? 0 : -1;
}

static void append_value(sqlite3_str *out, const catalog_col *col, const PGresult *r, int row,
                         int f) {
  if (PQgetisnull(r, row, f)) {
    sqlite3_str_appendall(out, "null");
    return;
  }
  const char *v = PQgetvalue(r, row, f);
  switch (col->kind) {
  case K_INT2:
  case K_INT4:
  case K_INT8:
  case K_OID:
    sqlite3_str_appendall(out, v);
    break;
  case K_FLOAT4:
  case K_FLOAT8:
  case K_NUMERIC:
    if (strcmp(v, "NaN") == 0)
      sqlite3_str_appendall(out, "null");
    else if (strcmp(v, "Infinity") == 0)
      sqlite3_str_appendall(out, "1e999");
    else if (strcmp(v, "-Infinity") == 0)
      sqlite3_str_appendall(out, "-1e999");
    else {
      sqlite3_str_appendall(out, v);
      /* "2" would read back as an integer: keep a double visibly REAL */
      if (col->kind != K_NUMERIC && !strpbrk(v, ".eE")) sqlite3_str_appendall(out, ".0");
    }
    break;
  case K_BOOL:
    sqlite3_str_appendall(out, v[0] == 't' ? "true" : "false");
    break;
  case K_BYTEA:
    sqlite3_str_appendall(out, "{\"$base64\":");
    value_append_string(out, v, -1);
    sqlite3_str_appendchar(out, 1, '}');
    break;
  default:
    value_append_string(out, v, -1);
  }
}

/* {"col":value,...} of result row `row`, fields from f0 in the order of
** pgsql_columns(pkOnly). */
char *pgsql_row(const catalog_table *t, const PGresult *r, int row, int f0, int pkOnly) {
  sqlite3_str *out = sqlite3_str_new(0);
  int n = pkOnly ? t->n_pk : t->n_cols;
  sqlite3_str_appendchar(out, 1, '{');
  for (int i = 0; i < n; i++) {
    const catalog_col *col = &t->cols[pkOnly ? t->pk[i] : i];
    if (i) sqlite3_str_appendchar(out, 1, ',');
    value_append_string(out, col->name, -1);
    sqlite3_str_appendchar(out, 1, ':');
    append_value(out, col, r, row, f0 + i);
  }
  sqlite3_str_appendchar(out, 1, '}');
  return sqlite3_str_finish(out);
}

int pgsql_fatal(const PGresult *r) {
  const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  if (!state) return 1;
  static const char *const classes[] = {"08", "25", "40", "53", "55", "57", "58", "XX"};
  for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
    if (strncmp(state, classes[i], 2) == 0) return 1;
  }
  return 0;
}

int pgsql_conflict(const PGresult *r) {
  const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  return state && (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0);
}

void pgsql_key_value(sqlite3_str *sql, const catalog_table *t, int col, const char *src) {
  const catalog_col *c = &t->cols[col];
  if (c->kind == K_BYTEA) {
    sqlite3_str_appendf(sql, "decode((%s::jsonb -> %Q) ->> '$base64', 'base64')", src, c->name);
    return;
  }
  sqlite3_str_appendf(sql, "(jsonb_populate_record(NULL::\"%w\", %s::jsonb)).\"%w\"", t->name, src,
                      c->name);
}

char *pgsql_walk(const dialect_walk *w, int after) {
  const catalog_table *t = w->t;
  sqlite3_str *s = sqlite3_str_new(0);
  sqlite3_str_appendall(s, "SELECT ");
  pgsql_columns(s, t, 1);
  sqlite3_str_appendall(s, ",");
  pgsql_columns(s, t, 0);
  sqlite3_str_appendall(s, " FROM ");
  pgsql_ident(s, t->name);
  sqlite3_str_appendf(s, " WHERE %s", w->cond);
  for (int k = 0; k < t->n_pk; k++) {
    sqlite3_str_appendall(s, " AND ");
    pgsql_ident(s, t->cols[t->pk[k]].name);
    sqlite3_str_appendall(s, " IS NOT NULL");
  }
  if (after) {
    sqlite3_str_appendall(s, " AND (");
    for (int k = 0; k < t->n_pk; k++) {
      if (k) sqlite3_str_appendall(s, ", ");
      pgsql_ident(s, t->cols[t->pk[k]].name);
    }
    sqlite3_str_appendall(s, ") > (");
    for (int k = 0; k < t->n_pk; k++) {
      if (k) sqlite3_str_appendall(s, ", ");
      pgsql_key_value(s, t, t->pk[k], "$1");
    }
    sqlite3_str_appendall(s, ")");
  } else {
    sqlite3_str_appendall(s, " AND $1::text IS NULL");
  }
  sqlite3_str_appendall(s, " ORDER BY ");
  for (int k = 0; k < t->n_pk; k++) {
    if (k) sqlite3_str_appendall(s, ", ");
    pgsql_ident(s, t->cols[t->pk[k]].name);
  }
  sqlite3_str_appendf(s, " LIMIT $%d::bigint", w->n_vals + 2);
  return sqlite3_str_finish(s);
}
