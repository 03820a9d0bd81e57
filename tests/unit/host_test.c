/*
** host_test.c: the built extension as a C host sees it, for what the SQL
** tests cannot reach: sqlite3_close() (not _v2) succeeds after the extension
** cached statements, nothing leaks once the connection is closed, loading
** twice is harmless, the library exports only its entry point, and the set
** of registered functions and modules is exactly the documented one.
**
**   tests/unit/host_test path/to/ext/sync.so
*/
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *ext;

static sqlite3 *open_db(const char *path) {
  sqlite3 *db = 0;
  CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
  CHECK_INT(sqlite3_enable_load_extension(db, 1), SQLITE_OK);
  char *err = 0;
  int rc = sqlite3_load_extension(db, ext, "sqlite3_sync_init", &err);
  if (!CHECK(rc == SQLITE_OK)) fprintf(stderr, "    load: %s\n", err ? err : "?");
  sqlite3_free(err);
  return db;
}

/* The first column of the first row of sql as text ("" when NULL), or the
** error message prefixed with "error: ". Caller frees with sqlite3_free. */
static char *query(sqlite3 *db, const char *sql) {
  sqlite3_stmt *s = 0;
  char *r;
  int rc = sqlite3_prepare_v2(db, sql, -1, &s, 0);
  if (rc == SQLITE_OK) rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    const unsigned char *t = sqlite3_column_text(s, 0);
    r = sqlite3_mprintf("%s", t ? (const char *)t : "");
  } else if (rc == SQLITE_DONE) {
    r = sqlite3_mprintf("");
  } else {
    r = sqlite3_mprintf("error: %s", sqlite3_errmsg(db));
  }
  sqlite3_finalize(s);
  return r;
}

#define CHECK_QUERY(db, sql, want)                                                                 \
  do {                                                                                             \
    char *got_ = query(db, sql);                                                                   \
    CHECK_STR(got_, want);                                                                         \
    sqlite3_free(got_);                                                                            \
  } while (0)

static void test_close_after_use(const char *path) {
  check_case = "close";
  sqlite3 *db = open_db(path);
  CHECK_QUERY(db, "SELECT length(sync_init(NULL))", "36");
  CHECK_QUERY(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)", "");
  CHECK_QUERY(db, "SELECT sync_track('t')", "1");
  CHECK_QUERY(db, "INSERT INTO t VALUES (1, 'x')", "");
  CHECK_QUERY(db, "SELECT sync_mutate('t', 'update', '{\"id\":1,\"v\":\"y\"}')", "2");
  CHECK_QUERY(db, "SELECT sync_pending()", "2");
  CHECK_QUERY(db, "SELECT json_array_length(sync_push_batch(), '$.mutations')", "2");
  CHECK_QUERY(db,
              "SELECT sync_ack('{\"results\":[{\"id\":1,\"status\":\"applied\",\"row\":"
              "{\"id\":1,\"v\":\"x\"}}]}')",
              "1");
  CHECK_QUERY(db, "SELECT sync_apply('{\"changes\":[],\"cursor\":\"c1\"}')", "0");
  CHECK_QUERY(db, "SELECT sync_apply('{\"changes\":[{\"table\":\"nope\"}]}')", "0");
  CHECK_QUERY(db, "SELECT sync_apply('{\"changes\":[{\"table\":\"t\",\"op\":\"x\"}]}')",
              "error: sync_apply: change 1 has unknown op \"x\"");
  /* Cached statements must not keep the legacy close from succeeding. */
  CHECK_INT(sqlite3_close(db), SQLITE_OK);
}

static void test_reopen_and_double_load(const char *path) {
  check_case = "double load";
  sqlite3 *db = open_db(path);
  char *err = 0;
  CHECK_INT(sqlite3_load_extension(db, ext, "sqlite3_sync_init", &err), SQLITE_OK);
  sqlite3_free(err);
  CHECK_QUERY(db, "SELECT sync_pending()", "1");
  CHECK_QUERY(db, "SELECT sync_cursor()", "c1");
  CHECK_QUERY(db, "SELECT count(*) FROM sync_pending", "1");
  CHECK_INT(sqlite3_close(db), SQLITE_OK);
}

static void test_registered(const char *path) {
  check_case = "registered";
  sqlite3 *db = open_db(path);
  CHECK_QUERY(db,
              "SELECT group_concat(name || '/' || narg, ' ') FROM (SELECT DISTINCT name, narg"
              " FROM pragma_function_list WHERE name LIKE 'sync%' ORDER BY name, narg)",
              "sync_ack/1 sync_ack/2 sync_apply/1 sync_config/1 sync_config/2 sync_cursor/0"
              " sync_init/1 sync_init/2 sync_migrate/1 sync_mutate/3 sync_online/0 sync_online/1"
              " sync_pending/0"
              " sync_pull/0 sync_push/0 sync_push_batch/0 sync_push_batch/1 sync_push_batch/2"
              " sync_start/0 sync_stop/0 sync_track/1 sync_track/2 sync_untrack/1 sync_val/1"
              " sync_verify/0 sync_verify/1 sync_verify_answer/1 sync_verify_request/1 sync_wait/1"
              " sync_wait/2 sync_wire/1");
  CHECK_QUERY(db,
              "SELECT group_concat(name, ' ') FROM (SELECT name FROM pragma_module_list"
              " WHERE name LIKE 'sync%' ORDER BY name)",
              "sync_apply_rows sync_orphans sync_pending sync_status");
  CHECK_INT(sqlite3_close(db), SQLITE_OK);
}

/* sync_apply must not expire the app's prepared statements (a flag pragma
** such as defer_foreign_keys would: they would all compile again). */
static void test_statements_kept(const char *path) {
  check_case = "statements kept";
  sqlite3 *db = open_db(path);
  CHECK_QUERY(db, "CREATE TABLE k(id INTEGER PRIMARY KEY, v)", "");
  CHECK_QUERY(db, "SELECT sync_track('k')", "1");
  sqlite3_stmt *s = 0;
  CHECK_INT(sqlite3_prepare_v2(db, "SELECT count(*) FROM k", -1, &s, 0), SQLITE_OK);
  CHECK_INT(sqlite3_step(s), SQLITE_ROW);
  sqlite3_reset(s);
  for (int i = 1; i <= 2; i++) {
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT sync_apply('{\"changes\":[{\"table\":\"k\",\"op\":\"upsert\","
             "\"pk\":{\"id\":%d},\"row\":{\"id\":%d,\"v\":1}}]}')",
             i, i);
    CHECK_QUERY(db, sql, "1");
  }
  CHECK_INT(sqlite3_step(s), SQLITE_ROW);
  CHECK_INT(sqlite3_column_int(s, 0), 2);
  CHECK_INT(sqlite3_stmt_status(s, SQLITE_STMTSTATUS_REPREPARE, 0), 0);
  sqlite3_finalize(s);
  CHECK_INT(sqlite3_close(db), SQLITE_OK);
}

/* sync_apply's batches (apply.c): a page larger than one batch, a failure
** in its second batch named by its own change, sync_apply_rows itself
** (empty without a batch, refused inside a view), and a table wider than
** that connection's sync_apply_rows (written row by row). */
static char *batch_page(const char *table, int bad) {
  sqlite3_str *page = sqlite3_str_new(0);
  sqlite3_str_appendall(page, "{\"changes\":[");
  for (int i = 1; i <= 20000; i++)
    sqlite3_str_appendf(
        page,
        "%s{\"table\":\"%s\",\"op\":\"upsert\",\"pk\":{\"id\":%d},\"row\":{\"id\":%d,"
        "\"s\":%s%d%s,\"r\":%d.5,\"n\":%lld}}",
        i > 1 ? "," : "", table, i, i, i == bad ? "null,\"x\":" : "\"r", i, i == bad ? "" : "\"", i,
        9007199254740993LL + i);
  sqlite3_str_appendall(page, "]}");
  return sqlite3_str_finish(page);
}

static void test_apply_batches(const char *path) {
  check_case = "apply batches";
  sqlite3 *db = open_db(path);
  CHECK_QUERY(db, "CREATE TABLE b(id INTEGER PRIMARY KEY, s TEXT NOT NULL, r REAL, n)", "");
  CHECK_QUERY(db, "CREATE TABLE b2(id INTEGER PRIMARY KEY, s TEXT NOT NULL, r REAL, n)", "");
  CHECK_QUERY(db, "SELECT sync_track('b') + sync_track('b2')", "2");
  sqlite3_stmt *s = 0;
  CHECK_INT(sqlite3_prepare_v2(db, "SELECT sync_apply(?1)", -1, &s, 0), SQLITE_OK);
  char *json = batch_page("b", 0);
  sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
  CHECK_INT(sqlite3_step(s), SQLITE_ROW);
  CHECK_INT(sqlite3_column_int(s, 0), 20000);
  sqlite3_reset(s);
  sqlite3_free(json);
  CHECK_QUERY(db, "SELECT count(*) || ' ' || sum(r) FROM b", "20000 200020000.0");
  CHECK_QUERY(db, "SELECT n || s FROM b WHERE id = 20000", "9007199254760993r20000");
  /* Change 19000 breaks NOT NULL: the page is refused, nothing written. */
  json = batch_page("b2", 19000);
  sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
  CHECK_INT(sqlite3_step(s), SQLITE_ERROR);
  CHECK_STR(sqlite3_errmsg(db),
            "sync_apply: change 19000 (b2 {\"id\":19000}): NOT NULL constraint failed: b2.s");
  sqlite3_finalize(s);
  sqlite3_free(json);
  CHECK_QUERY(db, "SELECT count(*) FROM b2", "0");
  CHECK_QUERY(db, "SELECT count(*) FROM sync_apply_rows", "0");
  CHECK_QUERY(db, "CREATE VIEW rows_view AS SELECT * FROM sync_apply_rows", "");
  CHECK_QUERY(db, "SELECT count(*) FROM rows_view",
              "error: unsafe use of virtual table \"sync_apply_rows\"");
  CHECK_QUERY(db, "CREATE TABLE w(id INTEGER PRIMARY KEY, c1, c2, c3, c4, c5, c6, c7, c8, c9)", "");
  CHECK_QUERY(db, "SELECT sync_track('w')", "1");
  CHECK_INT(sqlite3_close(db), SQLITE_OK);
  /* A connection whose column limit leaves sync_apply_rows fewer columns
  ** than w has: w's rows go one by one, with the same result. */
  db = open_db(path);
  sqlite3_limit(db, SQLITE_LIMIT_COLUMN, 10);
  CHECK_QUERY(db,
              "SELECT sync_apply('{\"changes\":[{\"table\":\"w\",\"op\":\"upsert\","
              "\"pk\":{\"id\":1},\"row\":{\"id\":1,\"c1\":1,\"c2\":2,\"c3\":3,\"c4\":4,"
              "\"c5\":5,\"c6\":6,\"c7\":7,\"c8\":8,\"c9\":{\"$base64\":\"AAE=\"}}}]}')",
              "1");
  CHECK_QUERY(db, "SELECT (c1 + c8) || hex(c9) FROM w WHERE id = 1", "90001");
  CHECK_QUERY(db, "SELECT count(*) FROM pragma_table_xinfo('sync_apply_rows')", "10");
  CHECK_INT(sqlite3_close(db), SQLITE_OK);
}

static void test_exports(void) {
  check_case = "exports";
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s' | awk '$2 ~ /^[TDBRW]$/ {print $3}'", ext);
  FILE *p = popen(cmd, "r");
  if (!CHECK(p != 0)) return;
  char line[256], all[1024] = "";
  while (fgets(line, sizeof line, p))
    if (strlen(all) + strlen(line) < sizeof all) strcat(all, line);
  pclose(p);
  CHECK_STR(all, "sqlite3_sync_init\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s path/to/sync.so\n", argv[0]);
    return 2;
  }
  ext = argv[1];
  char dir[] = "/tmp/host_test.XXXXXX";
  if (!mkdtemp(dir)) return 2;
  char path[64];
  snprintf(path, sizeof path, "%s/test.db", dir);
  test_close_after_use(path);
  test_reopen_and_double_load(path);
  test_registered(path);
  test_statements_kept(path);
  test_apply_batches(path);
  test_exports();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return check_done("host");
}
