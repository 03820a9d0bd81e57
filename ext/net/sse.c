/*
** sse.c: push parser for text/event-stream, per WHATWG HTML "Server-sent
** events", "Interpreting an event stream". The worker's loop (loop.c) feeds
** it the body chunks of the SSE request and applies each event it gets back;
** see sse.h for the API and a usage sketch.
**
** Rules implemented, in the spec's terms:
**   - one leading UTF-8 BOM (EF BB BF) is dropped, even when split across
**     chunks; only at stream start;
**   - CR, LF and CRLF each end a line; a CR that ends one chunk ends the
**     line at once, and an LF that starts the next chunk is then swallowed;
**   - a line starting with ':' is a comment (skipped without buffering);
**   - the field name runs to the first ':', the value follows with at most
**     one leading space removed; a line without ':' is a field named by the
**     whole line with an empty value; names are case-sensitive and unknown
**     ones are ignored;
**   - data: appended to the data buffer plus LF; event: sets the type;
**     id: sets the id buffer unless the value holds a NUL (an empty value
**     resets it); retry: sets the reconnection time if all ASCII digits;
**   - a blank line dispatches: the last event id is set from the id buffer;
**     if the data buffer is empty nothing else happens; otherwise its last
**     LF is removed and the event goes to the callback with its type
**     ("message" if none); data and type are then cleared;
**   - at end of stream an unfinished event is dropped.
** Bytes are passed through as they are: UTF-8 is not validated or replaced
** (the worker parses the data as JSON, which checks it).
**
** Memory: the line buffer never grows past max_line, the data buffer past
** max_event+1, the type, id and last-id buffers past max_line; a longer line
** or event makes sse_feed fail with SSE_ELINE/SSE_EEVENT, so whatever the
** server sends, the parser holds a bounded amount.
*/
#include "sse.h"

#include "sqlite_api.h"

#include <limits.h>
#include <string.h>

/* A growable byte buffer with a hard cap; always room for a trailing NUL. */
typedef struct sse_buf {
  char *p;
  size_t n;   /* bytes used */
  size_t cap; /* bytes allocated (>= n+1 once allocated) */
} sse_buf;

struct sse_parser {
  size_t max_line;  /* cap on one line, from sse_new */
  size_t max_event; /* cap on one event's data, from sse_new */
  sse_on_event cb;
  void *arg;
  sse_buf line;             /* the current line so far; reset at each line end */
  sse_buf data;             /* data buffer: "value\n" per data line; reset at dispatch */
  sse_buf type;             /* event type buffer; reset at dispatch */
  sse_buf id;               /* last event ID buffer; set by id lines, kept across events */
  sse_buf last;             /* last event id as of the last blank line; kept across streams */
  long retry_ms;            /* -1 until a valid retry field; kept across streams */
  int err;                  /* sticky SSE_E* code; cleared by sse_end */
  unsigned char bom;        /* BOM bytes matched at stream start (0..3) */
  unsigned char bom_done;   /* 1 once the stream's first bytes are past the BOM */
  unsigned char after_cr;   /* the last line ended with CR: skip one LF */
  unsigned char in_comment; /* inside a comment line: skip to its end */
  unsigned long long lines; /* lines ended so far, comments included; never reset */
};

static const unsigned char sse_bom[3] = {0xEF, 0xBB, 0xBF};

/* Make room for need bytes plus a NUL in b, never beyond limit+1 bytes.
** Returns SSE_OK or SSE_ENOMEM. The caller checks need <= limit. */
static int sse_buf_reserve(sse_buf *b, size_t need, size_t limit) {
  if (need + 1 <= b->cap) return SSE_OK;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need + 1)
    cap *= 2;
  if (cap > limit + 1) cap = limit + 1;
  char *np = sqlite3_realloc64(b->p, (sqlite3_uint64)cap);
  if (!np) return SSE_ENOMEM;
  b->p = np;
  b->cap = cap;
  return SSE_OK;
}

/* Replace b's content with z[0..n) (n <= limit), NUL-terminated. */
static int sse_buf_set(sse_buf *b, const char *z, size_t n, size_t limit) {
  int rc = sse_buf_reserve(b, n, limit);
  if (rc != SSE_OK) return rc;
  if (n) memcpy(b->p, z, n);
  b->n = n;
  b->p[n] = 0;
  return SSE_OK;
}

static void sse_buf_free(sse_buf *b) {
  sqlite3_free(b->p);
  b->p = 0;
  b->n = b->cap = 0;
}

/* A blank line: commit the last event id, then dispatch the event if there
** is data. Returns SSE_OK, SSE_ENOMEM or SSE_EABORT. */
static int sse_dispatch(sse_parser *p) {
  int rc = sse_buf_set(&p->last, p->id.p ? p->id.p : "", p->id.n, p->max_line);
  if (rc != SSE_OK) return rc;
  if (p->data.n == 0) {
    p->type.n = 0;
    return SSE_OK;
  }
  size_t n = p->data.n - 1; /* drop the trailing LF that every data line adds */
  p->data.p[n] = 0;
  const char *type = p->type.n ? p->type.p : "message";
  int stop = p->cb(p->arg, type, p->data.p, n, p->last.p);
  p->data.n = 0;
  p->type.n = 0;
  return stop ? SSE_EABORT : SSE_OK;
}

/* Set the retry time if v[0..n) is one or more ASCII digits (saturating). */
static void sse_set_retry(sse_parser *p, const char *v, size_t n) {
  if (n == 0) return;
  for (size_t i = 0; i < n; i++)
    if (v[i] < '0' || v[i] > '9') return;
  long r = 0;
  for (size_t i = 0; i < n; i++) {
    int d = v[i] - '0';
    if (r > (LONG_MAX - d) / 10) {
      r = LONG_MAX;
      break;
    }
    r = r * 10 + d;
  }
  p->retry_ms = r;
}

/* Process one complete line z[0..n) (without its ending; n <= max_line).
** Returns SSE_OK or an SSE_E* code. */
static int sse_line(sse_parser *p, const char *z, size_t n) {
  if (n == 0) return sse_dispatch(p);
  if (z[0] == ':') return SSE_OK;
  const char *colon = memchr(z, ':', n);
  size_t name_n = colon ? (size_t)(colon - z) : n;
  const char *v = colon ? colon + 1 : z + n;
  size_t vn = colon ? n - name_n - 1 : 0;
  if (vn && v[0] == ' ') {
    v++;
    vn--;
  }
#define SSE_IS(lit) (name_n == sizeof(lit) - 1 && memcmp(z, lit, sizeof(lit) - 1) == 0)
  if (SSE_IS("data")) {
    /* The dispatched data is at most max_event bytes; the +1 is its LF. */
    if (p->data.n + vn > p->max_event) return SSE_EEVENT;
    int rc = sse_buf_reserve(&p->data, p->data.n + vn + 1, p->max_event + 1);
    if (rc != SSE_OK) return rc;
    if (vn) memcpy(p->data.p + p->data.n, v, vn);
    p->data.n += vn;
    p->data.p[p->data.n++] = '\n';
    return SSE_OK;
  }
  if (SSE_IS("event")) return sse_buf_set(&p->type, v, vn, p->max_line);
  if (SSE_IS("id")) {
    if (memchr(v, 0, vn)) return SSE_OK;
    return sse_buf_set(&p->id, v, vn, p->max_line);
  }
  if (SSE_IS("retry")) sse_set_retry(p, v, vn);
#undef SSE_IS
  return SSE_OK;
}

/* Parse s[0..n) (the stream past its BOM). Returns SSE_OK or an SSE_E* code;
** on error the rest of s is left unparsed. */
static int sse_scan(sse_parser *p, const char *s, size_t n) {
  const char *end = s + n;
  while (s < end) {
    if (p->after_cr) {
      p->after_cr = 0;
      if (*s == '\n') {
        s++;
        continue;
      }
    }
    if (p->line.n == 0 && !p->in_comment && *s == ':') p->in_comment = 1;
    const char *t = s;
    while (t < end && *t != '\r' && *t != '\n')
      t++;
    size_t seg = (size_t)(t - s);
    int rc = SSE_OK;
    if (p->in_comment) {
      if (t == end) return SSE_OK;
      p->in_comment = 0;
    } else if (t == end || p->line.n) {
      /* The line goes on past this chunk, or began in an earlier one. */
      if (seg > p->max_line - p->line.n) return SSE_ELINE;
      if (seg) {
        rc = sse_buf_reserve(&p->line, p->line.n + seg, p->max_line);
        if (rc != SSE_OK) return rc;
        memcpy(p->line.p + p->line.n, s, seg);
        p->line.n += seg;
      }
      if (t == end) return SSE_OK;
      size_t len = p->line.n;
      p->line.n = 0;
      rc = sse_line(p, p->line.p, len);
    } else {
      /* The whole line is in this chunk: parse it in place. */
      if (seg > p->max_line) return SSE_ELINE;
      rc = sse_line(p, s, seg);
    }
    if (rc != SSE_OK) return rc;
    p->lines++;
    p->after_cr = (*t == '\r');
    s = t + 1;
  }
  return SSE_OK;
}

sse_parser *sse_new(size_t max_line, size_t max_event, sse_on_event cb, void *arg) {
  const size_t gib = (size_t)1 << 30;
  if (!cb || max_line < 1 || max_event < 1 || max_line > gib || max_event > gib) return 0;
  sse_parser *p = sqlite3_malloc64(sizeof *p);
  if (!p) return 0;
  memset(p, 0, sizeof *p);
  p->max_line = max_line;
  p->max_event = max_event;
  p->cb = cb;
  p->arg = arg;
  p->retry_ms = -1;
  return p;
}

int sse_feed(sse_parser *p, const char *buf, size_t n) {
  if (p->err) return p->err;
  const char *end = buf + n;
  while (!p->bom_done && buf < end) {
    if ((unsigned char)*buf == sse_bom[p->bom]) {
      buf++;
      if (++p->bom == 3) p->bom_done = 1;
      continue;
    }
    /* Not a BOM: the bytes matched so far are ordinary content. */
    p->bom_done = 1;
    if (p->bom) {
      int rc = sse_scan(p, (const char *)sse_bom, p->bom);
      if (rc != SSE_OK) return p->err = rc;
    }
  }
  int rc = sse_scan(p, buf, (size_t)(end - buf));
  if (rc != SSE_OK) p->err = rc;
  return rc;
}

void sse_end(sse_parser *p) {
  p->line.n = 0;
  p->data.n = 0;
  p->type.n = 0;
  p->err = SSE_OK;
  p->bom = 0;
  p->bom_done = 0;
  p->after_cr = 0;
  p->in_comment = 0;
  /* Start the next stream's id buffer from the last event id. This never
  ** allocates: both buffers only grow and last was copied from id, so id
  ** already has room for it. */
  if (p->last.n == 0 || sse_buf_set(&p->id, p->last.p, p->last.n, p->max_line) != SSE_OK)
    p->id.n = 0;
}

const char *sse_last_event_id(const sse_parser *p) {
  return p->last.p ? p->last.p : "";
}

unsigned long long sse_lines(const sse_parser *p) {
  return p->lines;
}

long sse_retry_ms(const sse_parser *p) {
  return p->retry_ms;
}

void sse_free(sse_parser *p) {
  if (!p) return;
  sse_buf_free(&p->line);
  sse_buf_free(&p->data);
  sse_buf_free(&p->type);
  sse_buf_free(&p->id);
  sse_buf_free(&p->last);
  sqlite3_free(p);
}
