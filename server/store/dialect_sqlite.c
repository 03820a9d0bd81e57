/*
** dialect_sqlite.c: the SQLite dialect (dialect.h), syncd's default
** storage: one database file in WAL mode, the internal tables next to the
** synced ones.
**
** Pushes take BEGIN IMMEDIATE, so all writers (pushes of one client, of
** other clients, of other syncd processes on the same file) serialize and
** versions become visible in order. Within the process they queue on a
** mutex first (dialect_db.writer): SQLite's busy handler sleeps 1 to 25
** ms and more between tries, so a push could wait on after the lock was
** free; the mutex hands it on at once (with 50 pushers, a shorter tail:
** bench/RESULTS.md, "SQLite storage, 50 pushers"). And they all write on
** one connection, the mutex's (dialect_db.pushes), lent to the pooled
** connection of the push from its begin to its end: SQLite drops a
** connection's whole page cache when another has changed the file, and
** pushes spread over the pool read back, page by page, what the last one
** wrote elsewhere. Pulls read in one deferred transaction, a consistent
** WAL snapshot.
**
** Commits skip their own fsync; what a connection read or wrote leaves
** the process only once one fsync shared by every waiting connection
** covers it (sqlite_durable.c, at the connection's return to the pool;
** what a push wrote on dialect_db.pushes is handed to its own first).
**
** Values: the request's JSON is bound as text and each column read out of
** it with sync_val(?json -> ?path) (common/value.c: integers exact, reals
** correctly rounded, {"$base64"} decoded, a malformed one refused); rows
** are printed with value_append_row (sqlite_row.c).
**
** Speed: statements stay prepared on their connection; the read of a row
** by key and the insert naming every column are built once per table; the
** version counter is read once per write transaction and written back at
** COMMIT.
*/
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "dialect.h"
#include "fk_sql.h"
#include "sqlite_durable.h"
#include "sqlite_fk.h"
#include "sqlite_open.h"
#include "sqlite_row.h"
#include "sqlite_sql.h"
#include "sqlite_stmt.h"
#include "sqlite_walk.h"
#include "sqlite_watch.h"

struct dialect_db {
  char *path;
  long long mmap_size;    /* store_config's, for each connection */
  const catalog *cat;     /* the store's, once load_catalog filled it */
  unsigned gen;           /* counts use_catalog's: connections watch this one */
  pthread_mutex_t writer; /* held from a write transaction's begin to its end */
  sqlite_conn *pushes;    /* what every push writes on, under writer (opened by the first) */
  sqlite_durable durable;
};

struct dialect_conn {
  sqlite_conn *h; /* &own, or during a push (writing) owner->pushes */
  sqlite_conn own;
  dialect_db *owner;
  /* Rows of synced tables a push changes are recorded by h's TEMP triggers
  ** in temp._syncd_touched, whose rowids 1..touched are this transaction's
  ** so far (saved_touched: at the savepoint), emptied at each commit.
  ** others: the last write statement changed more than its own rows
  ** (total_changes moved by more than its rows and their records). */
  int others;
  long long touched, saved_touched;
  /* The version counter of the open write transaction, read by the first
  ** log_change (have), written back by commit when it moved from counted;
  ** saved and saved_have restore it with ROLLBACK TO. Reset by begin. */
  long long counter, counted, saved;
  int have, saved_have;
  int writing; /* holds owner->writer */
  int fk_end;  /* a DIALECT_PUSH: foreign keys deferred to the batch's end */
};

static const char internal_ddl[] =
    "CREATE TABLE IF NOT EXISTS _syncd_state(one INTEGER PRIMARY KEY CHECK(one = 1),"
    " db_id TEXT NOT NULL, version INTEGER NOT NULL, horizon INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS _syncd_changes(tbl TEXT NOT NULL, pk TEXT NOT NULL,"
    " op TEXT NOT NULL, row TEXT, version INTEGER NOT NULL UNIQUE, gap INTEGER,"
    " PRIMARY KEY(tbl, pk)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS _syncd_tombstones ON _syncd_changes(version)"
    " WHERE op = 'delete';"
    "CREATE TABLE IF NOT EXISTS _syncd_clients(client_id TEXT PRIMARY KEY,"
    " last_id INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _syncd_outcomes(client_id TEXT NOT NULL, id INTEGER NOT NULL,"
    " status TEXT NOT NULL, reason TEXT, tbl TEXT, pk TEXT,"
    " PRIMARY KEY(client_id, id)) WITHOUT ROWID;";

/* ---- the database and its connections ---- */

static int sq_open(const char *target, const store_config *cfg, dialect_db **out, char **err) {
  dialect_db *d = sqlite3_malloc64(sizeof *d);
  if (d) {
    memset(d, 0, sizeof *d);
    d->path = sqlite3_mprintf("%s", target);
    d->mmap_size = cfg->mmap_size;
  }
  if (!d || !d->path) {
    sqlite3_free(d);
    *err = wire_errf("out of memory");
    return -1;
  }
  pthread_mutex_init(&d->writer, 0);
  sqlite_durable_init(&d->durable);
  *out = d;
  return 0;
}

static void sq_close(dialect_db *d) {
  if (d->pushes) sqlite_conn_close(d->pushes);
  sqlite3_free(d->pushes);
  pthread_mutex_destroy(&d->writer);
  sqlite_durable_free(&d->durable);
  sqlite3_free(d->path);
  sqlite3_free(d);
}

static int sq_set_user(dialect_conn *c, const char *sub, const char *claims, char **err) {
  return sqlite_conn_user(c->h, sub, claims, err);
}

static dialect_conn *sq_connect(dialect_db *d, char **err) {
  dialect_conn *c = sqlite3_malloc64(sizeof *c);
  if (!c) return *err = wire_errf("%s: out of memory", d->path), (dialect_conn *)0;
  memset(c, 0, sizeof *c);
  c->h = &c->own;
  c->owner = d;
  if (!sqlite_conn_open(&c->own, d->path, d->mmap_size, &d->durable, err)) return c;
  sqlite3_free(c);
  return 0;
}

/* Lets the next writer in once c's write transaction has ended (a
** RAISE(ROLLBACK) ends one too; begin then keeps the mutex), and gives c
** its own connection back, which then waits for what the push needs to
** be on disk. */
static void written(dialect_conn *c) {
  if (c->writing && sqlite3_get_autocommit(c->h->db)) {
    if (c->h != &c->own) sqlite_durable_pass(&c->h->durable, c->h->db, &c->own.durable, c->own.db);
    c->h = &c->own;
    c->writing = 0;
    pthread_mutex_unlock(&c->owner->writer);
  }
}

static void roll_back(dialect_conn *c) {
  if (!sqlite3_get_autocommit(c->h->db)) sqlite3_exec(c->h->db, "ROLLBACK", 0, 0, 0);
  c->touched = 0; /* rolled back to empty with the rest */
  written(c);
}

static int sq_reusable(dialect_conn *c) {
  roll_back(c);
  sqlite_durable_wait(&c->own.durable, c->own.db);
  return 1;
}

static void sq_disconnect(dialect_conn *c) {
  if (c->writing) {
    if (!sqlite3_get_autocommit(c->h->db)) sqlite3_exec(c->h->db, "ROLLBACK", 0, 0, 0);
    c->h = &c->own;
    c->writing = 0;
    pthread_mutex_unlock(&c->owner->writer);
  }
  sqlite_conn_close(&c->own);
  sqlite3_free(c);
}

/* ---- statements ---- */

/* The database's message as *err; -1. */
static int fail(sqlite3 *db, char **err) {
  *err = wire_errf("%s", sqlite3_errmsg(db));
  return -1;
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, char **err) {
  return sqlite_stmt_get(db, sql, st) == SQLITE_OK ? 0 : fail(db, err);
}

/* Run a script (several statements, not cached). */
static int exec(sqlite3 *db, const char *sql, char **err) {
  return sqlite3_exec(db, sql, 0, 0, 0) == SQLITE_OK ? 0 : fail(db, err);
}

/* Run one statement without result rows to read (cached): parameters are
** ?1 text (NULL: none) and ?2 integer. */
static int run(sqlite3 *db, const char *sql, const char *text, long long num, char **err) {
  sqlite3_stmt *st;
  if (prep(db, sql, &st, err)) return -1;
  if (text) sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
  if (sqlite3_bind_parameter_count(st) >= 2) sqlite3_bind_int64(st, 2, num);
  int rc = sqlite3_step(st);
  sqlite_stmt_put(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : fail(db, err);
}

/* ---- transactions ---- */

static int watch(dialect_conn *c, char **err);

/* Writing on owner->pushes: opened by the first push. 0, or -1 (*err). */
static int use_pushes(dialect_conn *c, char **err) {
  dialect_db *d = c->owner;
  if (!d->pushes) {
    sqlite_conn *h = sqlite3_malloc64(sizeof *h);
    if (!h) return *err = wire_errf("%s: out of memory", d->path), -1;
    memset(h, 0, sizeof *h);
    if (sqlite_conn_open(h, d->path, d->mmap_size, &d->durable, err)) return sqlite3_free(h), -1;
    d->pushes = h;
  }
  c->h = d->pushes;
  return 0;
}

static int sq_begin(dialect_conn *c, int what, char **err) {
  c->have = 0;
  c->touched = 0;
  if (!c->writing) {
    pthread_mutex_lock(&c->owner->writer);
    c->writing = 1;
    if (what != DIALECT_SETUP && use_pushes(c, err)) return -1;
  }
  /* setup and push both write; a push's rows are watched, by triggers
  ** made from the catalog in use */
  if (what != DIALECT_SETUP && c->h->watching && c->h->watched != c->owner->gen) {
    if (exec(c->h->db, c->h->unwatch, err)) return -1;
    c->h->watching = 0;
  }
  if (what != DIALECT_SETUP && !c->h->watching && c->owner->cat && watch(c, err)) return -1;
  c->fk_end = what == DIALECT_PUSH;
  /* COMMIT and ROLLBACK turn defer_foreign_keys off again */
  return run(c->h->db, "BEGIN IMMEDIATE", 0, 0, err) ||
         (c->fk_end && run(c->h->db, "PRAGMA defer_foreign_keys = ON", 0, 0, err));
}

static int sq_commit(dialect_conn *c, char **err) {
  if (c->have && c->counter != c->counted &&
      run(c->h->db, "UPDATE _syncd_state SET version = ?2", 0, c->counter, err))
    return -1;
  if (c->h->watching && run(c->h->db, "DELETE FROM temp._syncd_touched", 0, 0, err)) return -1;
  int rc = run(c->h->db, "COMMIT", 0, 0, err);
  written(c);
  return rc;
}

static int sq_savepoint(dialect_conn *c, char **err) {
  c->saved = c->counter;
  c->saved_have = c->have;
  c->saved_touched = c->touched;
  return run(c->h->db, "SAVEPOINT m", 0, 0, err);
}

static int sq_rollback_to(dialect_conn *c, char **err) {
  c->counter = c->saved;
  c->have = c->saved_have;
  c->touched = c->saved_touched;
  return run(c->h->db, "ROLLBACK TO m", 0, 0, err);
}

static int sq_release(dialect_conn *c, char **err) {
  return run(c->h->db, "RELEASE m", 0, 0, err);
}

/* SQLite's own words for a reference to no row, for one it could only
** count (a deferred foreign key) */
static const char fk_failed[] = "FOREIGN KEY constraint failed";

static dialect_result sq_settle(dialect_conn *c, dialect_result r, char **reason, char **err) {
  sqlite3 *db = c->h->db;
  if (r == DIALECT_REJECTED && sqlite3_get_autocommit(db)) return DIALECT_ENDED;
  if (r == DIALECT_FATAL || sqlite3_get_autocommit(db)) {
    if (!*err) *err = wire_errf("%s", sqlite3_errmsg(db));
    return DIALECT_FATAL;
  }
  /* A DEFERRABLE foreign key is only checked at COMMIT, which would then fail
  ** the whole batch on every retry: in a strict push, hold each mutation to
  ** it at once (otherwise fk_dangling checks the batch's end). */
  int fks = 0, hi;
  if (r == DIALECT_OK && !c->fk_end &&
      sqlite3_db_status(db, SQLITE_DBSTATUS_DEFERRED_FKS, &fks, &hi, 0) == 0 && fks > 0) {
    *reason = wire_errf("%s", fk_failed);
    return DIALECT_REJECTED;
  }
  return r;
}

/* SQLite counts the references left broken but names none: the rows of w
** at fault are looked up (sqlite_fk.c) before the batch is rolled back. */
static int sq_fk_dangling(dialect_conn *c, dialect_written *w, int n, char **err) {
  int fks = 0, hi;
  if (sqlite3_db_status(c->h->db, SQLITE_DBSTATUS_DEFERRED_FKS, &fks, &hi, 0) != 0)
    return *err = wire_errf("foreign key count unavailable"), -1;
  if (fks == 0) return 0;
  char *why = 0;
  if (sqlite_fk_find(c->h->db, w, n, fk_failed, &why)) fk_sql_none(w, n, why);
  roll_back(c);
  return 1;
}

/* ---- opening: schema, catalog, db id, backfill ---- */

static int sq_setup(dialect_conn *c, const char *schema_sql, char **err) {
  sqlite3_stmt *q;
  if (prep(c->h->db,
           "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT GLOB 'sqlite_*'"
           " AND name NOT GLOB '_syncd_*'",
           &q, err))
    return -1;
  int empty = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) == 0;
  sqlite_stmt_put(q);
  if (empty && schema_sql && exec(c->h->db, schema_sql, err)) return -1;
  if (exec(c->h->db, internal_ddl, err)) return -1;
  /* a log made before the column: its keys' pasts are unknown (NULL) */
  if (sqlite3_prepare_v2(c->h->db, "SELECT gap FROM _syncd_changes", -1, &q, 0) == SQLITE_OK)
    return sqlite3_finalize(q), 0;
  return exec(c->h->db, "ALTER TABLE _syncd_changes ADD COLUMN gap INTEGER", err);
}

/* Real tables of main only: a virtual table and its shadow tables (FTS5's
** _data, _idx, _content, _docsize, _config) are the module's business, and
** writing them behind its back corrupts its index. */
static int sq_load_catalog(dialect_conn *c, catalog *cat, char **err) {
  sqlite3_stmt *st;
  if (prep(c->h->db,
           "SELECT m.name, p.name, p.pk FROM pragma_table_list m, pragma_table_info(m.name) p"
           " WHERE m.schema = 'main' AND m.type = 'table' AND m.name NOT GLOB 'sqlite_*'"
           " AND m.name NOT GLOB '_syncd_*' ORDER BY m.name, p.cid",
           &st, err))
    return -1;
  catalog_table *t = 0;
  int rc, bad = 0;
  while (!bad && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    if (!t || strcmp(t->name, name) != 0) bad = !(t = catalog_add_table(cat, name));
    if (!bad)
      bad = catalog_add_column(t, (const char *)sqlite3_column_text(st, 1), 0, 0,
                               sqlite3_column_int(st, 2));
  }
  sqlite_stmt_put(st);
  if (!bad && rc != SQLITE_DONE) return fail(c->h->db, err);
  if (bad) return *err = wire_errf("out of memory"), -1;
  c->owner->cat = cat;
  return catalog_finish(cat, sqlite_sql_table, err);
}

static void sq_use_catalog(dialect_db *d, const catalog *cat) {
  d->cat = cat;
  d->gen++;
}

/* The schema cookie: SQLite moves it at every change of the schema. */
static int sq_schema_stamp(dialect_conn *c, char **stamp, char **err) {
  sqlite3_stmt *st;
  if (prep(c->h->db, "PRAGMA main.schema_version", &st, err)) return -1;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *stamp = sqlite3_mprintf("%lld", sqlite3_column_int64(st, 0));
  sqlite_stmt_put(st);
  if (rc != SQLITE_ROW) return fail(c->h->db, err);
  return *stamp ? 0 : (*err = wire_errf("out of memory"), -1);
}

static int sq_read_db_id(dialect_conn *c, char *id, int size, int *found, char **err) {
  sqlite3_stmt *q;
  if (prep(c->h->db, "SELECT db_id FROM _syncd_state", &q, err)) return -1;
  int rc = sqlite3_step(q);
  *found = rc == SQLITE_ROW;
  if (*found) snprintf(id, size, "%s", (const char *)sqlite3_column_text(q, 0));
  sqlite_stmt_put(q);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(c->h->db, err);
}

static int sq_write_db_id(dialect_conn *c, const char *id, char **err) {
  return run(c->h->db, "INSERT INTO _syncd_state VALUES(1, ?1, 0, 0)", id, 0, err);
}

static int sq_scan(dialect_conn *c, const catalog_table *t, const char *cond, char *const *vals,
                   int n_vals, int (*each)(void *, const char *, const char *, char **), void *arg,
                   char **err) {
  sqlite3_str *sql = sqlite3_str_new(0);
  sqlite_sql_select(sql, t);
  if (cond) sqlite3_str_appendf(sql, " WHERE %s", cond);
  char *z = sqlite3_str_finish(sql);
  sqlite3_stmt *st = 0;
  int bad = !z || prep(c->h->db, z, &st, err);
  sqlite3_free(z);
  if (bad) return *err ? -1 : (*err = wire_errf("out of memory"), -1);
  for (int k = 0; k < n_vals; k++)
    sqlite3_bind_text(st, 2 + k, vals[k], -1, SQLITE_STATIC);
  int rc;
  while (!bad && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    char *row = sqlite_row_json(st), *pk = sqlite_pk_json(t, st, -1);
    bad = !row || !pk || each(arg, pk, row, err);
    sqlite3_free(row);
    sqlite3_free(pk);
  }
  sqlite_stmt_put(st);
  if (!bad && rc == SQLITE_DONE) return 0;
  if (!*err) *err = wire_errf("backfill of %s: %s", t->name, sqlite3_errmsg(c->h->db));
  return -1;
}

/* ---- rows ---- */

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

/* Map a failed statement to DIALECT_FATAL (*err) or DIALECT_REJECTED with
** its reason. */
static dialect_result failed(sqlite3 *db, char **reason, char **err) {
  if (is_fatal(sqlite3_extended_errcode(db))) return fail(db, err), DIALECT_FATAL;
  *reason = wire_errf("%s", sqlite3_errmsg(db));
  return *reason ? DIALECT_REJECTED : DIALECT_FATAL;
}

static dialect_result sq_read_row(dialect_conn *c, const catalog_table *t, const char *pk,
                                  char **row, char **pk_out, char **reason, char **err) {
  sqlite3_stmt *st;
  int rc = sqlite_stmt_get(c->h->db, t->read_sql, &st);
  *row = *pk_out = 0;
  if (rc != SQLITE_OK) return failed(c->h->db, reason, err);
  sqlite3_bind_text(st, 1, pk, -1, SQLITE_STATIC);
  for (int k = 0; k < t->n_pk; k++)
    sqlite3_bind_text(st, 2 + k, t->cols[t->pk[k]].key, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *row = sqlite_row_json(st);
    *pk_out = sqlite_pk_json(t, st, -1);
    if (!*row || !*pk_out) rc = SQLITE_NOMEM;
  }
  sqlite_stmt_put(st);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) return DIALECT_OK;
  sqlite3_free(*row);
  sqlite3_free(*pk_out);
  *row = *pk_out = 0;
  if (rc == SQLITE_NOMEM) return *err = wire_errf("out of memory"), DIALECT_FATAL;
  return failed(c->h->db, reason, err);
}

/* Build, bind and run the INSERT/UPDATE/DELETE of m: ?1 = data, ?2 = pk,
** ?3.. = the JSON paths of the columns named. For a delete, *del_pk gets
** the deleted row's key as stored (RETURNING gives the values exactly). */
static dialect_result sq_write_row(dialect_conn *c, const catalog_table *t, const store_mutation *m,
                                   const dialect_cols *cols, int *changed, char **del_pk,
                                   char **reason, char **err) {
  sqlite3 *db = c->h->db;
  const char **path = sqlite3_malloc64(sizeof *path * (2 * t->n_cols + 1));
  int *used = sqlite3_malloc64(sizeof *used * (t->n_cols + 1)), n_path = 0;
  if (!path || !used) {
    sqlite3_free(path);
    sqlite3_free(used);
    *err = wire_errf("out of memory");
    return DIALECT_FATAL;
  }
  memset(used, 0, sizeof *used * (t->n_cols + 1));
  /* data naming every column in table order (what clients send) takes the
  ** insert built once for the table: the same text the loop below makes */
  int whole = m->op == STORE_INSERT && cols->n_data == t->n_cols;
  for (int j = 0; whole && j < cols->n_data; j++)
    whole = cols->data[j] == j;
  sqlite3_str *sql = sqlite3_str_new(0);
  if (whole) {
    for (int i = 0; i < t->n_cols; i++)
      path[n_path++] = t->cols[i].key;
  } else if (m->op == STORE_INSERT) {
    /* every column present in data, plus key columns only pk carries */
    sqlite3_str_appendf(sql, "INSERT INTO \"%w\"(", t->name);
    sqlite3_str *vals = sqlite3_str_new(0);
    for (int j = 0; j < cols->n_data + t->n_pk; j++) {
      int from_pk = j >= cols->n_data, i = from_pk ? t->pk[j - cols->n_data] : cols->data[j];
      if (from_pk && used[i]) continue;
      used[i] = 1;
      sqlite3_str_appendf(sql, "%s\"%w\"", n_path ? "," : "", t->cols[i].name);
      if (n_path) sqlite3_str_appendchar(vals, 1, ',');
      sqlite_sql_val(vals, from_pk ? 2 : 1, 3 + n_path);
      path[n_path++] = t->cols[i].key;
    }
    char *v = sqlite3_str_finish(vals);
    sqlite3_str_appendf(sql, ") VALUES(%s)", v ? v : "");
    sqlite3_free(v);
  } else if (m->op == STORE_UPDATE) {
    sqlite3_str_appendf(sql, "UPDATE \"%w\" SET ", t->name);
    for (int j = 0; j < cols->n_set; j++) {
      sqlite3_str_appendf(sql, "%s\"%w\" = ", j ? "," : "", t->cols[cols->set[j]].name);
      sqlite_sql_val(sql, 1, 3 + n_path);
      path[n_path++] = t->cols[cols->set[j]].key;
    }
    sqlite_sql_pk_where(sql, t, 2, 3 + n_path);
    for (int k = 0; k < t->n_pk; k++)
      path[n_path++] = t->cols[t->pk[k]].key;
  } else {
    sqlite3_str_appendf(sql, "DELETE FROM \"%w\"", t->name);
    sqlite_sql_pk_where(sql, t, 2, 3 + n_path);
    for (int k = 0; k < t->n_pk; k++)
      path[n_path++] = t->cols[t->pk[k]].key;
    sqlite3_str_appendall(sql, " RETURNING ");
    for (int k = 0; k < t->n_pk; k++)
      sqlite3_str_appendf(sql, "%s\"%w\"", k ? "," : "", t->cols[t->pk[k]].name);
  }
  char *z = sqlite3_str_finish(sql);
  sqlite3_stmt *st = 0;
  int rc = whole ? sqlite_stmt_get(db, t->insert_sql, &st)
           : z   ? sqlite_stmt_get(db, z, &st)
                 : SQLITE_NOMEM;
  sqlite3_free(z);
  sqlite3_free(used);
  if (rc != SQLITE_OK) {
    sqlite3_free(path);
    if (rc == SQLITE_NOMEM) return *err = wire_errf("out of memory"), DIALECT_FATAL;
    return failed(db, reason, err);
  }
  sqlite3_bind_text(st, 1, m->data, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, m->pk, -1, SQLITE_STATIC);
  for (int i = 0; i < n_path; i++)
    sqlite3_bind_text(st, 3 + i, path[i], -1, SQLITE_STATIC);
  sqlite3_int64 before = sqlite3_total_changes64(db);
  rc = sqlite3_step(st);
  if (m->op == STORE_DELETE && rc == SQLITE_ROW) {
    *del_pk = sqlite_pk_json(t, st, 0);
    *changed = 1;
    rc = *del_pk ? sqlite3_step(st) : SQLITE_NOMEM;
  } else if (m->op != STORE_DELETE) {
    *changed = rc == SQLITE_DONE && sqlite3_changes(db) > 0;
  }
  /* each of its own rows counts twice (the row, its record in
  ** _syncd_touched): anything more is another row changed, or a table
  ** that is not synced, and is looked at by sq_log_touched */
  long long own = rc == SQLITE_DONE ? sqlite3_changes(db) : 0;
  c->others = sqlite3_total_changes64(db) - before != 2 * own;
  c->touched += own;
  sqlite_stmt_put(st);
  sqlite3_free(path);
  if (rc == SQLITE_NOMEM) return *err = wire_errf("out of memory"), DIALECT_FATAL;
  return rc == SQLITE_DONE ? DIALECT_OK : failed(db, reason, err);
}

/* ---- the change log ---- */

static int sq_log_change(dialect_conn *c, const char *table, const char *pk, const char *row,
                         int fresh, long long *version, char **err) {
  sqlite3 *db = c->h->db;
  sqlite3_stmt *st;
  if (!c->have) {
    if (prep(db, "SELECT version FROM _syncd_state", &st, err)) return -1;
    int rc = sqlite3_step(st);
    c->counter = c->counted = sqlite3_column_int64(st, 0);
    sqlite_stmt_put(st);
    if (rc != SQLITE_ROW)
      return *err = wire_errf("%s", rc == SQLITE_DONE ? "no _syncd_state row" : sqlite3_errmsg(db)),
             -1;
    c->have = 1;
  }
  ++c->counter;
  if (version) *version = c->counter;
  if (prep(db,
           "INSERT INTO _syncd_changes(tbl, pk, op, row, version, gap)"
           " VALUES(?1, ?2, ?3, ?4, ?5, CASE WHEN ?6 THEN 0 END)"
           " ON CONFLICT(tbl, pk) DO UPDATE SET op = excluded.op, row = excluded.row,"
           " version = excluded.version, gap = CASE WHEN op = 'delete'"
           " AND excluded.op = 'upsert' THEN version END",
           &st, err))
    return -1;
  sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, pk, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, row ? "upsert" : "delete", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, row, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, c->counter);
  sqlite3_bind_int(st, 6, fresh && row);
  int rc = sqlite3_step(st);
  sqlite_stmt_put(st);
  return rc == SQLITE_DONE ? 0 : fail(db, err);
}

/* Watch every synced table on this connection (sqlite_watch.h). */
static int watch(dialect_conn *c, char **err) {
  sqlite3_free(c->h->unwatch);
  char *z = sqlite_watch_sql(c->h->db, c->owner->cat, &c->h->unwatch);
  if (!z) return *err = wire_errf("watching the tables: %s", sqlite3_errmsg(c->h->db)), -1;
  int rc = exec(c->h->db, z, err);
  sqlite3_free(z);
  c->h->watching = rc == 0;
  c->h->watched = c->owner->gen;
  return rc;
}

static int sq_log_touched(dialect_conn *c, const catalog *cat, const catalog_table *own,
                          const char *own_pk, int *n_changed, int *n_deleted, char **err) {
  if (!c->others) return 0;
  c->others = 0;
  sqlite3_stmt *st;
  if (prep(c->h->db, "SELECT DISTINCT * FROM temp._syncd_touched WHERE rowid > ?1", &st, err))
    return -1;
  sqlite3_bind_int64(st, 1, c->saved_touched);
  int rc, bad = 0;
  while (!bad && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const catalog_table *t = &cat->tables[sqlite3_column_int(st, 0)];
    char *pk = sqlite_pk_json(t, st, 1), *row = 0, *canon = 0, *reason = 0;
    bad = !pk;
    if (!bad && (t != own || !own_pk || strcmp(pk, own_pk) != 0)) {
      /* a key it cannot find (a NULL part) is logged as gone */
      dialect_result r = sq_read_row(c, t, pk, &row, &canon, &reason, err);
      if (r == DIALECT_REJECTED) *err = wire_errf("%s: %s", t->name, reason);
      bad = r != DIALECT_OK || sq_log_change(c, t->name, canon ? canon : pk, row, 0, 0, err);
      if (!bad) ++*n_changed, *n_deleted += !row;
    }
    sqlite3_free(pk);
    sqlite3_free(row);
    sqlite3_free(canon);
    sqlite3_free(reason);
  }
  sqlite_stmt_put(st);
  if (bad) return *err ? -1 : (*err = wire_errf("out of memory"), -1);
  if (rc != SQLITE_DONE) return fail(c->h->db, err);
  /* this mutation's records are read: forget them (its savepoint still
  ** brings them back if it is refused after all) */
  if (run(c->h->db, "DELETE FROM temp._syncd_touched WHERE rowid > ?2", 0, c->saved_touched, err))
    return -1;
  c->touched = c->saved_touched;
  return 0;
}

static int sq_compact(dialect_conn *c, long long max_tombstones, const char *const *purge,
                      int n_purge, char **err) {
  sqlite3_stmt *st;
  if (prep(c->h->db,
           "SELECT version FROM _syncd_changes WHERE op = 'delete' ORDER BY version DESC"
           " LIMIT 1 OFFSET ?1",
           &st, err))
    return -1;
  sqlite3_bind_int64(st, 1, max_tombstones);
  int rc = sqlite3_step(st);
  long long h = sqlite3_column_int64(st, 0);
  sqlite_stmt_put(st);
  if (rc == SQLITE_DONE) return 0;
  if (rc != SQLITE_ROW) return fail(c->h->db, err);
  for (int i = 0; i < n_purge; i++)
    if (run(c->h->db, purge[i], 0, h, err)) return -1;
  if (run(c->h->db, "DELETE FROM _syncd_changes WHERE op = 'delete' AND version <= ?2", 0, h, err))
    return -1;
  return run(c->h->db, "UPDATE _syncd_state SET horizon = max(horizon, ?2)", 0, h, err);
}

/* ---- clients ---- */

static int sq_client_last(dialect_conn *c, const char *client, long long *last, char **err) {
  sqlite3_stmt *q;
  if (prep(c->h->db, "SELECT last_id FROM _syncd_clients WHERE client_id = ?1", &q, err)) return -1;
  sqlite3_bind_text(q, 1, client, -1, SQLITE_STATIC);
  int rc = sqlite3_step(q);
  *last = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
  sqlite_stmt_put(q);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(c->h->db, err);
}

static int sq_client_lasts(dialect_conn *c, const char *clients, long long *last, int n,
                           char **err) {
  sqlite3_stmt *q;
  if (prep(c->h->db,
           "SELECT j.key, c.last_id FROM json_each(?1) AS j"
           " JOIN _syncd_clients AS c ON c.client_id = j.value",
           &q, err))
    return -1;
  sqlite3_bind_text(q, 1, clients, -1, SQLITE_STATIC);
  memset(last, 0, sizeof *last * (size_t)n);
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    long long i = sqlite3_column_int64(q, 0);
    if (i >= 0 && i < n) last[i] = sqlite3_column_int64(q, 1);
  }
  sqlite_stmt_put(q);
  return rc == SQLITE_DONE ? 0 : fail(c->h->db, err);
}

static int sq_client_set_last(dialect_conn *c, const char *client, long long last, char **err) {
  return run(c->h->db,
             "INSERT INTO _syncd_clients(client_id, last_id) VALUES(?1, ?2)"
             " ON CONFLICT(client_id) DO UPDATE SET last_id = excluded.last_id",
             client, last, err);
}

static int sq_record(dialect_conn *c, const char *client, long long id, const wire_outcome *o,
                     const char *table, char **err) {
  sqlite3_stmt *st;
  if (prep(c->h->db,
           "INSERT OR REPLACE INTO _syncd_outcomes(client_id, id, status, reason, tbl, pk)"
           " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
           &st, err))
    return -1;
  sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, id);
  sqlite3_bind_text(st, 3, o->applied ? "applied" : "rejected", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, o->reason, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, table, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, o->pk, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite_stmt_put(st);
  return rc == SQLITE_DONE ? 0 : fail(c->h->db, err);
}

static int sq_replay(dialect_conn *c, const char *client, long long id, wire_outcome *o,
                     char **err) {
  sqlite3_stmt *st;
  memset(o, 0, sizeof *o);
  if (prep(c->h->db,
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
    o->reason = wire_errf("mutation %lld is at or below this client's last processed id and its "
                          "outcome is no longer recorded",
                          id);
  }
  sqlite_stmt_put(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(c->h->db, err);
}

static int sq_prune(dialect_conn *c, const char *client, int keep, char **err) {
  return run(c->h->db,
             "DELETE FROM _syncd_outcomes WHERE client_id = ?1 AND id <= (SELECT id FROM"
             " _syncd_outcomes WHERE client_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
             client, keep, err);
}

/* ---- reading ---- */

static int sq_walk_rows(dialect_conn *c, const dialect_walk *w, int n, wire_page *p, char **err) {
  return sqlite_walk_page(c->h->db, w, n, p, err);
}

static int sq_walk_key(dialect_conn *c, const char *table, long long version, long long after,
                       const char *hash, char **pk, char **err) {
  return sqlite_walk_key(c->h->db, table, version, after, hash, pk, err);
}

/* A page of changes, or (w) of an initial sync's walk (sqlite_walk.c). */
static int sq_read_page(dialect_conn *c, const char *client, long long after, int all,
                        const char *tables, const dialect_walk *w, int n, long long pending_from,
                        wire_page *p, char **err) {
  sqlite3 *db = c->h->db;
  sqlite3_stmt *q;
  if (run(db, "BEGIN", 0, 0, err) || prep(db, "SELECT version, horizon FROM _syncd_state", &q, err))
    return -1;
  int step = sqlite3_step(q);
  p->head = sqlite3_column_int64(q, 0);
  p->horizon = sqlite3_column_int64(q, 1);
  sqlite_stmt_put(q);
  if (step != SQLITE_ROW) return fail(db, err);
  if (w && sqlite_walk_page(db, w, n, p, err)) return -1;
  if (!w && prep(db,
                 "SELECT tbl, pk, row, version FROM _syncd_changes WHERE version > ?1"
                 " AND (?3 OR op = 'upsert')"
                 " AND (?4 IS NULL OR tbl IN (SELECT value FROM json_each(?4)))"
                 " ORDER BY version LIMIT ?2",
                 &q, err))
    return -1;
  if (!w) {
    sqlite3_bind_int64(q, 1, after);
    sqlite3_bind_int(q, 2, p->limit + 1);
    sqlite3_bind_int(q, 3, all);
    sqlite3_bind_text(q, 4, tables, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(q)) == SQLITE_ROW)
      wire_page_change(p, (const char *)sqlite3_column_text(q, 0),
                       (const char *)sqlite3_column_text(q, 1),
                       (const char *)sqlite3_column_text(q, 2), sqlite3_column_int64(q, 3));
    sqlite_stmt_put(q);
    if (step != SQLITE_DONE) return fail(db, err);
  }
  if (sq_client_last(c, client, &p->last_id, err)) return -1;
  if (p->rejected) {
    if (prep(db,
             "SELECT id, reason FROM _syncd_outcomes WHERE client_id = ?1 AND id >= ?2"
             " AND id <= ?3 AND status = 'rejected' ORDER BY id",
             &q, err))
      return -1;
    sqlite3_bind_text(q, 1, client, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, pending_from);
    sqlite3_bind_int64(q, 3, p->last_id);
    while ((step = sqlite3_step(q)) == SQLITE_ROW)
      wire_page_rejected(p, sqlite3_column_int64(q, 0), (const char *)sqlite3_column_text(q, 1));
    sqlite_stmt_put(q);
    if (step != SQLITE_DONE) return fail(db, err);
  }
  return run(db, "COMMIT", 0, 0, err);
}

static int sq_head(dialect_conn *c, long long *version, char **err) {
  sqlite3_stmt *q;
  if (prep(c->h->db, "SELECT version FROM _syncd_state", &q, err)) return -1;
  int rc = sqlite3_step(q);
  *version = sqlite3_column_int64(q, 0);
  sqlite_stmt_put(q);
  return rc == SQLITE_ROW ? 0 : fail(c->h->db, err);
}

static int sq_select_bool(dialect_conn *c, const char *sql, const char *const *vals, int n,
                          int *yes, char **err) {
  sqlite3_stmt *st;
  if (prep(c->h->db, sql, &st, err)) return -1;
  for (int i = 0; i < n; i++)
    sqlite3_bind_text(st, i + 1, vals[i], -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  *yes = rc == SQLITE_ROW && sqlite3_column_int(st, 0);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) fail(c->h->db, err);
  sqlite_stmt_put(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static void *sq_native(dialect_conn *c) {
  return c->h->db;
}

/* A deferred BEGIN: the snapshot is taken by the first read (the head). */
static int sq_snapshot(dialect_conn *c, int end, char **err) {
  return run(c->h->db, end ? "COMMIT" : "BEGIN", 0, 0, err);
}

const dialect dialect_sqlite = {
    .pool_max = 32,
    .fold_case = 1,
    .open = sq_open,
    .close = sq_close,
    .connect = sq_connect,
    .reusable = sq_reusable,
    .disconnect = sq_disconnect,
    .begin = sq_begin,
    .commit = sq_commit,
    .savepoint = sq_savepoint,
    .rollback_to = sq_rollback_to,
    .release = sq_release,
    .settle = sq_settle,
    .fk_dangling = sq_fk_dangling,
    .setup = sq_setup,
    .walk_rows = sq_walk_rows,
    .walk_key = sq_walk_key,
    .load_catalog = sq_load_catalog,
    .use_catalog = sq_use_catalog,
    .schema_stamp = sq_schema_stamp,
    .read_db_id = sq_read_db_id,
    .write_db_id = sq_write_db_id,
    .scan = sq_scan,
    .read_row = sq_read_row,
    .write_row = sq_write_row,
    .log_change = sq_log_change,
    .log_touched = sq_log_touched,
    .compact = sq_compact,
    .client_last = sq_client_last,
    .client_lasts = sq_client_lasts,
    .set_user = sq_set_user,
    .client_set_last = sq_client_set_last,
    .record = sq_record,
    .replay = sq_replay,
    .prune = sq_prune,
    .read_page = sq_read_page,
    .head = sq_head,
    .select_bool = sq_select_bool,
    .snapshot = sq_snapshot,
    .native = sq_native,
};
