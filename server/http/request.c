/*
** request.c: validate a POST /push body and split it into store_mutation
** entries, before anything is applied (a bad envelope anywhere in the batch
** fails the whole request with 400, so a batch is never half-applied).
**
** The shared scanner (common/jscan.h) decides whether the body is JSON as
** SQLite's json_valid does (strict RFC 8259, nesting limit included; a NUL
** byte anywhere makes it malformed) and then walks the valid text in one
** pass. Asking SQLite for each field instead parsed each mutation once per
** field read, which was a quarter of syncd's CPU per pushed mutation. The
** walk reads fields as SQLite's json_extract does (a key given twice counts
** its first occurrence; keys compare as written), keeps 64-bit ids exact and
** hands pk and data back as SQLite renders them (the object's text without
** whitespace), so row values are never re-printed.
*/
#include "request.h"
#include "jscan.h"

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

enum { F_ID, F_TABLE, F_OP, F_PK, F_DATA, F_COUNT };
static const char *const field_names[F_COUNT] = {"id", "table", "op", "pk", "data"};

/* Check mutation number i, the value v, and fill m. Returns NULL or the
** message of a 400. */
static int is_type(jspan v, const char *type) {
  return strcmp(jscan_type(v), type) == 0;
}

static char *one_mutation(jspan v, int i, store_mutation *m) {
  jspan f[F_COUNT];
  if (!is_type(v, "object")) return sqlite3_mprintf("mutations[%d] must be an object", i);
  jscan_fields(v, field_names, F_COUNT, f);
  if (!jscan_int64(f[F_ID], &m->id) || m->id <= 0)
    return sqlite3_mprintf("mutations[%d].id must be a positive 64-bit integer", i);
  int nul = 0;
  if (is_type(f[F_TABLE], "text")) {
    m->table = jscan_text(f[F_TABLE], &nul);
    if (!m->table) return sqlite3_mprintf("out of memory");
  }
  if (!m->table || !*m->table || nul)
    return sqlite3_mprintf("mutations[%d].table must be a non-empty string without NUL", i);
  char *op = is_type(f[F_OP], "text") ? jscan_text(f[F_OP], &nul) : 0;
  if (is_type(f[F_OP], "text") && !op) return sqlite3_mprintf("out of memory");
  int kind = !op                         ? -1
             : strcmp(op, "insert") == 0 ? STORE_INSERT
             : strcmp(op, "update") == 0 ? STORE_UPDATE
             : strcmp(op, "delete") == 0 ? STORE_DELETE
                                         : -1;
  char *msg = 0;
  if (kind == -1)
    msg = sqlite3_mprintf("mutations[%d].op must be insert, update or delete", i);
  else if (!is_type(f[F_PK], "object"))
    msg = sqlite3_mprintf("mutations[%d].pk must be an object", i);
  else if (kind != STORE_DELETE && !is_type(f[F_DATA], "object"))
    msg = sqlite3_mprintf("mutations[%d].data must be an object for %s", i, op);
  sqlite3_free(op);
  if (msg) return msg;
  m->op = (store_op)kind;
  m->pk = jscan_compact(f[F_PK]);
  /* a delete's data is ignored: the key alone says what goes */
  if (m->op != STORE_DELETE) m->data = jscan_compact(f[F_DATA]);
  if (!m->pk || (m->op != STORE_DELETE && !m->data)) return sqlite3_mprintf("out of memory");
  return 0;
}

char *push_request_parse(const char *body, size_t n, push_request *r) {
  memset(r, 0, sizeof *r);
  if (!jscan_utf8_valid((const unsigned char *)body, n))
    return sqlite3_mprintf("malformed JSON: the body is not valid UTF-8");
  const char *e = body + n, *p = jscan_ws(body, e);
  if (p >= e || *p != '{' || !jscan_document(body, e))
    return sqlite3_mprintf("malformed JSON: the body must be a JSON object");
  static const char *const top_names[2] = {"client_id", "mutations"};
  jspan whole = {p, (int)(jscan_skip(p, e) - p)}, top[2];
  jscan_fields(whole, top_names, 2, top);
  int nul = 0;
  char *msg = 0;
  if (is_type(top[0], "text")) {
    r->client_id = jscan_text(top[0], &nul);
    if (!r->client_id) return sqlite3_mprintf("out of memory");
  }
  if (!r->client_id || !*r->client_id || nul || strlen(r->client_id) > MAX_CLIENT_ID) {
    msg = sqlite3_mprintf("client_id must be a non-empty string of at most %d bytes, without NUL",
                          MAX_CLIENT_ID);
  } else if (!is_type(top[1], "array")) {
    msg = sqlite3_mprintf("mutations must be an array");
  }
  int cap = 64;
  if (!msg) {
    r->m = sqlite3_malloc64(sizeof *r->m * (sqlite3_uint64)cap);
    if (!r->m) msg = sqlite3_mprintf("out of memory");
  }
  const char *end = msg ? 0 : top[1].z + top[1].n;
  for (p = msg ? 0 : jscan_ws(top[1].z + 1, end); p && p < end && *p != ']';) {
    if (r->n == cap) {
      store_mutation *m = sqlite3_realloc64(r->m, sizeof *m * (sqlite3_uint64)cap * 2);
      if (!m) {
        msg = sqlite3_mprintf("out of memory");
        break;
      }
      r->m = m, cap *= 2;
    }
    const char *ve = jscan_skip(p, end);
    jspan v = {p, (int)(ve - p)};
    memset(&r->m[r->n], 0, sizeof r->m[r->n]);
    msg = one_mutation(v, r->n, &r->m[r->n]);
    r->n++;
    if (msg) break;
    p = jscan_ws(ve, end);
    if (p < end && *p == ',') p = jscan_ws(p + 1, end);
  }
  if (msg) push_request_free(r);
  return msg;
}
