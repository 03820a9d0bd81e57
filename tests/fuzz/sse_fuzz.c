/*
** sse_fuzz.c: libFuzzer target for ext/sse.c, the event-stream parser.
**
** The first four input bytes choose the caps (max_line, max_event), the
** event on which the callback aborts and the chunking; the rest is the
** stream. It is fed twice, as two streams with sse_end between them (the
** second one chunked at random), and every event, result code, last event
** id and retry time must equal those of a plain reference parser written
** below from the spec in a few dozen lines (whole input, unbounded, no
** chunk state), and so must the count of lines ended (sse_lines). The parser must also keep data[n]
*== 0, stay within its
** caps, and hold no more than about 4*max_line + max_event bytes (measured
** with sqlite3_memory_used). Any difference aborts.
**
** Build: see mk/fuzz.mk (clang -fsanitize=fuzzer,address,undefined).
*/
#include "sse.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the events a parser produced, as one byte string ---- */

typedef struct fz_log {
  unsigned char *p;
  size_t n, cap;
} fz_log;

static void fz_put(fz_log *l, const void *z, size_t n) {
  if (l->n + n > l->cap) {
    size_t cap = l->cap ? l->cap : 256;
    while (cap < l->n + n)
      cap *= 2;
    l->p = realloc(l->p, cap);
    if (!l->p) abort();
    l->cap = cap;
  }
  memcpy(l->p + l->n, z, n);
  l->n += n;
}

/* One event as: type NUL, 8-byte length, data, id NUL. */
static void fz_event(fz_log *l, const char *type, const char *data, size_t n, const char *id) {
  uint64_t n64 = n;
  fz_put(l, type, strlen(type) + 1);
  fz_put(l, &n64, sizeof n64);
  fz_put(l, data, n);
  fz_put(l, id, strlen(id) + 1);
}

static void fz_mark(fz_log *l, const char *what, long v) {
  fz_put(l, what, strlen(what) + 1);
  fz_put(l, &v, sizeof v);
}

/* ---- the parser under test ---- */

typedef struct fz_real {
  fz_log log;
  size_t max_line, max_event;
  int events, stop_at;
} fz_real;

static int fz_real_cb(void *arg, const char *type, const char *data, size_t n, const char *id) {
  fz_real *r = arg;
  if (data[n] != 0) abort();                                          /* the promised NUL */
  if (n > r->max_event) abort();                                      /* data over its cap */
  if (strlen(id) > r->max_line) abort();                              /* id over its cap */
  if (strlen(type) > r->max_line && strcmp(type, "message")) abort(); /* type over its cap */
  fz_event(&r->log, type, data, n, id);
  return ++r->events == r->stop_at;
}

/* ---- the reference: the spec's algorithm over the whole stream ---- */

typedef struct fz_ref {
  fz_log log;
  size_t max_line, max_event;
  int events, stop_at;
  unsigned char *data, *type, *id, *last;
  size_t data_n, type_n, id_n, last_n;
  long retry;
  unsigned long long lines; /* lines ended and processed without error */
} fz_ref;

static unsigned char *fz_dup(const unsigned char *z, size_t n) {
  unsigned char *p = malloc(n + 1);
  if (!p) abort();
  if (n) memcpy(p, z, n);
  p[n] = 0;
  return p;
}

static void fz_set(unsigned char **dst, size_t *dn, const unsigned char *z, size_t n) {
  unsigned char *p = fz_dup(z, n);
  free(*dst);
  *dst = p;
  *dn = n;
}

/* One line; returns an SSE_* code. */
static int fz_ref_line(fz_ref *r, const unsigned char *z, size_t n) {
  if (n == 0) {
    fz_set(&r->last, &r->last_n, r->id ? r->id : (const unsigned char *)"", r->id_n);
    if (r->data_n == 0) {
      r->type_n = 0;
      return SSE_OK;
    }
    r->data_n--;
    unsigned char *d = fz_dup(r->data, r->data_n);
    unsigned char *t =
        r->type_n ? fz_dup(r->type, r->type_n) : fz_dup((const unsigned char *)"message", 7);
    fz_event(&r->log, (char *)t, (char *)d, r->data_n, (char *)r->last);
    free(d);
    free(t);
    r->data_n = r->type_n = 0;
    return ++r->events == r->stop_at ? SSE_EABORT : SSE_OK;
  }
  if (z[0] == ':') return SSE_OK;
  if (n > r->max_line) return SSE_ELINE;
  size_t name_n = 0;
  while (name_n < n && z[name_n] != ':')
    name_n++;
  const unsigned char *v = z + name_n;
  size_t vn = 0;
  if (name_n < n) {
    v++;
    vn = n - name_n - 1;
    if (vn && *v == ' ') v++, vn--;
  }
  if (name_n == 4 && !memcmp(z, "data", 4)) {
    if (r->data_n + vn > r->max_event) return SSE_EEVENT;
    unsigned char *d = malloc(r->data_n + vn + 2);
    if (!d) abort();
    if (r->data_n) memcpy(d, r->data, r->data_n);
    if (vn) memcpy(d + r->data_n, v, vn);
    d[r->data_n + vn] = '\n';
    free(r->data);
    r->data = d;
    r->data_n += vn + 1;
  } else if (name_n == 5 && !memcmp(z, "event", 5)) {
    fz_set(&r->type, &r->type_n, v, vn);
  } else if (name_n == 2 && !memcmp(z, "id", 2)) {
    if (!memchr(v, 0, vn)) fz_set(&r->id, &r->id_n, v, vn);
  } else if (name_n == 5 && !memcmp(z, "retry", 5) && vn) {
    size_t i = 0;
    while (i < vn && v[i] >= '0' && v[i] <= '9')
      i++;
    if (i == vn) {
      long x = 0;
      for (i = 0; i < vn; i++) {
        int d = v[i] - '0';
        if (x > (LONG_MAX - d) / 10) {
          x = LONG_MAX;
          break;
        }
        x = x * 10 + d;
      }
      r->retry = x;
    }
  }
  return SSE_OK;
}

/* A whole stream, then its end (the unfinished event dropped). */
static int fz_ref_stream(fz_ref *r, const unsigned char *s, size_t n) {
  int rc = SSE_OK;
  if (n >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF) s += 3, n -= 3;
  /* A stream that is only the start of a BOM: the parser is still waiting
  ** for the rest and has not looked at those bytes as a line. */
  else if (n < 3 && (n == 0 || s[0] == 0xEF) && (n < 2 || s[1] == 0xBB))
    n = 0;
  size_t i = 0;
  while (i < n && rc == SSE_OK) {
    size_t j = i;
    while (j < n && s[j] != '\r' && s[j] != '\n')
      j++;
    if (j == n) {
      /* An unterminated last line: only its length can matter. */
      if (j > i && s[i] != ':' && j - i > r->max_line) rc = SSE_ELINE;
      break;
    }
    rc = fz_ref_line(r, s + i, j - i);
    if (rc == SSE_OK) r->lines++;
    i = j + 1;
    if (s[j] == '\r' && i < n && s[i] == '\n') i++;
  }
  r->data_n = r->type_n = 0;
  fz_set(&r->id, &r->id_n, r->last ? r->last : (const unsigned char *)"", r->last_n);
  return rc;
}

/* ---- the target ---- */

static size_t fz_cap(unsigned char b) {
  static const size_t big[4] = {256, 4096, 65536, (size_t)1 << 30};
  return b < 0xF0 ? (size_t)(b % 48) + 1 : big[b & 3];
}

/* Feed s[0..n) in chunks chosen by seed (0: whole). */
static int fz_feed(sse_parser *p, const unsigned char *s, size_t n, unsigned seed) {
  if (!seed) return sse_feed(p, (const char *)s, n);
  int rc = SSE_OK;
  while (n) {
    seed = seed * 1103515245u + 12345u;
    size_t k = (seed >> 16) % 9; /* 0..8 bytes: empty chunks too */
    if (k > n) k = n;
    rc = sse_feed(p, (const char *)s, k);
    s += k;
    n -= k;
  }
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  size_t max_line = fz_cap(data[0]), max_event = fz_cap(data[1]);
  int stop_at = data[2] % 8; /* 0: never abort */
  unsigned seed = data[3];
  const unsigned char *s = data + 4;
  size_t n = size - 4;

  fz_real real = {{0}, max_line, max_event, 0, stop_at};
  fz_ref ref = {{0}, max_line, max_event, 0, stop_at, 0, 0, 0, 0, 0, 0, 0, 0, -1, 0};
  sqlite3_int64 base = sqlite3_memory_used();
  sse_parser *p = sse_new(max_line, max_event, fz_real_cb, &real);
  if (!p) abort();
  for (int round = 0; round < 2; round++) {
    int rc = fz_feed(p, s, n, round ? seed | 1 : 0);
    sqlite3_int64 held = sqlite3_memory_used() - base;
    if ((size_t)held > 4 * max_line + max_event + 4096) abort();
    fz_mark(&real.log, "rc", rc);
    fz_mark(&real.log, "retry", sse_retry_ms(p));
    fz_mark(&real.log, "lines", (long)sse_lines(p));
    fz_put(&real.log, sse_last_event_id(p), strlen(sse_last_event_id(p)) + 1);
    sse_end(p);

    int want = fz_ref_stream(&ref, s, n);
    fz_mark(&ref.log, "rc", want);
    fz_mark(&ref.log, "retry", ref.retry);
    fz_mark(&ref.log, "lines", (long)ref.lines);
    fz_put(&ref.log, ref.last ? (char *)ref.last : "", ref.last_n + 1);
  }
  sse_free(p);
  if (sqlite3_memory_used() != base) abort(); /* everything freed */
  if (real.log.n != ref.log.n || memcmp(real.log.p, ref.log.p, real.log.n) != 0) abort();
  free(real.log.p);
  free(ref.log.p);
  free(ref.data);
  free(ref.type);
  free(ref.id);
  free(ref.last);
  return 0;
}
