/*
** jscan_fuzz.c: libFuzzer target for common/jscan.c, the JSON scanner the
** engine and syncd share. The input is a text (a NUL inside it ends it, as
** it does for SQLite's text values): jscan must accept exactly what SQLite's
** json_valid accepts, and for an accepted text give json()'s compact form
** and json_type()'s type. A disagreement aborts, but for one: SQLite 3.40
** accepts an object key that is an array or object ending in a string, as
** in {[""]:0} (and its json_tree then crashes on it); jscan refuses that. The input is copied to a
** buffer of its exact size, so a read past the end shows under ASan.
*/
#include "jscan.h"

#include <stdlib.h>
#include <string.h>

static sqlite3 *fz_db;

/* The text of sql's first column with ?1 = z[0..n), malloc'd; NULL for NULL. */
static char *fz_ask(const char *sql, const char *z, size_t n) {
  sqlite3_stmt *s = 0;
  char *out = 0;
  if (sqlite3_prepare_v2(fz_db, sql, -1, &s, 0) != SQLITE_OK) abort();
  sqlite3_bind_text64(s, 1, z, n, SQLITE_STATIC, SQLITE_UTF8);
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
    out = strdup((const char *)sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  return out;
}

/* Whether the text SQLite accepted has an object key that is not a string. */
static int fz_container_key(const char *z, size_t n) {
  char stack[JSCAN_MAX_DEPTH + 2];
  int depth = 0, key = 0;
  for (size_t i = 0; i < n; i++) {
    char c = z[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    if (key && (c == '[' || c == '{')) return 1;
    key = 0;
    if (c == '"') {
      for (i++; i < n && z[i] != '"'; i++)
        if (z[i] == '\\') i++;
    } else if ((c == '{' || c == '[') && depth <= JSCAN_MAX_DEPTH) {
      stack[depth++] = c;
      key = c == '{';
    } else if ((c == '}' || c == ']') && depth > 0) {
      depth--;
    } else if (c == ',' && depth > 0) {
      key = stack[depth - 1] == '{';
    }
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (!fz_db && sqlite3_open(":memory:", &fz_db) != SQLITE_OK) abort();
  const unsigned char *nul = memchr(data, 0, size);
  size_t n = nul ? (size_t)(nul - data) : size;
  if (!jscan_utf8_valid(data, n)) return 0; /* SQLite's JSON rules assume UTF-8 */
  char *b = malloc(n ? n : 1);
  memcpy(b, data, n);
  char *valid = fz_ask("SELECT json_valid(?1)", b, n);
  int theirs = valid && strcmp(valid, "1") == 0;
  free(valid);
  int mine = jscan_document(b, b + n);
  if (mine != theirs && !(theirs && fz_container_key(b, n))) abort();
  theirs = mine;
  if (theirs) {
    const char *v = jscan_ws(b, b + n);
    jspan whole = {v, (int)(jscan_skip(v, b + n) - v)};
    char *compact = jscan_compact(whole), *ref = fz_ask("SELECT json(?1)", b, n);
    char *type = fz_ask("SELECT json_type(?1)", b, n);
    if (!compact || !ref || strcmp(compact, ref) != 0) abort();
    if (!type || strcmp(type, jscan_type(whole)) != 0) abort();
    sqlite3_free(compact);
    free(ref);
    free(type);
  }
  free(b);
  return 0;
}
