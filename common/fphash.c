/*
** fphash.c: the row hash of the verify protocol (fphash.h): FNV-1a over a
** tagged canonical form of each value, finished by splitmix64's mixer.
*/
#include "fphash.h"
#include "jscan.h"
#include "value.h"

#include <math.h>
#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * FNV_PRIME;
  return h;
}

/* The hash of a column: name, a NUL, the tag, the payload. */
static uint64_t column(const char *name, int n, char tag, const void *p, size_t np) {
  uint64_t h = fnv(FNV_OFFSET, name, (size_t)n);
  h = fnv(h, "", 1);
  h = fnv(h, &tag, 1);
  return mix(fnv(h, p, np));
}

static uint64_t integer(const char *name, int n, sqlite3_int64 i) {
  unsigned char b[8];
  for (int k = 0; k < 8; k++)
    b[k] = (unsigned char)((uint64_t)i >> (8 * k));
  return column(name, n, 'i', b, 8);
}

static uint64_t real(const char *name, int n, double d) {
  uint64_t bits;
  memcpy(&bits, &d, 8);
  unsigned char b[8];
  for (int k = 0; k < 8; k++)
    b[k] = (unsigned char)(bits >> (8 * k));
  return column(name, n, 'r', b, 8);
}

uint64_t fphash_value(const char *name, int n, sqlite3_value *v) {
  switch (sqlite3_value_type(v)) {
  case SQLITE_INTEGER:
    return integer(name, n, sqlite3_value_int64(v));
  case SQLITE_FLOAT:
    return real(name, n, sqlite3_value_double(v));
  case SQLITE_TEXT: {
    const unsigned char *z = sqlite3_value_text(v);
    return column(name, n, 's', z, (size_t)sqlite3_value_bytes(v));
  }
  case SQLITE_BLOB: {
    const void *z = sqlite3_value_blob(v);
    return column(name, n, 'b', z, (size_t)sqlite3_value_bytes(v));
  }
  default:
    return column(name, n, 'n', 0, 0);
  }
}

static int b64(int c) {
  return c >= 'A' && c <= 'Z'   ? c - 'A'
         : c >= 'a' && c <= 'z' ? c - 'a' + 26
         : c >= '0' && c <= '9' ? c - '0' + 52
         : c == '+'             ? 62
         : c == '/'             ? 63
                                : -1;
}

static int hexval(int c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* The bytes of a {"$base64":..} or {"$hex":..} object into the hash h
** (streamed: nothing is allocated); 0 when obj is no such blob. */
static int blob_hash(jspan obj, uint64_t *h) {
  const char *p = obj.z;
  jspan key, val;
  if (!jscan_member(&p, obj.z + obj.n, &key, &val)) return 0;
  int hex = jscan_is(key, "$hex");
  if ((!hex && !jscan_is(key, "$base64")) || val.z[0] != '"') return 0;
  jspan more, more_val;
  if (jscan_member(&p, obj.z + obj.n, &more, &more_val)) return 0;
  const char *z = val.z + 1, *e = val.z + val.n - 1;
  if (hex) {
    for (; z + 1 < e; z += 2) {
      int hi = hexval(z[0]), lo = hexval(z[1]);
      if (hi < 0 || lo < 0) return 0;
      unsigned char b = (unsigned char)(hi << 4 | lo);
      *h = fnv(*h, &b, 1);
    }
    return z == e;
  }
  unsigned acc = 0;
  int bits = 0;
  for (; z < e && *z != '='; z++) {
    int d = b64(*z);
    if (d < 0) return 0;
    acc = acc << 6 | (unsigned)d;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      unsigned char b = (unsigned char)(acc >> bits);
      *h = fnv(*h, &b, 1);
    }
  }
  return 1;
}

uint64_t fphash_json(const char *name, int n, const char *z, int nz, int *oom) {
  jspan v = {z, nz};
  const char *type = jscan_type(v);
  sqlite3_int64 i;
  if (strcmp(type, "integer") == 0 && jscan_int64(v, &i)) return integer(name, n, i);
  if (strcmp(type, "integer") == 0 || strcmp(type, "real") == 0) {
    char buf[400];
    if (nz >= (int)sizeof buf) return real(name, n, nz > 0 && z[0] == '-' ? -HUGE_VAL : HUGE_VAL);
    memcpy(buf, z, (size_t)nz);
    buf[nz] = 0;
    return real(name, n, value_atof(buf));
  }
  if (strcmp(type, "true") == 0) return integer(name, n, 1);
  if (strcmp(type, "false") == 0) return integer(name, n, 0);
  if (strcmp(type, "null") == 0) return column(name, n, 'n', 0, 0);
  if (strcmp(type, "object") == 0) {
    uint64_t h = fnv(FNV_OFFSET, name, (size_t)n);
    h = fnv(h, "", 1);
    h = fnv(h, "b", 1);
    if (blob_hash(v, &h)) return mix(h);
  }
  char *t;
  int nul = 0;
  if (strcmp(type, "text") == 0)
    t = jscan_text(v, &nul);
  else
    t = jscan_compact(v);
  if (!t) {
    *oom = 1;
    return 0;
  }
  uint64_t h = column(name, n, 's', t, strlen(t));
  sqlite3_free(t);
  return h;
}

int fphash_object(const char *z, int nz, const char *const *only, int nOnly, uint64_t *sum) {
  const char *p = z, *e = z + nz;
  jspan key, val;
  uint64_t s = 0;
  int oom = 0;
  while (jscan_member(&p, e, &key, &val)) {
    if (only) {
      int k = 0;
      while (k < nOnly && !((int)strlen(only[k]) == key.n && memcmp(only[k], key.z, key.n) == 0))
        k++;
      if (k == nOnly) continue;
    }
    s += fphash_json(key.z, key.n, val.z, val.n, &oom);
    if (oom) return -1;
  }
  *sum = s;
  return 0;
}

uint64_t fphash_key(uint64_t keySum) {
  return mix(keySum ^ 0x6b6579ULL);
}

uint64_t fphash_row(uint64_t keyHash, uint64_t rowSum) {
  return mix(keyHash ^ mix(rowSum + 0x726f77ULL));
}
