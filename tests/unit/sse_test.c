/*
** sse_test.c: unit tests for ext/sse.c, the event-stream parser.
**
** The web-platform-tests eventsource "format-*" cases are written out below
** as input bytes and expected events, and each is fed whole, one byte at a
** time and in random chunks (several fixed seeds, with empty chunks mixed
** in): the result must not depend on how the network splits the stream.
** Then the explicit chunk-boundary cases (CR at a chunk end, split BOM),
** the caps (line, event; memory measured with sqlite3_memory_used), the
** callback abort, sse_end, and every allocation failing in turn.
**
** Build: cc -Iext tests/unit/sse_test.c ext/sse.c -lsqlite3 (see mk/unit.mk).
*/
#include "check.h"
#include "sse.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

/* ---- recording callback ---- */

#define REC_MAX 32
typedef struct rec_event {
  char type[64];
  char data[8192];
  size_t n;
  char id[64];
} rec_event;

typedef struct recorder {
  int n;       /* events received */
  int too_big; /* an event did not fit rec_event: the check fails */
  int stop_at; /* return non-zero on event number stop_at (1-based); 0: never */
  rec_event ev[REC_MAX];
} recorder;

static int rec_cb(void *arg, const char *type, const char *data, size_t n, const char *id) {
  recorder *r = arg;
  if (data[n] != 0) r->too_big = 1; /* the promised NUL after the data */
  if (r->n < REC_MAX) {
    rec_event *e = &r->ev[r->n];
    if (strlen(type) >= sizeof e->type || n > sizeof e->data || strlen(id) >= sizeof e->id)
      r->too_big = 1;
    else {
      strcpy(e->type, type);
      memcpy(e->data, data, n);
      e->n = n;
      strcpy(e->id, id);
    }
  } else {
    r->too_big = 1;
  }
  r->n++;
  return r->stop_at && r->n == r->stop_at;
}

/* ---- test cases ---- */

#define B(s) s, sizeof(s) - 1 /* a byte-string literal and its length */

typedef struct expect_event {
  const char *type;
  const char *data;
  size_t n;
  const char *id;
} expect_event;

typedef struct sse_case {
  const char *name;
  const char *in;
  size_t in_n;
  const char *last_id; /* sse_last_event_id at the end */
  long retry;          /* sse_retry_ms at the end */
  int nev;
  expect_event ev[4];
} sse_case;

/* web-platform-tests eventsource/format-*.htm, the server's message plus the
** "\n\n" its message.py appends; then cases for the remaining rules. */
static const sse_case cases[] = {
    {"format-bom",
     B("\xEF\xBB\xBF"
       "data:1\n\n\xEF\xBB\xBF"
       "data:2\n\ndata:3\n\n"),
     "",
     -1,
     2,
     {{"message", B("1"), ""}, {"message", B("3"), ""}}},
    {"format-bom-2",
     B("\xEF\xBB\xBF\xEF\xBB\xBF"
       "data:1\n\ndata:2\n\ndata:3\n\n"),
     "",
     -1,
     2,
     {{"message", B("2"), ""}, {"message", B("3"), ""}}},
    {"format-data-before-final-empty-line",
     B("retry:1000\ndata:test1\n\nid:test\ndata:test2"),
     "",
     1000,
     1,
     {{"message", B("test1"), ""}}},
    {"format-field-data",
     B("data:\n\ndata\ndata\n\ndata:test\n\n"),
     "",
     -1,
     3,
     {{"message", B(""), ""}, {"message", B("\n"), ""}, {"message", B("test"), ""}}},
    {"format-field-event",
     B("event:test\ndata:x\n\ndata:y\n\n"),
     "",
     -1,
     2,
     {{"test", B("x"), ""}, {"message", B("y"), ""}}},
    {"format-field-event-empty",
     B("event: \ndata:data\n\n"),
     "",
     -1,
     1,
     {{"message", B("data"), ""}}},
    {"format-field-id", B("id: 1\n\n"), "1", -1, 0, {{0}}},
    {"format-field-id-2",
     B("id:1\ndata:a\n\nid\ndata:b\n\ndata:c\n\n"),
     "",
     -1,
     3,
     {{"message", B("a"), "1"}, {"message", B("b"), ""}, {"message", B("c"), ""}}},
    {"format-field-id-null",
     B("id:1\ndata:a\n\nid:2\0\ndata:b\n\nid:3\0x\n\n"),
     "1",
     -1,
     2,
     {{"message", B("a"), "1"}, {"message", B("b"), "1"}}},
    {"format-field-parsing",
     B("data:\0\ndata:  2\rData:1\rdata\0:2\rdata:1\r\0data:4\rda-ta:3\rdata_5\rdata:3\rdata:\r\n "
       "data:32\rdata:4\n\n"),
     "",
     -1,
     1,
     {{"message", B("\0\n 2\n1\n3\n\n4"), ""}}},
    {"format-field-retry", B("retry:03000\ndata:x\n\n"), "", 3000, 1, {{"message", B("x"), ""}}},
    {"format-field-retry-bogus",
     B("retry:3000\nretry:1000x\ndata:x\n\n"),
     "",
     3000,
     1,
     {{"message", B("x"), ""}}},
    {"format-field-retry-empty",
     B("retry\ndata:test\n\n"),
     "",
     -1,
     1,
     {{"message", B("test"), ""}}},
    {"format-field-unknown",
     B("data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n"),
     "",
     -1,
     1,
     {{"message", B("test\n\ntest"), ""}}},
    {"format-leading-space",
     B("data:\ttest\rdata: \ndata:test\n\n"),
     "",
     -1,
     1,
     {{"message", B("\ttest\n\ntest"), ""}}},
    {"format-newlines",
     B("data:test\r\ndata\ndata:test\r\n\r"),
     "",
     -1,
     1,
     {{"message", B("test\n\ntest"), ""}}},
    {"format-null-character", B("data:\0\n\n\n\n"), "", -1, 1, {{"message", B("\0"), ""}}},
    {"format-utf-8",
     B("data:ok\xE2\x82\xAC\n\n"),
     "",
     -1,
     1,
     {{"message", B("ok\xE2\x82\xAC"), ""}}},
    /* Beyond wpt. */
    {"no-dispatch-at-eof", B("data:x\n"), "", -1, 0, {{0}}},
    {"no-dispatch-at-eof-cr", B("id:5\ndata:x\r"), "", -1, 0, {{0}}},
    {"names-case-sensitive",
     B("DATA:x\nData:y\nEvent:e\nID:1\nRetry:5\ndata:z\n\n"),
     "",
     -1,
     1,
     {{"message", B("z"), ""}}},
    {"one-space-removed",
     B("data:  two\n\ndata: \n\nevent:  t\ndata:x\n\n"),
     "",
     -1,
     3,
     {{"message", B(" two"), ""}, {"message", B(""), ""}, {" t", B("x"), ""}}},
    {"colon-in-value",
     B("data: a:b\n\nevent:a:b\ndata\n\n"),
     "",
     -1,
     2,
     {{"message", B("a:b"), ""}, {"a:b", B(""), ""}}},
    {"cr-cr-and-crlf-mixes",
     B("data:a\r\rdata:b\n\ndata:c\r\n\r\ndata:d\n\r"),
     "",
     -1,
     4,
     {{"message", B("a"), ""},
      {"message", B("b"), ""},
      {"message", B("c"), ""},
      {"message", B("d"), ""}}},
    {"id-reset-by-empty", B("id:7\n\nid:\n\n"), "", -1, 0, {{0}}},
    {"id-reset-by-bare-name", B("id:7\n\nid\n\n"), "", -1, 0, {{0}}},
    {"id-persists", B("id:7\n\ndata:x\n\n"), "7", -1, 1, {{"message", B("x"), "7"}}},
    {"id-set-at-blank-line-only", B("id:1\n\nid:2\ndata:x"), "1", -1, 0, {{0}}},
    {"type-reset-without-data", B("event:e\n\ndata:x\n\n"), "", -1, 1, {{"message", B("x"), ""}}},
    {"retry-huge", B("retry:99999999999999999999999999\n\n"), "", LONG_MAX, 0, {{0}}},
    {"retry-invalid",
     B("retry:7\nretry:-1\nretry: \nretry:  5\nretry:5 \nretry:0x10\nretry:1.5\n\n"),
     "",
     7,
     0,
     {{0}}},
    {"retry-one-space", B("retry: 5\n"), "", 5, 0, {{0}}},
    {"blank-lines-only", B("\n\n\r\n\r\r"), "", -1, 0, {{0}}},
    {"empty-stream", B(""), "", -1, 0, {{0}}},
    {"partial-bom-is-content",
     B("\xEF\xBB"
       "data:x\n\n"),
     "",
     -1,
     0,
     {{0}}},
    {"partial-bom-1-is-content",
     B("\xEF"
       "data:x\n\ndata:y\n\n"),
     "",
     -1,
     1,
     {{"message", B("y"), ""}}},
    {"bom-then-comment", B("\xEF\xBB\xBF:hi\ndata:x\n\n"), "", -1, 1, {{"message", B("x"), ""}}},
    {"bom-not-at-start",
     B("\n\xEF\xBB\xBF"
       "data:x\n\n"),
     "",
     -1,
     0,
     {{0}}},
    {"comment-between-data",
     B("data:a\n:c\r\n:\ndata:b\n\n"),
     "",
     -1,
     1,
     {{"message", B("a\nb"), ""}}},
    {"event-with-id-and-type",
     B("event:change\nid:42\ndata:{\"v\":1}\n\nevent:change\nid:43\ndata:{\"v\":2}\n\n"),
     "43",
     -1,
     2,
     {{"change", B("{\"v\":1}"), "42"}, {"change", B("{\"v\":2}"), "43"}}},
};

/* ---- feeding ---- */

static uint64_t rng_state;
static uint64_t rng_next(void) { /* xorshift64 */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

enum { FEED_WHOLE, FEED_BYTES, FEED_RANDOM };

/* Feed in[0..n) to p in chunks of the given mode; returns the first non-OK
** result or SSE_OK. */
static int feed(sse_parser *p, const char *in, size_t n, int mode) {
  size_t off = 0;
  do {
    size_t k = n - off;
    if (mode == FEED_BYTES && k > 1) k = 1;
    if (mode == FEED_RANDOM) {
      uint64_t r = rng_next() % 10;
      size_t want = r == 0 ? 0 : r < 6 ? 1 + rng_next() % 4 : 1 + rng_next() % 40;
      if (want < k) k = want;
    }
    int rc = sse_feed(p, in + off, k);
    if (rc != SSE_OK) return rc;
    off += k;
  } while (off < n);
  return SSE_OK;
}

static void check_events(const recorder *r, const expect_event *ev, int nev) {
  CHECK(!r->too_big);
  CHECK_INT(r->n, nev);
  for (int i = 0; i < nev && i < r->n && i < REC_MAX; i++) {
    CHECK_STR(r->ev[i].type, ev[i].type);
    CHECK_MEM(r->ev[i].data, r->ev[i].n, ev[i].data, ev[i].n);
    CHECK_STR(r->ev[i].id, ev[i].id);
  }
}

static recorder rec;

static void run_case(const sse_case *c, int mode) {
  memset(&rec, 0, sizeof rec);
  sse_parser *p = sse_new(4096, 4096, rec_cb, &rec);
  if (!CHECK(p != 0)) return;
  CHECK_INT(feed(p, c->in, c->in_n, mode), SSE_OK);
  check_events(&rec, c->ev, c->nev);
  CHECK_STR(sse_last_event_id(p), c->last_id);
  CHECK_INT(sse_retry_ms(p), c->retry);
  /* End of stream: no more events; id and retry kept. */
  sse_end(p);
  CHECK_INT(rec.n, c->nev);
  CHECK_STR(sse_last_event_id(p), c->last_id);
  CHECK_INT(sse_retry_ms(p), c->retry);
  sse_free(p);
}

static const char *mode_name[] = {"whole", "bytes", "random"};

static void test_cases(void) {
  static const uint64_t seeds[] = {0x9E3779B97F4A7C15ULL, 1, 2, 3, 12345, 0xDEADBEEF};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char name[128];
    for (int mode = FEED_WHOLE; mode <= FEED_RANDOM; mode++) {
      size_t nseed = mode == FEED_RANDOM ? sizeof seeds / sizeof seeds[0] : 1;
      for (size_t s = 0; s < nseed; s++) {
        rng_state = seeds[s];
        snprintf(name, sizeof name, "%s/%s/%zu", cases[i].name, mode_name[mode], s);
        check_case = name;
        run_case(&cases[i], mode);
      }
    }
  }
  check_case = "";
}

/* wpt format-comments: comments of every shape, one 2 KiB long. */
static void test_comments(void) {
  static char in[8192];
  char longs[2049];
  memset(longs, 'x', 2048);
  longs[2048] = 0;
  size_t n = 0;
  memcpy(in + n, "data:1\r:\0\n:\r\ndata:2\n:", 22);
  n += 22;
  n += (size_t)sprintf(in + n, "%s\rdata:3\n:data:fail\r:%s\ndata:4\n\n", longs, longs);
  sse_case c = {"format-comments", in, n, "", -1, 1, {{"message", B("1\n2\n3\n4"), ""}}};
  for (int mode = FEED_WHOLE; mode <= FEED_RANDOM; mode++) {
    rng_state = 77;
    check_case = mode_name[mode];
    run_case(&c, mode);
  }
  /* A comment longer than max_line is fine: comments are not buffered. */
  check_case = "comments-unbounded";
  memset(&rec, 0, sizeof rec);
  sse_parser *p = sse_new(16, 16, rec_cb, &rec);
  if (!CHECK(p != 0)) return;
  CHECK_INT(sse_feed(p, B(":")), SSE_OK);
  for (int i = 0; i < 1000; i++)
    CHECK_INT(sse_feed(p, longs, 2048), SSE_OK);
  CHECK_INT(sse_feed(p, B("\ndata:ok\n\n")), SSE_OK);
  CHECK_INT(rec.n, 1);
  CHECK_MEM(rec.ev[0].data, rec.ev[0].n, "ok", 2);
  sse_free(p);
  check_case = "";
}

/* sse_lines counts ended lines (CR, LF, CRLF once; comments and blank
** lines too), never bytes: a drip that never ends a line does not count. */
static void test_line_count(void) {
  check_case = "line-count";
  memset(&rec, 0, sizeof rec);
  sse_parser *p = sse_new(64, 64, rec_cb, &rec);
  if (!CHECK(p != 0)) return;
  CHECK(sse_lines(p) == 0);
  for (int i = 0; i < 40; i++)
    CHECK_INT(sse_feed(p, B("x")), SSE_OK);
  CHECK(sse_lines(p) == 0);
  CHECK_INT(sse_feed(p, B("\r")), SSE_OK);
  CHECK_INT(sse_feed(p, B("\n: hi\r\n\ndata:1\n")), SSE_OK);
  CHECK(sse_lines(p) == 4);
  sse_end(p);
  CHECK(sse_lines(p) == 4);
  sse_free(p);
  check_case = "";
}

/* Feed a list of chunks (NULL-terminated, lengths by strlen) and return the
** parser; events land in rec. */
static sse_parser *feed_chunks(const char *const *chunks, int *events_after) {
  memset(&rec, 0, sizeof rec);
  sse_parser *p = sse_new(4096, 4096, rec_cb, &rec);
  if (!p) return 0;
  for (int i = 0; chunks[i]; i++) {
    CHECK_INT(sse_feed(p, chunks[i], strlen(chunks[i])), SSE_OK);
    if (events_after) events_after[i] = rec.n;
  }
  return p;
}

static void test_chunk_boundaries(void) {
  int after[8];
  sse_parser *p;

  /* CR ends a chunk: the line ends at once (the event fires without waiting
  ** for more bytes) and the LF that opens the next chunk is swallowed. If
  ** it were not, "data:a\r" + "\n" would be a blank line and dispatch "a". */
  check_case = "cr-at-chunk-end";
  const char *c1[] = {"data:a\r", "\n", "data:b\r", "\n\r", "\n", "data:c\n\n", 0};
  p = feed_chunks(c1, after);
  CHECK_INT(after[0], 0);
  CHECK_INT(after[1], 0);
  CHECK_INT(after[2], 0);
  CHECK_INT(after[3], 1); /* the lone CR of "\n\r" is the blank line */
  CHECK_INT(after[4], 1);
  CHECK_INT(after[5], 2);
  expect_event e1[] = {{"message", B("a\nb"), ""}, {"message", B("c"), ""}};
  check_events(&rec, e1, 2);
  sse_free(p);

  /* Only one LF is swallowed. */
  check_case = "cr-then-two-lf";
  const char *c2[] = {"data:a\r", "\n\n", 0};
  p = feed_chunks(c2, after);
  expect_event e2[] = {{"message", B("a"), ""}};
  check_events(&rec, e2, 1);
  sse_free(p);

  /* Empty chunks between CR and LF change nothing. */
  check_case = "cr-empty-chunk-lf";
  const char *c3[] = {"data:a\r", "", "", "\n", "data:b\n\n", 0};
  p = feed_chunks(c3, after);
  expect_event e3[] = {{"message", B("a\nb"), ""}};
  check_events(&rec, e3, 1);
  sse_free(p);

  /* A CR that ends a chunk and is followed by other bytes. */
  check_case = "cr-at-chunk-end-then-data";
  const char *c4[] = {"data:a\r", "data:b\r", "\r", 0};
  p = feed_chunks(c4, after);
  expect_event e4[] = {{"message", B("a\nb"), ""}};
  check_events(&rec, e4, 1);
  sse_free(p);

  /* BOM split across chunks, each way. */
  check_case = "bom-split";
  const char *c5[] = {"\xEF", "\xBB", "\xBF", "data:x\n\n", 0};
  p = feed_chunks(c5, 0);
  expect_event e5[] = {{"message", B("x"), ""}};
  check_events(&rec, e5, 1);
  sse_free(p);
  const char *c6[] = {"\xEF\xBB",
                      "\xBF"
                      "data:x\n\n",
                      0};
  p = feed_chunks(c6, 0);
  check_events(&rec, e5, 1);
  sse_free(p);
  /* A partial BOM then other bytes in the next chunk: the bytes are content
  ** (here, part of an unknown field name). */
  check_case = "bom-partial-split";
  const char *c7[] = {"\xEF\xBB", "data:x\n\ndata:y\n\n", 0};
  p = feed_chunks(c7, 0);
  expect_event e7[] = {{"message", B("y"), ""}};
  check_events(&rec, e7, 1);
  sse_free(p);
  /* A partial BOM followed by a line end: the prefix is a line of its own. */
  const char *c8[] = {"\xEF", "\ndata:y\n\n", 0};
  p = feed_chunks(c8, 0);
  check_events(&rec, e7, 1);
  sse_free(p);

  /* A line split in the middle of the field name, the colon, the space. */
  check_case = "split-everywhere";
  const char *c9[] = {"da", "ta", ":", " ", "x", "\n", "ev", "ent: t\n", "\n", 0};
  p = feed_chunks(c9, 0);
  expect_event e9[] = {{"t", B("x"), ""}};
  check_events(&rec, e9, 1);
  sse_free(p);
  check_case = "";
}

static void test_end_and_restart(void) {
  check_case = "end-restart";
  memset(&rec, 0, sizeof rec);
  sse_parser *p = sse_new(64, 64, rec_cb, &rec);
  if (!CHECK(p != 0)) return;
  CHECK_STR(sse_last_event_id(p), "");
  CHECK_INT(sse_retry_ms(p), -1);
  CHECK_INT(sse_feed(p, B("retry:250\nid:9\ndata:a\n\nevent:t\nid:10\ndata:cut")), SSE_OK);
  CHECK_INT(rec.n, 1);
  sse_end(p); /* "cut" is dropped, with its type and id */
  CHECK_INT(rec.n, 1);
  CHECK_STR(sse_last_event_id(p), "9");
  CHECK_INT(sse_retry_ms(p), 250);
  /* New stream: BOM stripped again; the id buffer starts from "9". */
  CHECK_INT(sse_feed(p, B("\xEF\xBB\xBF"
                          "data:b\n\n")),
            SSE_OK);
  expect_event e[] = {{"message", B("a"), "9"}, {"message", B("b"), "9"}};
  check_events(&rec, e, 2);
  /* A stream that began with a BOM, then a new one that does too. */
  CHECK_INT(sse_feed(p, B("\xEF\xBB\xBF"
                          "data:c\n")),
            SSE_OK);
  sse_end(p);
  CHECK_INT(sse_feed(p, B("\xEF\xBB\xBF"
                          "data:bom2\n\n")),
            SSE_OK);
  CHECK_INT(rec.n, 3);
  CHECK_MEM(rec.ev[2].data, rec.ev[2].n, "bom2", 4);
  rec.n = 2;
  /* A CR at the very end of one stream does not swallow the next's LF. */
  CHECK_INT(sse_feed(p, B("data:c\r")), SSE_OK);
  sse_end(p);
  CHECK_INT(sse_feed(p, B("\ndata:d\n\n")), SSE_OK);
  CHECK_INT(rec.n, 3);
  CHECK_MEM(rec.ev[2].data, rec.ev[2].n, "d", 1);
  sse_free(p);
  sse_free(0);
  check_case = "";
}

static void test_bad_args(void) {
  check_case = "bad-args";
  CHECK(sse_new(0, 10, rec_cb, &rec) == 0);
  CHECK(sse_new(10, 0, rec_cb, &rec) == 0);
  CHECK(sse_new(10, 10, 0, &rec) == 0);
  CHECK(sse_new((size_t)1 << 31, 10, rec_cb, &rec) == 0);
  CHECK(sse_new(10, SIZE_MAX, rec_cb, &rec) == 0);
  check_case = "";
}

/* A line of exactly max_line bytes passes, one more fails, whatever the
** chunking; the error is sticky until sse_end. */
static void test_line_cap(void) {
  for (int mode = FEED_WHOLE; mode <= FEED_RANDOM; mode++) {
    check_case = mode_name[mode];
    rng_state = 99;
    memset(&rec, 0, sizeof rec);
    sse_parser *p = sse_new(16, 100, rec_cb, &rec);
    if (!CHECK(p != 0)) return;
    CHECK_INT(feed(p, B("data:0123456789a\n\n"), mode), SSE_OK); /* 16 bytes */
    CHECK_INT(rec.n, 1);
    CHECK_INT(feed(p, B("data:0123456789ab\n\n"), mode), SSE_ELINE); /* 17 */
    CHECK_INT(rec.n, 1);
    CHECK_INT(sse_feed(p, B("\n")), SSE_ELINE);
    CHECK_INT(sse_feed(p, B("")), SSE_ELINE);
    sse_end(p);
    CHECK_INT(feed(p, B("data:ok\r\n\r\n"), mode), SSE_OK);
    CHECK_INT(rec.n, 2);
    /* Also a long line without any line end (never completed). */
    CHECK_INT(feed(p, B("data:0123456789abcdef"), mode), SSE_ELINE);
    sse_free(p);
  }
  check_case = "";
}

static void test_event_cap(void) {
  for (int mode = FEED_WHOLE; mode <= FEED_RANDOM; mode++) {
    check_case = mode_name[mode];
    rng_state = 7;
    memset(&rec, 0, sizeof rec);
    sse_parser *p = sse_new(64, 10, rec_cb, &rec);
    if (!CHECK(p != 0)) return;
    CHECK_INT(feed(p, B("data:0123456789\n\n"), mode), SSE_OK);
    CHECK_INT(feed(p, B("data:01234\ndata:0123\n\n"), mode), SSE_OK);
    CHECK_INT(
        feed(p, B("data\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\n\n"), mode),
        SSE_OK); /* 11 lines: 10 LFs */
    CHECK_INT(rec.n, 3);
    CHECK_MEM(rec.ev[2].data, rec.ev[2].n, "\n\n\n\n\n\n\n\n\n\n", 10);
    CHECK_INT(feed(p, B("data:01234\ndata:01234\n\n"), mode), SSE_EEVENT);
    CHECK_INT(rec.n, 3);
    sse_end(p);
    CHECK_INT(feed(p,
                   B("data\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\n\n"),
                   mode),
              SSE_EEVENT); /* 12 lines: 11 LFs */
    sse_end(p);
    CHECK_INT(feed(p, B("data:01234567890\n\n"), mode), SSE_EEVENT);
    sse_free(p);
  }
  check_case = "";
}

/* Whatever the server sends, the parser's memory stays under its bound. */
static void test_memory_bounded(void) {
  enum { L = 1024, E = 8192 };
  const sqlite3_int64 bound = 4 * (L + 1) + E + 2 + 1024;
  static char chunk[4096];
  check_case = "endless-line";
  memset(&rec, 0, sizeof rec);
  sqlite3_int64 base = sqlite3_memory_used(), peak = 0;
  sse_parser *p = sse_new(L, E, rec_cb, &rec);
  if (!CHECK(p != 0)) return;
  memset(chunk, 'x', sizeof chunk);
  int rc = SSE_OK, first_err_at = -1;
  for (int i = 0; i < 2560; i++) { /* 10 MiB, no line end */
    rc = sse_feed(p, chunk, sizeof chunk);
    if (rc != SSE_OK && first_err_at < 0) first_err_at = i;
    sqlite3_int64 used = sqlite3_memory_used() - base;
    if (used > peak) peak = used;
  }
  CHECK_INT(rc, SSE_ELINE);
  CHECK_INT(first_err_at, 0);
  CHECK(peak <= bound);
  sse_free(p);

  /* The same one byte at a time (the error comes once the cap is passed). */
  check_case = "endless-line-bytes";
  p = sse_new(L, E, rec_cb, &rec);
  if (!CHECK(p != 0)) return;
  first_err_at = -1;
  peak = 0;
  for (int i = 0; i < 100000; i++) {
    rc = sse_feed(p, "y", 1);
    if (rc != SSE_OK && first_err_at < 0) first_err_at = i;
    sqlite3_int64 used = sqlite3_memory_used() - base;
    if (used > peak) peak = used;
  }
  CHECK_INT(rc, SSE_ELINE);
  CHECK_INT(first_err_at, L);
  CHECK(peak <= bound);
  sse_free(p);

  /* Endless data lines with no blank line: the event cap. */
  check_case = "endless-event";
  p = sse_new(L, E, rec_cb, &rec);
  if (!CHECK(p != 0)) return;
  peak = 0;
  for (int i = 0; i < 100000; i++) {
    rc = sse_feed(p, B("data:0123456789abcdef0123456789abcdef\n"));
    sqlite3_int64 used = sqlite3_memory_used() - base;
    if (used > peak) peak = used;
  }
  CHECK_INT(rc, SSE_EEVENT);
  CHECK(peak <= bound);
  sse_free(p);

  /* Many maximal events: memory does not creep. */
  check_case = "many-events";
  p = sse_new(L, E, rec_cb, &rec);
  if (!CHECK(p != 0)) return;
  static char ev[3 * L + 2 * E];
  size_t n = 0;
  n += (size_t)sprintf(ev, "id:%0*d\nevent:%0*d\n", L - 3, 1, L - 6, 2);
  for (int i = 0; i < E / 512; i++) {
    memcpy(ev + n, "data:", 5);
    memset(ev + n + 5, 'z', 511 - (i == 0));
    n += 5 + 511 - (i == 0);
    ev[n++] = '\n';
  }
  ev[n++] = '\n';
  peak = 0;
  rc = SSE_OK;
  for (int i = 0; i < 200 && rc == SSE_OK; i++) {
    rec.n = 0;
    rc = sse_feed(p, ev, n);
    sqlite3_int64 used = sqlite3_memory_used() - base;
    if (used > peak) peak = used;
  }
  CHECK_INT(rc, SSE_OK);
  CHECK_INT(rec.n, 1);
  CHECK(peak <= bound);
  sse_free(p);
  check_case = "";
}

static void test_abort(void) {
  check_case = "callback-abort";
  memset(&rec, 0, sizeof rec);
  rec.stop_at = 2;
  sse_parser *p = sse_new(64, 64, rec_cb, &rec);
  if (!CHECK(p != 0)) return;
  CHECK_INT(sse_feed(p, B("data:1\n\ndata:2\n\ndata:3\n\n")), SSE_EABORT);
  CHECK_INT(rec.n, 2); /* stopped at once: event 3 not parsed */
  CHECK_INT(sse_feed(p, B("data:4\n\n")), SSE_EABORT);
  CHECK_INT(rec.n, 2);
  sse_end(p);
  CHECK_INT(sse_feed(p, B("data:5\n\n")), SSE_OK);
  CHECK_INT(rec.n, 3);
  CHECK_MEM(rec.ev[2].data, rec.ev[2].n, "5", 1);
  sse_free(p);
  check_case = "";
}

/* ---- allocation failures ---- */

static sqlite3_mem_methods real_mem;
static int oom_countdown = -1; /* allocations left before failing; -1: never */
static int oom_hit;

static int oom_fail(void) {
  if (oom_countdown < 0) return 0;
  if (oom_countdown == 0) {
    oom_hit = 1;
    return 1;
  }
  oom_countdown--;
  return 0;
}
static void *oom_malloc(int n) {
  return oom_fail() ? 0 : real_mem.xMalloc(n);
}
static void *oom_realloc(void *p, int n) {
  return oom_fail() ? 0 : real_mem.xRealloc(p, n);
}

/* Fail the k-th allocation for every k: the parser reports SSE_ENOMEM (or
** NULL from sse_new), never crashes, and sse_free releases everything. */
static void test_oom(int installed) {
  check_case = "oom";
  if (!CHECK(installed)) return;
  const sse_case *c = &cases[0];
  while (strcmp(c->name, "format-field-parsing") != 0) /* data, ids, every line end */
    c++;
  static const char in[] = "event:e\nid:1\ndata:x\n\n:c\nid:2\ndata:y\n\n";
  for (int k = 0; k < 40; k++) {
    for (int mode = FEED_WHOLE; mode <= FEED_BYTES; mode++) {
      memset(&rec, 0, sizeof rec);
      oom_hit = 0;
      oom_countdown = k;
      sse_parser *p = sse_new(64, 64, rec_cb, &rec);
      int rc = SSE_OK;
      if (p) {
        rc = feed(p, c->in, c->in_n, mode);
        if (rc == SSE_OK) rc = feed(p, in, sizeof in - 1, mode);
        if (rc == SSE_OK) {
          sse_end(p);
          rc = feed(p, in, sizeof in - 1, mode);
        }
      }
      oom_countdown = -1;
      if (!oom_hit) {
        CHECK(p != 0);
        CHECK_INT(rc, SSE_OK);
        CHECK_INT(rec.n, 5);
      } else {
        CHECK(p == 0 || rc == SSE_ENOMEM || rc == SSE_OK);
      }
      sse_free(p);
      CHECK_INT(sqlite3_memory_used(), 0);
    }
  }
  check_case = "";
}

int main(void) {
  /* Wrap SQLite's allocator before anything initializes SQLite. */
  int installed = sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem) == SQLITE_OK;
  if (installed) {
    sqlite3_mem_methods m = real_mem;
    m.xMalloc = oom_malloc;
    m.xRealloc = oom_realloc;
    installed = sqlite3_config(SQLITE_CONFIG_MALLOC, &m) == SQLITE_OK;
  }
  test_cases();
  test_comments();
  test_line_count();
  test_chunk_boundaries();
  test_end_and_restart();
  test_bad_args();
  test_line_cap();
  test_event_cap();
  test_memory_bounded();
  test_abort();
  test_oom(installed);
  return check_done("sse_test");
}
