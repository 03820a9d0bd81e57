/*
** pg_values.c: the one mapping between the protocol's values and
** PostgreSQL column types (docs/PROTOCOL.md, "PostgreSQL values"). A value
** is first read by sync_val's rules, as SQLite storage reads it (NULL,
** integer, real, text or blob; true and false are the integers 1 and 0);
** then it either has an exact value of its column's type, written as the
** text that type reads back to exactly that value, or the mutation is
** refused with a reason naming the column and its type. Nothing is ever
** stored as another type or other bytes: a blob goes only into bytea and
** bytea takes only blobs, an integer only where the type holds it exactly,
** a real keeps its bits (±Infinity and -0.0 included) or is refused.
**
** What the column's type itself may still change -- a numeric's scale, a
** char(n)'s padding, a date written another way -- is checked in SQL
** (pgsql_value): the value as stored must read back as sent.
*/
#include "pg_values.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "pg_sql.h"
#include "value.h"

/* The probe's value, as an English phrase for a refusal. */
static char *describe(sqlite3_stmt *probe) {
  sqlite3_value *v = sqlite3_column_value(probe, 0);
  switch (sqlite3_value_type(v)) {
  case SQLITE_INTEGER:
    return sqlite3_mprintf("the integer %lld", sqlite3_value_int64(v));
  case SQLITE_FLOAT: {
    sqlite3_str *s = sqlite3_str_new(0);
    sqlite3_str_appendall(s, "the real ");
    value_append_json(s, v);
    return sqlite3_str_finish(s);
  }
  case SQLITE_BLOB:
    return sqlite3_mprintf("a blob");
  default:
    return sqlite3_mprintf("a text value");
  }
}

/* The refusal of the probe's value for col. */
static dialect_result refuse(sqlite3_stmt *probe, const catalog_col *col, const char *why,
                             char **reason, char **err) {
  char *what = describe(probe);
  *reason = what ? wire_errf("column %s is %s and cannot hold %s%s", col->name,
                             col->decl ? col->decl : col->type, what, why)
                 : 0;
  sqlite3_free(what);
  if (*reason) return DIALECT_REJECTED;
  *err = wire_errf("out of memory");
  return DIALECT_FATAL;
}

/* The finite real z (as value_append_json writes it: [-]d[.d][e[+-]d]) in
** positional notation with a '.', which numeric keeps exactly and prints
** back with the '.', so that it reads back as a real again. */
static void append_positional(sqlite3_str *out, const char *z) {
  char digits[32];
  int nd = 0, point = -1;
  if (*z == '-') sqlite3_str_appendchar(out, 1, *z++);
  for (; (*z >= '0' && *z <= '9') || *z == '.'; z++) {
    if (*z == '.')
      point = nd;
    else if (nd < (int)sizeof digits)
      digits[nd++] = *z;
  }
  if (point < 0) point = nd;
  if (*z == 'e' || *z == 'E') point += atoi(z + 1);
  if (point <= 0) {
    sqlite3_str_appendall(out, "0.");
    sqlite3_str_appendchar(out, -point, '0');
    sqlite3_str_append(out, digits, nd);
  } else if (point >= nd) {
    sqlite3_str_append(out, digits, nd);
    sqlite3_str_appendchar(out, point - nd, '0');
    sqlite3_str_appendall(out, ".0");
  } else {
    sqlite3_str_append(out, digits, point);
    sqlite3_str_appendchar(out, 1, '.');
    sqlite3_str_append(out, digits + point, nd - point);
  }
}

/* Whether the integer i fits the integer kind of column. */
static int int_fits(int kind, sqlite3_int64 i) {
  return !((kind == K_INT2 && (i < -32768 || i > 32767)) ||
           (kind == K_INT4 && (i < -2147483648LL || i > 2147483647LL)) ||
           (kind == K_OID && (i < 0 || i > 4294967295LL)));
}

/* Append, as a JSON string, the text col's type reads as the probe's value
** exactly; or refuse it. */
static dialect_result map_value(sqlite3_stmt *probe, const catalog_col *col, sqlite3_str *out,
                                char **reason, char **err) {
  sqlite3_value *v = sqlite3_column_value(probe, 0);
  int type = sqlite3_value_type(v);
  if (type == SQLITE_NULL) {
    sqlite3_str_appendall(out, "null");
    return DIALECT_OK;
  }
  long long i = sqlite3_value_int64(v);
  double d = sqlite3_value_double(v);
  char *text = 0;
  switch (col->kind) {
  case K_INT2:
  case K_INT4:
  case K_INT8:
  case K_OID:
    if (type != SQLITE_INTEGER) return refuse(probe, col, "", reason, err);
    if (!int_fits(col->kind, i)) return refuse(probe, col, " (out of range)", reason, err);
    text = sqlite3_mprintf("%lld", i);
    break;
  case K_FLOAT4:
  case K_FLOAT8:
    if (type == SQLITE_INTEGER) {
      /* exact when it survives the round trip (2^63 itself does not fit) */
      double x = col->kind == K_FLOAT4 ? (double)(float)i : (double)i;
      if (x >= 9223372036854775808.0 || (long long)x != i)
        return refuse(probe, col, " exactly", reason, err);
      text = sqlite3_mprintf("%lld", i);
    } else if (type == SQLITE_FLOAT) {
      if (col->kind == K_FLOAT4 && !isinf(d) && (double)(float)d != d)
        return refuse(probe, col, " exactly", reason, err);
      if (isinf(d)) {
        text = sqlite3_mprintf("%s", d > 0 ? "Infinity" : "-Infinity");
      } else {
        sqlite3_str *s = sqlite3_str_new(0);
        value_append_json(s, v);
        text = sqlite3_str_finish(s);
      }
    } else {
      return refuse(probe, col, "", reason, err);
    }
    break;
  case K_NUMERIC:
    if (type == SQLITE_INTEGER) {
      text = sqlite3_mprintf("%lld", i);
    } else if (type == SQLITE_FLOAT) {
      if (d == 0 && signbit(d)) return refuse(probe, col, " (numeric has no -0)", reason, err);
      if (isinf(d) && col->decl)
        return refuse(probe, col, " (only an unconstrained numeric holds infinity)", reason, err);
      sqlite3_str *s = sqlite3_str_new(0);
      if (isinf(d)) {
        sqlite3_str_appendall(s, d > 0 ? "Infinity" : "-Infinity");
      } else {
        sqlite3_str *shortest = sqlite3_str_new(0);
        value_append_json(shortest, v);
        char *z = sqlite3_str_finish(shortest);
        if (z) append_positional(s, z);
        sqlite3_free(z);
      }
      text = sqlite3_str_finish(s);
    } else {
      return refuse(probe, col, "", reason, err);
    }
    break;
  case K_BOOL:
    if (type != SQLITE_INTEGER || (i != 0 && i != 1))
      return refuse(probe, col, " (only true, false, 1 and 0)", reason, err);
    text = sqlite3_mprintf("%s", i ? "true" : "false");
    break;
  case K_BYTEA: {
    if (type != SQLITE_BLOB) return refuse(probe, col, " (only a {\"$base64\"} blob)", reason, err);
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = sqlite3_value_blob(v);
    int n = sqlite3_value_bytes(v);
    sqlite3_str *s = sqlite3_str_new(0);
    sqlite3_str_appendall(s, "\\x");
    for (int k = 0; k < n; k++) {
      sqlite3_str_appendchar(s, 1, hex[p[k] >> 4]);
      sqlite3_str_appendchar(s, 1, hex[p[k] & 15]);
    }
    text = sqlite3_str_finish(s);
    break;
  }
  default: /* text-like and every other type: its input syntax */
    if (type != SQLITE_TEXT) return refuse(probe, col, "", reason, err);
    value_append_string(out, (const char *)sqlite3_value_text(v), sqlite3_value_bytes(v));
    return DIALECT_OK;
  }
  if (!text) return *err = wire_errf("out of memory"), DIALECT_FATAL;
  value_append_string(out, text, -1);
  sqlite3_free(text);
  return DIALECT_OK;
}

/* Append what map_value appends for the JSON value v of col, without the
** probe, where that is plain: null; a string without escapes into a
** text-like column (value_bind reads it as its inside, value_append_string
** writes that back as the same literal); an integer that fits 64 bits into
** an integer column it fits. 1 when appended, 0 to leave it to the probe.
** Most values of a batch are these, and the probe's bind, step and reset
** per value were a fifth of syncd's time in a drain (bench/RESULTS.md,
** "PostgreSQL drain"). */
static int append_plain(const catalog_col *col, jspan v, sqlite3_str *out) {
  sqlite3_int64 i;
  if (jscan_is(v, "null")) {
    sqlite3_str_appendall(out, "null");
    return 1;
  }
  if (v.z[0] == '"') {
    if (col->kind != K_TEXT && col->kind != K_OTHER) return 0;
    for (int k = 1; k < v.n - 1; k++)
      if (v.z[k] == '\\' || (unsigned char)v.z[k] < 0x20) return 0;
    sqlite3_str_append(out, v.z, v.n);
    return 1;
  }
  int integer =
      col->kind == K_INT2 || col->kind == K_INT4 || col->kind == K_INT8 || col->kind == K_OID;
  if (!integer || !jscan_int64(v, &i) || !int_fits(col->kind, i)) return 0;
  sqlite3_str_appendf(out, "\"%lld\"", i);
  return 1;
}

/* The column of t the member key names (the inside of its quotes), or -1;
** -2 when out of memory. */
static int column_of(const catalog_table *t, jspan key) {
  if (!memchr(key.z, '\\', key.n)) {
    for (int k = 0; k < t->n_cols; k++)
      if (jscan_is(key, t->cols[k].name)) return k;
    return -1;
  }
  int nul = 0, c = -1;
  char *name = jscan_text((jspan){key.z - 1, key.n + 2}, &nul);
  if (!name) return -2;
  for (int k = 0; c < 0 && k < t->n_cols; k++)
    if (strcmp(t->cols[k].name, name) == 0) c = k;
  sqlite3_free(name);
  return c;
}

dialect_result pgval_rewrite(sqlite3_stmt *probe, const catalog_table *t, const char *json,
                             char **out, char **reason, char **err) {
  *out = 0;
  const char *e = json + strlen(json), *z = jscan_ws(json, e);
  char *seen = sqlite3_malloc64(t->n_cols + 1);
  sqlite3_str *s = sqlite3_str_new(0);
  if (!seen)
    return sqlite3_free(sqlite3_str_finish(s)), *err = wire_errf("out of memory"), DIALECT_FATAL;
  memset(seen, 0, t->n_cols + 1);
  sqlite3_str_appendchar(s, 1, '{');
  dialect_result r = DIALECT_OK;
  jspan key, val;
  while (r == DIALECT_OK && jscan_member(&z, e, &key, &val)) {
    int c = column_of(t, key);
    if (c == -2) r = DIALECT_FATAL, *err = wire_errf("out of memory");
    /* the first member naming a column is the one push.c checked */
    if (r != DIALECT_OK || c < 0 || seen[c]) continue;
    seen[c] = 1;
    if (sqlite3_str_length(s) > 1) sqlite3_str_appendchar(s, 1, ',');
    value_append_string(s, t->cols[c].name, -1);
    sqlite3_str_appendchar(s, 1, ':');
    if (append_plain(&t->cols[c], val, s)) continue;
    const char *msg = 0;
    int rc = value_bind(probe, 1, val.z, (int)val.n, &msg);
    if (rc == SQLITE_OK) rc = sqlite3_step(probe) == SQLITE_ROW ? SQLITE_OK : SQLITE_NOMEM;
    if (rc == SQLITE_ERROR && msg) {
      r = (*reason = wire_errf("%s", msg)) ? DIALECT_REJECTED : DIALECT_FATAL;
    } else if (rc != SQLITE_OK) {
      r = DIALECT_FATAL;
    } else {
      r = map_value(probe, &t->cols[c], s, reason, err);
    }
    sqlite3_reset(probe);
    sqlite3_clear_bindings(probe);
  }
  sqlite3_free(seen);
  sqlite3_str_appendchar(s, 1, '}');
  char *z2 = sqlite3_str_finish(s);
  if (r == DIALECT_OK && z2) return *out = z2, DIALECT_OK;
  sqlite3_free(z2);
  if (r == DIALECT_FATAL && !*err) *err = wire_errf("out of memory");
  return r == DIALECT_OK ? (*err = wire_errf("out of memory"), DIALECT_FATAL) : r;
}
