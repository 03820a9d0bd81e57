/*
** store.c: cursor format and JSON page building shared by store_sqlite.c
** and store_pg.c, so both storages speak exactly the same protocol.
*/
#include "wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "value.h"

void store_page_clear(store_page *page) {
  sqlite3_free(page->json);
  sqlite3_free(page->cursor);
  memset(page, 0, sizeof *page);
}

void store_new_db_id(char *id) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char r[12];
  sqlite3_randomness(sizeof r, r);
  for (size_t i = 0; i < sizeof r; i++)
    id[i] = alphabet[r[i] % (sizeof alphabet - 1)];
  id[sizeof r] = 0;
}

int store_cursor_parse(const char *cursor, const char *db_id, long long *version) {
  const char *dash = strrchr(cursor, '-');
  if (!dash || dash == cursor || strlen(cursor) > 64) return STORE_BAD_CURSOR;
  for (const char *p = cursor; p < dash; p++) {
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
      return STORE_BAD_CURSOR;
  }
  const char *d = dash + 1;
  if (*d < '0' || *d > '9') return STORE_BAD_CURSOR;
  for (const char *p = d; *p; p++) {
    if (*p < '0' || *p > '9') return STORE_BAD_CURSOR;
  }
  errno = 0;
  long long v = strtoll(d, 0, 10);
  if (errno) return STORE_BAD_CURSOR;
  if ((size_t)(dash - cursor) != strlen(db_id) || memcmp(cursor, db_id, dash - cursor) != 0)
    return STORE_EXPIRED;
  *version = v;
  return STORE_OK;
}

char *store_cursor_format(const char *db_id, long long version) {
  return sqlite3_mprintf("%s-%lld", db_id, version);
}

void store_append_change(sqlite3_str *out, const char *table, const char *pk, const char *row,
                         long long version) {
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

void store_append_rejected(sqlite3_str *rejected, long long id, const char *reason) {
  sqlite3_str_appendf(rejected,
                      "%s{\"id\":%lld,\"reason\":", sqlite3_str_length(rejected) ? "," : "", id);
  value_append_string(rejected, reason ? reason : "", -1);
  sqlite3_str_appendchar(rejected, 1, '}');
}

int store_page_finish(sqlite3_str *out, store_page *page, const char *db_id, long long cursor,
                      long long last_id, sqlite3_str *rejected, char **err) {
  page->cursor = store_cursor_format(db_id, cursor);
  sqlite3_str_appendall(out, "],\"cursor\":");
  if (page->cursor) value_append_string(out, page->cursor, -1);
  sqlite3_str_appendf(out, ",\"has_more\":%s,\"last_mutation_id\":%lld",
                      page->has_more ? "true" : "false", last_id);
  int bad = 0;
  if (rejected) {
    bad = sqlite3_str_errcode(rejected) != SQLITE_OK;
    int n = sqlite3_str_length(rejected);
    char *list = sqlite3_str_finish(rejected);
    sqlite3_str_appendall(out, ",\"rejected\":[");
    if (n && list) sqlite3_str_append(out, list, n);
    sqlite3_str_appendchar(out, 1, ']');
    sqlite3_free(list);
  }
  sqlite3_str_appendchar(out, 1, '}');
  bad = bad || sqlite3_str_errcode(out) != SQLITE_OK;
  page->json = sqlite3_str_finish(out);
  if (bad || !page->cursor || !page->json) {
    store_page_clear(page);
    *err = store_errf("out of memory");
    return STORE_ERROR;
  }
  return STORE_OK;
}

void store_outcome_clear(store_outcome *o) {
  sqlite3_free(o->reason);
  sqlite3_free(o->row);
  sqlite3_free(o->pk);
  memset(o, 0, sizeof *o);
}

static int cmp_by_id(const void *a, const void *b, void *arg) {
  const store_mutation *m = arg;
  long long x = m[*(const int *)a].id, y = m[*(const int *)b].id;
  if (x != y) return x < y ? -1 : 1;
  return *(const int *)a - *(const int *)b;
}

void store_order_by_id(const store_mutation *m, int n, int *order) {
  for (int i = 0; i < n; i++)
    order[i] = i;
  qsort_r(order, n, sizeof *order, cmp_by_id, (void *)m);
}

char *store_results_json(const store_mutation *m, const store_outcome *res, int n) {
  sqlite3_str *out = sqlite3_str_new(0);
  sqlite3_str_appendall(out, "{\"results\":[");
  for (int i = 0; i < n; i++) {
    const store_outcome *o = &res[i];
    sqlite3_str_appendf(out, "%s{\"id\":%lld,\"status\":", i ? "," : "", m[i].id);
    if (o->applied) {
      sqlite3_str_appendf(out, "\"applied\",\"row\":%s,\"version\":", o->row ? o->row : "null");
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

char *store_errf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *z = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  return z;
}
