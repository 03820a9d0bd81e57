/*
** compress.c: gzip for syncd's answers (compress.h), with zlib.
**
** A whole body is deflated in one call into a buffer of deflateBound's
** size, so memory is the body's size twice at most. An event stream keeps
** one deflate state for its life, with a much smaller window than a
** body's (1 KB instead of 32 KB, memLevel 3: about 14 KB in all instead of
** 70 KB with 8 KB and 6): streams are many and long-lived (10,000 on one
** syncd, bench/RESULTS.md "Live clients"), and an event's rows repeat
** their column names within a few hundred bytes, which is where JSON's
** gain is: on typical rows a 1000-change page deflates to 10.8% instead
** of 10.4%, one-change events to 15.9% instead of 15.2%.
*/
#include "compress.h"

#include <sqlite3.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* 16 + window bits: deflate writes a gzip header and trailer. */
#define GZIP_BITS(w) (16 + (w))
/* Level 6 (zlib's default) halves the bytes of level 1 on JSON pages for
** about twice the time; the time is still a small part of a pull's. */
#define BODY_LEVEL 6
#define STREAM_LEVEL 6
#define STREAM_WINDOW 10
#define STREAM_MEMLEVEL 3

/* The q of one coding's parameters at p (after its name), 1 when none:
** only whether it is zero matters ("q=0", "q=0.", "q=0.000"). */
static int q_positive(const char *p, const char *end) {
  while (p < end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
      p++;
    if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
      p += 2;
      if (p == end || *p != '0') return 1;
      for (p++; p < end && (*p == '.' || *p == '0'); p++)
        ;
      /* "0.5": something other than zeros follows */
      return p < end && *p != ' ' && *p != '\t' && *p != ';';
    }
    while (p < end && *p != ';')
      p++;
  }
  return 1;
}

int compress_accepts(const char *ae) {
  if (!ae) return 0;
  int gzip = -1, star = -1; /* -1: not named, else whether its q > 0 */
  const char *p = ae;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    const char *name = p;
    while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
      p++;
    size_t n = (size_t)(p - name);
    const char *end = p;
    while (*end && *end != ',')
      end++;
    int pos = q_positive(p, end);
    if ((n == 4 && strncasecmp(name, "gzip", 4) == 0) ||
        (n == 6 && strncasecmp(name, "x-gzip", 6) == 0))
      gzip = gzip > 0 ? 1 : pos;
    else if (n == 1 && *name == '*')
      star = pos;
    p = end;
  }
  return gzip >= 0 ? gzip : star > 0;
}

static void *z_alloc(void *opaque, unsigned items, unsigned size) {
  (void)opaque;
  return sqlite3_malloc64((sqlite3_uint64)items * size);
}

static void z_free(void *opaque, void *p) {
  (void)opaque;
  sqlite3_free(p);
}

static int z_init(z_stream *z, int level, int window, int memlevel) {
  memset(z, 0, sizeof *z);
  z->zalloc = z_alloc;
  z->zfree = z_free;
  return deflateInit2(z, level, Z_DEFLATED, GZIP_BITS(window), memlevel, Z_DEFAULT_STRATEGY);
}

char *compress_gzip(const char *body, size_t n, size_t *out_n) {
  z_stream z;
  *out_n = 0;
  if (n > 0xffffffffu || z_init(&z, BODY_LEVEL, 15, 8) != Z_OK) return 0;
  uLong cap = deflateBound(&z, (uLong)n);
  char *out = sqlite3_malloc64(cap);
  if (!out) {
    deflateEnd(&z);
    return 0;
  }
  z.next_in = (Bytef *)body;
  z.avail_in = (uInt)n;
  z.next_out = (Bytef *)out;
  z.avail_out = (uInt)cap;
  /* deflateBound is enough for one Z_FINISH call */
  int rc = deflate(&z, Z_FINISH);
  *out_n = z.total_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) {
    sqlite3_free(out);
    return 0;
  }
  return out;
}

struct compress_stream {
  z_stream z;
  int failed; /* a piece could not be written: the member is broken */
};

compress_stream *compress_stream_new(void) {
  compress_stream *s = sqlite3_malloc64(sizeof *s);
  if (!s) return 0;
  s->failed = 0;
  if (z_init(&s->z, STREAM_LEVEL, STREAM_WINDOW, STREAM_MEMLEVEL) != Z_OK) {
    sqlite3_free(s);
    return 0;
  }
  return s;
}

char *compress_stream_put(compress_stream *s, const char *text, size_t n, int finish,
                          size_t *out_n) {
  *out_n = 0;
  if (s->failed || n > 0xffffffffu) return 0;
  /* deflateBound counts for Z_FINISH only: a flushed piece may pass it by
  ** its markers, so the buffer grows while deflate fills it */
  size_t cap = deflateBound(&s->z, (uLong)n) + 64, len = 0;
  char *out = 0;
  s->z.next_in = (Bytef *)text;
  s->z.avail_in = (uInt)n;
  int rc;
  do {
    char *grown = sqlite3_realloc64(out, cap);
    if (!grown) {
      /* deflate may still point into text: it must not be called again */
      s->failed = 1;
      sqlite3_free(out);
      return 0;
    }
    out = grown;
    s->z.next_out = (Bytef *)out + len;
    s->z.avail_out = (uInt)(cap - len);
    rc = deflate(&s->z, finish ? Z_FINISH : Z_SYNC_FLUSH);
    len = cap - s->z.avail_out;
    cap *= 2;
  } while ((rc == Z_OK || rc == Z_BUF_ERROR) && s->z.avail_out == 0);
  /* all of it must be out: a piece held back would delay the event */
  int done = finish ? rc == Z_STREAM_END : rc == Z_OK || rc == Z_BUF_ERROR;
  if (!done || s->z.avail_in) {
    s->failed = 1;
    sqlite3_free(out);
    return 0;
  }
  *out_n = len;
  return out;
}

void compress_stream_free(compress_stream *s) {
  if (!s) return;
  deflateEnd(&s->z);
  sqlite3_free(s);
}
