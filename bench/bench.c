/*
** bench.c: what sync costs the app, as ratios against a baseline measured in
** the same process, interleaved with it (the machines are shared and noisy).
**
**   bench/bench path/to/sync.so [-n ROWS] [-a AUTOCOMMIT_ROWS] [-r REPS] [-k]
**
** Every figure is the median of REPS repetitions; each repetition runs on a
** fresh database file (WAL, as sync_init leaves it, synchronous at its
** default) and alternates which side runs first. The table, the same for all
** figures (a todo list with a REAL column, keys that arrive in random order):
**
**   CREATE TABLE t(id TEXT PRIMARY KEY, title TEXT NOT NULL,
**                  done INTEGER NOT NULL DEFAULT 0, price REAL)
**
** Figures (subject against baseline):
**   capture insert   ROWS INSERTs in one transaction, tracked t vs untracked twin
**   capture update   ROWS UPDATEs of one column by key, same
**   capture delete   ROWS DELETEs by key, same
**   capture autocommit  AUTOCOMMIT_ROWS single-row INSERTs, each its own
**                    transaction (timed row by row, interleaved)
**   sync_mutate      SELECT sync_mutate('t','insert',?json) vs the equivalent
**                    INSERT into the same tracked table (both prepared once,
**                    executed per row, in one transaction)
**   sync_apply       ROWS upserts in pages of 1000 vs INSERT ... SELECT ... FROM
**                    json_each of the same page text into the untracked twin
**   sync_apply (update)  the same pages applied over existing rows, vs the
**                    same INSERT ... ON CONFLICT DO UPDATE
** Before the update and delete figures the outbox and the server image are
** emptied (the rows have been synced), so each write is the first pending
** mutation of its key: the costly case, which records the server image.
** -k keeps the databases (under /tmp/bench.*) for inspection; -o NAME runs
** only the figures whose group contains NAME (capture, autocommit, mutate,
** apply).
**
** For profiling (not for figures): BENCH_SETUP=SQL runs SQL on each fresh
** database after tracking (to try another trigger or schema), BENCH_SYNCED=SQL
** runs SQL where the rows are marked synced (to empty such a trial's queue), and
** BENCH_ONE_SIDE=1 or 2 runs only the untracked or the tracked side of the
** capture figures, e.g.
**   BENCH_ONE_SIDE=2 valgrind --tool=callgrind bench/bench ext/sync.so -n 2000 -r 1 -o capture
*/
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *ext;
static char dir[] = "/tmp/bench.XXXXXX";
static int nRows = 100000, nAuto = 2000, nReps = 5, keep = 0;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(sqlite3 *db, const char *what) {
  fprintf(stderr, "bench: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
  exit(1);
}

static void exec(sqlite3 *db, const char *sql) {
  char *err = 0;
  if (sqlite3_exec(db, sql, 0, 0, &err) != SQLITE_OK) {
    fprintf(stderr, "bench: %s: %s\n", sql, err ? err : "?");
    exit(1);
  }
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql) {
  sqlite3_stmt *s = 0;
  if (sqlite3_prepare_v2(db, sql, -1, &s, 0) != SQLITE_OK) die(db, sql);
  return s;
}

static void step(sqlite3 *db, sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) die(db, sqlite3_sql(s));
  sqlite3_reset(s);
}

/* The i-th key: distinct for every i, in scattered order. */
static void key(char *buf, int i) {
  snprintf(buf, 16, "%08x", (unsigned)i * 2654435761u);
}

static double price(int i) {
  return (double)i / 7.0;
}

static const char schema[] = "(id TEXT PRIMARY KEY, title TEXT NOT NULL,"
                             " done INTEGER NOT NULL DEFAULT 0, price REAL)";

/* A fresh database: t tracked, u its untracked twin. */
static sqlite3 *fresh(int rep, const char *tag) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s-%d.db", dir, tag, rep);
  unlink(path);
  sqlite3 *db = 0;
  if (sqlite3_open(path, &db) != SQLITE_OK) die(db, "open");
  sqlite3_enable_load_extension(db, 1);
  char *err = 0;
  if (sqlite3_load_extension(db, ext, "sqlite3_sync_init", &err) != SQLITE_OK) {
    fprintf(stderr, "bench: load %s: %s\n", ext, err ? err : "?");
    exit(1);
  }
  exec(db, "SELECT sync_init(NULL)");
  char sql[512];
  snprintf(sql, sizeof sql, "CREATE TABLE t%s; CREATE TABLE u%s;", schema, schema);
  exec(db, sql);
  exec(db, "SELECT sync_track('t')");
  if (getenv("BENCH_SETUP")) exec(db, getenv("BENCH_SETUP")); /* for experiments */
  return db;
}

static void done(sqlite3 *db) {
  const char *f = sqlite3_db_filename(db, "main");
  char path[300];
  snprintf(path, sizeof path, "%s", f ? f : "");
  sqlite3_close(db);
  if (!keep && path[0]) {
    unlink(path);
    char side[320];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
  }
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- the workloads: each returns the seconds it took ---- */

__attribute__((noinline)) static double run_insert(sqlite3 *db, const char *tbl, int n) {
  char sql[128];
  snprintf(sql, sizeof sql, "INSERT INTO %s(id,title,done,price) VALUES(?1,?2,?3,?4)", tbl);
  sqlite3_stmt *s = prep(db, sql);
  char k[16], title[32];
  double t0 = now();
  exec(db, "BEGIN");
  for (int i = 0; i < n; i++) {
    key(k, i);
    snprintf(title, sizeof title, "todo number %d", i);
    sqlite3_bind_text(s, 1, k, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, title, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 3, i & 1);
    sqlite3_bind_double(s, 4, price(i));
    step(db, s);
  }
  exec(db, "COMMIT");
  double t = now() - t0;
  sqlite3_finalize(s);
  return t;
}

__attribute__((noinline)) static double run_update(sqlite3 *db, const char *tbl, int n) {
  char sql[128];
  snprintf(sql, sizeof sql, "UPDATE %s SET done = ?2 WHERE id = ?1", tbl);
  sqlite3_stmt *s = prep(db, sql);
  char k[16];
  double t0 = now();
  exec(db, "BEGIN");
  for (int i = 0; i < n; i++) {
    key(k, i);
    sqlite3_bind_text(s, 1, k, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 2, !(i & 1));
    step(db, s);
  }
  exec(db, "COMMIT");
  double t = now() - t0;
  sqlite3_finalize(s);
  return t;
}

__attribute__((noinline)) static double run_delete(sqlite3 *db, const char *tbl, int n) {
  char sql[128];
  snprintf(sql, sizeof sql, "DELETE FROM %s WHERE id = ?1", tbl);
  sqlite3_stmt *s = prep(db, sql);
  char k[16];
  double t0 = now();
  exec(db, "BEGIN");
  for (int i = 0; i < n; i++) {
    key(k, i);
    sqlite3_bind_text(s, 1, k, -1, SQLITE_TRANSIENT);
    step(db, s);
  }
  exec(db, "COMMIT");
  double t = now() - t0;
  sqlite3_finalize(s);
  return t;
}

/* The rows have reached the server: nothing pending, no image. */
static void synced(sqlite3 *db) {
  exec(db, "DELETE FROM sync_outbox; DELETE FROM sync_shadow; PRAGMA wal_checkpoint(TRUNCATE)");
  if (getenv("BENCH_SYNCED")) exec(db, getenv("BENCH_SYNCED")); /* an experiment's own queue */
}

/* ---- results ---- */

typedef struct {
  const char *name, *base, *unit;
  double target;
  double a, b; /* median seconds: baseline, subject */
  long n;
} Figure;

static Figure figs[16];
static int nFigs;

static void record(const char *name, const char *base, double target, double *a, double *b,
                   long n) {
  Figure *f = &figs[nFigs++];
  f->name = name;
  f->base = base;
  f->target = target;
  f->a = median(a, nReps);
  f->b = median(b, nReps);
  f->n = n;
}

static void bench_capture(void) {
  double ia[64], ib[64], ua[64], ub[64], da[64], db_[64];
  for (int r = 0; r < nReps; r++) {
    sqlite3 *db = fresh(r, "capture");
    int first = r & 1; /* which side runs first this repetition */
    for (int side = 0; side < 2; side++) {
      int tracked = side ^ first;
      if (getenv("BENCH_ONE_SIDE") && tracked != atoi(getenv("BENCH_ONE_SIDE")) - 1) continue;
      double t = run_insert(db, tracked ? "t" : "u", nRows);
      (tracked ? ib : ia)[r] = t;
    }
    synced(db);
    for (int side = 0; side < 2; side++) {
      int tracked = side ^ first;
      if (getenv("BENCH_ONE_SIDE") && tracked != atoi(getenv("BENCH_ONE_SIDE")) - 1) continue;
      double t = run_update(db, tracked ? "t" : "u", nRows);
      (tracked ? ub : ua)[r] = t;
    }
    synced(db);
    for (int side = 0; side < 2; side++) {
      int tracked = side ^ first;
      if (getenv("BENCH_ONE_SIDE") && tracked != atoi(getenv("BENCH_ONE_SIDE")) - 1) continue;
      double t = run_delete(db, tracked ? "t" : "u", nRows);
      (tracked ? db_ : da)[r] = t;
    }
    done(db);
  }
  record("capture: INSERT, one transaction", "untracked twin", 2.0, ia, ib, nRows);
  record("capture: UPDATE one column", "untracked twin", 2.0, ua, ub, nRows);
  record("capture: DELETE", "untracked twin", 2.0, da, db_, nRows);
}

/* Single-row autocommit INSERTs, one into each table in turn, each timed. */
static void bench_autocommit(void) {
  double a[64], b[64];
  for (int r = 0; r < nReps; r++) {
    sqlite3 *db = fresh(r, "autocommit");
    sqlite3_stmt *s[2] = {prep(db, "INSERT INTO u(id,title,done,price) VALUES(?1,?2,?3,?4)"),
                          prep(db, "INSERT INTO t(id,title,done,price) VALUES(?1,?2,?3,?4)")};
    double sum[2] = {0, 0};
    char k[16], title[32];
    for (int i = 0; i < nAuto; i++) {
      key(k, i);
      snprintf(title, sizeof title, "todo number %d", i);
      for (int side = 0; side < 2; side++) {
        int tracked = side ^ (i & 1);
        sqlite3_stmt *st = s[tracked];
        sqlite3_bind_text(st, 1, k, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, title, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 3, i & 1);
        sqlite3_bind_double(st, 4, price(i));
        double t0 = now();
        step(db, st);
        sum[tracked] += now() - t0;
      }
    }
    a[r] = sum[0];
    b[r] = sum[1];
    sqlite3_finalize(s[0]);
    sqlite3_finalize(s[1]);
    done(db);
  }
  record("capture: autocommit INSERT (WAL)", "untracked twin", 1.3, a, b, nAuto);
}

/* The JSON object of row i, as an app would hand it to sync_mutate. */
static char *row_json(int i) {
  char k[16];
  key(k, i);
  return sqlite3_mprintf(
      "{\"id\":\"%s\",\"title\":\"todo number %d\",\"done\":%d,\"price\":%!.17g}", k, i, i & 1,
      price(i));
}

static void bench_mutate(void) {
  double a[64], b[64];
  char **rows = malloc(sizeof(char *) * (size_t)nRows);
  for (int i = 0; i < nRows; i++)
    rows[i] = row_json(i);
  for (int r = 0; r < nReps; r++) {
    int first = r & 1;
    for (int side = 0; side < 2; side++) {
      int subject = side ^ first;
      sqlite3 *db = fresh(r, subject ? "mutate" : "insert");
      if (subject) {
        sqlite3_stmt *s = prep(db, "SELECT sync_mutate('t','insert',?1)");
        double t0 = now();
        exec(db, "BEGIN");
        for (int i = 0; i < nRows; i++) {
          sqlite3_bind_text(s, 1, rows[i], -1, SQLITE_STATIC);
          step(db, s);
        }
        exec(db, "COMMIT");
        b[r] = now() - t0;
        sqlite3_finalize(s);
      } else {
        a[r] = run_insert(db, "t", nRows);
      }
      done(db);
    }
  }
  for (int i = 0; i < nRows; i++)
    sqlite3_free(rows[i]);
  free(rows);
  record("sync_mutate insert", "INSERT, tracked", 2.5, a, b, nRows);
}

/* Pages of 1000 server changes (upserts), as a pull returns them. */
static char **pages(int *nPages, int version0) {
  int per = 1000;
  *nPages = (nRows + per - 1) / per;
  char **p = malloc(sizeof(char *) * (size_t)*nPages);
  for (int g = 0; g < *nPages; g++) {
    sqlite3_str *s = sqlite3_str_new(0);
    sqlite3_str_appendall(s, "{\"changes\":[");
    for (int i = g * per; i < (g + 1) * per && i < nRows; i++) {
      char k[16];
      key(k, i);
      sqlite3_str_appendf(s,
                          "%s{\"table\":\"t\",\"op\":\"upsert\",\"pk\":{\"id\":\"%s\"},"
                          "\"row\":{\"id\":\"%s\",\"title\":\"server todo %d\",\"done\":%d,"
                          "\"price\":%!.17g},\"version\":%d}",
                          i > g * per ? "," : "", k, k, i + version0, (i + version0) & 1,
                          price(i + version0), i + version0 + 1);
    }
    sqlite3_str_appendf(s, "],\"cursor\":\"%d\",\"has_more\":%s}", version0 + (g + 1) * per,
                        g + 1 < *nPages ? "true" : "false");
    p[g] = sqlite3_str_finish(s);
  }
  return p;
}

static const char load_sql[] =
    "INSERT INTO u(id,title,done,price) SELECT value->>'$.row.id', value->>'$.row.title',"
    " value->>'$.row.done', value->>'$.row.price' FROM json_each(?1,'$.changes')";

static double run_pages(sqlite3 *db, const char *sql, char **p, int n) {
  sqlite3_stmt *s = prep(db, sql);
  double t0 = now();
  exec(db, "BEGIN");
  for (int g = 0; g < n; g++) {
    sqlite3_bind_text(s, 1, p[g], -1, SQLITE_STATIC);
    step(db, s);
  }
  exec(db, "COMMIT");
  double t = now() - t0;
  sqlite3_finalize(s);
  return t;
}

static void bench_apply(void) {
  double a[64], b[64], ua[64], ub[64];
  int n1, n2;
  char **p1 = pages(&n1, 0), **p2 = pages(&n2, 7);
  char upsert_sql[512];
  snprintf(upsert_sql, sizeof upsert_sql,
           "%s WHERE true ON CONFLICT(id) DO UPDATE SET title=excluded.title,"
           " done=excluded.done, price=excluded.price",
           load_sql);
  for (int r = 0; r < nReps; r++) {
    sqlite3 *db = fresh(r, "apply");
    int first = r & 1;
    for (int side = 0; side < 2; side++) {
      int subject = side ^ first;
      if (subject)
        b[r] = run_pages(db, "SELECT sync_apply(?1)", p1, n1);
      else
        a[r] = run_pages(db, load_sql, p1, n1);
    }
    exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    for (int side = 0; side < 2; side++) {
      int subject = side ^ first;
      if (subject)
        ub[r] = run_pages(db, "SELECT sync_apply(?1)", p2, n2);
      else
        ua[r] = run_pages(db, upsert_sql, p2, n2);
    }
    done(db);
  }
  for (int g = 0; g < n1; g++)
    sqlite3_free(p1[g]);
  for (int g = 0; g < n2; g++)
    sqlite3_free(p2[g]);
  free(p1);
  free(p2);
  record("sync_apply, empty table", "INSERT..SELECT json_each", 1.5, a, b, nRows);
  record("sync_apply over existing rows", "same, ON CONFLICT DO UPDATE", 0, ua, ub, nRows);
}

int main(int argc, char **argv) {
  const char *only = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
      nRows = atoi(argv[++i]);
    else if (strcmp(argv[i], "-a") == 0 && i + 1 < argc)
      nAuto = atoi(argv[++i]);
    else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
      nReps = atoi(argv[++i]);
    else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
      only = argv[++i];
    else if (strcmp(argv[i], "-k") == 0)
      keep = 1;
    else if (argv[i][0] != '-' && !ext)
      ext = argv[i];
    else {
      fprintf(stderr,
              "usage: %s sync.so [-n rows] [-a autocommit_rows] [-r reps] [-o "
              "capture|autocommit|mutate|apply] [-k]\n",
              argv[0]);
      return 2;
    }
  }
  if (!ext || nRows < 1 || nAuto < 1 || nReps < 1 || nReps > 64) {
    fprintf(stderr, "usage: %s sync.so [-n rows] [-a autocommit_rows] [-r reps] [-k]\n", argv[0]);
    return 2;
  }
  if (!mkdtemp(dir)) return 2;
  printf("sqlite %s, %d rows (%d autocommit), median of %d\n", sqlite3_libversion(), nRows, nAuto,
         nReps);
  fflush(stdout);
  if (!only || strstr(only, "capture")) bench_capture();
  if (!only || strstr(only, "autocommit")) bench_autocommit();
  if (!only || strstr(only, "mutate")) bench_mutate();
  if (!only || strstr(only, "apply")) bench_apply();

  printf("\n| figure | baseline | rows | baseline s | subject s | subject us/row | ratio | "
         "target | |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n");
  for (int i = 0; i < nFigs; i++) {
    Figure *f = &figs[i];
    double ratio = f->b / f->a;
    char tgt[16] = "-";
    const char *ok = "";
    if (f->target > 0) {
      snprintf(tgt, sizeof tgt, "<= %.1fx", f->target);
      ok = ratio <= f->target ? "met" : "MISSED";
    }
    printf("| %s | %s | %ld | %.3f | %.3f | %.2f | %.2fx | %s | %s |\n", f->name, f->base, f->n,
           f->a, f->b, f->b / (double)f->n * 1e6, ratio, tgt, ok);
  }
  if (!keep) rmdir(dir);
  return 0;
}
