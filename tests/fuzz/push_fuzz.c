/*
** push_fuzz.c: libFuzzer target for syncd's push path, body to storage:
** push_request_parse (server/http/request.c) and then store_push (the one
** push algorithm, server/store/push.c) over the SQLite dialect
** (server/store/dialect_sqlite.c), as routes.c runs them for POST /push.
**
** Every input gets a fresh store: a copy of a database file made once from
** the protocol tests' schema (tests/server/schema_sqlite.sql: CHECK, NOT
** NULL, UNIQUE, triggers, a RAISE(ROLLBACK) veto, deferred foreign keys, a
** STRICT table), with at most two tombstones kept so that purging runs. A
** body the parser accepts must then be pushed without a store error, and:
**   - the response is {"results":[...]} with one result per mutation, in
**     the request's order, each with its mutation's id and a status of
**     applied or rejected;
**   - the database passes integrity_check and foreign_key_check, and a
**     pull from the start still works;
**   - the change log matches the tables: each synced table has exactly one
**     upsert entry per row, and each entry's pk names a row that exists;
**   - pushing the same body again (the client retrying after a lost
**     response) answers the same statuses and reasons and changes nothing
**     at all (every table compared, the server's own included).
** A failed check aborts with what differed.
*/
#include "value.h"
#include "request.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FZ_SCHEMA_FILE
#define FZ_SCHEMA_FILE "tests/server/schema_sqlite.sql"
#endif

static char fz_dir[64];   /* a private temporary directory */
static char fz_path[128]; /* the per-input database file in it */
static char *fz_image;    /* the template database file's bytes */
static size_t fz_image_n;

static void fz_fail(const char *what, const char *detail) {
  fprintf(stderr, "push_fuzz: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  abort();
}

static char *fz_read(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) fz_fail("cannot read", path);
  char *p = 0;
  size_t cap = 0, len = 0, k;
  do {
    if (len + 65536 > cap) {
      cap = cap ? cap * 2 : 65536;
      p = realloc(p, cap + 1);
      if (!p) abort();
    }
    k = fread(p + len, 1, cap - len, f);
    len += k;
  } while (k > 0);
  fclose(f);
  p[len] = 0;
  *n = len;
  return p;
}

static void fz_remove(void) {
  char side[160];
  unlink(fz_path);
  snprintf(side, sizeof side, "%s-wal", fz_path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", fz_path);
  unlink(side);
}

static store *fz_open(void) {
  static char *schema;
  static store_config cfg;
  if (!schema) {
    size_t n;
    schema = fz_read(FZ_SCHEMA_FILE, &n);
    cfg.schema_sql = schema;
    cfg.max_tombstones = 2;
  }
  char *err = 0;
  store *s = store_sqlite_open(fz_path, &cfg, &err);
  if (!s) fz_fail("store_sqlite_open", err);
  return s;
}

static void fz_cleanup(void) {
  fz_remove();
  rmdir(fz_dir);
}

static void fz_setup(void) {
  strcpy(fz_dir, "/tmp/push_fuzz.XXXXXX");
  if (!mkdtemp(fz_dir)) fz_fail("mkdtemp", fz_dir);
  snprintf(fz_path, sizeof fz_path, "%s/db", fz_dir);
  atexit(fz_cleanup);
  store *s = fz_open();
  store_close(s);
  fz_image = fz_read(fz_path, &fz_image_n);
}

/* A fresh store from the template. */
static store *fz_fresh(void) {
  fz_remove();
  FILE *f = fopen(fz_path, "wb");
  if (!f || fwrite(fz_image, 1, fz_image_n, f) != fz_image_n || fclose(f) != 0)
    fz_fail("cannot write", fz_path);
  return fz_open();
}

/* The first column of sql's first row as a malloc'd string ("" for NULL,
** or for no row); ?1 is bound to arg when given. */
static char *fz_text(sqlite3 *db, const char *sql, const char *arg) {
  sqlite3_stmt *s = 0;
  if (sqlite3_prepare_v2(db, sql, -1, &s, 0) != SQLITE_OK) fz_fail(sql, sqlite3_errmsg(db));
  if (arg) sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) fz_fail(sql, sqlite3_errmsg(db));
  const char *t = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : 0;
  char *r = strdup(t ? t : "");
  if (!r) abort();
  sqlite3_finalize(s);
  return r;
}

/* Every table's rows, every column quote()d, in a fixed order. */
static char *fz_dump(sqlite3 *db) {
  char *sql = fz_text(
      db,
      "SELECT 'SELECT ' || group_concat("
      " '(SELECT ' || quote(m.name) || ' || '':'' || ifnull(group_concat(r, ''|''), '''') FROM"
      " (SELECT ' || (SELECT group_concat(printf('quote(\"%w\")', c.name), '||'',''||')"
      "               FROM pragma_table_info(m.name) c) ||"
      " ' AS r FROM ' || printf('\"%w\"', m.name) || ' ORDER BY 1))', ' || char(10) || ')"
      " FROM (SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name) m",
      0);
  char *r = fz_text(db, sql, 0);
  free(sql);
  return r;
}

/* The results' ids, statuses and reasons, one line each. */
static char *fz_outcomes(sqlite3 *db, const char *json) {
  return fz_text(db,
                 "SELECT group_concat(quote(value ->> 'id') || ' ' || quote(value ->> 'status')"
                 " || ' ' || quote(value ->> 'reason'), char(10))"
                 " FROM json_each(?1, '$.results')",
                 json);
}

static char *fz_push(store *s, const push_request *r) {
  char *json = 0, *err = 0;
  int changed = 0;
  int rc = store_push(s, r->client_id, r->m, r->n, &json, &changed, &err);
  if (rc != STORE_OK) fz_fail("push failed on a valid request", err ? err : "?");
  if (!json) fz_fail("push gave no response", 0);
  return json;
}

static void fz_check_response(sqlite3 *db, const push_request *r, const char *json) {
  sqlite3_stmt *s = 0;
  if (sqlite3_prepare_v2(db,
                         "SELECT json_valid(?1) AND json_type(?1, '$.results') = 'array'"
                         " AND json_array_length(?1, '$.results') = ?2",
                         -1, &s, 0) != SQLITE_OK)
    abort();
  sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 2, r->n);
  if (sqlite3_step(s) != SQLITE_ROW || sqlite3_column_int(s, 0) != 1)
    fz_fail("response is not one result per mutation", json);
  sqlite3_finalize(s);
  if (sqlite3_prepare_v2(db,
                         "SELECT key, value ->> 'id', value ->> 'status' FROM json_each(?1, "
                         "'$.results') ORDER BY key",
                         -1, &s, 0) != SQLITE_OK)
    abort();
  sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
  while (sqlite3_step(s) == SQLITE_ROW) {
    int i = sqlite3_column_int(s, 0);
    const char *st = (const char *)sqlite3_column_text(s, 2);
    if (sqlite3_column_type(s, 1) != SQLITE_INTEGER || sqlite3_column_int64(s, 1) != r->m[i].id)
      fz_fail("result id differs from its mutation's", json);
    if (!st || (strcmp(st, "applied") != 0 && strcmp(st, "rejected") != 0))
      fz_fail("unknown status", json);
  }
  sqlite3_finalize(s);
}

/* The synced tables of tests/server/schema_sqlite.sql and a condition
** matching a row of each to a change log entry c by its pk. */
static const char *const fz_synced[][2] = {
    {"todos", "t.id IS sync_val(c.pk -> '$.id')"},
    {"lists", "t.id IS sync_val(c.pk -> '$.id')"},
    {"items", "t.list_id IS sync_val(c.pk -> '$.list_id') AND t.pos IS sync_val(c.pk -> '$.pos')"},
    {"typed", "t.id IS sync_val(c.pk -> '$.id')"},
    {"notes", "t.id IS sync_val(c.pk -> '$.id')"},
};

static void fz_check_log(sqlite3 *db) {
  for (size_t i = 0; i < sizeof fz_synced / sizeof fz_synced[0]; i++) {
    char *sql = sqlite3_mprintf(
        "SELECT (SELECT count(*) FROM \"%w\") = (SELECT count(*) FROM _syncd_changes"
        " WHERE tbl = %Q AND op = 'upsert') AND NOT EXISTS (SELECT 1 FROM _syncd_changes c"
        " WHERE c.tbl = %Q AND c.op = 'upsert' AND NOT EXISTS (SELECT 1 FROM \"%w\" t WHERE %s))",
        fz_synced[i][0], fz_synced[i][0], fz_synced[i][0], fz_synced[i][0], fz_synced[i][1]);
    char *ok = fz_text(db, sql, 0);
    sqlite3_free(sql);
    if (strcmp(ok, "1") != 0) fz_fail("the change log does not match the rows of", fz_synced[i][0]);
    free(ok);
  }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (!fz_image) fz_setup();
  push_request r;
  char *msg = push_request_parse((const char *)data, size, &r);
  if (msg) {
    sqlite3_free(msg);
    return 0;
  }
  store *s = fz_fresh();
  char *json = fz_push(s, &r);
  sqlite3 *db = 0;
  if (sqlite3_open_v2(fz_path, &db, SQLITE_OPEN_READWRITE, 0) != SQLITE_OK)
    fz_fail("open", fz_path);
  if (value_register(db) != SQLITE_OK) fz_fail("value_register", sqlite3_errmsg(db));
  fz_check_response(db, &r, json);
  fz_check_log(db);
  char *ok = fz_text(db, "SELECT group_concat(integrity_check) FROM pragma_integrity_check", 0);
  if (strcmp(ok, "ok") != 0) fz_fail("integrity_check", ok);
  free(ok);
  char *fk = fz_text(db, "SELECT count(*) FROM pragma_foreign_key_check", 0);
  if (strcmp(fk, "0") != 0) fz_fail("foreign_key_check: rows", fk);
  free(fk);
  store_page page = {0};
  char *err = 0;
  if (store_pull(s, r.client_id, 0, 1000, 1, &page, &err) != STORE_OK)
    fz_fail("pull after push", err);
  store_page_clear(&page);

  char *before = fz_dump(db), *first = fz_outcomes(db, json);
  char *json2 = fz_push(s, &r);
  fz_check_response(db, &r, json2);
  char *after = fz_dump(db), *second = fz_outcomes(db, json2);
  if (strcmp(first, second) != 0) {
    fprintf(stderr, "first:\n%s\nreplay:\n%s\n", first, second);
    fz_fail("a replay answered differently", 0);
  }
  if (strcmp(before, after) != 0) {
    fprintf(stderr, "before:\n%s\nafter:\n%s\n", before, after);
    fz_fail("a replay changed the database", 0);
  }
  free(before);
  free(after);
  free(first);
  free(second);
  sqlite3_free(json);
  sqlite3_free(json2);
  sqlite3_close(db);
  store_close(s);
  push_request_free(&r);
  return 0;
}
