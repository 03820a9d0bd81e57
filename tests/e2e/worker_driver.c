/*
** worker_driver.c: the worker's threads under a sanitizer (make test-e2e-san).
**
**   worker_driver EXTENSION URL DIR
**
** Loads the extension (built with the same sanitizer) into two connections
** on DIR/a.db and DIR/b.db, starts both workers against the syncd at URL,
** writes on A while a second thread blocks in sync_wait on B, a third in
** sync_wait(.., 'all') on A (the local writes) and a fourth reads
** sync_status and toggles sync_online, then stops one worker with
** sync_stop and the other by closing its connection. Fails when B does not
** converge, or when SQLite memory is still in use after every connection
** is closed (a leak in the extension: it allocates only through SQLite).
** Prints "worker_driver: N passed, N failed".
*/
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (cond) {                                                                                    \
      passed++;                                                                                    \
    } else {                                                                                       \
      failed++;                                                                                    \
      fprintf(stderr, "worker_driver.c:%d: CHECK failed: %s: ", __LINE__, #cond);                  \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
    }                                                                                              \
  } while (0)

static long long one(sqlite3 *db, const char *sql) {
  sqlite3_stmt *s = 0;
  long long v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &s, 0) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
    v = sqlite3_column_int64(s, 0);
  else
    fprintf(stderr, "worker_driver: %s: %s\n", sql, sqlite3_errmsg(db));
  sqlite3_finalize(s);
  return v;
}

static sqlite3 *open_client(const char *ext, const char *dir, const char *name, const char *url,
                            int start) {
  char path[4096], sql[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  sqlite3 *db = 0;
  char *err = 0;
  if (sqlite3_open(path, &db) != SQLITE_OK) return 0;
  sqlite3_busy_timeout(db, 5000);
  sqlite3_enable_load_extension(db, 1);
  if (sqlite3_load_extension(db, ext, "sqlite3_sync_init", &err) != SQLITE_OK) {
    fprintf(stderr, "worker_driver: load %s: %s\n", ext, err ? err : "?");
    sqlite3_free(err);
    sqlite3_close(db);
    return 0;
  }
  snprintf(sql, sizeof sql,
           "CREATE TABLE IF NOT EXISTS todos(id TEXT PRIMARY KEY, title TEXT NOT NULL,"
           " done INTEGER NOT NULL DEFAULT 0);"
           "SELECT sync_init('%s'); SELECT sync_track('todos');"
           "SELECT sync_config('backoff_min_ms', 20); %s",
           url, start ? "SELECT sync_start();" : "");
  if (sqlite3_exec(db, sql, 0, 0, &err) != SQLITE_OK) {
    fprintf(stderr, "worker_driver: setup: %s\n", err ? err : "?");
    sqlite3_free(err);
  }
  return db;
}

static int print_row(void *arg, int n, char **v, char **names) {
  (void)arg, (void)names;
  for (int i = 0; i < n; i++)
    fprintf(stderr, "%s%s", i ? " | " : "  ", v[i] ? v[i] : "NULL");
  fputc('\n', stderr);
  return 0;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, 0);
}

typedef struct {
  sqlite3 *db;
  const char *sql; /* the sync_wait call */
  int tables;      /* sync_wait answers received */
  int stop;        /* atomic */
} waiter;

static void *wait_thread(void *arg) {
  waiter *w = arg;
  while (!__atomic_load_n(&w->stop, __ATOMIC_SEQ_CST)) {
    sqlite3_stmt *s = 0;
    if (sqlite3_prepare_v2(w->db, w->sql, -1, &s, 0) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
      __atomic_add_fetch(&w->tables, 1, __ATOMIC_SEQ_CST);
    sqlite3_finalize(s);
  }
  return 0;
}

static void *status_thread(void *arg) {
  waiter *w = arg;
  int i = 0;
  while (!__atomic_load_n(&w->stop, __ATOMIC_SEQ_CST)) {
    sqlite3_stmt *s = 0;
    if (sqlite3_prepare_v2(w->db, "SELECT state, pending, last_error FROM sync_status", -1, &s,
                           0) == SQLITE_OK)
      while (sqlite3_step(s) == SQLITE_ROW) {
      }
    sqlite3_finalize(s);
    if (++i % 100 == 0) {
      one(w->db, "SELECT sync_online(0)");
      sleep_ms(5);
      one(w->db, "SELECT sync_online(1)");
    }
    sleep_ms(2);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: worker_driver EXTENSION URL DIR\n");
    return 2;
  }
  const char *ext = argv[1], *url = argv[2], *dir = argv[3];
  /* Every load rewrites the extension's sqlite3_api pointer (with the same
  ** value): load everything before the first worker starts. */
  sqlite3 *b2 = 0, *a2 = 0, *a3 = 0; /* more connections for the helper threads */
  char path[4096];
  snprintf(path, sizeof path, "%s/b.db", dir);
  if (sqlite3_open(path, &b2) == SQLITE_OK) {
    sqlite3_enable_load_extension(b2, 1);
    sqlite3_load_extension(b2, ext, "sqlite3_sync_init", 0);
  }
  sqlite3 *a = open_client(ext, dir, "a.db", url, 0);
  sqlite3 *b = open_client(ext, dir, "b.db", url, 0);
  CHECK(a && b, "clients open");
  if (!a || !b) goto done;
  /* The status thread has its own connection: two threads writing and
  ** reading through one connection share its transaction, and a stale read
  ** snapshot makes the writer's INSERT fail with SQLITE_BUSY at once. */
  snprintf(path, sizeof path, "%s/a.db", dir);
  if (sqlite3_open(path, &a2) == SQLITE_OK) {
    sqlite3_enable_load_extension(a2, 1);
    sqlite3_load_extension(a2, ext, "sqlite3_sync_init", 0);
  }
  if (sqlite3_open(path, &a3) == SQLITE_OK) {
    sqlite3_enable_load_extension(a3, 1);
    sqlite3_load_extension(a3, ext, "sqlite3_sync_init", 0);
  }
  waiter wb = {.db = b2, .sql = "SELECT sync_wait(100)"}, wa = {.db = a2},
         wl = {.db = a3, .sql = "SELECT sync_wait(100, 'all')"};
  one(a, "SELECT sync_start()");
  one(b, "SELECT sync_start()");
  pthread_t tw, tl, ts;
  pthread_create(&tw, 0, wait_thread, &wb);
  pthread_create(&tl, 0, wait_thread, &wl);
  pthread_create(&ts, 0, status_thread, &wa);
  for (int i = 0; i < 60; i++) {
    char sql[200];
    snprintf(sql, sizeof sql, "INSERT INTO todos(id, title) VALUES('r%03d', 'row %d')", i, i);
    char *err = 0;
    if (sqlite3_exec(a, sql, 0, 0, &err) != SQLITE_OK)
      fprintf(stderr, "worker_driver: %s: %s\n", sql, err ? err : "?");
    sqlite3_free(err);
    sleep_ms(i % 7);
  }
  long long n = 0;
  for (int t = 0; t < 3000 && n != 60; t++) {
    sleep_ms(10);
    n = one(b, "SELECT count(*) FROM todos");
  }
  CHECK(n == 60, "B has %lld of 60 rows", n);
  if (n != 60) {
    char sql[4300];
    snprintf(sql, sizeof sql,
             "ATTACH '%s/server.db' AS srv;"
             "SELECT 'missing', id FROM srv.todos WHERE id NOT IN (SELECT id FROM main.todos);"
             "SELECT 'server', * FROM srv._syncd_outcomes ORDER BY id LIMIT 5;"
             "SELECT 'status', state, cursor, last_error, sse_connected FROM sync_status;"
             "DETACH srv;",
             dir);
    sqlite3_exec(b, sql, print_row, 0, 0);
    sqlite3_exec(
        a,
        "SELECT 'A rejected', * FROM sync_rejected; SELECT 'A pending', * FROM sync_pending;"
        " SELECT 'A has', count(*) FROM todos",
        print_row, 0, 0);
  }
  long long left = -1;
  for (int t = 0; t < 1000 && left != 0; t++) {
    left = one(a, "SELECT sync_pending()");
    if (left) sleep_ms(10);
  }
  CHECK(left == 0, "A drained: %lld left", left);
  __atomic_store_n(&wa.stop, 1, __ATOMIC_SEQ_CST);
  __atomic_store_n(&wb.stop, 1, __ATOMIC_SEQ_CST);
  __atomic_store_n(&wl.stop, 1, __ATOMIC_SEQ_CST);
  pthread_join(tw, 0);
  pthread_join(tl, 0);
  pthread_join(ts, 0);
  CHECK(wb.tables > 0, "sync_wait saw changes");
  CHECK(wl.tables > 0, "sync_wait(.., 'all') saw the local writes");
  CHECK(one(a, "SELECT sync_stop()") == 1, "sync_stop");
  CHECK(one(a, "SELECT count(*) FROM sync_status WHERE state = 'stopped'") == 1, "stopped");
done:
  sqlite3_close(b2);
  sqlite3_close(a2);
  sqlite3_close(a3);
  CHECK(sqlite3_close(a) == SQLITE_OK, "close A");
  CHECK(sqlite3_close(b) == SQLITE_OK, "close B (its worker still running)");
  CHECK(sqlite3_memory_used() == 0, "SQLite memory in use after close: %lld",
        (long long)sqlite3_memory_used());
  printf("worker_driver: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
