/*
** request.c: validate a POST /push body and split it into store_mutation
** entries, before anything is applied (a bad envelope anywhere in the batch
** fails the whole request with 400, so a batch is never half-applied).
**
** The body is read with SQLite's JSON functions on a private in-memory
** connection: they keep 64-bit ids exact and hand back the pk and data
** objects as their original JSON text, so row values are never re-printed.
*/
#include "request.h"

#include <string.h>

#define MAX_CLIENT_ID 256

static const char envelope_sql[] =
    "SELECT json_valid(?1) AND json_type(?1) = 'object', json_type(?1, '$.client_id'),"
    " ?1 ->> '$.client_id', json_type(?1, '$.mutations'), json_array_length(?1, '$.mutations'),"
    " instr(?1 -> '$.client_id', '\\u0000')";

static const char mutations_sql[] =
    "SELECT json_type(value), json_type(value, '$.id'), typeof(value ->> '$.id'),"
    " value ->> '$.id', json_type(value, '$.table'), value ->> '$.table',"
    " value ->> '$.op', json_type(value, '$.op'), json_type(value, '$.pk'), value -> '$.pk',"
    " json_type(value, '$.data'), value -> '$.data', instr(value -> '$.table', '\\u0000')"
    " FROM json_each(?1, '$.mutations') ORDER BY key";

void push_request_free(push_request *r) {
  for (int i = 0; i < r->n; i++) {
    sqlite3_free((char *)r->m[i].table);
    sqlite3_free((char *)r->m[i].pk);
    sqlite3_free((char *)r->m[i].data);
  }
  sqlite3_free(r->m);
  sqlite3_free(r->client_id);
  memset(r, 0, sizeof *r);
}

/* Column i is non-empty text and column nul (instr() of "\u0000" in the raw
** JSON string) is 0: SQLite cuts a string at an escaped NUL, which would
** make "todos\u0000x" read as "todos". */
static int has_text(sqlite3_stmt *st, int i, int nul) {
  return sqlite3_column_bytes(st, i) > 0 && sqlite3_column_int(st, nul) == 0;
}

static char *dup_column(sqlite3_stmt *st, int i) {
  return sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, i));
}

/* Check and copy mutation number i (the row st stands on) into r->m[i].
** Returns NULL or the message of a 400. */
static char *one_mutation(sqlite3_stmt *st, int i, store_mutation *m) {
  const char *type = (const char *)sqlite3_column_text(st, 0);
  if (!type || strcmp(type, "object") != 0)
    return sqlite3_mprintf("mutations[%d] must be an object", i);
  const char *idType = (const char *)sqlite3_column_text(st, 1);
  const char *idValueType = (const char *)sqlite3_column_text(st, 2);
  /* typeof() tells an integer that does not fit 64 bits (read as real) */
  if (!idType || strcmp(idType, "integer") != 0 || strcmp(idValueType, "integer") != 0 ||
      sqlite3_column_int64(st, 3) <= 0)
    return sqlite3_mprintf("mutations[%d].id must be a positive 64-bit integer", i);
  m->id = sqlite3_column_int64(st, 3);
  const char *tableType = (const char *)sqlite3_column_text(st, 4);
  if (!tableType || strcmp(tableType, "text") != 0 || !has_text(st, 5, 12))
    return sqlite3_mprintf("mutations[%d].table must be a non-empty string without NUL", i);
  const char *op = (const char *)sqlite3_column_text(st, 6);
  const char *opType = (const char *)sqlite3_column_text(st, 7);
  if (!opType || strcmp(opType, "text") != 0 || !op)
    return sqlite3_mprintf("mutations[%d].op must be insert, update or delete", i);
  if (strcmp(op, "insert") == 0)
    m->op = STORE_INSERT;
  else if (strcmp(op, "update") == 0)
    m->op = STORE_UPDATE;
  else if (strcmp(op, "delete") == 0)
    m->op = STORE_DELETE;
  else
    return sqlite3_mprintf("mutations[%d].op must be insert, update or delete", i);
  const char *pkType = (const char *)sqlite3_column_text(st, 8);
  if (!pkType || strcmp(pkType, "object") != 0)
    return sqlite3_mprintf("mutations[%d].pk must be an object", i);
  const char *dataType = (const char *)sqlite3_column_text(st, 10);
  if (m->op != STORE_DELETE && (!dataType || strcmp(dataType, "object") != 0))
    return sqlite3_mprintf("mutations[%d].data must be an object for %s", i, op);
  m->table = dup_column(st, 5);
  m->pk = dup_column(st, 9);
  /* a delete's data is ignored: the key alone says what goes */
  if (m->op != STORE_DELETE) m->data = dup_column(st, 11);
  if (!m->table || !m->pk || (m->op != STORE_DELETE && !m->data))
    return sqlite3_mprintf("out of memory");
  return 0;
}

int utf8_valid(const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    size_t len = c < 0x80             ? 1
                 : (c & 0xE0) == 0xC0 ? 2
                 : (c & 0xF0) == 0xE0 ? 3
                 : (c & 0xF8) == 0xF0 ? 4
                                      : 0;
    if (!len || i + len > n) return 0;
    unsigned cp = len == 1 ? c : c & (0x7F >> len);
    for (size_t k = 1; k < len; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (p[i + k] & 0x3F);
    }
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += len;
  }
  return 1;
}

char *push_request_parse(const char *body, size_t n, push_request *r) {
  memset(r, 0, sizeof *r);
  if (!utf8_valid((const unsigned char *)body, n))
    return sqlite3_mprintf("malformed JSON: the body is not valid UTF-8");
  sqlite3 *db = 0;
  sqlite3_stmt *st = 0;
  char *msg = 0;
  if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, 0) != SQLITE_OK ||
      sqlite3_prepare_v2(db, envelope_sql, -1, &st, 0) != SQLITE_OK) {
    msg = sqlite3_mprintf("cannot parse: %s", db ? sqlite3_errmsg(db) : "out of memory");
    goto done;
  }
  sqlite3_bind_text64(st, 1, body, n, SQLITE_STATIC, SQLITE_UTF8);
  if (sqlite3_step(st) != SQLITE_ROW || !sqlite3_column_int(st, 0)) {
    msg = sqlite3_mprintf("malformed JSON: the body must be a JSON object");
    goto done;
  }
  const char *idType = (const char *)sqlite3_column_text(st, 1);
  if (!idType || strcmp(idType, "text") != 0 || !has_text(st, 2, 5) ||
      sqlite3_column_bytes(st, 2) > MAX_CLIENT_ID) {
    msg = sqlite3_mprintf("client_id must be a non-empty string of at most %d bytes, without NUL",
                          MAX_CLIENT_ID);
    goto done;
  }
  const char *mType = (const char *)sqlite3_column_text(st, 3);
  if (!mType || strcmp(mType, "array") != 0) {
    msg = sqlite3_mprintf("mutations must be an array");
    goto done;
  }
  r->client_id = dup_column(st, 2);
  long long count = sqlite3_column_int64(st, 4);
  r->m = sqlite3_malloc64(sizeof *r->m * (count + 1));
  if (!r->client_id || !r->m) {
    msg = sqlite3_mprintf("out of memory");
    goto done;
  }
  memset(r->m, 0, sizeof *r->m * (count + 1));
  sqlite3_finalize(st);
  st = 0;
  if (sqlite3_prepare_v2(db, mutations_sql, -1, &st, 0) != SQLITE_OK) {
    msg = sqlite3_mprintf("cannot parse: %s", sqlite3_errmsg(db));
    goto done;
  }
  sqlite3_bind_text64(st, 1, body, n, SQLITE_STATIC, SQLITE_UTF8);
  while (!msg && r->n < count && sqlite3_step(st) == SQLITE_ROW) {
    msg = one_mutation(st, r->n, &r->m[r->n]);
    r->n++;
  }
  if (!msg && r->n != count) msg = sqlite3_mprintf("cannot parse: %s", sqlite3_errmsg(db));
done:
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (msg) push_request_free(r);
  return msg;
}
