/*
** jscan.c: the JSON scanner of jscan.h, in place and exact.
**
** Every read goes through AT(), which answers 0 at e, so a NUL byte and the
** end of the text are the same to the scanner and no read passes e.
*/
#include "jscan.h"

#include <string.h>

/* p must have no side effects: it is read twice. */
#define AT(p) ((p) < e ? *(p) : 0)

static int js_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int js_digit(char c) {
  return c >= '0' && c <= '9';
}

static int js_hex(char c) {
  return js_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int js_alnum(char c) {
  return js_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

const char *jscan_ws(const char *z, const char *e) {
  while (z < e && js_space(*z))
    z++;
  return z;
}

/* Follows SQLite 3.40's jsonParseValue rule for rule, numbers included (no
** leading zeros, digits around '.', a digit before and after the exponent). */
const char *jscan_valid(const char *z, const char *e, int depth) {
  char c = AT(z);
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    if (depth >= JSCAN_MAX_DEPTH) return 0;
    z = jscan_ws(z + 1, e);
    if (AT(z) == close) return z + 1;
    for (;;) {
      if (close == '}') {
        if (AT(z) != '"' || !(z = jscan_valid(z, e, depth + 1))) return 0;
        z = jscan_ws(z, e);
        if (AT(z) != ':') return 0;
        z = jscan_ws(z + 1, e);
      }
      if (!(z = jscan_valid(z, e, depth + 1))) return 0;
      z = jscan_ws(z, e);
      if (AT(z) == close) return z + 1;
      if (AT(z) != ',') return 0;
      z = jscan_ws(z + 1, e);
    }
  }
  if (c == '"') {
    for (z++;; z++) {
      c = AT(z);
      if ((unsigned char)c < 0x20) return 0;
      if (c == '"') return z + 1;
      if (c != '\\') continue;
      z++;
      c = AT(z);
      if (c == 'u') {
        if (!js_hex(AT(z + 1)) || !js_hex(AT(z + 2)) || !js_hex(AT(z + 3)) || !js_hex(AT(z + 4)))
          return 0;
      } else if (!c || !strchr("\"\\/bfnrt", c)) {
        return 0;
      }
    }
  }
  if (c == 'n' || c == 't' || c == 'f') {
    const char *w = c == 'n' ? "null" : c == 't' ? "true" : "false";
    size_t n = strlen(w);
    if ((size_t)(e - z) < n || strncmp(z, w, n) != 0 || js_alnum(AT(z + n))) return 0;
    return z + n;
  }
  if (c == '-' || js_digit(c)) {
    const char *d = c == '-' ? z + 1 : z;
    if (AT(d) == '0' && js_digit(AT(d + 1))) return 0;
    int dp = 0, ex = 0;
    const char *p = z + 1;
    for (;; p++) {
      c = AT(p);
      if (js_digit(c)) continue;
      if (c == '.') {
        if (p[-1] == '-' || dp) return 0;
        dp = 1;
        continue;
      }
      if (c == 'e' || c == 'E') {
        if (p[-1] < '0' || ex) return 0;
        dp = ex = 1;
        if (AT(p + 1) == '+' || AT(p + 1) == '-') p++;
        if (!js_digit(AT(p + 1))) return 0;
        continue;
      }
      break;
    }
    return p[-1] < '0' ? 0 : p;
  }
  return 0;
}

int jscan_document(const char *z, const char *e) {
  z = jscan_valid(jscan_ws(z, e), e, 0);
  return z && jscan_ws(z, e) == e;
}

const char *jscan_skip(const char *z, const char *e) {
  char c = AT(z);
  if (c == '"') {
    for (z++; z < e && *z != '"'; z++)
      if (*z == '\\') z++;
    return z < e ? z + 1 : e;
  }
  if (c == '{' || c == '[') {
    int depth = 0;
    while (z < e) {
      c = *z;
      if (c == '"') {
        z = jscan_skip(z, e);
        continue;
      }
      if (c == '{' || c == '[') depth++;
      if (c == '}' || c == ']') depth--;
      z++;
      if (depth == 0) break;
    }
    return z;
  }
  while ((c = AT(z)) != 0 && !js_space(c) && c != ',' && c != '}' && c != ']')
    z++;
  return z;
}

int jscan_member(const char **pz, const char *e, jspan *key, jspan *val) {
  const char *z = jscan_ws(AT(*pz) == '{' ? *pz + 1 : *pz, e);
  if (AT(z) != '"') {
    *pz = z;
    return 0;
  }
  const char *k = jscan_skip(z, e);
  key->z = z + 1, key->n = (int)(k - z - 2);
  z = jscan_ws(jscan_ws(k, e) + 1, e);
  k = jscan_skip(z, e);
  val->z = z, val->n = (int)(k - z);
  z = jscan_ws(k, e);
  *pz = AT(z) == ',' ? z + 1 : z;
  return 1;
}

int jscan_element(const char **pz, const char *e, jspan *v) {
  const char *z = jscan_ws(AT(*pz) == '[' || AT(*pz) == ',' ? *pz + 1 : *pz, e);
  if (z >= e || *z == ']') return 0;
  const char *end = jscan_skip(z, e);
  v->z = z;
  v->n = (int)(end - z);
  *pz = jscan_ws(end, e);
  return 1;
}

void jscan_fields(jspan obj, const char *const *names, int n, jspan *out) {
  memset(out, 0, sizeof *out * (size_t)n);
  if (!obj.z) return;
  const char *z = obj.z, *e = obj.z + obj.n;
  jspan key, val;
  while (jscan_member(&z, e, &key, &val))
    for (int i = 0; i < n; i++)
      if (!out[i].z && jscan_is(key, names[i])) {
        out[i] = val;
        break;
      }
}

jspan jscan_field(jspan obj, const char *name) {
  jspan v;
  jscan_fields(obj, &name, 1, &v);
  return v;
}

int jscan_is(jspan v, const char *lit) {
  return v.z && (size_t)v.n == strlen(lit) && memcmp(v.z, lit, (size_t)v.n) == 0;
}

const char *jscan_type(jspan v) {
  if (!v.z || v.n <= 0) return "";
  switch (v.z[0]) {
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
  for (int i = 0; i < v.n; i++)
    if (v.z[i] == '.' || v.z[i] == 'e' || v.z[i] == 'E') return "real";
  return "integer";
}

int jscan_int64(jspan v, sqlite3_int64 *out) {
  if (strcmp(jscan_type(v), "integer") != 0) return 0;
  const char *p = v.z, *e = v.z + v.n;
  int neg = *p == '-';
  sqlite3_uint64 x = 0, lim = neg ? (sqlite3_uint64)1 << 63 : ((sqlite3_uint64)1 << 63) - 1;
  for (p += neg; p < e; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (d > 9 || x > (lim - d) / 10) return 0;
    x = x * 10 + d;
  }
  *out = neg ? (sqlite3_int64)(0 - x) : (sqlite3_int64)x;
  return 1;
}

static unsigned js_hex4(const char *p) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  }
  return v;
}

static char *js_put_utf8(char *o, unsigned v) {
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

/* An escape takes at least 2 bytes and writes at most 4 (a \u pair: 12 bytes
** to 4), so the unescaped text never outgrows the quoted one. */
char *jscan_text(jspan v, int *nul) {
  char *out = sqlite3_malloc64((sqlite3_uint64)v.n + 1), *o = out;
  *nul = 0;
  if (!out) return 0;
  const char *e = v.z + v.n - 1; /* the closing quote */
  for (const char *p = v.z + 1; p < e; p++) {
    if (*p != '\\') {
      *o++ = *p;
      continue;
    }
    switch (*++p) {
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
      unsigned c = js_hex4(p + 1);
      p += 4;
      if ((c & 0xFC00) == 0xD800 && e - p > 6 && p[1] == '\\' && p[2] == 'u' &&
          (js_hex4(p + 3) & 0xFC00) == 0xDC00) {
        c = ((c & 0x3FF) << 10) + (js_hex4(p + 3) & 0x3FF) + 0x10000;
        p += 6;
      }
      if (c == 0) *nul = 1;
      o = js_put_utf8(o, c);
      break;
    }
    default: /* '"', '\\', '/' */
      *o++ = *p;
    }
  }
  *o = 0;
  return out;
}

char *jscan_compact(jspan v) {
  char *out = sqlite3_malloc64((sqlite3_uint64)v.n + 1), *o = out;
  if (!out) return 0;
  const char *e = v.z + v.n;
  for (const char *p = v.z; p < e;) {
    if (*p == '"') {
      const char *q = jscan_skip(p, e);
      memcpy(o, p, (size_t)(q - p));
      o += q - p, p = q;
    } else if (js_space(*p)) {
      p++;
    } else {
      *o++ = *p++;
    }
  }
  *o = 0;
  return out;
}

int jscan_object_keys(const char *z, int (*fn)(void *, const char *), void *arg) {
  const char *e = z + strlen(z), *p = jscan_ws(z, e);
  if (AT(p) != '{') return 0;
  jspan key, val;
  char small[128]; /* syncd calls this for every key of every pushed mutation */
  while (jscan_member(&p, e, &key, &val)) {
    int rc;
    if (key.n < (int)sizeof small && !memchr(key.z, '\\', (size_t)key.n)) {
      memcpy(small, key.z, (size_t)key.n);
      small[key.n] = 0;
      rc = fn(arg, small);
    } else {
      jspan quoted = {key.z - 1, key.n + 2};
      int nul;
      char *k = jscan_text(quoted, &nul);
      rc = k ? fn(arg, k) : SQLITE_NOMEM;
      sqlite3_free(k);
    }
    if (rc) return rc;
  }
  return 0;
}

int jscan_utf8_valid(const unsigned char *p, size_t n) {
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
