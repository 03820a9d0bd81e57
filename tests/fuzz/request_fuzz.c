/*
** request_fuzz.c: libFuzzer target for syncd's POST /push body validation
** (server/http/request.c), the first thing an untrusted client's bytes meet.
**
** The input is the body. push_request_parse either refuses it (a message,
** the request emptied) or accepts it, and then what it hands the store must
** be what the store relies on:
**   - the body is UTF-8 by a reference check (Unicode 15 table 3-7, written
**     out below independently of jscan_utf8_valid, which must agree on every
**     input);
**   - client_id is 1..256 bytes; the batch has as many mutations as the
**     body's array;
**   - each mutation has an id > 0, a non-empty table, a known op, a pk that
**     is a JSON object and data that is one (NULL for a delete), each equal
**     to what SQLite reads at that place in the body.
** A failed check aborts.
*/
#include "jscan.h"
#include "request.h"

#include <stdlib.h>
#include <string.h>

static sqlite3 *fz_db; /* the checks' own connection */

/* Well-formed UTF-8 per the Unicode standard's table 3-7. */
static int fz_utf8(const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;
    if (c <= 0x7F)
      len = 1;
    else if (c >= 0xC2 && c <= 0xDF)
      len = 2;
    else if (c == 0xE0)
      len = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC)
      len = 3;
    else if (c == 0xED)
      len = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF)
      len = 3;
    else if (c == 0xF0)
      len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
      len = 4;
    else if (c == 0xF4)
      len = 4, hi = 0x8F;
    else
      return 0;
    if (i + len > n) return 0;
    for (size_t k = 1; k < len; k++) {
      unsigned char b = p[i + k];
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return 0;
    }
    i += len;
  }
  return 1;
}

/* The first column of sql (?1 = body, ?2 = index) as int64; -1 on NULL. */
static long long fz_int(const char *sql, const char *body, size_t n, int i) {
  sqlite3_stmt *s = 0;
  if (sqlite3_prepare_v2(fz_db, sql, -1, &s, 0) != SQLITE_OK) abort();
  sqlite3_bind_text64(s, 1, body, n, SQLITE_STATIC, SQLITE_UTF8);
  sqlite3_bind_int(s, 2, i);
  long long v = -1;
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
    v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return v;
}

/* Whether text t is the JSON object at mutation i's field f of the body. */
static int fz_same(const char *body, size_t n, int i, const char *f, const char *t) {
  sqlite3_stmt *s = 0;
  if (sqlite3_prepare_v2(fz_db,
                         "SELECT json_valid(?3) AND json_type(?3) = 'object' AND"
                         " ?3 = (SELECT value ->> ?4 FROM json_each(?1, '$.mutations')"
                         "       ORDER BY key LIMIT 1 OFFSET ?2)",
                         -1, &s, 0) != SQLITE_OK)
    abort();
  char path[8];
  path[0] = '$', path[1] = '.';
  strcpy(path + 2, f);
  sqlite3_bind_text64(s, 1, body, n, SQLITE_STATIC, SQLITE_UTF8);
  sqlite3_bind_int(s, 2, i);
  sqlite3_bind_text(s, 3, t, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 4, path, -1, SQLITE_STATIC);
  int ok = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 1;
  sqlite3_finalize(s);
  return ok;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (!fz_db && sqlite3_open(":memory:", &fz_db) != SQLITE_OK) abort();
  if (jscan_utf8_valid(data, size) != fz_utf8(data, size)) abort();
  const char *body = (const char *)data;
  push_request r;
  char *msg = push_request_parse(body, size, &r);
  if (msg) {
    if (!*msg || r.client_id || r.m || r.n) abort();
    sqlite3_free(msg);
    return 0;
  }
  if (!fz_utf8(data, size)) abort();
  size_t idn = r.client_id ? strlen(r.client_id) : 0;
  if (idn < 1 || idn > 256) abort();
  if (r.n != fz_int("SELECT json_array_length(?1, '$.mutations')", body, size, 0)) abort();
  for (int i = 0; i < r.n; i++) {
    const store_mutation *m = &r.m[i];
    if (m->id <= 0 || !m->table || !*m->table || !m->pk) abort();
    if (m->op != STORE_INSERT && m->op != STORE_UPDATE && m->op != STORE_DELETE) abort();
    if ((m->op == STORE_DELETE) != (m->data == 0)) abort();
    if (m->id != fz_int("SELECT value ->> '$.id' FROM json_each(?1, '$.mutations')"
                        " ORDER BY key LIMIT 1 OFFSET ?2",
                        body, size, i))
      abort();
    if (!fz_same(body, size, i, "pk", m->pk)) abort();
    if (m->data && !fz_same(body, size, i, "data", m->data)) abort();
  }
  push_request_free(&r);
  return 0;
}
