/*
** pg_sql.c: the SQL text and the row JSON of the PostgreSQL dialect
** (pg_sql.h): how a column's value is read out of a request's JSON (cast
** to the column's type, bytea from {"$base64"}) and how a result row is
** printed back as exact JSON by column kind; the internal tables and the
** trigger that records rows a push changes besides its own. Used by
** dialect_pg.c only; it runs no statement itself.
*/
#include "pg_sql.h"

#include <string.h>

#include "value.h"

int pgsql_kind(const char *typname) {
  static const struct {
    const char *name;
    int kind;
  } kinds[] = {{"int2", K_INT},        {"int4", K_INT},     {"int8", K_INT},
               {"oid", K_INT},         {"float4", K_FLOAT}, {"float8", K_FLOAT},
               {"numeric", K_NUMERIC}, {"bool", K_BOOL},    {"bytea", K_BYTEA}};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    if (strcmp(kinds[i].name, typname) == 0) return kinds[i].kind;
  }
  return K_TEXT;
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
** assignment refuses instead). */
void pgsql_value(sqlite3_str *sql, const catalog_col *col, int jsonParam, int keyParam) {
  if (col->kind == K_BYTEA) {
    sqlite3_str_appendf(sql,
                        "(CASE WHEN json_typeof($%d::json -> $%d::text) = 'object'"
                        " THEN decode(($%d::json -> $%d::text) ->> '$base64', 'base64')"
                        " ELSE ($%d::json ->> $%d::text)::bytea END)",
                        jsonParam, keyParam, jsonParam, keyParam, jsonParam, keyParam);
  } else {
    sqlite3_str_appendf(sql, "($%d::json ->> $%d::text)::%s", jsonParam, keyParam, col->type);
  }
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
    } else {
      pgsql_ident(sql, col->name);
    }
  }
}

/* " WHERE "p1" = <$pkParam's p1> AND ...": key names bound from $firstKey. */
void pgsql_pk_where(sqlite3_str *sql, const catalog_table *t, int pkParam, int firstKey) {
  for (int k = 0; k < t->n_pk; k++) {
    const catalog_col *col = &t->cols[t->pk[k]];
    sqlite3_str_appendall(sql, k ? " AND " : " WHERE ");
    pgsql_ident(sql, col->name);
    sqlite3_str_appendall(sql, " = ");
    pgsql_value(sql, col, pkParam, firstKey + k);
  }
}

/* The internal tables (dialect.h), made when missing. */
const char pgsql_internal_ddl[] =
    "CREATE TABLE IF NOT EXISTS _syncd_state(one int PRIMARY KEY CHECK (one = 1),"
    " db_id text NOT NULL, version bigint NOT NULL, horizon bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS _syncd_changes(tbl text NOT NULL, pk text NOT NULL,"
    " op text NOT NULL, row text, version bigint NOT NULL UNIQUE, PRIMARY KEY (tbl, pk));"
    "CREATE INDEX IF NOT EXISTS _syncd_tombstones ON _syncd_changes(version)"
    " WHERE op = 'delete';"
    "CREATE TABLE IF NOT EXISTS _syncd_clients(client_id text PRIMARY KEY,"
    " last_id bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS _syncd_outcomes(client_id text NOT NULL, id bigint NOT NULL,"
    " status text NOT NULL, reason text, tbl text, pk text, PRIMARY KEY (client_id, id));";

/* Rows a push changes besides each mutation's own (a foreign key's
** cascade, a trigger's writes) are recorded by this row trigger function
** into the session's pg_temp._syncd_touched, only under a statement of
** syncd's (syncd.own is set) and not the statement's own row, which the
** push logs itself: depth 1 and the own table and key (a cascade's rows
** fire at depth 1 too). A partition's rows are recorded under its
** partitioned table's name. */
const char pgsql_touch_function[] =
    "CREATE OR REPLACE FUNCTION _syncd_touch() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " DECLARE t text := TG_TABLE_NAME; own text := current_setting('syncd.own', true);"
    " o jsonb; r jsonb;"
    " BEGIN"
    " IF own IS NULL OR own = '' THEN RETURN NULL; END IF;"
    " IF pg_partition_root(TG_RELID) IS NOT NULL THEN"
    " SELECT relname INTO t FROM pg_class WHERE oid = pg_partition_root(TG_RELID); END IF;"
    " r := CASE TG_OP WHEN 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END;"
    " IF pg_trigger_depth() = 1 THEN o := own::jsonb;"
    " IF o->>'t' = t AND r @> (o->'k') THEN RETURN NULL; END IF; END IF;"
    " IF TG_OP = 'UPDATE' THEN INSERT INTO pg_temp._syncd_touched VALUES (t, to_jsonb(OLD));"
    " END IF;"
    " INSERT INTO pg_temp._syncd_touched VALUES (t, r);"
    " RETURN NULL;"
    " END $f$;";

const char pgsql_set_own[] = "(SELECT set_config('syncd.own', $3, true)) _syncd_own";

char *pgsql_own(const catalog_table *t, const char *pk) {
  sqlite3_str *own = sqlite3_str_new(0);
  sqlite3_str_appendall(own, "{\"t\":");
  value_append_string(own, t->name, -1);
  sqlite3_str_appendf(own, ",\"k\":%s}", pk);
  return sqlite3_str_finish(own);
}

void pgsql_touch_trigger(sqlite3_str *sql, const catalog_table *t) {
  sqlite3_str_appendall(sql, "CREATE OR REPLACE TRIGGER _syncd_touch AFTER INSERT OR UPDATE OR"
                             " DELETE ON ");
  pgsql_ident(sql, t->name);
  sqlite3_str_appendall(sql, " FOR EACH ROW EXECUTE FUNCTION _syncd_touch();");
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
  case K_INT:
    sqlite3_str_appendall(out, v);
    break;
  case K_FLOAT:
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
      if (col->kind == K_FLOAT && !strpbrk(v, ".eE")) sqlite3_str_appendall(out, ".0");
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
