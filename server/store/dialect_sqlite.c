/*
** store_sqlite.c: the SQLite implementation of store.h (syncd's default
** storage, one database file in WAL mode).
**
** Internal tables, next to the synced ones (names starting with _syncd_ are
** never synced and never writable through the protocol):
**   _syncd_state(db_id, version, horizon)         one row: counter, horizon
**   _syncd_changes(tbl, pk, op, row, version)     latest change per row
**   _syncd_clients(client_id, last_id)            last processed mutation id
**   _syncd_outcomes(client_id, id, status, ...)   recent outcomes, for replays
**
** Pushes take BEGIN IMMEDIATE, so all writers (pushes of one client, of
** other clients, of other syncd processes on the same file) serialize and
** versions become visible in order. Pulls read in one deferred transaction,
** a consistent WAL snapshot.
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "value.h"
#include "request.h"
#include "wire.h"

#define POOL_MAX 32

typedef struct table_info {
  char *name;
  int n_cols;
  char **cols;
  int n_pk;
  int *pk;          /* indexes into cols, in primary key order */
  char **paths;     /* the JSON path of each column: $."name" */
  char *read_sql;   /* the row by key: ?1 the pk object, ?2.. its paths */
  char *insert_sql; /* an insert of every column in table order: ?1 data, ?3.. */
} table_info;

typedef struct sqlite_store {
  store base;
  char *path;
  char db_id[16];
  long long max_tombstones;
  table_info *tables; /* the synced tables: fixed after open */
  int n_tables;
  pthread_mutex_t mu; /* guards the pool fields */
  sqlite3 *pool[POOL_MAX];
  int n_pool;
  int n_busy;           /* connections handed out: at most POOL_MAX */
  pthread_cond_t freed; /* signalled when one comes back */
} sqlite_store;

/* Why a mutation failed: rejected (the database refused it, reason set) or
** a failure of the whole batch. */
enum { MUT_OK, MUT_REJECTED, MUT_FATAL };

static const char internal_ddl[] =
    "CREATE TABLE IF NOT EXISTS _syncd_state(one INTEGER PRIMARY KEY CHECK(one = 1),"
    " db_id TEXT NOT NULL, version INTEGER NOT NULL, horizon INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS _syncd_changes(tbl TEXT NOT NULL, pk TEXT NOT NULL,"
    " op TEXT NOT NULL, row TEXT, version INTEGER NOT NULL UNIQUE,"
    " PRIMARY KEY(tbl, pk)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS _syncd_tombstones ON _syncd_changes(version)"
    " WHERE op = 'delete';"
    "CREATE TABLE IF NOT EXISTS _syncd_clients(client_id TEXT PRIMARY KEY,"
    " last_id INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _syncd_outcomes(client_id TEXT NOT NULL, id INTEGER NOT NULL,"
    " status TEXT NOT NULL, reason TEXT, tbl TEXT, pk TEXT,"
    " PRIMARY KEY(client_id, id)) WITHOUT ROWID;";

/* ---- connections ---- */

static void pool_put(sqlite_store *s, sqlite3 *db);

static sqlite3 *conn_open(const char *path, char **err) {
  sqlite3 *db = 0;
  /* NOMUTEX: the pool hands a connection to one thread at a time, so
  ** SQLite's own per-call locking of it is pure cost. */
  int rc = sqlite3_open_v2(path, &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, 0);
  if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(db, 30000);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL;", 0, 0, 0);
  if (rc == SQLITE_OK) rc = value_register(db);
  if (rc != SQLITE_OK) {
    *err = store_errf("%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return 0;
  }
  return db;
}

/* A connection from the pool, opening one while fewer than POOL_MAX are
** out, else waiting for one to come back: the number of connections stays
** bounded however many streams wake at once. */
static sqlite3 *pool_get(sqlite_store *s, char **err) {
  sqlite3 *db = 0;
  pthread_mutex_lock(&s->mu);
  while (s->n_pool == 0 && s->n_busy >= POOL_MAX)
    pthread_cond_wait(&s->freed, &s->mu);
  if (s->n_pool > 0) db = s->pool[--s->n_pool];
  s->n_busy++;
  pthread_mutex_unlock(&s->mu);
  if (!db && !(db = conn_open(s->path, err))) pool_put(s, 0);
  return db;
}

/* Give db back (NULL: one that could not be opened), rolling back whatever
** an error path left open. */
static void pool_put(sqlite_store *s, sqlite3 *db) {
  if (db && !sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", 0, 0, 0);
  pthread_mutex_lock(&s->mu);
  if (db) s->pool[s->n_pool++] = db;
  s->n_busy--;
  pthread_cond_signal(&s->freed);
  pthread_mutex_unlock(&s->mu);
}

/* Statements stay prepared on their connection between requests: compiling
** one costs more than running it, and a push runs about ten per mutation.
** stmt_get finds an idle one of the same text on db (sqlite3_next_stmt) or
** prepares it; stmt_put resets and unbinds it for the next caller, and
** finalizes it once the connection holds more than STMT_CACHE_MAX (the
** write statements vary with the columns a mutation names). No caller
** holds two statements of the same text at once, so an idle one (not busy)
** is never one a caller still holds. */
#define STMT_CACHE_MAX 64

static int stmt_get(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  for (sqlite3_stmt *p = sqlite3_next_stmt(db, 0); p; p = sqlite3_next_stmt(db, p)) {
    if (!sqlite3_stmt_busy(p) && strcmp(sqlite3_sql(p), sql) == 0) {
      *st = p;
      return SQLITE_OK;
    }
  }
  return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, 0);
}

/* Give st back (NULL is fine). The error of its last step stays readable
** through sqlite3_errmsg(db). Only a statement on its first run can be
** the one over the limit (the count changes only when one is prepared), so
** the others skip counting the connection's statements. */
static void stmt_put(sqlite3_stmt *st) {
  if (!st) return;
  sqlite3 *db = sqlite3_db_handle(st);
  int first = sqlite3_stmt_status(st, SQLITE_STMTSTATUS_RUN, 0) <= 1;
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (!first) return;
  int n = 0;
  for (sqlite3_stmt *p = sqlite3_next_stmt(db, 0); p; p = sqlite3_next_stmt(db, p))
    n++;
  if (n > STMT_CACHE_MAX) sqlite3_finalize(st);
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, char **err) {
  if (stmt_get(db, sql, st) == SQLITE_OK) return 0;
  *err = store_errf("%s", sqlite3_errmsg(db));
  return -1;
}

/* Run a script (several statements, not cached). */
static int exec(sqlite3 *db, const char *sql, char **err) {
  if (sqlite3_exec(db, sql, 0, 0, 0) == SQLITE_OK) return 0;
  *err = store_errf("%s", sqlite3_errmsg(db));
  return -1;
}

/* Run one statement without parameters or result (cached). */
static int run(sqlite3 *db, const char *sql, char **err) {
  sqlite3_stmt *st;
  if (prep(db, sql, &st, err)) return -1;
  int rc = sqlite3_step(st);
  stmt_put(st);
  if (rc == SQLITE_DONE || rc == SQLITE_ROW) return 0;
  *err = store_errf("%s", sqlite3_errmsg(db));
  return -1;
}

/* ---- schema ---- */

static void tables_free(sqlite_store *s) {
  for (int i = 0; i < s->n_tables; i++) {
    table_info *t = &s->tables[i];
    for (int c = 0; c < t->n_cols; c++) {
      sqlite3_free(t->cols[c]);
      if (t->paths) sqlite3_free(t->paths[c]);
    }
    sqlite3_free(t->cols);
    sqlite3_free(t->paths);
    sqlite3_free(t->pk);
    sqlite3_free(t->name);
    sqlite3_free(t->read_sql);
    sqlite3_free(t->insert_sql);
  }
  sqlite3_free(s->tables);
  s->tables = 0;
  s->n_tables = 0;
}

/* Read one table's columns; t->n_pk stays 0 for a table without a key. */
static int table_load(sqlite3 *db, table_info *t, char **err) {
  sqlite3_stmt *st;
  if (prep(db, "SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid", &st, err)) return -1;
  sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
  int cap = 0, rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (t->n_cols == cap) {
      cap = cap ? cap * 2 : 8;
      char **cols = sqlite3_realloc64(t->cols, sizeof *cols * cap);
      int *pk = sqlite3_realloc64(t->pk, sizeof *pk * cap);
      if (cols) t->cols = cols;
      if (pk) t->pk = pk;
      if (!cols || !pk) break;
    }
    int pkpos = sqlite3_column_int(st, 1);
    t->cols[t->n_cols] = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, 0));
    if (!t->cols[t->n_cols]) break;
    /* pk positions are 1-based and dense: place each column at its slot. */
    if (pkpos > 0 && pkpos <= cap) t->pk[pkpos - 1] = t->n_cols, t->n_pk++;
    t->n_cols++;
  }
  stmt_put(st);
  if (rc != SQLITE_DONE) {
    *err = store_errf("reading columns of %s: %s", t->name,
                      rc == SQLITE_ROW ? "out of memory" : sqlite3_errmsg(db));
    return -1;
  }
  return 0;
}

static void append_select(sqlite3_str *sql, const table_info *t);
static void append_pk_where(sqlite3_str *sql, const table_info *t, int pkParam, int firstPath);
static void append_val(sqlite3_str *sql, int jsonParam, int pathParam);

/* What every push needs of t, built once: the column paths, the row read. */
static int table_sql(table_info *t) {
  t->paths = sqlite3_malloc64(sizeof *t->paths * (t->n_cols + 1));
  if (!t->paths) return -1;
  memset(t->paths, 0, sizeof *t->paths * (t->n_cols + 1));
  for (int c = 0; c < t->n_cols; c++)
    if (!(t->paths[c] = sqlite3_mprintf("$.\"%s\"", t->cols[c]))) return -1;
  sqlite3_str *sql = sqlite3_str_new(0);
  append_select(sql, t);
  append_pk_where(sql, t, 1, 2);
  t->read_sql = sqlite3_str_finish(sql);
  sql = sqlite3_str_new(0);
  sqlite3_str_appendf(sql, "INSERT INTO \"%w\"(", t->name);
  for (int c = 0; c < t->n_cols; c++)
    sqlite3_str_appendf(sql, "%s\"%w\"", c ? "," : "", t->cols[c]);
  sqlite3_str_appendall(sql, ") VALUES(");
  for (int c = 0; c < t->n_cols; c++) {
    if (c) sqlite3_str_appendchar(sql, 1, ',');
    append_val(sql, 1, 3 + c);
  }
  sqlite3_str_appendchar(sql, 1, ')');
  t->insert_sql = sqlite3_str_finish(sql);
  return t->read_sql && t->insert_sql ? 0 : -1;
}

static int tables_load(sqlite_store *s, sqlite3 *db, char **err) {
  sqlite3_stmt *st;
  if (prep(db,
           "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT GLOB 'sqlite_*'"
           " AND name NOT GLOB '_syncd_*' ORDER BY name",
           &st, err))
    return -1;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    table_info *more = sqlite3_realloc64(s->tables, sizeof *more * (s->n_tables + 1));
    if (!more) break;
    s->tables = more;
    table_info *t = &s->tables[s->n_tables];
    memset(t, 0, sizeof *t);
    t->name = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, 0));
    if (!t->name) break;
    s->n_tables++;
    if (table_load(db, t, err)) {
      stmt_put(st);
      return -1;
    }
    if (t->n_pk == 0) { /* not synced: no key to address rows by */
      s->n_tables--;
      for (int c = 0; c < t->n_cols; c++)
        sqlite3_free(t->cols[c]);
      sqlite3_free(t->cols);
      sqlite3_free(t->pk);
      sqlite3_free(t->name);
    } else if (table_sql(t)) {
      stmt_put(st);
      *err = store_errf("out of memory");
      return -1;
    }
  }
  stmt_put(st);
  if (rc != SQLITE_DONE) {
    *err = store_errf("reading the schema: %s",
                      rc == SQLITE_ROW ? "out of memory" : sqlite3_errmsg(db));
    return -1;
  }
  return 0;
}

/* The synced table called name; SQLite names are case-insensitive. */
static const table_info *table_find(const sqlite_store *s, const char *name) {
  for (int i = 0; i < s->n_tables; i++) {
    if (sqlite3_stricmp(s->tables[i].name, name) == 0) return &s->tables[i];
  }
  return 0;
}

static int col_find(const table_info *t, const char *name) {
  for (int c = 0; c < t->n_cols; c++) {
    if (sqlite3_stricmp(t->cols[c], name) == 0) return c;
  }
  return -1;
}

static int col_is_pk(const table_info *t, int c) {
  for (int k = 0; k < t->n_pk; k++) {
    if (t->pk[k] == c) return 1;
  }
  return 0;
}

/* ---- the change log ---- */

/* Append "SELECT "c1","c2",... FROM "t"" to sql. */
static void append_select(sqlite3_str *sql, const table_info *t) {
  sqlite3_str_appendall(sql, "SELECT ");
  for (int c = 0; c < t->n_cols; c++)
    sqlite3_str_appendf(sql, "%s\"%w\"", c ? "," : "", t->cols[c]);
  sqlite3_str_appendf(sql, " FROM \"%w\"", t->name);
}

/* Append the SQL value of the JSON value at path ?pathParam of ?jsonParam
** (sync_val keeps integers exact, rounds reals correctly, decodes BLOBs). */
static void append_val(sqlite3_str *sql, int jsonParam, int pathParam) {
  sqlite3_str_appendf(sql, "sync_val(?%d -> ?%d)", jsonParam, pathParam);
}

/* Append " WHERE "p1" = <value of ?pkParam at ?n> AND ..." binding the JSON
** paths from parameter firstPath on; returns the next free parameter. */
static void append_pk_where(sqlite3_str *sql, const table_info *t, int pkParam, int firstPath) {
  for (int k = 0; k < t->n_pk; k++) {
    sqlite3_str_appendf(sql, "%s\"%w\" = ", k ? " AND " : " WHERE ", t->cols[t->pk[k]]);
    append_val(sql, pkParam, firstPath + k);
  }
}

static int bind_path(sqlite3_stmt *st, int param, const char *path) {
  return sqlite3_bind_text(st, param, path, -1, SQLITE_STATIC);
}

/* Print the pk object of the row st stands on: key column k is result
** column idx[k], or (idx NULL) the table position of that key column. */
static char *row_pk_json(const table_info *t, sqlite3_stmt *st, const int *idx) {
  sqlite3_str *out = sqlite3_str_new(0);
  sqlite3_str_appendchar(out, 1, '{');
  for (int k = 0; k < t->n_pk; k++) {
    if (k) sqlite3_str_appendchar(out, 1, ',');
    value_append_string(out, t->cols[t->pk[k]], -1);
    sqlite3_str_appendchar(out, 1, ':');
    value_append_column(out, st, idx ? idx[k] : t->pk[k]);
  }
  sqlite3_str_appendchar(out, 1, '}');
  return sqlite3_str_finish(out);
}

/* The version counter is read once per write transaction (version_read)
** and written back before COMMIT (version_write): BEGIN IMMEDIATE keeps
** every other writer, in this process or another, out meanwhile, and a
** change then costs no statement on _syncd_state. */
static int version_read(sqlite3 *db, long long *v, char **err) {
  sqlite3_stmt *st;
  if (prep(db, "SELECT version FROM _syncd_state", &st, err)) return -1;
  int rc = sqlite3_step(st);
  *v = sqlite3_column_int64(st, 0);
  stmt_put(st);
  if (rc == SQLITE_ROW) return 0;
  *err = store_errf("%s", rc == SQLITE_DONE ? "no _syncd_state row" : sqlite3_errmsg(db));
  return -1;
}

static int version_write(sqlite3 *db, long long v, char **err) {
  sqlite3_stmt *st;
  if (prep(db, "UPDATE _syncd_state SET version = ?1", &st, err)) return -1;
  sqlite3_bind_int64(st, 1, v);
  int rc = sqlite3_step(st);
  stmt_put(st);
  if (rc == SQLITE_DONE) return 0;
  *err = store_errf("%s", sqlite3_errmsg(db));
  return -1;
}

/* Record a change of (t, pk): row is the JSON of the row now, NULL for a
** delete. Takes the next version of *counter into *version. */
static int log_change(sqlite3 *db, const table_info *t, const char *pk, const char *row,
                      long long *counter, long long *version, char **err) {
  sqlite3_stmt *st;
  int rc;
  *version = ++*counter;
  if (prep(db,
           "INSERT INTO _syncd_changes(tbl, pk, op, row, version) VALUES(?1, ?2, ?3, ?4, ?5)"
           " ON CONFLICT(tbl, pk) DO UPDATE SET op = excluded.op, row = excluded.row,"
           " version = excluded.version",
           &st, err))
    return -1;
  sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, pk, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, row ? "upsert" : "delete", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, row, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, *version);
  rc = sqlite3_step(st);
  stmt_put(st);
  if (rc != SQLITE_DONE) {
    *err = store_errf("%s", sqlite3_errmsg(db));
    return -1;
  }
  return 0;
}

/* Log every row of every synced table: rows the schema file inserted must
** reach clients in their initial sync. */
static int backfill(sqlite_store *s, sqlite3 *db, char **err) {
  long long counter;
  if (version_read(db, &counter, err)) return -1;
  for (int i = 0; i < s->n_tables; i++) {
    const table_info *t = &s->tables[i];
    sqlite3_str *sql = sqlite3_str_new(0);
    append_select(sql, t);
    char *z = sqlite3_str_finish(sql);
    sqlite3_stmt *st = 0;
    int bad = !z || prep(db, z, &st, err);
    sqlite3_free(z);
    if (bad) return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      sqlite3_str *row = sqlite3_str_new(0);
      value_append_row(row, st);
      char *rowz = sqlite3_str_finish(row), *pk = row_pk_json(t, st, 0);
      long long v;
      bad = !rowz || !pk || log_change(db, t, pk, rowz, &counter, &v, err);
      sqlite3_free(rowz);
      sqlite3_free(pk);
      if (bad) break;
    }
    stmt_put(st);
    if (bad || rc != SQLITE_DONE) {
      if (!*err) *err = store_errf("backfill of %s: %s", t->name, sqlite3_errmsg(db));
      return -1;
    }
  }
  return version_write(db, counter, err);
}

/* Purge the oldest tombstones beyond max_tombstones and raise the horizon
** to the newest purged version. */
static int compact(sqlite_store *s, sqlite3 *db, char **err) {
  if (s->max_tombstones <= 0) return 0;
  sqlite3_stmt *st;
  if (prep(db,
           "SELECT version FROM _syncd_changes WHERE op = 'delete' ORDER BY version DESC"
           " LIMIT 1 OFFSET ?1",
           &st, err))
    return -1;
  sqlite3_bind_int64(st, 1, s->max_tombstones);
  int rc = sqlite3_step(st);
  long long h = sqlite3_column_int64(st, 0);
  stmt_put(st);
  if (rc == SQLITE_DONE) return 0;
  if (rc != SQLITE_ROW) {
    *err = store_errf("%s", sqlite3_errmsg(db));
    return -1;
  }
  if (prep(db, "DELETE FROM _syncd_changes WHERE op = 'delete' AND version <= ?1", &st, err))
    return -1;
  sqlite3_bind_int64(st, 1, h);
  rc = sqlite3_step(st);
  stmt_put(st);
  if (rc != SQLITE_DONE) return *err = store_errf("%s", sqlite3_errmsg(db)), -1;
  if (prep(db, "UPDATE _syncd_state SET horizon = max(horizon, ?1)", &st, err)) return -1;
  sqlite3_bind_int64(st, 1, h);
  rc = sqlite3_step(st);
  stmt_put(st);
  if (rc != SQLITE_DONE) return *err = store_errf("%s", sqlite3_errmsg(db)), -1;
  return 0;
}

/* ---- push ---- */

/* A failure of the batch, not of the mutation: the database itself is in
** trouble, so answering "rejected" would be a lie. */
static int is_fatal(int rc) {
  switch (rc & 0xff) {
  case SQLITE_NOMEM:
  case SQLITE_IOERR:
  case SQLITE_FULL:
  case SQLITE_CORRUPT:
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
  case SQLITE_READONLY:
  case SQLITE_CANTOPEN:
  case SQLITE_NOTADB:
  case SQLITE_INTERRUPT:
    return 1;
  default:
    return 0;
  }
}

/* What check_keys gathers from the keys of pk, then of data. */
typedef struct key_scan {
  const table_info *t;
  int inData;
  int seenPk, nSet, nData;
  int *setCols, *dataCols, *used;
  char *reason;
} key_scan;

static int key_seen(void *arg, const char *key) {
  key_scan *k = arg;
  const table_info *t = k->t;
  int c = col_find(t, key);
  if (c < 0) {
    k->reason = store_errf("table %s has no column named %s", t->name, key);
    return k->reason ? MUT_REJECTED : MUT_FATAL;
  }
  if (!k->inData && !col_is_pk(t, c)) {
    k->reason = store_errf("pk: %s is not a primary key column of table %s", key, t->name);
    return k->reason ? MUT_REJECTED : MUT_FATAL;
  }
  if (!k->inData) {
    k->seenPk++;
    return MUT_OK;
  }
  if (!k->used[c]) k->dataCols[k->nData++] = c;
  if (!k->used[c] && !col_is_pk(t, c)) k->setCols[k->nSet++] = c;
  k->used[c] = 1;
  return MUT_OK;
}

/* Check the keys of the mutation's pk and data objects against t. Returns
** MUT_OK, or MUT_REJECTED with *reason. dataCols lists the columns of data
** (in data's order, each once), setCols those of them outside the key. */
static int check_keys(const table_info *t, const store_mutation *m, int *setCols, int *nSet,
                      int *dataCols, int *nData, char **reason) {
  key_scan k = {t, 0, 0, 0, 0, setCols, dataCols, 0, 0};
  k.used = sqlite3_malloc64(sizeof *k.used * (t->n_cols + 1));
  if (!k.used) return MUT_FATAL;
  memset(k.used, 0, sizeof *k.used * (t->n_cols + 1));
  int result = json_object_keys(m->pk, key_seen, &k);
  k.inData = 1;
  if (result == MUT_OK && m->data) result = json_object_keys(m->data, key_seen, &k);
  sqlite3_free(k.used);
  if (result != MUT_OK && result != MUT_REJECTED) result = MUT_FATAL;
  if (result == MUT_OK && k.seenPk != t->n_pk) {
    k.reason = store_errf("pk must hold exactly the primary key columns of table %s", t->name);
    result = k.reason ? MUT_REJECTED : MUT_FATAL;
  }
  *nSet = k.nSet;
  *nData = k.nData;
  *reason = k.reason;
  return result;
}

/* Map a failed statement to MUT_FATAL or MUT_REJECTED with its reason. */
static int failed(sqlite3 *db, char **reason) {
  if (is_fatal(sqlite3_extended_errcode(db))) return MUT_FATAL;
  *reason = store_errf("%s", sqlite3_errmsg(db));
  return *reason ? MUT_REJECTED : MUT_FATAL;
}

/* Build, bind and run the INSERT/UPDATE/DELETE of m. Sets *changed when a
** row changed. For a delete, the canonical pk of the deleted row is
** returned in *delPk (RETURNING gives the values exactly as stored). */
static int write_row(sqlite3 *db, const table_info *t, const store_mutation *m, const int *dataCols,
                     int nData, const int *setCols, int nSet, int *changed, char **delPk,
                     char **reason) {
  /* ?1 = data, ?2 = pk, ?3.. = the JSON paths of the columns in pathCol */
  const char **pathCol = sqlite3_malloc64(sizeof *pathCol * (2 * t->n_cols + 1));
  int *work = sqlite3_malloc64(sizeof *work * (t->n_cols + 1)), nPath = 0;
  if (!pathCol || !work) {
    sqlite3_free(pathCol);
    sqlite3_free(work);
    return MUT_FATAL;
  }
  memset(work, 0, sizeof *work * (t->n_cols + 1));
  /* data naming every column in table order (what clients send) takes the
  ** insert built once for the table: the same text the loop below makes */
  int whole = m->op == STORE_INSERT && nData == t->n_cols;
  for (int j = 0; whole && j < nData; j++)
    whole = dataCols[j] == j;
  sqlite3_str *sql = sqlite3_str_new(0);
  if (whole) {
    for (int c = 0; c < t->n_cols; c++)
      pathCol[nPath++] = t->paths[c];
  } else if (m->op == STORE_INSERT) {
    sqlite3_str_appendf(sql, "INSERT INTO \"%w\"(", t->name);
    /* every column present in data, plus key columns only pk carries */
    int *used = work;
    sqlite3_str *vals = sqlite3_str_new(0);
    int n = 0;
    for (int j = 0; j < nData; j++) {
      int c = dataCols[j];
      used[c] = 1;
      sqlite3_str_appendf(sql, "%s\"%w\"", n ? "," : "", t->cols[c]);
      if (n) sqlite3_str_appendchar(vals, 1, ',');
      append_val(vals, 1, 3 + nPath);
      pathCol[nPath++] = t->paths[c];
      n++;
    }
    for (int k = 0; k < t->n_pk; k++) {
      int c = t->pk[k];
      if (used[c]) continue;
      sqlite3_str_appendf(sql, "%s\"%w\"", n ? "," : "", t->cols[c]);
      if (n) sqlite3_str_appendchar(vals, 1, ',');
      append_val(vals, 2, 3 + nPath);
      pathCol[nPath++] = t->paths[c];
      n++;
    }
    char *v = sqlite3_str_finish(vals);
    sqlite3_str_appendf(sql, ") VALUES(%s)", v ? v : "");
    sqlite3_free(v);
  } else if (m->op == STORE_UPDATE) {
    sqlite3_str_appendf(sql, "UPDATE \"%w\" SET ", t->name);
    for (int j = 0; j < nSet; j++) {
      sqlite3_str_appendf(sql, "%s\"%w\" = ", j ? "," : "", t->cols[setCols[j]]);
      append_val(sql, 1, 3 + nPath);
      pathCol[nPath++] = t->paths[setCols[j]];
    }
    append_pk_where(sql, t, 2, 3 + nPath);
    for (int k = 0; k < t->n_pk; k++)
      pathCol[nPath++] = t->paths[t->pk[k]];
  } else {
    sqlite3_str_appendf(sql, "DELETE FROM \"%w\"", t->name);
    append_pk_where(sql, t, 2, 3 + nPath);
    for (int k = 0; k < t->n_pk; k++)
      pathCol[nPath++] = t->paths[t->pk[k]];
    sqlite3_str_appendall(sql, " RETURNING ");
    for (int k = 0; k < t->n_pk; k++)
      sqlite3_str_appendf(sql, "%s\"%w\"", k ? "," : "", t->cols[t->pk[k]]);
  }
  char *z = sqlite3_str_finish(sql);
  sqlite3_stmt *st = 0;
  int rc = whole ? stmt_get(db, t->insert_sql, &st) : z ? stmt_get(db, z, &st) : SQLITE_NOMEM;
  sqlite3_free(z);
  if (rc != SQLITE_OK) {
    sqlite3_free(pathCol);
    sqlite3_free(work);
    return rc == SQLITE_NOMEM ? MUT_FATAL : failed(db, reason);
  }
  sqlite3_bind_text(st, 1, m->data, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, m->pk, -1, SQLITE_STATIC);
  for (int i = 0; i < nPath; i++)
    bind_path(st, 3 + i, pathCol[i]);
  if (m->op == STORE_DELETE) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      for (int k = 0; k < t->n_pk; k++)
        work[k] = k;
      *delPk = row_pk_json(t, st, work);
      *changed = 1;
      rc = *delPk ? sqlite3_step(st) : SQLITE_NOMEM;
    }
  } else {
    rc = sqlite3_step(st);
    *changed = rc == SQLITE_DONE && sqlite3_changes(db) > 0;
  }
  stmt_put(st);
  sqlite3_free(pathCol);
  sqlite3_free(work);
  if (rc == SQLITE_NOMEM) return MUT_FATAL;
  return rc == SQLITE_DONE ? MUT_OK : failed(db, reason);
}

/* Read the row of t whose key is in pkJson; *row and *pk receive its JSON
** (both NULL when there is no such row). A key value the database cannot
** read (say a malformed BLOB) rejects the mutation, not the batch. */
static int read_row(sqlite3 *db, const table_info *t, const char *pkJson, char **row, char **pk,
                    char **reason) {
  sqlite3_stmt *st;
  int rc = stmt_get(db, t->read_sql, &st);
  *row = *pk = 0;
  if (rc != SQLITE_OK) return rc == SQLITE_NOMEM ? MUT_FATAL : failed(db, reason);
  sqlite3_bind_text(st, 1, pkJson, -1, SQLITE_STATIC);
  for (int k = 0; k < t->n_pk; k++)
    bind_path(st, 2 + k, t->paths[t->pk[k]]);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    sqlite3_str *out = sqlite3_str_new(0);
    value_append_row(out, st);
    *row = sqlite3_str_finish(out);
    *pk = row_pk_json(t, st, 0);
    if (!*row || !*pk) rc = SQLITE_NOMEM;
  }
  stmt_put(st);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) return MUT_OK;
  sqlite3_free(*row);
  sqlite3_free(*pk);
  *row = *pk = 0;
  return rc == SQLITE_NOMEM ? MUT_FATAL : failed(db, reason);
}

/* Apply m in its own savepoint; fills o. Returns 0, or -1 when the batch
** must fail (*err set), or -2 when m's refusal ended the whole transaction
** (a trigger's RAISE(ROLLBACK); o->reason says why). */
static int apply_one(sqlite_store *s, sqlite3 *db, const store_mutation *m, store_outcome *o,
                     long long *counter, char **err) {
  const table_info *t = table_find(s, m->table);
  long long before = *counter; /* restored with the savepoint */
  memset(o, 0, sizeof *o);
  if (!t) {
    o->reason = store_errf("no such table: %s", m->table);
    return o->reason ? 0 : -1;
  }
  int *setCols = sqlite3_malloc64(sizeof *setCols * 2 * (t->n_cols + 1)), nSet = 0, changed = 0;
  if (!setCols) return *err = store_errf("out of memory"), -1;
  int *dataCols = setCols + t->n_cols + 1, nData = 0;
  if (run(db, "SAVEPOINT m", err)) return sqlite3_free(setCols), -1;
  char *delPk = 0;
  int r = check_keys(t, m, setCols, &nSet, dataCols, &nData, &o->reason);
  if (r == MUT_OK && m->op == STORE_UPDATE && nSet == 0) {
    /* nothing to set: only the row's existence matters */
    r = read_row(db, t, m->pk, &o->row, &o->pk, &o->reason);
    if (r == MUT_OK && !o->row) r = MUT_REJECTED, o->reason = store_errf("no such row");
  } else if (r == MUT_OK) {
    r = write_row(db, t, m, dataCols, nData, setCols, nSet, &changed, &delPk, &o->reason);
    if (r == MUT_OK && m->op == STORE_UPDATE && !changed)
      r = MUT_REJECTED, o->reason = store_errf("no such row");
  }
  if (r == MUT_OK && changed && m->op != STORE_DELETE) {
    r = read_row(db, t, m->pk, &o->row, &o->pk, &o->reason);
    if (r == MUT_OK && !o->row)
      r = MUT_REJECTED, o->reason = store_errf("the row's key does not match pk");
  }
  if (r == MUT_OK && changed) {
    const char *pk = m->op == STORE_DELETE ? delPk : o->pk;
    if (log_change(db, t, pk, o->row, counter, &o->version, err)) r = MUT_FATAL;
    if (m->op == STORE_DELETE) o->pk = delPk, delPk = 0;
  }
  sqlite3_free(delPk);
  sqlite3_free(setCols);
  if (r == MUT_REJECTED && sqlite3_get_autocommit(db)) return -2; /* RAISE(ROLLBACK) */
  if (r == MUT_FATAL || sqlite3_get_autocommit(db)) {
    if (!*err) *err = store_errf("%s", sqlite3_errmsg(db));
    return -1;
  }
  /* A DEFERRABLE foreign key is only checked at COMMIT, which would then fail
  ** the whole batch on every retry: hold each mutation to it at once. */
  int fks = 0, hi;
  if (r == MUT_OK && sqlite3_db_status(db, SQLITE_DBSTATUS_DEFERRED_FKS, &fks, &hi, 0) == 0 &&
      fks > 0)
    r = MUT_REJECTED, o->version = 0, o->reason = store_errf("FOREIGN KEY constraint failed");
  if (r == MUT_REJECTED) {
    sqlite3_free(o->row);
    o->row = 0;
    if (run(db, "ROLLBACK TO m", err)) return -1;
    *counter = before;
    if (!o->reason) return *err = store_errf("out of memory"), -1;
  }
  o->applied = r == MUT_OK;
  if (!o->pk) o->pk = sqlite3_mprintf("%s", m->pk);
  return run(db, "RELEASE m", err);
}

static int record_outcome(sqlite3 *db, const char *client, const store_mutation *m,
                          const store_outcome *o, const char *table, char **err) {
  sqlite3_stmt *st;
  if (prep(db,
           "INSERT OR REPLACE INTO _syncd_outcomes(client_id, id, status, reason, tbl, pk)"
           " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
           &st, err))
    return -1;
  sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, m->id);
  sqlite3_bind_text(st, 3, o->applied ? "applied" : "rejected", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, o->reason, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, table, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, o->pk, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  stmt_put(st);
  if (rc != SQLITE_DONE) return *err = store_errf("%s", sqlite3_errmsg(db)), -1;
  return 0;
}

/* Answer an id this client already sent: its recorded status, and for an
** applied one the row as it is now. */
static int replay_one(sqlite3 *db, const char *client, long long id, store_outcome *o, char **err) {
  sqlite3_stmt *st;
  memset(o, 0, sizeof *o);
  if (prep(db,
           "SELECT o.status, o.reason, c.row, c.version FROM _syncd_outcomes o"
           " LEFT JOIN _syncd_changes c ON c.tbl = o.tbl AND c.pk = o.pk"
           " WHERE o.client_id = ?1 AND o.id = ?2",
           &st, err))
    return -1;
  sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, id);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    o->applied = strcmp((const char *)sqlite3_column_text(st, 0), "applied") == 0;
    if (sqlite3_column_type(st, 1) != SQLITE_NULL)
      o->reason = sqlite3_mprintf("%s", sqlite3_column_text(st, 1));
    if (sqlite3_column_type(st, 2) != SQLITE_NULL)
      o->row = sqlite3_mprintf("%s", sqlite3_column_text(st, 2));
    o->version = sqlite3_column_int64(st, 3);
  } else if (rc == SQLITE_DONE) {
    o->reason = store_errf("mutation %lld is at or below this client's last processed id and its "
                           "outcome is no longer recorded",
                           id);
  }
  stmt_put(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return *err = store_errf("%s", sqlite3_errmsg(db)), -1;
  return 0;
}

/* One try at a batch, in one transaction. Returns 0 (committed), -1 (failed,
** *err set), or i + 1 when m[i] ended the transaction itself: its reason is
** moved to doomed[i], and the caller tries again, refusing m[i] unrun. */
static int push_attempt(sqlite_store *s, sqlite3 *db, const char *client, const store_mutation *m,
                        int n, const int *order, store_outcome *res, char **doomed, int *n_changed,
                        char **err) {
  long long last = 0;
  int ok, nDeleted = 0;
  sqlite3_stmt *q = 0;
  ok = !run(db, "BEGIN IMMEDIATE", err) &&
       !prep(db, "SELECT last_id FROM _syncd_clients WHERE client_id = ?1", &q, err);
  if (ok) {
    sqlite3_bind_text(q, 1, client, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) last = sqlite3_column_int64(q, 0);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) ok = 0, *err = store_errf("%s", sqlite3_errmsg(db));
  }
  long long first = last, counter = 0, counted;
  if (ok) ok = !version_read(db, &counter, err);
  counted = counter;
  stmt_put(q);
  for (int k = 0; ok && k < n; k++) {
    const store_mutation *mu = &m[order[k]];
    store_outcome *o = &res[order[k]];
    if (mu->id <= last) {
      ok = !replay_one(db, client, mu->id, o, err);
      continue;
    }
    const table_info *t = table_find(s, mu->table);
    int rc = 0;
    if (doomed[order[k]]) {
      o->reason = sqlite3_mprintf("%s", doomed[order[k]]);
      o->pk = sqlite3_mprintf("%s", mu->pk);
      if (!o->reason || !o->pk) rc = -1, *err = store_errf("out of memory");
    } else {
      rc = apply_one(s, db, mu, o, &counter, err);
    }
    if (rc == -2) {
      doomed[order[k]] = o->reason;
      o->reason = 0;
      return order[k] + 1;
    }
    ok = !rc && !record_outcome(db, client, mu, o, t ? t->name : mu->table, err);
    last = mu->id;
    if (ok && o->version) {
      (*n_changed)++;
      if (!o->row) nDeleted++;
    }
  }
  if (ok && n > 0) {
    ok = !prep(db,
               "INSERT INTO _syncd_clients(client_id, last_id) VALUES(?1, ?2)"
               " ON CONFLICT(client_id) DO UPDATE SET last_id = excluded.last_id",
               &q, err);
    if (ok) {
      sqlite3_bind_text(q, 1, client, -1, SQLITE_STATIC);
      sqlite3_bind_int64(q, 2, last);
      ok = sqlite3_step(q) == SQLITE_DONE;
      stmt_put(q);
    }
    /* Finding the cutoff walks STORE_KEEP_OUTCOMES index entries: done when
    ** the last id crosses a multiple of STORE_PRUNE_EVERY, not on every
    ** push (which made a push's cost grow with the outcomes kept), so a
    ** client keeps at most STORE_PRUNE_EVERY + a batch more. */
    if (ok && first / STORE_PRUNE_EVERY != last / STORE_PRUNE_EVERY)
      ok = !prep(db,
                 "DELETE FROM _syncd_outcomes WHERE client_id = ?1 AND id <= (SELECT id FROM"
                 " _syncd_outcomes WHERE client_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                 &q, err);
    if (ok && first / STORE_PRUNE_EVERY != last / STORE_PRUNE_EVERY) {
      sqlite3_bind_text(q, 1, client, -1, SQLITE_STATIC);
      sqlite3_bind_int(q, 2, STORE_KEEP_OUTCOMES);
      ok = sqlite3_step(q) == SQLITE_DONE;
      stmt_put(q);
    }
    if (!ok && !*err) *err = store_errf("%s", sqlite3_errmsg(db));
  }
  if (ok && counter != counted) ok = !version_write(db, counter, err);
  if (ok && nDeleted) ok = !compact(s, db, err);
  if (ok) ok = !run(db, "COMMIT", err);
  return ok ? 0 : -1;
}

static int sq_push(store *st, const char *client, const store_mutation *m, int n, char **json,
                   int *n_changed, char **err) {
  sqlite_store *s = (sqlite_store *)st;
  *json = 0;
  *n_changed = 0;
  sqlite3 *db = pool_get(s, err);
  if (!db) return STORE_ERROR;
  int *order = sqlite3_malloc64(sizeof *order * (n + 1));
  store_outcome *res = sqlite3_malloc64(sizeof *res * (n + 1));
  char **doomed = sqlite3_malloc64(sizeof *doomed * (n + 1));
  int rc = order && res && doomed ? 1 : -1;
  if (rc < 0) {
    *err = store_errf("out of memory");
  } else {
    memset(res, 0, sizeof *res * (n + 1));
    memset(doomed, 0, sizeof *doomed * (n + 1));
    store_order_by_id(m, n, order);
  }
  /* each retry refuses one more mutation unrun, so this ends */
  while (rc > 0) {
    for (int i = 0; i < n; i++)
      store_outcome_clear(&res[i]);
    *n_changed = 0;
    rc = push_attempt(s, db, client, m, n, order, res, doomed, n_changed, err);
  }
  if (rc == 0) {
    *json = store_results_json(m, res, n);
    if (!*json) rc = -1, *err = store_errf("out of memory");
  }
  if (rc) *n_changed = 0;
  for (int i = 0; res && doomed && i < n; i++) {
    store_outcome_clear(&res[i]);
    sqlite3_free(doomed[i]);
  }
  sqlite3_free(doomed);
  sqlite3_free(res);
  sqlite3_free(order);
  pool_put(s, db);
  return rc ? STORE_ERROR : STORE_OK;
}

/* ---- pull ---- */

/* The "rejected" entries of a pull page: client's rejected mutations with
** from <= id <= last_id, in id order. NULL with *err set on failure. */
static sqlite3_str *sq_rejected(sqlite3 *db, const char *client, long long from, long long last_id,
                                char **err) {
  sqlite3_stmt *q;
  if (prep(db,
           "SELECT id, reason FROM _syncd_outcomes WHERE client_id = ?1 AND id >= ?2"
           " AND id <= ?3 AND status = 'rejected' ORDER BY id",
           &q, err))
    return 0;
  sqlite3_bind_text(q, 1, client, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 2, from);
  sqlite3_bind_int64(q, 3, last_id);
  sqlite3_str *list = sqlite3_str_new(0);
  int step;
  while ((step = sqlite3_step(q)) == SQLITE_ROW)
    store_append_rejected(list, sqlite3_column_int64(q, 0),
                          (const char *)sqlite3_column_text(q, 1));
  if (step != SQLITE_DONE) {
    *err = store_errf("%s", sqlite3_errmsg(db));
    sqlite3_free(sqlite3_str_finish(list));
    list = 0;
  }
  stmt_put(q);
  return list;
}

static int sq_pull(store *st, const char *client, const char *cursor, int limit,
                   long long pending_from, store_page *page, char **err) {
  sqlite_store *s = (sqlite_store *)st;
  memset(page, 0, sizeof *page);
  sqlite3 *db = pool_get(s, err);
  if (!db) return STORE_ERROR;
  sqlite3_stmt *q = 0;
  long long head = 0, horizon = 0, after = 0, last_id = 0;
  int rc = STORE_ERROR;
  if (run(db, "BEGIN", err) || prep(db, "SELECT version, horizon FROM _syncd_state", &q, err))
    goto done;
  if (sqlite3_step(q) != SQLITE_ROW) {
    *err = store_errf("%s", sqlite3_errmsg(db));
    goto done;
  }
  head = sqlite3_column_int64(q, 0);
  horizon = sqlite3_column_int64(q, 1);
  stmt_put(q);
  q = 0;
  if (cursor) {
    rc = store_cursor_parse(cursor, s->db_id, &after);
    if (rc == STORE_OK && (after < horizon || after > head)) rc = STORE_EXPIRED;
    if (rc != STORE_OK) goto done;
    rc = STORE_ERROR;
  }
  if (prep(db,
           cursor ? "SELECT tbl, pk, row, version FROM _syncd_changes WHERE version > ?1"
                    " ORDER BY version LIMIT ?2"
                  : "SELECT tbl, pk, row, version FROM _syncd_changes WHERE version > ?1"
                    " AND op = 'upsert' ORDER BY version LIMIT ?2",
           &q, err))
    goto done;
  sqlite3_bind_int64(q, 1, after);
  sqlite3_bind_int(q, 2, limit + 1);
  sqlite3_str *out = sqlite3_str_new(0);
  sqlite3_str_appendall(out, "{\"changes\":[");
  long long lastVersion = head;
  int step;
  while ((step = sqlite3_step(q)) == SQLITE_ROW) {
    if (page->n_changes == limit) {
      page->has_more = 1;
      break;
    }
    if (page->n_changes) sqlite3_str_appendchar(out, 1, ',');
    lastVersion = sqlite3_column_int64(q, 3);
    store_append_change(out, (const char *)sqlite3_column_text(q, 0),
                        (const char *)sqlite3_column_text(q, 1),
                        (const char *)sqlite3_column_text(q, 2), lastVersion);
    page->n_changes++;
  }
  stmt_put(q);
  q = 0;
  if (step != SQLITE_ROW && step != SQLITE_DONE) {
    sqlite3_free(sqlite3_str_finish(out));
    *err = store_errf("%s", sqlite3_errmsg(db));
    goto done;
  }
  if (prep(db, "SELECT last_id FROM _syncd_clients WHERE client_id = ?1", &q, err)) {
    sqlite3_free(sqlite3_str_finish(out));
    goto done;
  }
  sqlite3_bind_text(q, 1, client, -1, SQLITE_STATIC);
  step = sqlite3_step(q);
  if (step == SQLITE_ROW) last_id = sqlite3_column_int64(q, 0);
  if (step != SQLITE_ROW && step != SQLITE_DONE) {
    sqlite3_free(sqlite3_str_finish(out));
    *err = store_errf("%s", sqlite3_errmsg(db));
    goto done;
  }
  sqlite3_str *rejected = 0;
  if (pending_from > 0 && !(rejected = sq_rejected(db, client, pending_from, last_id, err))) {
    sqlite3_free(sqlite3_str_finish(out));
    goto done;
  }
  rc = store_page_finish(out, page, s->db_id, page->has_more ? lastVersion : head, last_id,
                         rejected, err);
done:
  stmt_put(q);
  pool_put(s, db);
  return rc;
}

static int sq_head(store *st, char **cursor, char **err) {
  sqlite_store *s = (sqlite_store *)st;
  sqlite3 *db = pool_get(s, err);
  if (!db) return STORE_ERROR;
  sqlite3_stmt *q;
  int rc = STORE_ERROR;
  if (!prep(db, "SELECT version FROM _syncd_state", &q, err)) {
    if (sqlite3_step(q) == SQLITE_ROW) {
      *cursor = store_cursor_format(s->db_id, sqlite3_column_int64(q, 0));
      rc = *cursor ? STORE_OK : STORE_ERROR;
    }
    if (rc != STORE_OK) *err = store_errf("%s", sqlite3_errmsg(db));
    stmt_put(q);
  }
  pool_put(s, db);
  return rc;
}

static void sq_close(store *st) {
  sqlite_store *s = (sqlite_store *)st;
  for (int i = 0; i < s->n_pool; i++) {
    sqlite3_stmt *p;
    while ((p = sqlite3_next_stmt(s->pool[i], 0)) != 0)
      sqlite3_finalize(p);
    sqlite3_close(s->pool[i]);
  }
  tables_free(s);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->freed);
  sqlite3_free(s->path);
  sqlite3_free(s);
}

static const store_methods sqlite_methods = {sq_push, sq_pull, sq_head, sq_close};

/* ---- open ---- */

/* Apply the schema when the database has no user table yet, create the
** internal tables, and on first creation pick the db id and log the rows
** the schema inserted. Runs in one transaction so a failed start leaves
** nothing behind. */
static int setup(sqlite_store *s, sqlite3 *db, const store_config *cfg, char **err) {
  if (exec(db, "BEGIN IMMEDIATE", err)) return -1;
  sqlite3_stmt *q;
  int fresh = 0;
  if (prep(db,
           "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT GLOB 'sqlite_*'"
           " AND name NOT GLOB '_syncd_*'",
           &q, err))
    return -1;
  int empty = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) == 0;
  stmt_put(q);
  if (empty && cfg->schema_sql && exec(db, cfg->schema_sql, err)) return -1;
  if (exec(db, internal_ddl, err) || tables_load(s, db, err)) return -1;
  if (prep(db, "SELECT db_id FROM _syncd_state", &q, err)) return -1;
  if (sqlite3_step(q) == SQLITE_ROW) {
    snprintf(s->db_id, sizeof s->db_id, "%s", (const char *)sqlite3_column_text(q, 0));
  } else {
    fresh = 1;
    store_new_db_id(s->db_id);
  }
  stmt_put(q);
  if (fresh) {
    if (prep(db, "INSERT INTO _syncd_state VALUES(1, ?1, 0, 0)", &q, err)) return -1;
    sqlite3_bind_text(q, 1, s->db_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    stmt_put(q);
    if (rc != SQLITE_DONE) return *err = store_errf("%s", sqlite3_errmsg(db)), -1;
    if (backfill(s, db, err)) return -1;
  }
  if (compact(s, db, err)) return -1;
  return exec(db, "COMMIT", err);
}

store *store_sqlite_open(const char *path, const store_config *cfg, char **err) {
  *err = 0;
  sqlite_store *s = sqlite3_malloc64(sizeof *s);
  if (!s) return *err = store_errf("out of memory"), (store *)0;
  memset(s, 0, sizeof *s);
  s->base.m = &sqlite_methods;
  s->max_tombstones = cfg->max_tombstones;
  pthread_mutex_init(&s->mu, 0);
  pthread_cond_init(&s->freed, 0);
  s->path = sqlite3_mprintf("%s", path);
  sqlite3 *db = s->path ? conn_open(path, err) : 0;
  if (!db || setup(s, db, cfg, err)) {
    if (!*err) *err = store_errf("out of memory");
    if (db) {
      sqlite3_exec(db, "ROLLBACK", 0, 0, 0);
      sqlite3_close(db);
    }
    sq_close(&s->base);
    return 0;
  }
  s->pool[s->n_pool++] = db;
  return &s->base;
}
