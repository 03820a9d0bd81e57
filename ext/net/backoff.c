/*
** backoff.c: retry delays for the worker's loop (loop.c), which arms its
** curl_multi_poll timeout from backoff_next_ms() after a transient failure
** (network, timeout, 5xx, 429) and calls backoff_reset() after a success.
**
** Policy: exponential backoff with jitter and a floor. AWS's "full jitter"
** draws uniform(0, min(cap, base*2^n)); a zero delay would let a crowd of
** clients hammer a server that just came back, so here the draw is
** uniform(min_ms, min(max_ms, min_ms*2^(n+1))). The window already spans
** [min, 2*min] on the first retry, so clients that failed together spread
** out from the start. A server's Retry-After wins when it is longer.
**
** The random source is a splitmix64 generator inside each backoff object,
** seeded once: no global rand() state shared with the host application.
*/
#include "backoff.h"

#include <stddef.h>
#include <string.h>
#if defined(__linux__)
#include <sys/random.h>
#include <sys/types.h>
#endif

static uint64_t backoff_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* splitmix64: next 64 random bits from b's state. */
static uint64_t backoff_rand(backoff *b) {
  b->rng += 0x9e3779b97f4a7c15ULL;
  return backoff_mix(b->rng);
}

/* Uniform in [0, range] without modulo bias. */
static uint64_t backoff_uniform(backoff *b, uint64_t range) {
  if (range == UINT64_MAX) return backoff_rand(b);
  uint64_t span = range + 1;
  uint64_t limit = UINT64_MAX - UINT64_MAX % span; /* multiple of span */
  uint64_t r;
  do {
    r = backoff_rand(b);
  } while (r >= limit);
  return r % span;
}

static uint64_t backoff_seed(const backoff *b) {
  uint64_t s = 0;
#if defined(__linux__)
  if (getrandom(&s, sizeof s, GRND_NONBLOCK) == (ssize_t)sizeof s && s) return s;
#endif
  struct timespec ts = {0, 0};
  clock_gettime(CLOCK_REALTIME, &ts);
  s = backoff_mix((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
  s ^= backoff_mix((uint64_t)(uintptr_t)b);
#ifdef CLOCK_MONOTONIC
  if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
    s ^= backoff_mix((uint64_t)ts.tv_nsec + ((uint64_t)ts.tv_sec << 32));
#endif
  return s;
}

void backoff_init(backoff *b, int64_t min_ms, int64_t max_ms, uint64_t seed) {
  if (min_ms < 1) min_ms = 1;
  if (max_ms < min_ms) max_ms = min_ms;
  b->min_ms = min_ms;
  b->max_ms = max_ms;
  b->attempt = 0;
  b->rng = seed ? seed : backoff_seed(b);
}

void backoff_reset(backoff *b) {
  b->attempt = 0;
}

int64_t backoff_next_ms(backoff *b, int64_t retry_after_ms) {
  /* hi = min(max_ms, min_ms * 2^(attempt+1)), without overflow. */
  int64_t hi = b->max_ms;
  uint32_t shift = b->attempt + 1; /* attempt saturates below UINT32_MAX */
  if (shift < 62 && b->min_ms <= (b->max_ms >> shift)) hi = b->min_ms << shift;
  int64_t d = b->min_ms + (int64_t)backoff_uniform(b, (uint64_t)(hi - b->min_ms));
  if (b->attempt < UINT32_MAX - 1) b->attempt++;
  return retry_after_ms > d ? retry_after_ms : d;
}

/* ---- Retry-After ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t backoff_days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* The Gregorian year that a count of days since 1970-01-01 falls in. */
static int64_t backoff_year_of_days(int64_t z) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  return yoe + era * 400 + (mp >= 10);
}

static int backoff_is_leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Read exactly n digits at *z (n > 0), advancing it. Returns the value or
** -1. */
static int backoff_digits(const char **z, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    char c = (*z)[i];
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  *z += n;
  return v;
}

/* Match literal lit at *z, advancing it. Returns 1 or 0. */
static int backoff_lit(const char **z, const char *lit) {
  size_t n = strlen(lit);
  if (strncmp(*z, lit, n) != 0) return 0;
  *z += n;
  return 1;
}

/* Month name (case-sensitive, as the grammar says) to 1..12, or 0. */
static int backoff_month(const char **z) {
  static const char *const names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; i++)
    if (backoff_lit(z, names[i])) return i + 1;
  return 0;
}

/* Day name: the short form ("Sun") or, with full set, the long one
** ("Sunday"). Returns 1 if matched. The day is not checked against the
** date: recipients only need the date. */
static int backoff_dayname(const char **z, int full) {
  static const char *const short_names[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static const char *const long_names[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                           "Friday", "Saturday", "Sunday"};
  for (int i = 0; i < 7; i++)
    if (backoff_lit(z, full ? long_names[i] : short_names[i])) return 1;
  return 0;
}

/* "HH:MM:SS" at *z into seconds of the day, or -1. */
static int64_t backoff_clock(const char **z) {
  int h = backoff_digits(z, 2);
  if (h < 0 || h > 23 || !backoff_lit(z, ":")) return -1;
  int m = backoff_digits(z, 2);
  if (m < 0 || m > 59 || !backoff_lit(z, ":")) return -1;
  int s = backoff_digits(z, 2);
  if (s < 0 || s > 60) return -1; /* 60: a leap second */
  return h * 3600 + m * 60 + s;
}

/* Parse an HTTP-date filling all of z[0..n). Returns seconds since the
** epoch, or INT64_MIN if invalid. now resolves RFC 850 two-digit years. */
static int64_t backoff_http_date(const char *z, size_t n, time_t now) {
  const char *end = z + n, *p = z;
  int64_t year, secs;
  int mon, day;
  if (backoff_dayname(&p, 0) && backoff_lit(&p, ", ")) {
    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    if ((day = backoff_digits(&p, 2)) < 0 || !backoff_lit(&p, " ")) return INT64_MIN;
    if (!(mon = backoff_month(&p)) || !backoff_lit(&p, " ")) return INT64_MIN;
    if ((year = backoff_digits(&p, 4)) < 0 || !backoff_lit(&p, " ")) return INT64_MIN;
    if ((secs = backoff_clock(&p)) < 0 || !backoff_lit(&p, " GMT")) return INT64_MIN;
  } else if (p = z, backoff_dayname(&p, 1) && backoff_lit(&p, ", ")) {
    /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
    if ((day = backoff_digits(&p, 2)) < 0 || !backoff_lit(&p, "-")) return INT64_MIN;
    if (!(mon = backoff_month(&p)) || !backoff_lit(&p, "-")) return INT64_MIN;
    if ((year = backoff_digits(&p, 2)) < 0 || !backoff_lit(&p, " ")) return INT64_MIN;
    if ((secs = backoff_clock(&p)) < 0 || !backoff_lit(&p, " GMT")) return INT64_MIN;
    /* RFC 9110: a two-digit year more than 50 years in the future means
    ** the most recent past year with those digits. */
    int64_t cur = backoff_year_of_days((int64_t)now / 86400 - ((int64_t)now % 86400 < 0));
    year += cur - cur % 100;
    if (year > cur + 50) year -= 100;
  } else if (p = z, backoff_dayname(&p, 0) && backoff_lit(&p, " ")) {
    /* asctime: Sun Nov  6 08:49:37 1994 (day padded with a space) */
    if (!(mon = backoff_month(&p)) || !backoff_lit(&p, " ")) return INT64_MIN;
    if (*p == ' ') {
      p++;
      day = backoff_digits(&p, 1);
    } else {
      day = backoff_digits(&p, 2);
    }
    if (day < 0 || !backoff_lit(&p, " ")) return INT64_MIN;
    if ((secs = backoff_clock(&p)) < 0 || !backoff_lit(&p, " ")) return INT64_MIN;
    if ((year = backoff_digits(&p, 4)) < 0) return INT64_MIN;
  } else {
    return INT64_MIN;
  }
  if (p != end) return INT64_MIN;
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int dim = mdays[mon - 1] + (mon == 2 && backoff_is_leap(year));
  if (day < 1 || day > dim) return INT64_MIN;
  return backoff_days_from_civil(year, mon, day) * 86400 + secs;
}

static int backoff_is_ows(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int64_t backoff_parse_retry_after(const char *z, time_t now) {
  if (!z) return -1;
  while (backoff_is_ows(*z))
    z++;
  size_t n = strlen(z);
  while (n && backoff_is_ows(z[n - 1]))
    n--;
  if (n == 0) return -1;
  int64_t secs;
  if (z[0] >= '0' && z[0] <= '9') {
    secs = 0;
    for (size_t i = 0; i < n; i++) {
      if (z[i] < '0' || z[i] > '9') return -1;
      if (secs <= BACKOFF_RETRY_AFTER_MAX / 1000) secs = secs * 10 + (z[i] - '0');
    }
  } else {
    int64_t t = backoff_http_date(z, n, now);
    if (t == INT64_MIN) return -1;
    secs = t - (int64_t)now;
    if (secs < 0) secs = 0;
  }
  return secs > BACKOFF_RETRY_AFTER_MAX / 1000 ? BACKOFF_RETRY_AFTER_MAX : secs * 1000;
}
