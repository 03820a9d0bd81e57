/*
** store_pg.c: the PostgreSQL implementation of store.h (--pg URL), for
** several syncd processes sharing one database.
**
** Same internal tables as store_sqlite.c (_syncd_state, _syncd_changes,
** _syncd_clients, _syncd_outcomes), in the connection's current schema.
**
** Ordering: a push locks its client's row (FOR UPDATE) first, so pushes of
** one client serialize, and takes the one-row _syncd_state lock with its
** first version, holding it to commit: versions are assigned and committed
** in order, so a reader never skips a version that commits late. Pulls read
** in one REPEATABLE READ snapshot.
**
** Values: the request's JSON goes to PostgreSQL as json text and each column
** is read with ->> and cast to the column's own type (so integers and
** doubles are parsed exactly by PostgreSQL), bytea from {"$base64"}. Rows are
** printed from the text output by column kind (extra_float_digits = 1 gives
** the shortest exact double).
**
** Fan-out: each push that changed rows runs NOTIFY syncd_changes; one
** listener connection per syncd calls cfg->on_change on every notification.
*/
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "value.h"
#include "wire.h"

#define POOL_MAX 16
#define SETUP_LOCK_KEY 7395412001LL

enum { K_TEXT, K_INT, K_FLOAT, K_NUMERIC, K_BOOL, K_BYTEA };

typedef struct pg_col {
  char *name;
  /* format_type() without typmod, spliced into casts (never from a request):
  ** an explicit cast to varchar(n) would truncate silently, an assignment
  ** refuses instead. */
  char *type;
  int kind;
} pg_col;

typedef struct pg_table {
  char *name;
  int n_cols;
  pg_col *cols;
  int n_pk;
  int *pk; /* indexes into cols, in key order */
} pg_table;

typedef struct pg_store {
  store base;
  char *url;
  char db_id[16];
  long long max_tombstones;
  pg_table *tables; /* fixed after open */
  int n_tables;
  pthread_mutex_t mu; /* guards the pool fields */
  PGconn *pool[POOL_MAX];
  int n_pool;
  int n_busy;           /* connections handed out: at most POOL_MAX */
  pthread_cond_t freed; /* signalled when one comes back */
  /* listener */
  void (*on_change)(void *);
  void *on_change_arg;
  pthread_t listener;
  int has_listener;
  int wake[2]; /* a write ends the listener */
} pg_store;

enum { MUT_OK, MUT_REJECTED, MUT_FATAL };

static const char internal_ddl[] =
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

/* ---- connections ---- */

static PGconn *conn_open(const char *url, char **err) {
  PGconn *c = PQconnectdb(url);
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult *r = PQexec(c, "SET extra_float_digits = 1; SET bytea_output = 'hex';"
                            " SET client_encoding = 'UTF8'; SET client_min_messages = warning");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (ok) return c;
  }
  *err = store_errf("PostgreSQL: %s", PQerrorMessage(c));
  PQfinish(c);
  return 0;
}

static void pool_put(pg_store *s, PGconn *c);

/* A connection from the pool, opening one while fewer than POOL_MAX are
** out, else waiting for one to come back: each syncd holds at most
** POOL_MAX + 1 (the listener) PostgreSQL connections however many streams
** wake at once. */
static PGconn *pool_get(pg_store *s, char **err) {
  PGconn *c = 0;
  pthread_mutex_lock(&s->mu);
  while (s->n_pool == 0 && s->n_busy >= POOL_MAX)
    pthread_cond_wait(&s->freed, &s->mu);
  if (s->n_pool > 0) c = s->pool[--s->n_pool];
  s->n_busy++;
  pthread_mutex_unlock(&s->mu);
  if (c && PQstatus(c) != CONNECTION_OK) {
    PQfinish(c);
    c = 0;
  }
  if (!c && !(c = conn_open(s->url, err))) pool_put(s, 0);
  return c;
}

/* Give c back (NULL: one that could not be opened), rolling back whatever
** an error path left open; a broken connection is dropped. */
static void pool_put(pg_store *s, PGconn *c) {
  if (c && PQtransactionStatus(c) != PQTRANS_IDLE) PQclear(PQexec(c, "ROLLBACK"));
  if (c && (PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE)) {
    PQfinish(c);
    c = 0;
  }
  pthread_mutex_lock(&s->mu);
  if (c) s->pool[s->n_pool++] = c;
  s->n_busy--;
  pthread_cond_signal(&s->freed);
  pthread_mutex_unlock(&s->mu);
}

/* Run a parameterless command; 0 or -1 with *err. */
static int exec(PGconn *c, const char *sql, char **err) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok) *err = store_errf("PostgreSQL: %s", PQerrorMessage(c));
  PQclear(r);
  return ok ? 0 : -1;
}

/* PQexecParams with text parameters; NULL (and *err) unless the status is
** a success. */
static PGresult *query(PGconn *c, const char *sql, int n, const char *const *params, char **err) {
  PGresult *r = PQexecParams(c, sql, n, 0, params, 0, 0, 0);
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
  *err = store_errf("PostgreSQL: %s", PQerrorMessage(c));
  PQclear(r);
  return 0;
}

/* ---- schema ---- */

static void tables_free(pg_store *s) {
  for (int i = 0; i < s->n_tables; i++) {
    pg_table *t = &s->tables[i];
    for (int c = 0; c < t->n_cols; c++) {
      sqlite3_free(t->cols[c].name);
      sqlite3_free(t->cols[c].type);
    }
    sqlite3_free(t->cols);
    sqlite3_free(t->pk);
    sqlite3_free(t->name);
  }
  sqlite3_free(s->tables);
  s->tables = 0;
  s->n_tables = 0;
}

static int type_kind(const char *typname) {
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

/* Every table of the current schema with a primary key, but ours. */
static int tables_load(pg_store *s, PGconn *c, char **err) {
  PGresult *r =
      query(c,
            "SELECT cl.relname, a.attname, format_type(a.atttypid, NULL),"
            " coalesce(bt.typname, t.typname),"
            " coalesce((SELECT k.n FROM unnest(i.indkey) WITH ORDINALITY k(att, n)"
            " WHERE k.att = a.attnum), 0)"
            " FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace"
            " JOIN pg_index i ON i.indrelid = cl.oid AND i.indisprimary"
            " JOIN pg_attribute a ON a.attrelid = cl.oid AND a.attnum > 0 AND NOT a.attisdropped"
            " JOIN pg_type t ON t.oid = a.atttypid"
            " LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype"
            " WHERE n.nspname = current_schema() AND cl.relkind IN ('r', 'p')"
            " AND cl.relname NOT LIKE '\\_syncd\\_%' ORDER BY cl.relname, a.attnum",
            0, 0, err);
  if (!r) return -1;
  int rows = PQntuples(r), ok = 1;
  s->tables = sqlite3_malloc64(sizeof *s->tables * (rows + 1));
  if (!s->tables) ok = 0;
  for (int i = 0; ok && i < rows; i++) {
    const char *tname = PQgetvalue(r, i, 0);
    pg_table *t = s->n_tables ? &s->tables[s->n_tables - 1] : 0;
    if (!t || strcmp(t->name, tname) != 0) {
      t = &s->tables[s->n_tables++];
      memset(t, 0, sizeof *t);
      t->name = sqlite3_mprintf("%s", tname);
      /* at most as many columns as rows left */
      t->cols = sqlite3_malloc64(sizeof *t->cols * (rows - i));
      t->pk = sqlite3_malloc64(sizeof *t->pk * (rows - i));
      if (!t->name || !t->cols || !t->pk) {
        ok = 0;
        break;
      }
    }
    pg_col *col = &t->cols[t->n_cols];
    col->name = sqlite3_mprintf("%s", PQgetvalue(r, i, 1));
    col->type = sqlite3_mprintf("%s", PQgetvalue(r, i, 2));
    col->kind = type_kind(PQgetvalue(r, i, 3));
    if (!col->name || !col->type) ok = 0;
    int pkpos = atoi(PQgetvalue(r, i, 4));
    if (pkpos > 0 && pkpos <= rows - i + t->n_cols) t->pk[pkpos - 1] = t->n_cols, t->n_pk++;
    t->n_cols++;
  }
  PQclear(r);
  if (!ok) *err = store_errf("out of memory");
  return ok ? 0 : -1;
}

static const pg_table *table_find(const pg_store *s, const char *name) {
  for (int i = 0; i < s->n_tables; i++) {
    if (strcmp(s->tables[i].name, name) == 0) return &s->tables[i];
  }
  return 0;
}

static int col_find(const pg_table *t, const char *name) {
  for (int c = 0; c < t->n_cols; c++) {
    if (strcmp(t->cols[c].name, name) == 0) return c;
  }
  return -1;
}

static int col_is_pk(const pg_table *t, int c) {
  for (int k = 0; k < t->n_pk; k++) {
    if (t->pk[k] == c) return 1;
  }
  return 0;
}

/* ---- SQL building ---- */

/* A quoted identifier. */
static void append_ident(sqlite3_str *sql, const char *name) {
  sqlite3_str_appendchar(sql, 1, '"');
  for (const char *p = name; *p; p++) {
    if (*p == '"') sqlite3_str_appendchar(sql, 1, '"');
    sqlite3_str_appendchar(sql, 1, *p);
  }
  sqlite3_str_appendchar(sql, 1, '"');
}

/* The value of key $keyParam of the json in $jsonParam, cast to col's type. */
static void append_val(sqlite3_str *sql, const pg_col *col, int jsonParam, int keyParam) {
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

/* The select list printing every column (bytea as one-line base64). */
static void append_columns(sqlite3_str *sql, const pg_table *t, int pkOnly) {
  int n = pkOnly ? t->n_pk : t->n_cols;
  for (int i = 0; i < n; i++) {
    const pg_col *col = &t->cols[pkOnly ? t->pk[i] : i];
    if (i) sqlite3_str_appendchar(sql, 1, ',');
    if (col->kind == K_BYTEA) {
      sqlite3_str_appendall(sql, "translate(encode(");
      append_ident(sql, col->name);
      sqlite3_str_appendall(sql, ", 'base64'), E'\\n', '')");
    } else {
      append_ident(sql, col->name);
    }
  }
}

/* " WHERE "p1" = <$pkParam's p1> AND ...": key names bound from $firstKey. */
static void append_pk_where(sqlite3_str *sql, const pg_table *t, int pkParam, int firstKey) {
  for (int k = 0; k < t->n_pk; k++) {
    const pg_col *col = &t->cols[t->pk[k]];
    sqlite3_str_appendall(sql, k ? " AND " : " WHERE ");
    append_ident(sql, col->name);
    sqlite3_str_appendall(sql, " = ");
    append_val(sql, col, pkParam, firstKey + k);
  }
}

/* ---- printing values ---- */

static void append_value(sqlite3_str *out, const pg_col *col, const PGresult *r, int row, int f) {
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
** append_columns(pkOnly). */
static char *print_row(const pg_table *t, const PGresult *r, int row, int f0, int pkOnly) {
  sqlite3_str *out = sqlite3_str_new(0);
  int n = pkOnly ? t->n_pk : t->n_cols;
  sqlite3_str_appendchar(out, 1, '{');
  for (int i = 0; i < n; i++) {
    const pg_col *col = &t->cols[pkOnly ? t->pk[i] : i];
    if (i) sqlite3_str_appendchar(out, 1, ',');
    value_append_string(out, col->name, -1);
    sqlite3_str_appendchar(out, 1, ':');
    append_value(out, col, r, row, f0 + i);
  }
  sqlite3_str_appendchar(out, 1, '}');
  return sqlite3_str_finish(out);
}

/* ---- the change log ---- */

/* Take the next version (locking _syncd_state to commit) and make it the
** latest change of (t, pk); row NULL is a delete. */
static int log_change(PGconn *c, const pg_table *t, const char *pk, const char *row,
                      long long *version, char **err) {
  const char *p[4] = {t->name, pk, row ? "upsert" : "delete", row};
  PGresult *r = query(c,
                      "WITH v AS (UPDATE _syncd_state SET version = version + 1 RETURNING version)"
                      " INSERT INTO _syncd_changes(tbl, pk, op, row, version)"
                      " SELECT $1, $2, $3, $4, version FROM v ON CONFLICT (tbl, pk) DO UPDATE"
                      " SET op = excluded.op, row = excluded.row, version = excluded.version"
                      " RETURNING version",
                      4, p, err);
  if (!r) return -1;
  *version = PQntuples(r) == 1 ? atoll(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  if (*version) return 0;
  *err = store_errf("no _syncd_state row");
  return -1;
}

/* Log every row of every synced table (rows the schema file inserted). */
static int backfill(pg_store *s, PGconn *c, char **err) {
  for (int i = 0; i < s->n_tables; i++) {
    const pg_table *t = &s->tables[i];
    sqlite3_str *sql = sqlite3_str_new(0);
    sqlite3_str_appendall(sql, "SELECT ");
    append_columns(sql, t, 0);
    sqlite3_str_appendall(sql, " FROM ");
    append_ident(sql, t->name);
    char *z = sqlite3_str_finish(sql);
    PGresult *r = z ? query(c, z, 0, 0, err) : 0;
    sqlite3_free(z);
    if (!r) return *err ? -1 : (*err = store_errf("out of memory"), -1);
    int bad = 0;
    for (int row = 0; !bad && row < PQntuples(r); row++) {
      char *rowz = print_row(t, r, row, 0, 0);
      sqlite3_str *pk = sqlite3_str_new(0);
      sqlite3_str_appendchar(pk, 1, '{');
      for (int k = 0; k < t->n_pk; k++) {
        if (k) sqlite3_str_appendchar(pk, 1, ',');
        value_append_string(pk, t->cols[t->pk[k]].name, -1);
        sqlite3_str_appendchar(pk, 1, ':');
        append_value(pk, &t->cols[t->pk[k]], r, row, t->pk[k]);
      }
      sqlite3_str_appendchar(pk, 1, '}');
      char *pkz = sqlite3_str_finish(pk);
      long long v;
      bad = !rowz || !pkz || log_change(c, t, pkz, rowz, &v, err);
      sqlite3_free(rowz);
      sqlite3_free(pkz);
    }
    PQclear(r);
    if (bad) return *err ? -1 : (*err = store_errf("out of memory"), -1);
  }
  return 0;
}

static int compact(pg_store *s, PGconn *c, char **err) {
  if (s->max_tombstones <= 0) return 0;
  char off[32];
  snprintf(off, sizeof off, "%lld", s->max_tombstones);
  const char *p[1] = {off};
  PGresult *r =
      query(c,
            "WITH h AS (SELECT version FROM _syncd_changes WHERE op = 'delete'"
            " ORDER BY version DESC LIMIT 1 OFFSET $1::bigint),"
            " d AS (DELETE FROM _syncd_changes WHERE op = 'delete'"
            " AND version <= (SELECT version FROM h))"
            " UPDATE _syncd_state SET horizon = greatest(horizon, (SELECT version FROM h))"
            " WHERE EXISTS (SELECT 1 FROM h)",
            1, p, err);
  PQclear(r);
  return r ? 0 : -1;
}

/* ---- push ---- */

/* Refusals by the data (constraints, types, names) are the mutation's;
** connection, resource and internal failures are the batch's. */
static int is_fatal(const PGresult *r) {
  const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  if (!state) return 1;
  static const char *const classes[] = {"08", "25", "40", "53", "55", "57", "58", "XX"};
  for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
    if (strncmp(state, classes[i], 2) == 0) return 1;
  }
  return 0;
}

/* Map a failed statement to MUT_FATAL, or MUT_REJECTED with its message. */
static int failed(PGconn *c, PGresult *r, char **reason, char **err) {
  int fatal = is_fatal(r);
  const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  if (fatal) {
    *err = store_errf("PostgreSQL: %s", PQerrorMessage(c));
  } else {
    *reason = store_errf("%s", msg ? msg : PQerrorMessage(c));
  }
  PQclear(r);
  return fatal ? MUT_FATAL : MUT_REJECTED;
}

/* Run sql with params; MUT_OK with *out (may be NULL to discard). */
static int run(PGconn *c, const char *sql, int n, const char *const *params, PGresult **out,
               char **reason, char **err) {
  /* All text: an insert whose data carries the key never mentions $2, and
  ** PostgreSQL cannot infer the type of an unused parameter. */
  Oid *types = sqlite3_malloc64(sizeof *types * (n + 1));
  if (!types) return *err = store_errf("out of memory"), MUT_FATAL;
  for (int i = 0; i < n; i++)
    types[i] = 25; /* TEXTOID */
  PGresult *r = PQexecParams(c, sql, n, types, params, 0, 0, 0);
  sqlite3_free(types);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return failed(c, r, reason, err);
  if (out)
    *out = r;
  else
    PQclear(r);
  return MUT_OK;
}

/* Check the keys of pk and data against t: pk exactly the key columns,
** data only real columns. For an update, setCols gets the non-key data
** columns; for an insert, every data column (key columns included). */
static int check_keys(PGconn *c, const pg_table *t, const store_mutation *m, int *cols, int *nCols,
                      char **reason, char **err) {
  const char *p[2] = {m->pk, m->data};
  PGresult *r;
  int rc = run(c,
               "SELECT 0, k FROM json_object_keys($1::json) k"
               " UNION ALL SELECT 1, k FROM json_object_keys($2::json) k",
               2, p, &r, reason, err);
  if (rc != MUT_OK) return rc;
  int seenPk = 0;
  *nCols = 0;
  for (int i = 0; rc == MUT_OK && i < PQntuples(r); i++) {
    int inData = PQgetvalue(r, i, 0)[0] == '1';
    const char *key = PQgetvalue(r, i, 1);
    int col = col_find(t, key);
    if (col < 0) {
      *reason = store_errf("table %s has no column named %s", t->name, key);
      rc = MUT_REJECTED;
    } else if (!inData && !col_is_pk(t, col)) {
      *reason = store_errf("pk: %s is not a primary key column of table %s", key, t->name);
      rc = MUT_REJECTED;
    } else if (!inData) {
      seenPk++;
    } else if (m->op == STORE_INSERT || !col_is_pk(t, col)) {
      for (int j = 0; j < *nCols; j++) {
        if (cols[j] == col) col = -1;
      }
      if (col >= 0) cols[(*nCols)++] = col;
    }
  }
  PQclear(r);
  if (rc == MUT_OK && seenPk != t->n_pk) {
    *reason = store_errf("pk must hold exactly the primary key columns of table %s", t->name);
    rc = MUT_REJECTED;
  }
  return rc;
}

/* Read the row of t whose key is in pkJson: *row and *pk get its JSON, or
** stay NULL when there is none. */
static int read_row(PGconn *c, const pg_table *t, const char *pkJson, char **row, char **pk,
                    char **reason, char **err) {
  sqlite3_str *sql = sqlite3_str_new(0);
  sqlite3_str_appendall(sql, "SELECT ");
  append_columns(sql, t, 0);
  sqlite3_str_appendall(sql, ",");
  append_columns(sql, t, 1);
  sqlite3_str_appendall(sql, " FROM ");
  append_ident(sql, t->name);
  append_pk_where(sql, t, 1, 2);
  char *z = sqlite3_str_finish(sql);
  const char **p = sqlite3_malloc64(sizeof *p * (t->n_pk + 1));
  *row = *pk = 0;
  if (!z || !p) {
    sqlite3_free(z);
    sqlite3_free(p);
    *err = store_errf("out of memory");
    return MUT_FATAL;
  }
  p[0] = pkJson;
  for (int k = 0; k < t->n_pk; k++)
    p[1 + k] = t->cols[t->pk[k]].name;
  PGresult *r;
  int rc = run(c, z, 1 + t->n_pk, p, &r, reason, err);
  sqlite3_free(z);
  sqlite3_free(p);
  if (rc != MUT_OK) return rc;
  if (PQntuples(r) > 0) {
    *row = print_row(t, r, 0, 0, 0);
    *pk = print_row(t, r, 0, t->n_cols, 1);
    if (!*row || !*pk) {
      sqlite3_free(*row);
      sqlite3_free(*pk);
      *row = *pk = 0;
      *err = store_errf("out of memory");
      rc = MUT_FATAL;
    }
  }
  PQclear(r);
  return rc;
}

/* Build and run the write of m. *changed: a row changed; for a delete,
** *delPk gets the deleted row's key as stored. */
static int write_row(PGconn *c, const pg_table *t, const store_mutation *m, const int *cols,
                     int nCols, int *changed, char **delPk, char **reason, char **err) {
  /* $1 = data, $2 = pk, $3.. = key names */
  const char **p = sqlite3_malloc64(sizeof *p * (2 * t->n_cols + 3));
  int *used = sqlite3_malloc64(sizeof *used * (t->n_cols + 1));
  if (!p || !used) {
    sqlite3_free(p);
    sqlite3_free(used);
    *err = store_errf("out of memory");
    return MUT_FATAL;
  }
  memset(used, 0, sizeof *used * (t->n_cols + 1));
  p[0] = m->data;
  p[1] = m->pk;
  int np = 2;
  sqlite3_str *sql = sqlite3_str_new(0);
  if (m->op == STORE_INSERT) {
    sqlite3_str *vals = sqlite3_str_new(0);
    sqlite3_str_appendall(sql, "INSERT INTO ");
    append_ident(sql, t->name);
    sqlite3_str_appendall(sql, "(");
    int n = 0;
    for (int j = 0; j < nCols; j++, n++) {
      const pg_col *col = &t->cols[cols[j]];
      used[cols[j]] = 1;
      if (n) sqlite3_str_appendchar(sql, 1, ','), sqlite3_str_appendchar(vals, 1, ',');
      append_ident(sql, col->name);
      p[np++] = col->name;
      append_val(vals, col, 1, np);
    }
    for (int k = 0; k < t->n_pk; k++) {
      if (used[t->pk[k]]) continue;
      const pg_col *col = &t->cols[t->pk[k]];
      if (n++) sqlite3_str_appendchar(sql, 1, ','), sqlite3_str_appendchar(vals, 1, ',');
      append_ident(sql, col->name);
      p[np++] = col->name;
      append_val(vals, col, 2, np);
    }
    char *v = sqlite3_str_finish(vals);
    sqlite3_str_appendf(sql, ") VALUES(%s)", v ? v : "");
    sqlite3_free(v);
  } else if (m->op == STORE_UPDATE) {
    sqlite3_str_appendall(sql, "UPDATE ");
    append_ident(sql, t->name);
    sqlite3_str_appendall(sql, " SET ");
    for (int j = 0; j < nCols; j++) {
      const pg_col *col = &t->cols[cols[j]];
      if (j) sqlite3_str_appendchar(sql, 1, ',');
      append_ident(sql, col->name);
      sqlite3_str_appendall(sql, " = ");
      p[np++] = col->name;
      append_val(sql, col, 1, np);
    }
    append_pk_where(sql, t, 2, np + 1);
    for (int k = 0; k < t->n_pk; k++)
      p[np++] = t->cols[t->pk[k]].name;
  } else {
    sqlite3_str_appendall(sql, "DELETE FROM ");
    append_ident(sql, t->name);
    append_pk_where(sql, t, 2, np + 1);
    for (int k = 0; k < t->n_pk; k++)
      p[np++] = t->cols[t->pk[k]].name;
    sqlite3_str_appendall(sql, " RETURNING ");
    append_columns(sql, t, 1);
  }
  char *z = sqlite3_str_finish(sql);
  PGresult *r = 0;
  int rc = z ? run(c, z, np, p, &r, reason, err) : MUT_FATAL;
  if (!z) *err = store_errf("out of memory");
  sqlite3_free(z);
  sqlite3_free(p);
  sqlite3_free(used);
  if (rc != MUT_OK) return rc;
  *changed = atoi(PQcmdTuples(r)) > 0;
  if (m->op == STORE_DELETE && *changed) {
    *delPk = print_row(t, r, 0, 0, 1);
    if (!*delPk) *err = store_errf("out of memory"), rc = MUT_FATAL;
  }
  PQclear(r);
  return rc;
}

/* Apply m in its own savepoint; fills o. -1 (and *err) fails the batch.
** The savepoint is left open: the next mutation's "RELEASE SAVEPOINT m;
** SAVEPOINT m" closes it in the same round trip (*open says one is), and
** COMMIT closes the last. */
static int apply_one(pg_store *s, PGconn *c, const store_mutation *m, store_outcome *o, int *open,
                     char **err) {
  const pg_table *t = table_find(s, m->table);
  memset(o, 0, sizeof *o);
  if (!t) {
    o->reason = store_errf("no such table: %s", m->table);
    o->pk = sqlite3_mprintf("%s", m->pk);
    return o->reason && o->pk ? 0 : (*err = store_errf("out of memory"), -1);
  }
  int *cols = sqlite3_malloc64(sizeof *cols * (t->n_cols + 1)), nCols = 0, changed = 0;
  if (!cols) return *err = store_errf("out of memory"), -1;
  if (exec(c, *open ? "RELEASE SAVEPOINT m; SAVEPOINT m" : "SAVEPOINT m", err))
    return sqlite3_free(cols), -1;
  *open = 1;
  char *delPk = 0;
  int r = check_keys(c, t, m, cols, &nCols, &o->reason, err);
  if (r == MUT_OK && m->op == STORE_UPDATE && nCols == 0) {
    r = read_row(c, t, m->pk, &o->row, &o->pk, &o->reason, err);
    if (r == MUT_OK && !o->row) r = MUT_REJECTED, o->reason = store_errf("no such row");
  } else if (r == MUT_OK) {
    r = write_row(c, t, m, cols, nCols, &changed, &delPk, &o->reason, err);
    if (r == MUT_OK && m->op == STORE_UPDATE && !changed)
      r = MUT_REJECTED, o->reason = store_errf("no such row");
  }
  sqlite3_free(cols);
  if (r == MUT_OK && changed && m->op != STORE_DELETE) {
    r = read_row(c, t, m->pk, &o->row, &o->pk, &o->reason, err);
    if (r == MUT_OK && !o->row)
      r = MUT_REJECTED, o->reason = store_errf("the row's key does not match pk");
  }
  if (r == MUT_OK && changed) {
    const char *pk = m->op == STORE_DELETE ? delPk : o->pk;
    if (log_change(c, t, pk, o->row, &o->version, err)) r = MUT_FATAL;
    if (m->op == STORE_DELETE) o->pk = delPk, delPk = 0;
  }
  sqlite3_free(delPk);
  if (r == MUT_FATAL) return -1;
  if (r == MUT_REJECTED) {
    sqlite3_free(o->row);
    o->row = 0;
    o->version = 0;
    if (!o->reason) return *err = store_errf("out of memory"), -1;
    if (exec(c, "ROLLBACK TO SAVEPOINT m", err)) return -1;
  }
  o->applied = r == MUT_OK;
  if (!o->pk) o->pk = sqlite3_mprintf("%s", m->pk);
  return o->pk ? 0 : (*err = store_errf("out of memory"), -1);
}

/* Outcomes are recorded in one statement per batch, not one round trip per
** mutation: outcome_add appends one to a JSON array, outcomes_flush writes
** them (before any replay, which reads them, and at the end). */
static void outcome_add(sqlite3_str *list, const store_mutation *m, const store_outcome *o,
                        const char *table) {
  sqlite3_str_appendf(
      list, "%s{\"id\":%lld,\"status\":\"%s\",\"reason\":", sqlite3_str_length(list) ? "," : "[",
      m->id, o->applied ? "applied" : "rejected");
  if (o->reason)
    value_append_string(list, o->reason, -1);
  else
    sqlite3_str_appendall(list, "null");
  sqlite3_str_appendall(list, ",\"tbl\":");
  value_append_string(list, table, -1);
  sqlite3_str_appendall(list, ",\"pk\":");
  value_append_string(list, o->pk, -1);
  sqlite3_str_appendchar(list, 1, '}');
}

static int outcomes_flush(PGconn *c, const char *client, sqlite3_str *list, char **err) {
  if (sqlite3_str_length(list) == 0) return 0;
  sqlite3_str_appendchar(list, 1, ']');
  if (sqlite3_str_errcode(list) != SQLITE_OK) return *err = store_errf("out of memory"), -1;
  const char *p[2] = {client, sqlite3_str_value(list)};
  PGresult *r = query(c,
                      "INSERT INTO _syncd_outcomes(client_id, id, status, reason, tbl, pk)"
                      " SELECT $1, x.id, x.status, x.reason, x.tbl, x.pk FROM json_to_recordset($2)"
                      " AS x(id bigint, status text, reason text, tbl text, pk text)"
                      " ON CONFLICT (client_id, id) DO UPDATE"
                      " SET status = excluded.status, reason = excluded.reason,"
                      " tbl = excluded.tbl, pk = excluded.pk",
                      2, p, err);
  PQclear(r);
  sqlite3_str_reset(list);
  return r ? 0 : -1;
}

static int replay_one(PGconn *c, const char *client, long long id, store_outcome *o, char **err) {
  char ids[32];
  snprintf(ids, sizeof ids, "%lld", id);
  const char *p[2] = {client, ids};
  memset(o, 0, sizeof *o);
  PGresult *r = query(c,
                      "SELECT o.status, o.reason, ch.row, ch.version FROM _syncd_outcomes o"
                      " LEFT JOIN _syncd_changes ch ON ch.tbl = o.tbl AND ch.pk = o.pk"
                      " WHERE o.client_id = $1 AND o.id = $2",
                      2, p, err);
  if (!r) return -1;
  if (PQntuples(r) > 0) {
    o->applied = strcmp(PQgetvalue(r, 0, 0), "applied") == 0;
    if (!PQgetisnull(r, 0, 1)) o->reason = sqlite3_mprintf("%s", PQgetvalue(r, 0, 1));
    if (!PQgetisnull(r, 0, 2)) o->row = sqlite3_mprintf("%s", PQgetvalue(r, 0, 2));
    if (!PQgetisnull(r, 0, 3)) o->version = atoll(PQgetvalue(r, 0, 3));
  } else {
    o->reason = store_errf("mutation %lld is at or below this client's last processed id and its "
                           "outcome is no longer recorded",
                           id);
  }
  PQclear(r);
  return 0;
}

static int pg_push(store *st, const char *client, const store_mutation *m, int n, char **json,
                   int *n_changed, char **err) {
  pg_store *s = (pg_store *)st;
  *json = 0;
  *n_changed = 0;
  PGconn *c = pool_get(s, err);
  if (!c) return STORE_ERROR;
  int *order = sqlite3_malloc64(sizeof *order * (n + 1));
  store_outcome *res = sqlite3_malloc64(sizeof *res * (n + 1));
  sqlite3_str *outcomes = sqlite3_str_new(0);
  int ok = order && res, nDeleted = 0, open = 0;
  if (!ok) *err = store_errf("out of memory");
  if (res) memset(res, 0, sizeof *res * (n + 1));
  long long last = 0;
  const char *p[2] = {client, 0};
  if (ok && n > 0) {
    /* the client's row lock serializes pushes of one client */
    PGresult *r = 0;
    /* Deferred constraints would only fail at COMMIT, failing the whole batch
    ** on every retry: check each mutation at once. */
    ok = !exec(c, "BEGIN; SET CONSTRAINTS ALL IMMEDIATE", err) &&
         (r = query(c,
                    "INSERT INTO _syncd_clients(client_id, last_id) VALUES($1, 0)"
                    " ON CONFLICT (client_id) DO NOTHING",
                    1, p, err)) != 0;
    PQclear(r);
    r = ok ? query(c, "SELECT last_id FROM _syncd_clients WHERE client_id = $1 FOR UPDATE", 1, p,
                   err)
           : 0;
    if (r && PQntuples(r) == 1) last = atoll(PQgetvalue(r, 0, 0));
    ok = r != 0;
    PQclear(r);
  }
  long long first = last;
  if (ok) store_order_by_id(m, n, order);
  for (int k = 0; ok && k < n; k++) {
    const store_mutation *mu = &m[order[k]];
    store_outcome *o = &res[order[k]];
    if (mu->id <= last) {
      ok = !outcomes_flush(c, client, outcomes, err) && !replay_one(c, client, mu->id, o, err);
      continue;
    }
    const pg_table *t = table_find(s, mu->table);
    ok = !apply_one(s, c, mu, o, &open, err);
    if (ok) outcome_add(outcomes, mu, o, t ? t->name : mu->table);
    last = mu->id;
    if (ok && o->version) {
      (*n_changed)++;
      if (!o->row) nDeleted++;
    }
  }
  if (ok) ok = !outcomes_flush(c, client, outcomes, err);
  if (ok && n > 0) {
    char lastz[32], keep[32];
    snprintf(lastz, sizeof lastz, "%lld", last);
    snprintf(keep, sizeof keep, "%d", STORE_KEEP_OUTCOMES);
    const char *q[2] = {client, lastz};
    PGresult *r =
        query(c, "UPDATE _syncd_clients SET last_id = $2 WHERE client_id = $1", 2, q, err);
    ok = r != 0;
    PQclear(r);
    q[1] = keep;
    /* the cutoff's scan only when the last id crosses a multiple of
    ** STORE_PRUNE_EVERY (store_sqlite.c says why) */
    int prune = first / STORE_PRUNE_EVERY != last / STORE_PRUNE_EVERY;
    r = ok && prune
            ? query(c,
                    "DELETE FROM _syncd_outcomes WHERE client_id = $1 AND id <= (SELECT id FROM"
                    " _syncd_outcomes WHERE client_id = $1 ORDER BY id DESC LIMIT 1"
                    " OFFSET $2::bigint)",
                    2, q, err)
            : 0;
    ok = ok && (!prune || r != 0);
    PQclear(r);
    if (ok && nDeleted) ok = !compact(s, c, err);
    if (ok && *n_changed) ok = !exec(c, "NOTIFY syncd_changes", err);
    if (ok) ok = !exec(c, "COMMIT", err);
  }
  if (ok) {
    *json = store_results_json(m, res, n);
    if (!*json) ok = 0, *err = store_errf("out of memory");
  }
  if (!ok) *n_changed = 0;
  for (int i = 0; res && i < n; i++)
    store_outcome_clear(&res[i]);
  sqlite3_free(sqlite3_str_finish(outcomes));
  sqlite3_free(res);
  sqlite3_free(order);
  pool_put(s, c);
  return ok ? STORE_OK : STORE_ERROR;
}

/* ---- pull ---- */

/* Starts a page with the changes in r's rows, read from the
** columns tbl, pk, row, version starting at col; a row whose version is NULL
** ends them (a one-statement pull returns the header row alone when no
** change follows). Stops after limit changes, setting has_more when a row was
** left. Returns the version of the last change appended, or head. */
static long long append_changes(sqlite3_str *out, PGresult *r, int col, int limit, long long head,
                                store_page *page) {
  long long lastVersion = head;
  int rows = PQntuples(r);
  sqlite3_str_appendall(out, "{\"changes\":[");
  for (int i = 0; i < rows && !PQgetisnull(r, i, col + 3); i++) {
    if (i == limit) {
      page->has_more = 1;
      break;
    }
    if (i) sqlite3_str_appendchar(out, 1, ',');
    lastVersion = atoll(PQgetvalue(r, i, col + 3));
    store_append_change(out, PQgetvalue(r, i, col), PQgetvalue(r, i, col + 1),
                        PQgetisnull(r, i, col + 2) ? 0 : PQgetvalue(r, i, col + 2), lastVersion);
    page->n_changes++;
  }
  return lastVersion;
}

/* A pull without pending_from in one statement, so one snapshot and one
** round trip instead of five: every event stream pulls like this each time
** a push wakes it, and 200 streams made PostgreSQL the bottleneck of the
** fan-out. Row 0 carries the state and the client's last id; the changes
** follow (none: one row of NULLs from the outer join). */
static int pull_single(pg_store *s, PGconn *c, const char *client, const char *cursor, int limit,
                       store_page *page, char **err) {
  long long after = 0;
  char afterz[32], limz[32];
  if (cursor) {
    int rc = store_cursor_parse(cursor, s->db_id, &after);
    if (rc != STORE_OK) return rc;
  }
  snprintf(afterz, sizeof afterz, "%lld", after);
  snprintf(limz, sizeof limz, "%d", limit + 1);
  const char *p[4] = {client, afterz, limz, cursor ? "true" : "false"};
  PGresult *r = query(c,
                      "SELECT st.version, st.horizon, (SELECT last_id FROM _syncd_clients"
                      " WHERE client_id = $1), ch.tbl, ch.pk, ch.row, ch.version"
                      " FROM _syncd_state st LEFT JOIN LATERAL (SELECT tbl, pk, row, version"
                      " FROM _syncd_changes WHERE version > $2::bigint AND ($4::boolean OR"
                      " op = 'upsert') ORDER BY version LIMIT $3::bigint) ch ON true"
                      " ORDER BY ch.version",
                      4, p, err);
  if (!r) return STORE_ERROR;
  int rows = PQntuples(r);
  if (rows < 1) {
    PQclear(r);
    *err = store_errf("no _syncd_state row");
    return STORE_ERROR;
  }
  long long head = atoll(PQgetvalue(r, 0, 0)), horizon = atoll(PQgetvalue(r, 0, 1));
  long long last_id = PQgetisnull(r, 0, 2) ? 0 : atoll(PQgetvalue(r, 0, 2));
  if (cursor && (after < horizon || after > head)) {
    PQclear(r);
    return STORE_EXPIRED;
  }
  sqlite3_str *out = sqlite3_str_new(0);
  long long lastVersion = append_changes(out, r, 3, limit, head, page);
  PQclear(r);
  return store_page_finish(out, page, s->db_id, page->has_more ? lastVersion : head, last_id, 0,
                           err);
}

static int pg_pull(store *st, const char *client, const char *cursor, int limit,
                   long long pending_from, store_page *page, char **err) {
  pg_store *s = (pg_store *)st;
  memset(page, 0, sizeof *page);
  PGconn *c = pool_get(s, err);
  if (!c) return STORE_ERROR;
  if (pending_from <= 0) {
    int rc = pull_single(s, c, client, cursor, limit, page, err);
    pool_put(s, c);
    return rc;
  }
  PGresult *r = 0;
  int rc = STORE_ERROR;
  long long head, horizon, after = 0, last_id = 0;
  if (exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err) ||
      !(r = query(c, "SELECT version, horizon FROM _syncd_state", 0, 0, err)))
    goto done;
  if (PQntuples(r) != 1) {
    *err = store_errf("no _syncd_state row");
    goto done;
  }
  head = atoll(PQgetvalue(r, 0, 0));
  horizon = atoll(PQgetvalue(r, 0, 1));
  PQclear(r);
  r = 0;
  if (cursor) {
    rc = store_cursor_parse(cursor, s->db_id, &after);
    if (rc == STORE_OK && (after < horizon || after > head)) rc = STORE_EXPIRED;
    if (rc != STORE_OK) goto done;
    rc = STORE_ERROR;
  }
  char afterz[32], limz[32];
  snprintf(afterz, sizeof afterz, "%lld", after);
  snprintf(limz, sizeof limz, "%d", limit + 1);
  const char *p[2] = {afterz, limz};
  r = query(c,
            cursor ? "SELECT tbl, pk, row, version FROM _syncd_changes WHERE version > $1::bigint"
                     " ORDER BY version LIMIT $2::bigint"
                   : "SELECT tbl, pk, row, version FROM _syncd_changes WHERE version > $1::bigint"
                     " AND op = 'upsert' ORDER BY version LIMIT $2::bigint",
            2, p, err);
  if (!r) goto done;
  sqlite3_str *out = sqlite3_str_new(0);
  long long lastVersion = append_changes(out, r, 0, limit, head, page);
  PQclear(r);
  const char *q[1] = {client};
  r = query(c, "SELECT last_id FROM _syncd_clients WHERE client_id = $1", 1, q, err);
  if (!r) {
    sqlite3_free(sqlite3_str_finish(out));
    goto done;
  }
  if (PQntuples(r) == 1) last_id = atoll(PQgetvalue(r, 0, 0));
  sqlite3_str *rejected = 0;
  if (pending_from > 0) {
    PQclear(r);
    char fromz[32], lastz[32];
    snprintf(fromz, sizeof fromz, "%lld", pending_from);
    snprintf(lastz, sizeof lastz, "%lld", last_id);
    const char *rp[3] = {client, fromz, lastz};
    r = query(c,
              "SELECT id, reason FROM _syncd_outcomes WHERE client_id = $1"
              " AND id >= $2::bigint AND id <= $3::bigint AND status = 'rejected' ORDER BY id",
              3, rp, err);
    if (!r) {
      sqlite3_free(sqlite3_str_finish(out));
      goto done;
    }
    rejected = sqlite3_str_new(0);
    for (int i = 0; i < PQntuples(r); i++)
      store_append_rejected(rejected, atoll(PQgetvalue(r, i, 0)),
                            PQgetisnull(r, i, 1) ? 0 : PQgetvalue(r, i, 1));
  }
  rc = store_page_finish(out, page, s->db_id, page->has_more ? lastVersion : head, last_id,
                         rejected, err);
  if (rc == STORE_OK && exec(c, "COMMIT", err)) {
    store_page_clear(page);
    rc = STORE_ERROR;
  }
done:
  PQclear(r);
  pool_put(s, c);
  return rc;
}

static int pg_head(store *st, char **cursor, char **err) {
  pg_store *s = (pg_store *)st;
  PGconn *c = pool_get(s, err);
  if (!c) return STORE_ERROR;
  int rc = STORE_ERROR;
  PGresult *r = query(c, "SELECT version FROM _syncd_state", 0, 0, err);
  if (r && PQntuples(r) == 1) {
    *cursor = store_cursor_format(s->db_id, atoll(PQgetvalue(r, 0, 0)));
    rc = *cursor ? STORE_OK : STORE_ERROR;
  }
  if (rc != STORE_OK && !*err) *err = store_errf("no _syncd_state row");
  PQclear(r);
  pool_put(s, c);
  return rc;
}

/* ---- LISTEN/NOTIFY ---- */

/* One connection LISTENs; every notification (and every reconnect, which
** may have missed some) calls on_change. A byte on s->wake ends it. */
static void *listener_main(void *arg) {
  pg_store *s = arg;
  PGconn *c = 0;
  for (;;) {
    if (!c) {
      char *err = 0;
      c = conn_open(s->url, &err);
      if (c && exec(c, "LISTEN syncd_changes", &err)) {
        PQfinish(c);
        c = 0;
      }
      if (err) fprintf(stderr, "syncd: listener: %s\n", err);
      sqlite3_free(err);
      if (c) s->on_change(s->on_change_arg);
    }
    struct pollfd fds[2] = {{s->wake[0], POLLIN, 0}, {c ? PQsocket(c) : -1, POLLIN, 0}};
    int n = poll(fds, 2, c ? -1 : 1000);
    if (n > 0 && fds[0].revents) break;
    if (!c || n <= 0) continue;
    if (!PQconsumeInput(c)) {
      PQfinish(c);
      c = 0;
      continue;
    }
    int got = 0;
    PGnotify *note;
    while ((note = PQnotifies(c))) {
      PQfreemem(note);
      got = 1;
    }
    if (got) s->on_change(s->on_change_arg);
  }
  PQfinish(c);
  return 0;
}

static void pg_close(store *st) {
  pg_store *s = (pg_store *)st;
  if (s->has_listener) {
    char b = 1;
    if (write(s->wake[1], &b, 1) != 1) perror("syncd: waking the listener");
    pthread_join(s->listener, 0);
  }
  if (s->wake[0] >= 0) close(s->wake[0]);
  if (s->wake[1] >= 0) close(s->wake[1]);
  for (int i = 0; i < s->n_pool; i++)
    PQfinish(s->pool[i]);
  tables_free(s);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->freed);
  sqlite3_free(s->url);
  sqlite3_free(s);
}

static const store_methods pg_methods = {pg_push, pg_pull, pg_head, pg_close};

/* ---- open ---- */

/* Under an advisory lock (several syncd may start at once): run the schema
** and create our tables when they are missing, pick the db id, log the rows
** the schema inserted. */
static int setup(pg_store *s, PGconn *c, const store_config *cfg, char **err) {
  char key[32];
  snprintf(key, sizeof key, "%lld", SETUP_LOCK_KEY);
  const char *p[1] = {key};
  PGresult *r = 0;
  if (exec(c, "BEGIN", err) ||
      !(r = query(c, "SELECT pg_advisory_xact_lock($1::bigint)", 1, p, err)))
    return -1;
  PQclear(r);
  if (!(r = query(c, "SELECT to_regclass('_syncd_state') IS NULL", 0, 0, err))) return -1;
  int fresh = PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  if (fresh && cfg->schema_sql && exec(c, cfg->schema_sql, err)) return -1;
  if (exec(c, internal_ddl, err) || tables_load(s, c, err)) return -1;
  if (!(r = query(c, "SELECT db_id FROM _syncd_state", 0, 0, err))) return -1;
  int have = PQntuples(r) == 1;
  if (have) snprintf(s->db_id, sizeof s->db_id, "%s", PQgetvalue(r, 0, 0));
  PQclear(r);
  if (!have) {
    store_new_db_id(s->db_id);
    p[0] = s->db_id;
    if (!(r = query(c, "INSERT INTO _syncd_state VALUES(1, $1, 0, 0)", 1, p, err))) return -1;
    PQclear(r);
    if (backfill(s, c, err)) return -1;
  }
  if (compact(s, c, err)) return -1;
  return exec(c, "COMMIT", err);
}

store *store_pg_open(const char *url, const store_config *cfg, char **err) {
  *err = 0;
  pg_store *s = sqlite3_malloc64(sizeof *s);
  if (!s) return *err = store_errf("out of memory"), (store *)0;
  memset(s, 0, sizeof *s);
  s->base.m = &pg_methods;
  s->max_tombstones = cfg->max_tombstones;
  s->on_change = cfg->on_change;
  s->on_change_arg = cfg->on_change_arg;
  s->wake[0] = s->wake[1] = -1;
  pthread_mutex_init(&s->mu, 0);
  pthread_cond_init(&s->freed, 0);
  s->url = sqlite3_mprintf("%s", url);
  PGconn *c = s->url ? conn_open(url, err) : 0;
  if (!c || setup(s, c, cfg, err)) {
    if (!*err) *err = store_errf("out of memory");
    PQfinish(c);
    pg_close(&s->base);
    return 0;
  }
  s->pool[s->n_pool++] = c;
  if (s->on_change) {
    if (pipe(s->wake) != 0 || pthread_create(&s->listener, 0, listener_main, s) != 0) {
      *err = store_errf("cannot start the LISTEN thread");
      pg_close(&s->base);
      return 0;
    }
    s->has_listener = 1;
  }
  return &s->base;
}
