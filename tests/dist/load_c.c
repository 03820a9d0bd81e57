/*
** load_c.c: a C program built with the flags of the installed
** sqlite-sync.pc (tests/dist/run.sh), as a C user builds one:
**
**   cc load_c.c $(pkg-config --cflags --libs sqlite-sync) -o load_c
**   ./load_c "$(pkg-config --variable=extension sqlite-sync)" app.db URL TITLE
**
** Loads the extension into a connection, tracks the examples' todos table,
** inserts one to-do and pushes it with sync_push(); prints the result (1).
*/
#include <sqlite3.h>
#include <stdio.h>

/* Runs sql (one optional text parameter); prints its rows' first column
** when show is set. */
static int run(sqlite3 *db, const char *sql, const char *arg, int show) {
  sqlite3_stmt *st = 0;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, 0);
  if (rc == SQLITE_OK && arg) rc = sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
  if (rc == SQLITE_OK)
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
      if (show) printf("%s\n", (const char *)sqlite3_column_text(st, 0));
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  if (rc != SQLITE_OK) fprintf(stderr, "load_c: %s: %s\n", sql, sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: load_c EXTENSION DB URL TITLE\n");
    return 2;
  }
  sqlite3 *db = 0;
  char *err = 0;
  int rc = sqlite3_open(argv[2], &db);
  if (rc == SQLITE_OK) rc = sqlite3_enable_load_extension(db, 1);
  if (rc == SQLITE_OK && sqlite3_load_extension(db, argv[1], 0, &err) != SQLITE_OK) {
    fprintf(stderr, "load_c: %s\n", err ? err : "cannot load the extension");
    sqlite3_free(err);
    rc = SQLITE_ERROR;
  }
  if (rc == SQLITE_OK)
    rc = run(db,
             "CREATE TABLE IF NOT EXISTS todos(id TEXT PRIMARY KEY, title TEXT NOT NULL,"
             " done INTEGER NOT NULL DEFAULT 0, data BLOB)",
             0, 0);
  if (rc == SQLITE_OK) rc = run(db, "SELECT sync_init(?1)", argv[3], 0);
  if (rc == SQLITE_OK) rc = run(db, "SELECT sync_track('todos')", 0, 0);
  if (rc == SQLITE_OK)
    rc =
        run(db, "INSERT INTO todos(id, title) VALUES (lower(hex(randomblob(16))), ?1)", argv[4], 0);
  if (rc == SQLITE_OK) rc = run(db, "SELECT sync_push()", 0, 1);
  sqlite3_close(db);
  return rc == SQLITE_OK ? 0 : 1;
}
