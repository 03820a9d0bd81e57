/*
** request.c: validate a POST /push body and split it into store_mutation
** entries, before anything is applied (a bad envelope anywhere in the batch
** fails the whole request with 400, so a batch is never half-applied).
**
** SQLite's json_valid decides whether the body is JSON (strict RFC 8259,
** nesting limit included); the already valid text is then walked here in
** one pass. Asking SQLite for each field instead parsed each mutation once
** per field read, which was a quarter of syncd's CPU per pushed mutation.
** The walk reads fields as SQLite's json_extract does (a key given twice
** counts its first occurrence; keys compare as written), keeps 64-bit ids
** exact and hands pk and data back as SQLite renders them (the object's
** text without whitespace), so row values are never re-printed.
*/
#include "request.h"

#include <string.h>

#define MAX_CLIENT_ID 256

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

/* The walk below runs on text json_valid accepted: every string is closed,
** every bracket matched, so it only has to find where things end. */
static int is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *skip_ws(const char *p, const char *e) {
  while (p < e && is_ws(*p))
    p++;
  return p;
}

/* p at a string's opening quote: the byte after its closing one. */
static const char *skip_string(const char *p, const char *e) {
  for (p++; p < e && *p != '"'; p++)
    if (*p == '\\') p++;
  return p < e ? p + 1 : e;
}

/* p at a value: the byte after it (containers without recursion). */
static const char *skip_value(const char *p, const char *e) {
  if (p >= e) return e;
  if (*p == '"') return skip_string(p, e);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < e) {
      if (*p == '"') {
        p = skip_string(p, e);
        continue;
      }
      if (*p == '{' || *p == '[') depth++;
      if (*p == '}' || *p == ']') depth--;
      p++;
      if (depth == 0) break;
    }
    return p;
  }
  while (p < e && *p != ',' && *p != '}' && *p != ']' && !is_ws(*p))
    p++;
  return p;
}

/* A value found in the body: [p, e). */
typedef struct span {
  const char *p, *e;
} span;

/* The JSON type name of a value, as json_type() says it. */
static const char *span_type(span v) {
  if (!v.p || v.p >= v.e) return "";
  switch (*v.p) {
  case '"':
    return "text";
  case '{':
    return "object";
  case '[':
    return "array";
  case 't':
    return "true";
  case 'f':
    return "false";
  case 'n':
    return "null";
  }
  for (const char *q = v.p; q < v.e; q++)
    if (*q == '.' || *q == 'e' || *q == 'E') return "real";
  return "integer";
}

static int span_is(span v, const char *type) {
  return strcmp(span_type(v), type) == 0;
}

/* The members of the object at p named in names[0..n), first occurrence
** each (keys compared as written, as json_extract's path lookup does). */
static void object_fields(const char *p, const char *e, const char *const *names, int n,
                          span *out) {
  memset(out, 0, sizeof *out * n);
  p = skip_ws(p + 1, e);
  while (p < e && *p == '"') {
    const char *k = p + 1, *ke = skip_string(p, e) - 1;
    p = skip_ws(skip_ws(ke + 1, e) + 1, e); /* past ':' */
    const char *v = p;
    p = skip_value(p, e);
    for (int i = 0; i < n; i++) {
      if (!out[i].p && (size_t)(ke - k) == strlen(names[i]) &&
          memcmp(k, names[i], (size_t)(ke - k)) == 0) {
        out[i].p = v, out[i].e = p;
        break;
      }
    }
    p = skip_ws(p, e);
    if (p < e && *p == ',') p = skip_ws(p + 1, e);
  }
}

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  }
  return v;
}

static char *put_utf8(char *o, unsigned v) {
  if (v < 0x80) {
    *o++ = (char)v;
  } else if (v < 0x800) {
    *o++ = (char)(0xC0 | v >> 6), *o++ = (char)(0x80 | (v & 0x3F));
  } else if (v < 0x10000) {
    *o++ = (char)(0xE0 | v >> 12), *o++ = (char)(0x80 | (v >> 6 & 0x3F));
    *o++ = (char)(0x80 | (v & 0x3F));
  } else {
    *o++ = (char)(0xF0 | v >> 18), *o++ = (char)(0x80 | (v >> 12 & 0x3F));
    *o++ = (char)(0x80 | (v >> 6 & 0x3F)), *o++ = (char)(0x80 | (v & 0x3F));
  }
  return o;
}

/* The string value v unescaped (a surrogate pair becomes one character, a
** lone surrogate its 3-byte form, as SQLite does); *nul is set when it
** holds an escaped NUL. NULL when out of memory. */
static char *span_text(span v, int *nul) {
  char *out = sqlite3_malloc64((sqlite3_uint64)(v.e - v.p) + 1), *o = out;
  *nul = 0;
  if (!out) return 0;
  for (const char *p = v.p + 1; p < v.e - 1; p++) {
    if (*p != '\\') {
      *o++ = *p;
      continue;
    }
    p++;
    switch (*p) {
    case 'b':
      *o++ = '\b';
      break;
    case 'f':
      *o++ = '\f';
      break;
    case 'n':
      *o++ = '\n';
      break;
    case 'r':
      *o++ = '\r';
      break;
    case 't':
      *o++ = '\t';
      break;
    case 'u': {
      unsigned c = (unsigned)hex4(p + 1);
      p += 4;
      if ((c & 0xFC00) == 0xD800 && v.e - p > 7 && p[1] == '\\' && p[2] == 'u' &&
          (hex4(p + 3) & 0xFC00) == 0xDC00) {
        c = ((c & 0x3FF) << 10) + ((unsigned)hex4(p + 3) & 0x3FF) + 0x10000;
        p += 6;
      }
      if (c == 0) *nul = 1;
      o = put_utf8(o, c);
      break;
    }
    default: /* '"', '\\', '/' */
      *o++ = *p;
    }
  }
  *o = 0;
  return out;
}

/* The object or array v as SQLite renders it: without whitespace. */
static char *span_json(span v) {
  char *out = sqlite3_malloc64((sqlite3_uint64)(v.e - v.p) + 1), *o = out;
  if (!out) return 0;
  for (const char *p = v.p; p < v.e;) {
    if (*p == '"') {
      const char *q = skip_string(p, v.e);
      memcpy(o, p, (size_t)(q - p));
      o += q - p, p = q;
    } else if (is_ws(*p)) {
      p++;
    } else {
      *o++ = *p++;
    }
  }
  *o = 0;
  return out;
}

/* The integer v exactly, or 0 when it is not one that fits 64 bits. */
static int span_int64(span v, sqlite3_int64 *out) {
  if (!span_is(v, "integer")) return 0;
  const char *p = v.p;
  int neg = *p == '-';
  sqlite3_uint64 x = 0, lim = neg ? (sqlite3_uint64)1 << 63 : ((sqlite3_uint64)1 << 63) - 1;
  for (p += neg; p < v.e; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (x > (lim - d) / 10) return 0;
    x = x * 10 + d;
  }
  *out = neg ? (sqlite3_int64)(0 - x) : (sqlite3_int64)x;
  return 1;
}

int json_object_keys(const char *z, int (*fn)(void *, const char *), void *arg) {
  const char *e = z + strlen(z), *p = skip_ws(z, e);
  if (p >= e || *p != '{') return 0;
  for (p = skip_ws(p + 1, e); p < e && *p == '"';) {
    span k = {p, skip_string(p, e)};
    int nul;
    char *key = span_text(k, &nul);
    int rc = key ? fn(arg, key) : SQLITE_NOMEM;
    sqlite3_free(key);
    if (rc) return rc;
    p = skip_value(skip_ws(skip_ws(k.e, e) + 1, e), e);
    p = skip_ws(p, e);
    if (p < e && *p == ',') p = skip_ws(p + 1, e);
  }
  return 0;
}

enum { F_ID, F_TABLE, F_OP, F_PK, F_DATA, F_COUNT };
static const char *const field_names[F_COUNT] = {"id", "table", "op", "pk", "data"};

/* Check mutation number i, the value v, and fill m. Returns NULL or the
** message of a 400. */
static char *one_mutation(span v, int i, store_mutation *m) {
  span f[F_COUNT];
  if (!span_is(v, "object")) return sqlite3_mprintf("mutations[%d] must be an object", i);
  object_fields(v.p, v.e, field_names, F_COUNT, f);
  if (!span_int64(f[F_ID], &m->id) || m->id <= 0)
    return sqlite3_mprintf("mutations[%d].id must be a positive 64-bit integer", i);
  int nul = 0;
  if (span_is(f[F_TABLE], "text")) {
    m->table = span_text(f[F_TABLE], &nul);
    if (!m->table) return sqlite3_mprintf("out of memory");
  }
  if (!m->table || !*m->table || nul)
    return sqlite3_mprintf("mutations[%d].table must be a non-empty string without NUL", i);
  char *op = span_is(f[F_OP], "text") ? span_text(f[F_OP], &nul) : 0;
  if (span_is(f[F_OP], "text") && !op) return sqlite3_mprintf("out of memory");
  int kind = !op                         ? -1
             : strcmp(op, "insert") == 0 ? STORE_INSERT
             : strcmp(op, "update") == 0 ? STORE_UPDATE
             : strcmp(op, "delete") == 0 ? STORE_DELETE
                                         : -1;
  char *msg = 0;
  if (kind == -1)
    msg = sqlite3_mprintf("mutations[%d].op must be insert, update or delete", i);
  else if (!span_is(f[F_PK], "object"))
    msg = sqlite3_mprintf("mutations[%d].pk must be an object", i);
  else if (kind != STORE_DELETE && !span_is(f[F_DATA], "object"))
    msg = sqlite3_mprintf("mutations[%d].data must be an object for %s", i, op);
  sqlite3_free(op);
  if (msg) return msg;
  m->op = (store_op)kind;
  m->pk = span_json(f[F_PK]);
  /* a delete's data is ignored: the key alone says what goes */
  if (m->op != STORE_DELETE) m->data = span_json(f[F_DATA]);
  if (!m->pk || (m->op != STORE_DELETE && !m->data)) return sqlite3_mprintf("out of memory");
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
  int valid = 0;
  if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, 0) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "SELECT json_valid(?1)", -1, &st, 0) != SQLITE_OK) {
    msg = sqlite3_mprintf("cannot parse: %s", db ? sqlite3_errmsg(db) : "out of memory");
  } else {
    sqlite3_bind_text64(st, 1, body, n, SQLITE_STATIC, SQLITE_UTF8);
    valid = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (msg) return msg;
  const char *e = body + n, *p = skip_ws(body, e);
  if (!valid || p >= e || *p != '{')
    return sqlite3_mprintf("malformed JSON: the body must be a JSON object");
  static const char *const top_names[2] = {"client_id", "mutations"};
  span top[2];
  object_fields(p, e, top_names, 2, top);
  int nul = 0;
  if (span_is(top[0], "text")) {
    r->client_id = span_text(top[0], &nul);
    if (!r->client_id) return sqlite3_mprintf("out of memory");
  }
  if (!r->client_id || !*r->client_id || nul || strlen(r->client_id) > MAX_CLIENT_ID) {
    msg = sqlite3_mprintf("client_id must be a non-empty string of at most %d bytes, without NUL",
                          MAX_CLIENT_ID);
  } else if (!span_is(top[1], "array")) {
    msg = sqlite3_mprintf("mutations must be an array");
  }
  int cap = 64;
  if (!msg) {
    r->m = sqlite3_malloc64(sizeof *r->m * (sqlite3_uint64)cap);
    if (!r->m) msg = sqlite3_mprintf("out of memory");
  }
  const char *end = msg ? 0 : top[1].e;
  for (p = msg ? 0 : skip_ws(top[1].p + 1, e); p && p < end && *p != ']';) {
    if (r->n == cap) {
      store_mutation *m = sqlite3_realloc64(r->m, sizeof *m * (sqlite3_uint64)cap * 2);
      if (!m) {
        msg = sqlite3_mprintf("out of memory");
        break;
      }
      r->m = m, cap *= 2;
    }
    span v = {p, skip_value(p, e)};
    memset(&r->m[r->n], 0, sizeof r->m[r->n]);
    msg = one_mutation(v, r->n, &r->m[r->n]);
    r->n++;
    if (msg) break;
    p = skip_ws(v.e, e);
    if (p < e && *p == ',') p = skip_ws(p + 1, e);
  }
  if (msg) push_request_free(r);
  return msg;
}
