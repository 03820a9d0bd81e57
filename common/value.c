/*
** value.c: exact SQLite value <-> JSON conversion.
**
** Printing goes through value_append_*; reading goes through SQLite's own
** JSON functions (which keep 64-bit integers exact) with one helper for the
** cases they cannot do, registered as:
**
**   SELECT sync_val('{"a":1.5}' -> '$.a');          -- 1.5 (REAL)
**   SELECT sync_val('{"$base64":"AP8="}');          -- x'00ff' (BLOB)
**   SELECT sync_val('"caf\u00e9"');                 -- 'café' (TEXT)
**
** sync_val exists because SQLite's ->> gives no BLOB and because a REAL read
** by some SQLite versions is not correctly rounded; strtod is.
*/
#include "value.h"

#include <errno.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Number formatting must not follow the host's LC_NUMERIC (a host that set a
** locale with a decimal comma would otherwise corrupt every REAL). */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void c_locale_init(void) {
  c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}
static locale_t value_c_locale(void) {
  pthread_once(&c_locale_once, c_locale_init);
  return c_locale;
}

static double value_strtod(const char *z, char **end) {
  locale_t loc = value_c_locale();
  return loc ? strtod_l(z, end, loc) : strtod(z, end);
}

double value_atof(const char *z) {
  return value_strtod(z, 0);
}

/* The shortest of %.15g, %.16g and %.17g that reads back to r's very bits
** (-0.0 included): a decimal of 15 digits or fewer always survives the trip
** through a double, so when one reads back to r, %.15g finds it. Subnormals
** hold fewer digits: 5e-324 needs only one, so they start from %.1g. */
static void value_append_real(sqlite3_str *out, double r) {
  char buf[40];
  if (isnan(r)) {
    sqlite3_str_appendall(out, "null");
    return;
  }
  if (isinf(r)) {
    sqlite3_str_appendall(out, r > 0 ? "1e999" : "-1e999");
    return;
  }
  locale_t loc = value_c_locale(), old = loc ? uselocale(loc) : (locale_t)0;
  for (int prec = fabs(r) < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, r);
    double back = strtod(buf, 0);
    if (memcmp(&back, &r, sizeof r) == 0) break;
  }
  if (loc) uselocale(old);
  sqlite3_str_appendall(out, buf);
  /* "100" would read back as INTEGER: keep the REAL type visible. */
  if (strpbrk(buf, ".eEn") == 0) sqlite3_str_appendall(out, ".0");
}

void value_append_string(sqlite3_str *out, const char *z, int n) {
  static const char hex[] = "0123456789abcdef";
  if (n < 0) n = (int)strlen(z);
  sqlite3_str_appendchar(out, 1, '"');
  int start = 0;
  for (int i = 0; i < n; i++) {
    unsigned char c = (unsigned char)z[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if (i > start) sqlite3_str_append(out, z + start, i - start);
    start = i + 1;
    switch (c) {
    case '"':
      sqlite3_str_append(out, "\\\"", 2);
      break;
    case '\\':
      sqlite3_str_append(out, "\\\\", 2);
      break;
    case '\n':
      sqlite3_str_append(out, "\\n", 2);
      break;
    case '\r':
      sqlite3_str_append(out, "\\r", 2);
      break;
    case '\t':
      sqlite3_str_append(out, "\\t", 2);
      break;
    default: {
      char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      sqlite3_str_append(out, u, 6);
    }
    }
  }
  if (n > start) sqlite3_str_append(out, z + start, n - start);
  sqlite3_str_appendchar(out, 1, '"');
}

static void value_append_base64(sqlite3_str *out, const unsigned char *p, int n) {
  char q[4];
  for (int i = 0; i < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16;
    if (i + 1 < n) v |= (unsigned)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    q[0] = b64chars[(v >> 18) & 63];
    q[1] = b64chars[(v >> 12) & 63];
    q[2] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
    q[3] = i + 2 < n ? b64chars[v & 63] : '=';
    sqlite3_str_append(out, q, 4);
  }
}

static void value_append_blob(sqlite3_str *out, const void *p, int n) {
  sqlite3_str_appendall(out, "{\"$base64\":\"");
  value_append_base64(out, p, n);
  sqlite3_str_appendall(out, "\"}");
}

void value_append_json(sqlite3_str *out, sqlite3_value *v) {
  switch (sqlite3_value_type(v)) {
  case SQLITE_INTEGER:
    sqlite3_str_appendf(out, "%lld", sqlite3_value_int64(v));
    break;
  case SQLITE_FLOAT:
    value_append_real(out, sqlite3_value_double(v));
    break;
  case SQLITE_TEXT: {
    const char *z = (const char *)sqlite3_value_text(v);
    value_append_string(out, z, sqlite3_value_bytes(v));
    break;
  }
  case SQLITE_BLOB: {
    const void *p = sqlite3_value_blob(v);
    value_append_blob(out, p, sqlite3_value_bytes(v));
    break;
  }
  default:
    sqlite3_str_appendall(out, "null");
  }
}

void value_append_column(sqlite3_str *out, sqlite3_stmt *stmt, int iCol) {
  switch (sqlite3_column_type(stmt, iCol)) {
  case SQLITE_INTEGER:
    sqlite3_str_appendf(out, "%lld", sqlite3_column_int64(stmt, iCol));
    break;
  case SQLITE_FLOAT:
    value_append_real(out, sqlite3_column_double(stmt, iCol));
    break;
  case SQLITE_TEXT: {
    const char *z = (const char *)sqlite3_column_text(stmt, iCol);
    value_append_string(out, z, sqlite3_column_bytes(stmt, iCol));
    break;
  }
  case SQLITE_BLOB: {
    const void *p = sqlite3_column_blob(stmt, iCol);
    value_append_blob(out, p, sqlite3_column_bytes(stmt, iCol));
    break;
  }
  default:
    sqlite3_str_appendall(out, "null");
  }
}

void value_append_row(sqlite3_str *out, sqlite3_stmt *stmt) {
  int n = sqlite3_column_count(stmt);
  sqlite3_str_appendchar(out, 1, '{');
  for (int i = 0; i < n; i++) {
    if (i) sqlite3_str_appendchar(out, 1, ',');
    value_append_string(out, sqlite3_column_name(stmt, i), -1);
    sqlite3_str_appendchar(out, 1, ':');
    value_append_column(out, stmt, i);
  }
  sqlite3_str_appendchar(out, 1, '}');
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int b64val(int c) {
  const char *p = c ? strchr(b64chars, c) : 0;
  return p ? (int)(p - b64chars) : -1;
}

/* Copies the number token z[0..n) to out, a REAL one (with a '.' or an
** exponent) in value_append_real's form: the capture triggers print every
** REAL with 17 digits (SQL has no shortest form), 0.1 as 0.10000000000000001.
** An integer is copied as it is: it must stay exact. */
static void wire_number(sqlite3_str *out, const char *z, int n) {
  char buf[64];
  char *end = 0;
  int real = memchr(z, '.', n) || memchr(z, 'e', n) || memchr(z, 'E', n);
  if (real && n < (int)sizeof buf) {
    memcpy(buf, z, n);
    buf[n] = 0;
    double r = value_strtod(buf, &end);
    if (end == buf + n) {
      value_append_real(out, r);
      return;
    }
  }
  sqlite3_str_append(out, z, n);
}

void value_append_wire(sqlite3_str *out, const char *z, int n) {
  static const char marker[] = "{\"$hex\":\"";
  const int m = (int)sizeof marker - 1;
  int start = 0, i = 0;
  while (i < n) {
    if (z[i] == '"') {
      for (i++; i < n && z[i] != '"'; i++)
        if (z[i] == '\\') i++;
      i++;
      continue;
    }
    if (z[i] == '-' || (z[i] >= '0' && z[i] <= '9')) {
      int j = i;
      while (j < n && z[j] && strchr("+-.0123456789eE", z[j]))
        j++;
      sqlite3_str_append(out, z + start, i - start);
      wire_number(out, z + i, j - i);
      start = i = j;
      continue;
    }
    if (i == 0 || z[i] != '{' || i + m > n || memcmp(z + i, marker, m) != 0) {
      i++;
      continue;
    }
    int j = i + m, end = j;
    while (end < n && hexval((unsigned char)z[end]) >= 0)
      end++;
    if (end + 1 >= n || z[end] != '"' || z[end + 1] != '}' || (end - j) % 2) {
      i++;
      continue;
    }
    sqlite3_str_append(out, z + start, i - start);
    sqlite3_str_appendall(out, "{\"$base64\":\"");
    unsigned char buf[3];
    int nb = 0;
    for (int k = j; k < end; k += 2) {
      buf[nb++] =
          (unsigned char)(hexval((unsigned char)z[k]) << 4 | hexval((unsigned char)z[k + 1]));
      if (nb == 3) {
        value_append_base64(out, buf, 3);
        nb = 0;
      }
    }
    if (nb) value_append_base64(out, buf, nb);
    sqlite3_str_appendall(out, "\"}");
    start = i = end + 2;
  }
  sqlite3_str_append(out, z + start, n - start);
}

/* ---- sync_val: one JSON value to an SQLite value ---- */

static const char *skip_ws(const char *z, const char *end) {
  while (z < end && (*z == ' ' || *z == '\t' || *z == '\n' || *z == '\r'))
    z++;
  return z;
}

/* Decode the JSON string literal starting at *pz (on the quote) into out.
** Returns 0 and advances *pz past the closing quote, or -1 if malformed. */
static int json_unescape(const char **pz, const char *end, sqlite3_str *out) {
  const char *z = *pz + 1, *run = z;
  while (z < end && *z != '"') {
    if ((unsigned char)*z < 0x20) return -1;
    if (*z != '\\') {
      z++;
      continue;
    }
    sqlite3_str_append(out, run, (int)(z - run));
    if (++z >= end) return -1;
    char c = *z++;
    switch (c) {
    case '"':
    case '\\':
    case '/':
      sqlite3_str_appendchar(out, 1, c);
      break;
    case 'b':
      sqlite3_str_appendchar(out, 1, '\b');
      break;
    case 'f':
      sqlite3_str_appendchar(out, 1, '\f');
      break;
    case 'n':
      sqlite3_str_appendchar(out, 1, '\n');
      break;
    case 'r':
      sqlite3_str_appendchar(out, 1, '\r');
      break;
    case 't':
      sqlite3_str_appendchar(out, 1, '\t');
      break;
    case 'u': {
      unsigned cp = 0;
      for (int k = 0; k < 4; k++) {
        int h = z < end ? hexval((unsigned char)*z++) : -1;
        if (h < 0) return -1;
        cp = cp << 4 | (unsigned)h;
      }
      if (cp >= 0xD800 && cp <= 0xDBFF && end - z >= 6 && z[0] == '\\' && z[1] == 'u') {
        unsigned lo = 0;
        int ok = 1;
        for (int k = 2; k < 6; k++) {
          int h = hexval((unsigned char)z[k]);
          if (h < 0) ok = 0;
          lo = lo << 4 | (unsigned)(h < 0 ? 0 : h);
        }
        if (ok && lo >= 0xDC00 && lo <= 0xDFFF) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          z += 6;
        }
      }
      char u[4];
      int nu;
      if (cp < 0x80) {
        u[0] = (char)cp, nu = 1;
      } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 63)), nu = 2;
      } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 63));
        u[2] = (char)(0x80 | (cp & 63)), nu = 3;
      } else {
        u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 63));
        u[2] = (char)(0x80 | ((cp >> 6) & 63)), u[3] = (char)(0x80 | (cp & 63)), nu = 4;
      }
      sqlite3_str_append(out, u, nu);
      break;
    }
    default:
      return -1;
    }
    run = z;
  }
  if (z >= end) return -1;
  sqlite3_str_append(out, run, (int)(z - run));
  *pz = z + 1;
  return 0;
}

/* Where sync_val and value_bind put the value they read: the function's
** result or a statement's parameter. Each setter returns an SQLite code. */
typedef struct ValDst {
  sqlite3_context *ctx;
  sqlite3_stmt *stmt;
  int idx;
  int inPlace; /* a string without escapes may point into the input */
} ValDst;

static int dst_null(ValDst *d) {
  return d->stmt ? sqlite3_bind_null(d->stmt, d->idx) : SQLITE_OK;
}
static int dst_int(ValDst *d, sqlite3_int64 v) {
  if (d->stmt) return sqlite3_bind_int64(d->stmt, d->idx, v);
  sqlite3_result_int64(d->ctx, v);
  return SQLITE_OK;
}
static int dst_double(ValDst *d, double v) {
  if (d->stmt) return sqlite3_bind_double(d->stmt, d->idx, v);
  sqlite3_result_double(d->ctx, v);
  return SQLITE_OK;
}
static int dst_text(ValDst *d, const char *z, int n, void (*del)(void *)) {
  if (d->stmt) return sqlite3_bind_text(d->stmt, d->idx, z, n, del);
  sqlite3_result_text(d->ctx, z, n, del);
  return SQLITE_OK;
}
static int dst_blob(ValDst *d, void *p, int n) {
  if (d->stmt) return sqlite3_bind_blob(d->stmt, d->idx, p, n, sqlite3_free);
  sqlite3_result_blob(d->ctx, p, n, sqlite3_free);
  return SQLITE_OK;
}

/* What val_read found wrong, as sync_val's error message. */
enum { VAL_OK, VAL_BAD_STRING, VAL_BAD_BLOB, VAL_BAD_NUMBER, VAL_NOMEM };
static const char *const val_msg[] = {0, "sync_val: malformed JSON string",
                                      "sync_val: malformed base64 or hex BLOB",
                                      "sync_val: malformed JSON value"};

/* {"$base64":"..."} or {"$hex":"..."}: set the BLOB and return 1; any other
** object returns 0; a marker with a bad payload returns -1, no memory -2. */
static int val_blob(ValDst *d, const char *z, const char *end) {
  z = skip_ws(z + 1, end);
  int isB64;
  if (end - z > 10 && memcmp(z, "\"$base64\"", 9) == 0) {
    isB64 = 1, z += 9;
  } else if (end - z > 7 && memcmp(z, "\"$hex\"", 6) == 0) {
    isB64 = 0, z += 6;
  } else {
    return 0;
  }
  z = skip_ws(z, end);
  if (z >= end || *z != ':') return 0;
  z = skip_ws(z + 1, end);
  if (z >= end || *z != '"') return 0;
  const char *s = ++z;
  while (z < end && *z != '"')
    z++;
  const char *e = z;
  z = skip_ws(z + 1, end);
  if (e >= end || z >= end || *z != '}' || skip_ws(z + 1, end) != end) return 0;
  int n = (int)(e - s);
  /* base64 gives 3 bytes per 4 characters, hex 1 per 2: size for base64. */
  unsigned char *buf = sqlite3_malloc64((sqlite3_uint64)n * 3 / 4 + 3);
  if (!buf) return -2;
  int nb = 0;
  if (isB64) {
    unsigned acc = 0;
    int bits = 0, pad = 0;
    for (const char *p = s; p < e; p++) {
      if (*p == '=') {
        pad++;
        continue;
      }
      int v = b64val((unsigned char)*p);
      if (v < 0 || pad) goto bad;
      acc = acc << 6 | (unsigned)v, bits += 6;
      if (bits >= 8) bits -= 8, buf[nb++] = (unsigned char)(acc >> bits);
    }
    if (pad > 2 || bits >= 6) goto bad;
  } else {
    if (n % 2) goto bad;
    for (const char *p = s; p < e; p += 2) {
      int hi = hexval((unsigned char)p[0]), lo = hexval((unsigned char)p[1]);
      if (hi < 0 || lo < 0) goto bad;
      buf[nb++] = (unsigned char)(hi << 4 | lo);
    }
  }
  return dst_blob(d, buf, nb) == SQLITE_OK ? 1 : -2;
bad:
  sqlite3_free(buf);
  return -1;
}

/* Reads the one JSON value z[0..n) into d: the rules of sync_val (see
** value.h). Returns VAL_OK or what is wrong; *pRc gets a setter's error. */
static int val_read(ValDst *d, const char *z, int len, int *pRc) {
  const char *end = z + len;
  *pRc = SQLITE_OK;
  z = skip_ws(z, end);
  while (end > z && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\t' || end[-1] == '\r'))
    end--;
  size_t n = (size_t)(end - z);
  if (n == 4 && memcmp(z, "null", 4) == 0) {
    *pRc = dst_null(d);
    return VAL_OK;
  }
  if (n == 4 && memcmp(z, "true", 4) == 0) {
    *pRc = dst_int(d, 1);
    return VAL_OK;
  }
  if (n == 5 && memcmp(z, "false", 5) == 0) {
    *pRc = dst_int(d, 0);
    return VAL_OK;
  }
  if (n > 0 && *z == '"') {
    /* Without escapes the text is the literal's inside, used in place. */
    const char *q = z + 1;
    while (q < end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
      q++;
    if (q == end - 1 && *q == '"') {
      *pRc = dst_text(d, z + 1, (int)(q - z - 1), d->inPlace ? SQLITE_STATIC : SQLITE_TRANSIENT);
      return VAL_OK;
    }
    sqlite3_str *s = sqlite3_str_new(0);
    const char *p = z;
    if (json_unescape(&p, end, s) || p != end) {
      sqlite3_free(sqlite3_str_finish(s));
      return VAL_BAD_STRING;
    }
    int slen = sqlite3_str_length(s);
    char *t = sqlite3_str_finish(s);
    if (!t) {
      if (slen != 0) return VAL_NOMEM;
      *pRc = dst_text(d, "", 0, SQLITE_STATIC);
      return VAL_OK;
    }
    *pRc = dst_text(d, t, slen, sqlite3_free);
    return VAL_OK;
  }
  if (n > 0 && *z == '{') {
    int rc = val_blob(d, z, end);
    if (rc == -1) return VAL_BAD_BLOB;
    if (rc == -2) return VAL_NOMEM;
    if (rc) return VAL_OK;
  }
  if (n > 0 && (*z == '{' || *z == '[')) {
    *pRc = dst_text(d, z, (int)n, SQLITE_TRANSIENT);
    return VAL_OK;
  }
  /* A number: [-]digits[.digits][(e|E)[+-]digits]. */
  const char *p = z;
  int isInt = 1;
  if (p < end && *p == '-') p++;
  const char *digits = p;
  while (p < end && *p >= '0' && *p <= '9')
    p++;
  if (p == digits) return VAL_BAD_NUMBER;
  if (p < end && *p == '.') {
    isInt = 0;
    const char *f = ++p;
    while (p < end && *p >= '0' && *p <= '9')
      p++;
    if (p == f) return VAL_BAD_NUMBER;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    isInt = 0;
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    const char *x = p;
    while (p < end && *p >= '0' && *p <= '9')
      p++;
    if (p == x) return VAL_BAD_NUMBER;
  }
  if (p != end || n > 400) return VAL_BAD_NUMBER;
  /* Up to 18 digits fit 64 bits whatever they are. */
  if (isInt && end - digits <= 18) {
    sqlite3_int64 v = 0;
    for (const char *q = digits; q < end; q++)
      v = v * 10 + (*q - '0');
    *pRc = dst_int(d, *z == '-' ? -v : v);
    return VAL_OK;
  }
  char num[402];
  memcpy(num, z, n);
  num[n] = 0;
  if (isInt) {
    errno = 0;
    long long v = strtoll(num, 0, 10);
    if (errno == 0) {
      *pRc = dst_int(d, v);
      return VAL_OK;
    }
  }
  *pRc = dst_double(d, value_strtod(num, 0));
  return VAL_OK;
}

static void val_func(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
  const char *z = (const char *)sqlite3_value_text(argv[0]);
  if (!z) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  ValDst d = {ctx, 0, 0, 0};
  int rc = SQLITE_OK, e = val_read(&d, z, sqlite3_value_bytes(argv[0]), &rc);
  if (e == VAL_NOMEM)
    sqlite3_result_error_nomem(ctx);
  else if (e != VAL_OK)
    sqlite3_result_error(ctx, val_msg[e], -1);
}

int value_bind(sqlite3_stmt *stmt, int idx, const char *z, int n, const char **pzErr) {
  ValDst d = {0, stmt, idx, 1};
  int rc = SQLITE_OK, e = val_read(&d, z, n, &rc);
  if (e == VAL_NOMEM) return SQLITE_NOMEM;
  if (e != VAL_OK) {
    *pzErr = val_msg[e];
    return SQLITE_ERROR;
  }
  return rc;
}

void value_result(sqlite3_context *ctx, const char *z, int n) {
  ValDst d = {ctx, 0, 0, 1};
  int rc = SQLITE_OK, e = val_read(&d, z, n, &rc);
  if (e == VAL_NOMEM)
    sqlite3_result_error_nomem(ctx);
  else if (e != VAL_OK)
    sqlite3_result_error(ctx, val_msg[e], -1);
}

int value_register(sqlite3 *db) {
  return sqlite3_create_function(
      db, "sync_val", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, 0, val_func, 0, 0);
}
