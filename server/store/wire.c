/*
** wire.c: cursors, pull pages and push results as clients receive them
** (docs/PROTOCOL.md), shared by every dialect so that SQLite and
** PostgreSQL storage answer byte for byte alike. See wire.h.
*/
#include "wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "jscan.h"
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

/* The text hex digits z[0..n) spell (n even, no NUL byte), or NULL with
** *bad (malformed) or without (out of memory). */
static char *unhex(const char *z, size_t n, int *bad) {
  static const char digits[] = "0123456789abcdef";
  *bad = n % 2 != 0 || n == 0;
  char *out = *bad ? 0 : sqlite3_malloc64(n / 2 + 1);
  for (size_t i = 0; out && i < n; i += 2) {
    const char *hi = memchr(digits, z[i], 16), *lo = memchr(digits, z[i + 1], 16);
    if (!z[i] || !z[i + 1] || !hi || !lo || (hi == digits && lo == digits)) {
      *bad = 1;
      break;
    }
    out[i / 2] = (char)((hi - digits) << 4 | (lo - digits));
  }
  if (out && *bad) sqlite3_free(out), out = 0;
  if (out) out[n / 2] = 0;
  return out;
}

int wire_key_hash(const char *pk, char *out) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!EVP_Digest(pk, strlen(pk), md, &n, EVP_sha256(), 0) || n * 2 < WIRE_HASH_HEX) return -1;
  for (int i = 0; i < WIRE_HASH_HEX / 2; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
  return 0;
}

/* The length of a reference "v<version>h<hash>" at z[0..n) (wire.h,
** WIRE_WALK_MAX), 0 when z is none; its version into *version and its
** hash into hash (WIRE_HASH_HEX + 1 bytes) when not NULL. */
static size_t key_ref(const char *z, size_t n, long long *version, char *hash) {
  const char *d = z + 1;
  if (n < 2 || *z != 'v' || d[0] < '1' || d[0] > '9') return 0;
  long long v = number(&d);
  size_t at = (size_t)(d - z);
  if (v <= 0 || at + 1 + WIRE_HASH_HEX != n || *d != 'h') return 0;
  for (size_t i = at + 1; i < n; i++)
    if (!((z[i] >= '0' && z[i] <= '9') || (z[i] >= 'a' && z[i] <= 'f'))) return 0;
  if (version) *version = v;
  if (hash) memcpy(hash, d + 1, WIRE_HASH_HEX), hash[WIRE_HASH_HEX] = 0;
  return n;
}

int wire_key_ref(const char *pk, long long *version, char *hash) {
  return pk && key_ref(pk, strlen(pk), version, hash) != 0;
}

/* "<hex name>.<hex pk JSON>" at z, up to end, or "<hex name>.<reference>"
** (wire.h), into *table and *pk (sqlite3_malloc'd; the reference as
** written): STORE_OK, STORE_BAD_CURSOR or STORE_ERROR (out of memory),
** both NULL unless STORE_OK. */
static int position(const char *z, const char *end, char **table, char **pk) {
  const char *dot = memchr(z, '.', (size_t)(end - z));
  int bad = !dot;
  *table = *pk = 0;
  if (!bad) *table = unhex(z, (size_t)(dot - z), &bad);
  size_t ref = !bad && *table ? key_ref(dot + 1, (size_t)(end - dot - 1), 0, 0) : 0;
  if (ref) {
    *pk = sqlite3_mprintf("%.*s", (int)ref, dot + 1);
    if (*pk) return STORE_OK;
  } else if (!bad && *table) {
    *pk = unhex(dot + 1, (size_t)(end - dot - 1), &bad);
  }
  /* the key as the store printed it: a JSON object (a crafted one is
  ** still only a position, judged by the page query like any other) */
  if (!bad && *pk && (**pk != '{' || !jscan_document(*pk, *pk + strlen(*pk)))) bad = 1;
  if (!bad && *table && *pk) return STORE_OK;
  sqlite3_free(*table);
  sqlite3_free(*pk);
  *table = *pk = 0;
  return bad ? STORE_BAD_CURSOR : STORE_ERROR;
}

int wire_cursor_parse_walk(const char *cursor, const char *db_id, long long *version,
                           long long *snap, char **table, char **pk, char **in_table, char **in_pk,
                           long long *from, int *out) {
  if (table) *table = *pk = 0;
  if (out) *out = 0;
  if (from) *from = -1;
  if (in_table) *in_table = *in_pk = 0;
  const char *dash = strrchr(cursor, '-');
  size_t len = strlen(cursor);
  if (!dash || dash == cursor || len > 64 + 4 * (WIRE_WALK_MAX + 1)) return STORE_BAD_CURSOR;
  for (const char *p = cursor; p < dash; p++) {
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
      return STORE_BAD_CURSOR;
  }
  const char *d = dash + 1;
  long long v = number(&d), h = 0;
  const char *walk = v >= 0 && *d == 'w' ? d + 1 : 0;
  const char *in = v >= 0 && (*d == 'i' || *d == 'o') ? d + 1 : 0;
  if (in && out) *out = *d == 'o';
  long long f = -1;
  if (v >= 0 && *d == 's')
    d++, h = number(&d);
  else if (v >= 0 && *d == 'f' && (d++, (f = number(&d)) < 0))
    return STORE_BAD_CURSOR;
  if (walk) h = v;
  if (walk || in) d += strlen(d);
  if (v < 0 || h < 0 || *d || (!walk && !in && len > 64)) return STORE_BAD_CURSOR;
  if ((size_t)(dash - cursor) != strlen(db_id) || memcmp(cursor, db_id, dash - cursor) != 0)
    return STORE_EXPIRED;
  int rc = STORE_OK;
  if (walk && table) rc = position(walk, d, table, pk);
  if (in && in_table) {
    /* the membership row, then the walk's position when it has one */
    const char *dot = strchr(in, '.'), *at = dot ? strchr(dot + 1, '.') : 0;
    rc = position(in, at ? at : d, in_table, in_pk);
    if (rc == STORE_OK && at && table) rc = position(at + 1, d, table, pk);
    if (rc != STORE_OK) {
      sqlite3_free(*in_table);
      sqlite3_free(*in_pk);
      *in_table = *in_pk = 0;
    }
  }
  if (rc != STORE_OK) return rc;
  *version = v;
  *snap = h;
  if (from) *from = f;
  return STORE_OK;
}

int wire_cursor_parse(const char *cursor, const char *db_id, long long *version, long long *snap) {
  return wire_cursor_parse_walk(cursor, db_id, version, snap, 0, 0, 0, 0, 0, 0);
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
  p->from = -1;
  p->out = sqlite3_str_new(0);
  sqlite3_str_appendall(p->out, "{\"changes\":[");
  if (rejected) p->rejected = sqlite3_str_new(0);
}

void wire_page_change(wire_page *p, const char *table, const char *pk, const char *row,
                      long long version) {
  if (p->n_seen >= p->limit) {
    p->has_more = 1;
    return;
  }
  int what =
      p->filter && !p->failed ? p->filter(p->filter_arg, table, pk, row, version) : WIRE_KEEP;
  if (what == WIRE_STOP) {
    p->has_more = 1;
    p->limit = p->n_seen;
    return;
  }
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

void wire_page_walk_start(wire_page *p) {
  p->walk = 1;
}

void wire_page_walk_end(wire_page *p, long long snap) {
  sqlite3_free(p->walk_at);
  sqlite3_free(p->in_table);
  sqlite3_free(p->in_pk);
  p->walk_at = p->in_table = p->in_pk = 0;
  p->walk = p->walk_size = p->in_out = 0;
  p->walk_version = 0;
  sqlite3_free(sqlite3_str_finish(p->walk_skip));
  p->walk_skip = 0;
  p->walk_skipped = 0;
  p->last_version = snap;
}

int wire_page_walk_table(wire_page *p, wire_walk_query *query, void *conn, const void *walk,
                         const char *after, char **err) {
  char *again = 0;
  int rc = 0;
  for (;;) {
    int lim = p->limit + 1 - p->n_seen, n = 0;
    if ((rc = query(conn, walk, after, lim, p, &n, err)) || p->has_more || n < lim) break;
    sqlite3_free(again);
    const char *last = wire_page_walk_last(p);
    if (!last || !(again = sqlite3_mprintf("%s", last))) {
      *err = wire_errf("out of memory");
      rc = -1;
      break;
    }
    after = again;
  }
  sqlite3_free(again);
  return rc;
}

void wire_page_walk_restart(wire_page *p) {
  sqlite3_free(p->walk_at);
  p->walk_at = 0;
  p->walk_size = p->walk_bad = 0;
  p->walk_version = 0;
  p->walk_skipped = 0;
}

int wire_page_move_in(wire_page *p, const char *table, const char *pk, long long version,
                      const wire_page *walked, int out) {
  p->in_out = out;
  p->in_table = sqlite3_mprintf("%s", table);
  p->in_pk = sqlite3_mprintf("%s", pk);
  p->in_version = version;
  if (walked != p && walked->walk_at && !walked->walk_bad) {
    sqlite3_free(p->walk_at);
    p->walk_at = sqlite3_malloc64((size_t)walked->walk_size);
    if (p->walk_at) memcpy(p->walk_at, walked->walk_at, (size_t)walked->walk_size);
    p->walk_size = walked->walk_size;
    p->walk_version = walked->walk_version;
  }
  p->walk_bad = walked->walk_bad;
  return p->in_table && p->in_pk && (p->walk_at || !walked->walk_at) ? 0 : -1;
}

void wire_page_walk(wire_page *p, const char *table, const char *pk, const char *row,
                    long long version) {
  if (p->n_seen >= p->limit) {
    p->has_more = 1;
    return;
  }
  /* the position, into a buffer grown as needed (not one allocation a row);
  ** a key too long for the cursor is named there by its change's version,
  ** and one without any (written behind syncd, never logged) is passed
  ** over uncounted, so that no page ends on it */
  size_t nt = strlen(table) + 1, np = strlen(pk) + 1;
  p->walk_skipped = version <= 0 && nt + np - 2 > WIRE_WALK_MAX;
  if (p->walk_skipped) {
    if (!p->walk_skip) p->walk_skip = sqlite3_str_new(0);
    sqlite3_str_reset(p->walk_skip);
    sqlite3_str_appendall(p->walk_skip, pk);
    p->walk_bad |= sqlite3_str_errcode(p->walk_skip) != SQLITE_OK;
    return;
  }
  p->n_seen++;
  p->walk_bad = 0;
  p->walk_version = version;
  if (nt + np > (size_t)p->walk_size) {
    char *at = nt + np <= 0x7fffffff ? sqlite3_realloc64(p->walk_at, nt + np) : 0;
    if (at)
      p->walk_at = at, p->walk_size = (int)(nt + np);
    else
      p->walk_bad = 1;
  }
  if (!p->walk_bad) memcpy(p->walk_at, table, nt), memcpy(p->walk_at + nt, pk, np);
  /* sent at the head of the snapshot that read it (or of one before it):
  ** the client compares versions of one key only (the image it keeps with
  ** the changes that follow), and a change of the key at or below that
  ** head is this row or an older one, one above it as new or newer
  ** (docs/RULES.md, "Initial sync") */
  p->last_version = p->head;
  sqlite3_str *out = p->out;
  if (p->n_changes++) sqlite3_str_appendchar(out, 1, ',');
  sqlite3_str_appendall(out, "{\"table\":");
  value_append_string(out, table, -1);
  if (p->gone) {
    sqlite3_str_appendf(out, ",\"op\":\"delete\",\"pk\":%s,\"version\":%lld}", pk, p->gone);
    return;
  }
  sqlite3_str_appendall(out, ",\"op\":\"upsert\",\"pk\":");
  sqlite3_str_appendall(out, pk);
  sqlite3_str_appendall(out, ",\"row\":");
  sqlite3_str_appendall(out, row);
  sqlite3_str_appendf(out, ",\"version\":%lld}", p->head);
}

const char *wire_page_walk_last(const wire_page *p) {
  if (p->walk_skipped) return p->walk_bad ? 0 : sqlite3_str_value(p->walk_skip);
  return p->walk_at ? p->walk_at + strlen(p->walk_at) + 1 : 0;
}

static void append_hex(sqlite3_str *s, const char *z) {
  for (const unsigned char *c = (const unsigned char *)z; *c; c++)
    sqlite3_str_appendf(s, "%02x", *c);
}

/* Whether the key pk of table, its change at version, can go into a
** cursor: as its hex, or by reference when too long (wire.h). */
static int key_fits(const char *table, const char *pk, long long version) {
  size_t nt = strlen(table);
  return nt <= WIRE_WALK_MAX && (nt + strlen(pk) <= WIRE_WALK_MAX || version > 0);
}

/* "<hex table>.<hex pk>", or "<hex table>.v<version>h<hash>" for a key too
** long for a cursor (key_fits first). 0, or -1 when out of memory. */
static int append_position(sqlite3_str *s, const char *table, const char *pk, long long version) {
  append_hex(s, table);
  sqlite3_str_appendchar(s, 1, '.');
  char hash[WIRE_HASH_HEX + 1];
  if (strlen(table) + strlen(pk) <= WIRE_WALK_MAX)
    append_hex(s, pk);
  else if (wire_key_hash(pk, hash) == 0)
    sqlite3_str_appendf(s, "v%lldh%s", version, hash);
  else
    return -1;
  return 0;
}

/* "<db id>-<snap>w<position>": p's walk goes on after its position; or,
** for a move-in (p->in_table), "<db id>-<version>i<position>" of the
** membership row, then ".<position>" when there is one. NULL when out of
** memory or (*too_long) a table's name is too long for a cursor (a long key
** with no change in the log to name it by is never a page's last row:
** wire_page_walk passes it over). */
static char *cursor_walk(const char *db_id, const wire_page *p, int *too_long) {
  const char *at = p->walk_at ? p->walk_at + strlen(p->walk_at) + 1 : 0;
  *too_long = (at && !p->walk_bad && !key_fits(p->walk_at, at, p->walk_version)) ||
              (p->in_table && !key_fits(p->in_table, p->in_pk, p->in_version));
  if (*too_long || p->walk_bad || (!p->walk_at && !p->in_table)) return 0;
  sqlite3_str *s = sqlite3_str_new(0);
  int bad = 0;
  if (p->in_table) {
    sqlite3_str_appendf(s, "%s-%lld%c", db_id, p->in_version, p->in_out ? 'o' : 'i');
    bad = append_position(s, p->in_table, p->in_pk, p->in_version);
    if (p->walk_at) sqlite3_str_appendchar(s, 1, '.');
  } else {
    sqlite3_str_appendf(s, "%s-%lldw", db_id, p->snap);
  }
  if (p->walk_at && !bad) bad = append_position(s, p->walk_at, at, p->walk_version);
  char *z = sqlite3_str_finish(s);
  if (bad) sqlite3_free(z), z = 0;
  return z;
}

void wire_page_take(wire_page *p, const wire_page *from) {
  static const char head[] = "{\"changes\":[";
  p->n_seen += from->n_seen;
  if (!from->n_changes) return;
  if (p->n_changes) sqlite3_str_appendchar(p->out, 1, ',');
  sqlite3_str_appendall(p->out, sqlite3_str_value(from->out) + sizeof head - 1);
  p->n_changes += from->n_changes;
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
  wire_page_walk_end(p, 0);
}

int wire_page_finish(wire_page *p, const char *db_id, store_page *page, char **err) {
  sqlite3_str *out = p->out;
  memset(page, 0, sizeof *page);
  page->n_changes = p->n_changes;
  page->has_more = p->has_more;
  int too_long = 0;
  if ((p->walk || p->in_table) && p->has_more)
    page->cursor = cursor_walk(db_id, p, &too_long);
  else if (p->has_more && p->snap > p->last_version)
    page->cursor = cursor_snap(db_id, p->last_version, p->snap);
  else if (p->has_more && p->from >= 0)
    page->cursor = sqlite3_mprintf("%s-%lldf%lld", db_id, p->last_version, p->from);
  else
    page->cursor = wire_cursor(db_id, p->has_more ? p->last_version : p->head);
  sqlite3_str_appendall(out, "],\"cursor\":");
  if (page->cursor) value_append_string(out, page->cursor, -1);
  sqlite3_str_appendf(out,
                      ",\"has_more\":%s,\"last_mutation_id\":", p->has_more ? "true" : "false");
  page->last_at = sqlite3_str_length(out);
  page->last_id = p->last_id;
  sqlite3_str_appendf(out, "%lld", p->last_id);
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
  wire_page_walk_end(p, 0);
  if (bad || !page->cursor || !page->json) {
    sqlite3_free(page->json);
    sqlite3_free(page->cursor);
    memset(page, 0, sizeof *page);
    /* a position a cursor cannot name: a table's name of kilobytes */
    *err = too_long ? wire_errf("wire_page_finish: a walk under rules ends on a row of a table"
                                " whose name takes more than %d bytes, too long for a cursor"
                                " (docs/RULES.md)",
                                WIRE_WALK_MAX)
                    : wire_errf("out of memory");
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
