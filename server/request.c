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

#include <stdio.h>
#include <string.h>

#define MAX_CLIENT_ID 256

static const char envelope_sql[] =
    "SELECT json_valid(?1) AND json_type(?1) = 'object', json_type(?1, '$.client_id'),"
    " ?1 ->> '$.client_id', json_type(?1, '$.mutations'), json_array_length(?1, '$.mutations'),"
    " instr(?1 -> '$.client_id', '\\u0000')";

/* Every field of every mutation, in order: the body is parsed once and each
** mutation object once more (json_each of it), instead of once per field
** read. A row per field (or one row of NULLs for an empty object or a
** non-object); the NUL check of "table" reads that one field again. */
static const char mutations_sql[] =
    "SELECT m.key, m.type, f.key, f.type, typeof(f.atom), f.value,"
    " CASE WHEN f.key = 'table' AND f.type = 'text' THEN instr(m.value -> '$.table', '\\u0000')"
    " END"
    " FROM json_each(?1, '$.mutations') AS m"
    " LEFT JOIN json_each(CASE WHEN m.type = 'object' THEN m.value ELSE '{}' END) AS f";

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

/* The fields of one mutation as its rows of mutations_sql gave them; a
** key given twice counts once, first occurrence first (as json_extract). */
enum { F_ID, F_TABLE, F_OP, F_PK, F_DATA, F_COUNT };
static const char *const field_names[F_COUNT] = {"id", "table", "op", "pk", "data"};

typedef struct fields {
  int object; /* the mutation is a JSON object */
  int seen[F_COUNT];
  char type[F_COUNT][8]; /* json type: "integer" is the longest one */
  int idExact;           /* the id's SQL value is an integer (fits 64 bits) */
  sqlite3_int64 id;
  int tableNul;        /* "table" holds an escaped NUL */
  char *text[F_COUNT]; /* table, op: the string; pk, data: the JSON */
} fields;

static void fields_clear(fields *f) {
  for (int k = 0; k < F_COUNT; k++)
    sqlite3_free(f->text[k]);
  memset(f, 0, sizeof *f);
}

/* Takes the field the row st stands on into f. Returns 0 or SQLITE_NOMEM. */
static int fields_add(sqlite3_stmt *st, fields *f) {
  const char *key = (const char *)sqlite3_column_text(st, 2);
  const char *type = (const char *)sqlite3_column_text(st, 3);
  int k = 0;
  if (!key || !type) return 0;
  while (k < F_COUNT && strcmp(key, field_names[k]) != 0)
    k++;
  if (k == F_COUNT || f->seen[k]) return 0;
  f->seen[k] = 1;
  snprintf(f->type[k], sizeof f->type[k], "%s", type);
  if (k == F_ID) {
    f->idExact = strcmp((const char *)sqlite3_column_text(st, 4), "integer") == 0;
    f->id = sqlite3_column_int64(st, 5);
    return 0;
  }
  if (k == F_TABLE) f->tableNul = sqlite3_column_int(st, 6) != 0;
  if (sqlite3_column_type(st, 5) == SQLITE_NULL) return 0;
  f->text[k] = dup_column(st, 5);
  return f->text[k] ? 0 : SQLITE_NOMEM;
}

static int is_type(const fields *f, int k, const char *type) {
  return f->seen[k] && strcmp(f->type[k], type) == 0;
}

/* Check mutation number i and move its fields into m. Returns NULL or the
** message of a 400. */
static char *one_mutation(fields *f, int i, store_mutation *m) {
  if (!f->object) return sqlite3_mprintf("mutations[%d] must be an object", i);
  if (!is_type(f, F_ID, "integer") || !f->idExact || f->id <= 0)
    return sqlite3_mprintf("mutations[%d].id must be a positive 64-bit integer", i);
  m->id = f->id;
  if (!is_type(f, F_TABLE, "text") || !f->text[F_TABLE] || !f->text[F_TABLE][0] || f->tableNul)
    return sqlite3_mprintf("mutations[%d].table must be a non-empty string without NUL", i);
  const char *op = f->text[F_OP];
  if (!is_type(f, F_OP, "text") || !op)
    return sqlite3_mprintf("mutations[%d].op must be insert, update or delete", i);
  if (strcmp(op, "insert") == 0)
    m->op = STORE_INSERT;
  else if (strcmp(op, "update") == 0)
    m->op = STORE_UPDATE;
  else if (strcmp(op, "delete") == 0)
    m->op = STORE_DELETE;
  else
    return sqlite3_mprintf("mutations[%d].op must be insert, update or delete", i);
  if (!is_type(f, F_PK, "object")) return sqlite3_mprintf("mutations[%d].pk must be an object", i);
  if (m->op != STORE_DELETE && !is_type(f, F_DATA, "object"))
    return sqlite3_mprintf("mutations[%d].data must be an object for %s", i, op);
  m->table = f->text[F_TABLE], f->text[F_TABLE] = 0;
  m->pk = f->text[F_PK], f->text[F_PK] = 0;
  /* a delete's data is ignored: the key alone says what goes */
  if (m->op != STORE_DELETE) m->data = f->text[F_DATA], f->text[F_DATA] = 0;
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
  /* rows come mutation by mutation: one is complete when the next begins */
  fields f = {0};
  sqlite3_int64 cur = -1;
  int rc;
  while (!msg && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    sqlite3_int64 key = sqlite3_column_int64(st, 0);
    if (key != cur) {
      if (cur >= 0) msg = one_mutation(&f, r->n, &r->m[r->n]), r->n++;
      fields_clear(&f);
      if (msg || r->n >= count) break;
      cur = key;
      f.object = strcmp((const char *)sqlite3_column_text(st, 1), "object") == 0;
    }
    if (fields_add(st, &f) != SQLITE_OK) msg = sqlite3_mprintf("out of memory");
  }
  if (!msg && cur >= 0 && rc == SQLITE_DONE && r->n < count)
    msg = one_mutation(&f, r->n, &r->m[r->n]), r->n++;
  fields_clear(&f);
  if (!msg && r->n != count) msg = sqlite3_mprintf("cannot parse: %s", sqlite3_errmsg(db));
done:
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (msg) push_request_free(r);
  return msg;
}
