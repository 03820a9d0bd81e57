/*
** wire.c: cursors, pull pages and push results as clients receive them
** (docs/PROTOCOL.md), shared by every dialect so that SQLite and
** PostgreSQL storage answer byte for byte alike. See wire.h.
*/
#include "wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "value.h"

void wire_new_db_id(char *id) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char r[12];
  sqlite3_randomness(sizeof r, r);
  for (size_t i = 0; i < sizeof r; i++)
    id[i] = alphabet[r[i] % (sizeof alphabet - 1)];
  id[sizeof r] = 0;
}

/* The decimal number at *p (advanced past it); -1 when none or too big. */
static long long number(const char **p) {
  const char *d = *p;
  if (*d < '0' || *d > '9') return -1;
  char *end;
  errno = 0;
  long long v = strtoll(d, &end, 10);
  *p = end;
  return errno ? -1 : v;
}

int wire_cursor_parse(const char *cursor, const char *db_id, long long *version, long long *snap) {
  const char *dash = strrchr(cursor, '-');
  if (!dash || dash == cursor || strlen(cursor) > 64) return STORE_BAD_CURSOR;
  for (const char *p = cursor; p < dash; p++) {
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
      return STORE_BAD_CURSOR;
  }
  const char *d = dash + 1;
  long long v = number(&d), h = 0;
  if (v >= 0 && *d == 's') d++, h = number(&d);
  if (v < 0 || h < 0 || *d) return STORE_BAD_CURSOR;
  if ((size_t)(dash - cursor) != strlen(db_id) || memcmp(cursor, db_id, dash - cursor) != 0)
    return STORE_EXPIRED;
  *version = v;
  *snap = h;
  return STORE_OK;
}

char *wire_cursor(const char *db_id, long long version) {
  return sqlite3_mprintf("%s-%lld", db_id, version);
}

/* An initial sync's continuation: "<db id>-<version>s<snapshot head>". */
static char *cursor_snap(const char *db_id, long long version, long long snap) {
  return sqlite3_mprintf("%s-%llds%lld", db_id, version, snap);
}

void wire_page_start(wire_page *p, int limit, int rejected) {
  memset(p, 0, sizeof *p);
  p->limit = limit;
  p->out = sqlite3_str_new(0);
  sqlite3_str_appendall(p->out, "{\"changes\":[");
  if (rejected) p->rejected = sqlite3_str_new(0);
}

void wire_page_change(wire_page *p, const char *table, const char *pk, const char *row,
                      long long version) {
  if (p->n_seen == p->limit) {
    p->has_more = 1;
    return;
  }
  int what =
      p->filter && !p->failed ? p->filter(p->filter_arg, table, pk, row, version) : WIRE_KEEP;
  p->n_seen++;
  p->last_version = version;
  if (what == WIRE_FAIL) p->failed = 1;
  if (what == WIRE_GONE)
    row = 0;
  else if (what != WIRE_KEEP)
    return;
  sqlite3_str *out = p->out;
  if (p->n_changes++) sqlite3_str_appendchar(out, 1, ',');
  sqlite3_str_appendall(out, "{\"table\":");
  value_append_string(out, table, -1);
  sqlite3_str_appendall(out, row ? ",\"op\":\"upsert\",\"pk\":" : ",\"op\":\"delete\",\"pk\":");
  sqlite3_str_appendall(out, pk);
  if (row) {
    sqlite3_str_appendall(out, ",\"row\":");
    sqlite3_str_appendall(out, row);
  }
  sqlite3_str_appendf(out, ",\"version\":%lld}", version);
}

void wire_page_rejected(wire_page *p, long long id, const char *reason) {
  sqlite3_str_appendf(p->rejected,
                      "%s{\"id\":%lld,\"reason\":", sqlite3_str_length(p->rejected) ? "," : "", id);
  value_append_string(p->rejected, reason ? reason : "", -1);
  sqlite3_str_appendchar(p->rejected, 1, '}');
}

void wire_page_drop(wire_page *p) {
  sqlite3_free(sqlite3_str_finish(p->out));
  sqlite3_free(sqlite3_str_finish(p->rejected));
  p->out = p->rejected = 0;
}

int wire_page_finish(wire_page *p, const char *db_id, store_page *page, char **err) {
  sqlite3_str *out = p->out;
  memset(page, 0, sizeof *page);
  page->n_changes = p->n_changes;
  page->has_more = p->has_more;
  if (p->has_more && p->snap > p->last_version)
    page->cursor = cursor_snap(db_id, p->last_version, p->snap);
  else
    page->cursor = wire_cursor(db_id, p->has_more ? p->last_version : p->head);
  sqlite3_str_appendall(out, "],\"cursor\":");
  if (page->cursor) value_append_string(out, page->cursor, -1);
  sqlite3_str_appendf(out, ",\"has_more\":%s,\"last_mutation_id\":%lld",
                      p->has_more ? "true" : "false", p->last_id);
  int bad = 0;
  if (p->rejected) {
    bad = sqlite3_str_errcode(p->rejected) != SQLITE_OK;
    int n = sqlite3_str_length(p->rejected);
    char *list = sqlite3_str_finish(p->rejected);
    sqlite3_str_appendall(out, ",\"rejected\":[");
    if (n && list) sqlite3_str_append(out, list, n);
    sqlite3_str_appendchar(out, 1, ']');
    sqlite3_free(list);
  }
  sqlite3_str_appendchar(out, 1, '}');
  bad = bad || sqlite3_str_errcode(out) != SQLITE_OK;
  page->json = sqlite3_str_finish(out);
  p->out = p->rejected = 0;
  if (bad || !page->cursor || !page->json) {
    sqlite3_free(page->json);
    sqlite3_free(page->cursor);
    memset(page, 0, sizeof *page);
    *err = wire_errf("out of memory");
    return STORE_ERROR;
  }
  return STORE_OK;
}

void wire_outcome_clear(wire_outcome *o) {
  sqlite3_free(o->reason);
  sqlite3_free(o->row);
  sqlite3_free(o->pk);
  memset(o, 0, sizeof *o);
}

char *wire_results(const store_mutation *m, const wire_outcome *res, int n) {
  sqlite3_str *out = sqlite3_str_new(0);
  sqlite3_str_appendall(out, "{\"results\":[");
  for (int i = 0; i < n; i++) {
    const wire_outcome *o = &res[i];
    sqlite3_str_appendf(out, "%s{\"id\":%lld,\"status\":", i ? "," : "", m[i].id);
    if (o->applied) {
      sqlite3_str_appendf(
          out, "\"applied\",\"row\":%s,\"version\":", o->row && !o->hidden ? o->row : "null");
      if (o->version)
        sqlite3_str_appendf(out, "%lld}", o->version);
      else
        sqlite3_str_appendall(out, "null}");
    } else {
      sqlite3_str_appendall(out, "\"rejected\",\"reason\":");
      value_append_string(out, o->reason ? o->reason : "", -1);
      sqlite3_str_appendchar(out, 1, '}');
    }
  }
  sqlite3_str_appendall(out, "]}");
  if (sqlite3_str_errcode(out) == SQLITE_OK) return sqlite3_str_finish(out);
  sqlite3_free(sqlite3_str_finish(out));
  return 0;
}

char *wire_errf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *z = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  return z;
}
