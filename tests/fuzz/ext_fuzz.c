/*
** ext_fuzz.c: libFuzzer target for the extension's two entry points that
** take a server's JSON, sync_apply (a pull page or SSE event) and sync_ack
** (a push response). Built twice by mk/fuzz.mk: -DFZ_FN=\"sync_apply\" and
** -DFZ_FN=\"sync_ack\".
**
** The ext/ files are compiled as for ext/sync.so (-DSYNC_LOADABLE) and
** linked into the target with the system libsqlite3; sqlite3_auto_extension
** hands sqlite3_sync_init that library's routine table, as a host that links
** an extension statically would. One in-memory database is set up once: three tracked tables
** (text, composite and integer keys, a NOT NULL and a CHECK the server's
** rows can break), one untracked table, rows from the server and local
** mutations still pending (so both the set-based and the per-change paths
** of sync_apply run, and sync_ack has ids to resolve).
**
** Each input runs inside SAVEPOINT fz, rolled back afterwards. The first
** byte picks whether the rest is bound as text or as a blob; then:
**   - on error, the message names the function ("sync_apply: ..."), and
**     every table, sqlite_master included, is exactly as before;
**   - on success, the result is a count >= 0, the database passes
**     PRAGMA integrity_check, and the extension still works on it
**     (sync_pending() and sync_push_batch() succeed, the latter with valid
**     JSON or NULL when nothing waits);
**   - on success, the same input split into one call per change (or
**     result), in order, then one with the rest of the envelope (cursor,
**     last_mutation_id, ...), succeeds call by call and leaves the same
**     database with the same total count: however a page is applied
**     (set-based or change by change), it must end as page order says;
**   - after the rollback the database equals the baseline again.
** A failed check aborts with the input's effect printed.
*/
#include <sqlite3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FZ_FN
#error "build with -DFZ_FN=\"sync_apply\" or -DFZ_FN=\"sync_ack\""
#endif

/* The array of the input that holds the changes (or results). */
#define FZ_ARRAY (strcmp(FZ_FN, "sync_apply") == 0 ? "changes" : "results")

int sqlite3_sync_init(sqlite3 *, char **, const sqlite3_api_routines *);

static sqlite3 *fz_db;
static char *fz_dump_sql; /* one query giving every table's rows as text */
static char *fz_baseline;

static void fz_fail(const char *what, const char *detail) {
  fprintf(stderr, "ext_fuzz(" FZ_FN "): %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  abort();
}

static void fz_exec(const char *sql) {
  char *err = 0;
  if (sqlite3_exec(fz_db, sql, 0, 0, &err) != SQLITE_OK) fz_fail(sql, err);
}

/* The first column of the one row sql yields, as a malloc'd string ("" for
** NULL). Aborts on error. */
static char *fz_text(const char *sql) {
  sqlite3_stmt *s = 0;
  if (sqlite3_prepare_v2(fz_db, sql, -1, &s, 0) != SQLITE_OK) fz_fail(sql, sqlite3_errmsg(fz_db));
  if (sqlite3_step(s) != SQLITE_ROW) fz_fail(sql, sqlite3_errmsg(fz_db));
  const char *t = (const char *)sqlite3_column_text(s, 0);
  char *r = strdup(t ? t : "");
  if (!r) abort();
  sqlite3_finalize(s);
  return r;
}

/* Builds fz_dump_sql from the schema: for each table, all rows with every
** column quote()d, in a fixed order; and sqlite_master itself. The time a
** mutation was refused (sync_rejected.rejected_at) is left out: it is the
** clock's, not the input's. */
static void fz_build_dump(void) {
  char *tables = fz_text(
      "SELECT group_concat("
      " '(SELECT ' || quote(m.name) || ' || '':'' || ifnull(group_concat(r, ''|''), '''') FROM"
      " (SELECT ' || (SELECT group_concat(printf('quote(\"%w\")', c.name), '||'',''||')"
      "               FROM pragma_table_info(m.name) c WHERE c.name <> 'rejected_at') ||"
      " ' AS r FROM ' || printf('\"%w\"', m.name) || ' ORDER BY 1))', ' || char(10) || ')"
      " FROM sqlite_master m WHERE m.type = 'table'");
  fz_dump_sql = sqlite3_mprintf("SELECT %s || char(10) || (SELECT group_concat(quote(type) || "
                                "quote(name) || quote(sql), '|') FROM sqlite_master)",
                                tables);
  free(tables);
  if (!fz_dump_sql) abort();
}

static void fz_setup(void) {
  if (sqlite3_auto_extension((void (*)(void))sqlite3_sync_init) != SQLITE_OK ||
      sqlite3_open(":memory:", &fz_db) != SQLITE_OK)
    fz_fail("open", sqlite3_errmsg(fz_db));
  free(fz_text("SELECT sync_init(NULL)"));
  fz_exec("CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL"
          " DEFAULT 0, score REAL, pic BLOB);"
          "CREATE TABLE tags(todo TEXT, tag TEXT, PRIMARY KEY (todo, tag)) WITHOUT ROWID;"
          "CREATE TABLE items(id INTEGER PRIMARY KEY, v CHECK (v IS NOT 'bad'));"
          "CREATE TABLE other(id INTEGER PRIMARY KEY, x);"
          "INSERT INTO other VALUES (1, 'untracked');");
  free(fz_text("SELECT sync_track('todos') + sync_track('tags') + sync_track('items')"));
  /* Rows the server sent, then local edits: some keys pending, some not. */
  free(fz_text(
      "SELECT sync_apply('{\"changes\":["
      "{\"table\":\"todos\",\"op\":\"upsert\",\"pk\":{\"id\":\"a\"},\"row\":{\"id\":\"a\","
      "\"title\":\"milk\",\"done\":0,\"score\":1.5},\"version\":1},"
      "{\"table\":\"todos\",\"op\":\"upsert\",\"pk\":{\"id\":\"b\"},\"row\":{\"id\":\"b\","
      "\"title\":\"eggs\",\"pic\":{\"$base64\":\"AAEC\"}},\"version\":2},"
      "{\"table\":\"tags\",\"op\":\"upsert\",\"pk\":{\"todo\":\"a\",\"tag\":\"x\"},"
      "\"row\":{\"todo\":\"a\",\"tag\":\"x\"},\"version\":3},"
      "{\"table\":\"items\",\"op\":\"upsert\",\"pk\":{\"id\":1},\"row\":{\"id\":1,\"v\":10},"
      "\"version\":4}],\"cursor\":\"c-4\"}')"));
  fz_exec("UPDATE todos SET done = 1 WHERE id = 'a';"
          "INSERT INTO todos(id, title) VALUES ('c', 'tea');"
          "DELETE FROM tags WHERE todo = 'a';"
          "INSERT INTO items(id, v) VALUES (2, 20);"
          "UPDATE items SET v = 21 WHERE id = 2;");
  /* Handed out as a push would (sync_control.sent_id), so a page's
  ** last_mutation_id may confirm them, and the sync_push_batch calls of the
  ** checks below change nothing. */
  free(fz_text("SELECT sync_push_batch() IS NOT NULL"));
  fz_build_dump();
  fz_baseline = fz_text(fz_dump_sql);
}

static void fz_check_works(void) {
  sqlite3_stmt *s = 0;
  char *ok = fz_text("SELECT group_concat(integrity_check) FROM pragma_integrity_check");
  if (strcmp(ok, "ok") != 0) fz_fail("integrity_check", ok);
  free(ok);
  if (sqlite3_prepare_v2(fz_db,
                         "SELECT sync_pending() >= 0, json_valid(ifnull(sync_push_batch(), '{}'))",
                         -1, &s, 0) != SQLITE_OK ||
      sqlite3_step(s) != SQLITE_ROW)
    fz_fail("sync_pending/sync_push_batch after a successful call", sqlite3_errmsg(fz_db));
  if (sqlite3_column_int(s, 0) != 1 || sqlite3_column_int(s, 1) != 1)
    fz_fail("sync_pending/sync_push_batch after a successful call", "bad result");
  sqlite3_finalize(s);
}

/* Calls FZ_FN on arg[0..n) (as a blob or text). Returns the SQLite code;
** *pCount gets the result on success, *pMsg (malloc'd) the error message
** otherwise. */
static int fz_call(const void *arg, int n, int blob, sqlite3_int64 *pCount, char **pMsg) {
  sqlite3_stmt *s = 0;
  if (sqlite3_prepare_v2(fz_db, "SELECT " FZ_FN "(?1)", -1, &s, 0) != SQLITE_OK)
    fz_fail("prepare", sqlite3_errmsg(fz_db));
  if (blob)
    sqlite3_bind_blob(s, 1, arg, n, SQLITE_TRANSIENT);
  else
    sqlite3_bind_text(s, 1, arg, n, SQLITE_TRANSIENT);
  int rc = sqlite3_step(s);
  *pMsg = 0;
  if (rc == SQLITE_ROW) {
    if (sqlite3_column_type(s, 0) != SQLITE_INTEGER || sqlite3_column_int64(s, 0) < 0)
      fz_fail("result is not a count", (const char *)sqlite3_column_text(s, 0));
    *pCount = sqlite3_column_int64(s, 0);
  } else {
    *pMsg = strdup(sqlite3_errmsg(fz_db));
    if (!*pMsg) abort();
  }
  sqlite3_finalize(s);
  return rc;
}

/* The input (valid JSON text without NUL) applied in parts, from the
** baseline: one call per element of FZ_ARRAY, then for sync_apply the
** envelope without changes. Returns the database dump; *pCount gets the
** sum of the counts. */
static char *fz_split(const char *json, int n, sqlite3_int64 *pCount) {
  sqlite3_stmt *s = 0;
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT json_object('%s', json_array(value)) FROM json_each(?1, '$.%s') ORDER BY key",
           FZ_ARRAY, FZ_ARRAY);
  if (sqlite3_prepare_v2(fz_db, sql, -1, &s, 0) != SQLITE_OK) fz_fail(sql, sqlite3_errmsg(fz_db));
  sqlite3_bind_text(s, 1, json, n, SQLITE_TRANSIENT);
  *pCount = 0;
  while (sqlite3_step(s) == SQLITE_ROW) {
    const char *part = (const char *)sqlite3_column_text(s, 0);
    sqlite3_int64 k = 0;
    char *msg = 0;
    if (fz_call(part, -1, 0, &k, &msg) != SQLITE_ROW) {
      fprintf(stderr, "part: %s\n", part);
      fz_fail("the whole input succeeded, one of its parts alone fails", msg);
    }
    *pCount += k;
  }
  sqlite3_finalize(s);
  if (strcmp(FZ_FN, "sync_apply") == 0) {
    char *rest = 0, *msg = 0;
    sqlite3_int64 k = 0;
    if (sqlite3_prepare_v2(fz_db, "SELECT json_set(?1, '$.changes', json_array())", -1, &s, 0) !=
        SQLITE_OK)
      fz_fail("json_set", sqlite3_errmsg(fz_db));
    sqlite3_bind_text(s, 1, json, n, SQLITE_TRANSIENT);
    if (sqlite3_step(s) != SQLITE_ROW) fz_fail("json_set", sqlite3_errmsg(fz_db));
    rest = strdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    if (!rest) abort();
    if (fz_call(rest, -1, 0, &k, &msg) != SQLITE_ROW)
      fz_fail("the whole input succeeded, its envelope alone fails", msg);
    *pCount += k;
    free(rest);
  }
  return fz_text(fz_dump_sql);
}

/* Whether data[0..n) is JSON text that fz_split can take apart as the
** extension reads it (as a C string, so no NUL inside). */
static int fz_splittable(const unsigned char *data, size_t n) {
  if (memchr(data, 0, n)) return 0;
  sqlite3_stmt *s = 0;
  if (sqlite3_prepare_v2(fz_db, "SELECT json_valid(?1)", -1, &s, 0) != SQLITE_OK) abort();
  sqlite3_bind_text(s, 1, (const char *)data, (int)n, SQLITE_STATIC);
  int ok = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 1;
  sqlite3_finalize(s);
  return ok;
}

/* Whether the text sync_apply reads from data[0..n) (up to a NUL) is a JSON
** object by SQLite's json_valid: sync_apply reads the page with its own
** parser, which must accept exactly that. */
static int fz_is_object(const unsigned char *data, size_t n) {
  const unsigned char *nul = memchr(data, 0, n);
  sqlite3_stmt *s = 0;
  if (sqlite3_prepare_v2(fz_db, "SELECT json_valid(?1) AND json_type(?1) = 'object'", -1, &s, 0) !=
      SQLITE_OK)
    abort();
  sqlite3_bind_text(s, 1, (const char *)data, nul ? (int)(nul - data) : (int)n, SQLITE_STATIC);
  int ok = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 1;
  sqlite3_finalize(s);
  return ok;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (!fz_db) fz_setup();
  if (size < 1) return 0;
  int blob = data[0] == 'B';
  fz_exec("SAVEPOINT fz");
  sqlite3_int64 count = 0;
  char *msg = 0;
  int rc = fz_call(data + 1, (int)size - 1, blob, &count, &msg);
  if (strcmp(FZ_FN, "sync_apply") == 0) {
    int refused = rc != SQLITE_ROW && strcmp(msg, "sync_apply: changes must be a JSON object") == 0;
    if (refused == fz_is_object(data + 1, size - 1))
      fz_fail(refused ? "refused a JSON object SQLite accepts"
                      : "took text SQLite's json_valid refuses",
              msg);
  }
  if (rc == SQLITE_ROW) {
    fz_check_works();
    if (!blob && fz_splittable(data + 1, size - 1)) {
      char *whole = fz_text(fz_dump_sql);
      fz_exec("ROLLBACK TO fz");
      sqlite3_int64 parts = 0;
      char *split = fz_split((const char *)data + 1, (int)size - 1, &parts);
      if (strcmp(whole, split) != 0) {
        fprintf(stderr, "whole:\n%s\nin parts:\n%s\n", whole, split);
        fz_fail("the input in parts ends otherwise than whole", 0);
      }
      if (parts != count) fz_fail("the counts of the parts do not add up", 0);
      free(whole);
      free(split);
    }
  } else {
    if (strncmp(msg, FZ_FN ": ", strlen(FZ_FN) + 2) != 0) fz_fail("error not naming " FZ_FN, msg);
    char *now = fz_text(fz_dump_sql);
    if (strcmp(now, fz_baseline) != 0) {
      fprintf(stderr, "before:\n%s\nafter:\n%s\n", fz_baseline, now);
      fz_fail("an error changed the database", msg);
    }
    free(now);
    free(msg);
  }
  fz_exec("ROLLBACK TO fz; RELEASE fz");
  char *now = fz_text(fz_dump_sql);
  if (strcmp(now, fz_baseline) != 0) fz_fail("rollback did not restore the database", now);
  free(now);
  return 0;
}
