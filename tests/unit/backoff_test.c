/*
** backoff_test.c: unit tests for ext/backoff.c: delay bounds over many
** attempts and seeds, growth, cap, reset, jitter that really varies,
** overflow safety, Retry-After seconds and HTTP-dates (all three forms,
** checked against the C library's own formatting of random times), and
** invalid Retry-After values.
**
** Build: cc -Iext tests/unit/backoff_test.c ext/backoff.c -lsqlite3 (see
** mk/unit.mk; SQLite only for the harness's leak check).
*/
#include "backoff.h"
#include "check.h"

#include <stdint.h>
#include <time.h>

/* The window of attempt n for [lo, hi]: min(hi, lo * 2^(n+1)). */
static int64_t window_hi(int64_t lo, int64_t hi, int n) {
  int64_t w = lo;
  for (int i = 0; i <= n; i++) {
    if (w > hi / 2) return hi;
    w *= 2;
  }
  return w < hi ? w : hi;
}

static void test_bounds(void) {
  check_case = "bounds";
  static const uint64_t seeds[] = {1, 2, 3, 42, 0xDEADBEEF, 0x9E3779B97F4A7C15ULL};
  for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
    backoff b;
    backoff_init(&b, 100, 30000, seeds[s]);
    for (int n = 0; n < 300; n++) {
      int64_t d = backoff_next_ms(&b, -1);
      int64_t hi = window_hi(100, 30000, n);
      if (!CHECK(d >= 100 && d <= hi)) fprintf(stderr, "    attempt %d: %lld\n", n, (long long)d);
    }
  }
  check_case = "";
}

static void test_clamps(void) {
  check_case = "clamps";
  backoff b;
  backoff_init(&b, 0, 0, 1);
  CHECK_INT(b.min_ms, 1);
  CHECK_INT(b.max_ms, 1);
  for (int i = 0; i < 50; i++)
    CHECK_INT(backoff_next_ms(&b, -1), 1);
  backoff_init(&b, -5, 1000, 1);
  CHECK_INT(b.min_ms, 1);
  backoff_init(&b, 500, 100, 1);
  CHECK_INT(b.max_ms, 500);
  for (int i = 0; i < 50; i++)
    CHECK_INT(backoff_next_ms(&b, -1), 500);
  check_case = "";
}

/* The mean of each attempt's delay follows the window's middle, and the
** largest delay seen reaches into the doubled window. */
static void test_growth(void) {
  check_case = "growth";
  enum { TRIALS = 4000, N = 8 };
  double sum[N] = {0};
  int64_t top[N] = {0};
  backoff b;
  backoff_init(&b, 100, 1000000, 7);
  for (int t = 0; t < TRIALS; t++) {
    backoff_reset(&b);
    for (int n = 0; n < N; n++) {
      int64_t d = backoff_next_ms(&b, -1);
      sum[n] += (double)d;
      if (d > top[n]) top[n] = d;
    }
  }
  for (int n = 0; n < N; n++) {
    double mid = (100.0 + (double)window_hi(100, 1000000, n)) / 2;
    double mean = sum[n] / TRIALS;
    if (!CHECK(mean > mid * 0.93 && mean < mid * 1.07))
      fprintf(stderr, "    attempt %d: mean %.1f, expected about %.1f\n", n, mean, mid);
    CHECK(top[n] > window_hi(100, 1000000, n) * 9 / 10);
    if (n) CHECK(sum[n] > sum[n - 1]);
  }
  check_case = "";
}

static void test_cap(void) {
  check_case = "cap";
  backoff b;
  backoff_init(&b, 100, 5000, 11);
  int64_t top = 0;
  for (int n = 0; n < 2000; n++) {
    int64_t d = backoff_next_ms(&b, -1);
    if (n >= 6) CHECK(d >= 100 && d <= 5000); /* window capped from attempt 5 on */
    if (d > top) top = d;
  }
  CHECK(top <= 5000);
  CHECK(top >= 4900);
  check_case = "";
}

static void test_reset(void) {
  check_case = "reset";
  backoff b;
  backoff_init(&b, 100, 60000, 5);
  for (int n = 0; n < 40; n++)
    backoff_next_ms(&b, -1);
  CHECK_INT(b.attempt, 40);
  backoff_reset(&b);
  CHECK_INT(b.attempt, 0);
  for (int t = 0; t < 200; t++) {
    backoff_reset(&b);
    int64_t d = backoff_next_ms(&b, -1);
    CHECK(d >= 100 && d <= 200);
  }
  check_case = "";
}

/* Jitter varies, is spread evenly, and is reproducible for a given seed. */
static void test_jitter(void) {
  check_case = "jitter";
  backoff a, b, c;
  backoff_init(&a, 10, 19, 123);
  int count[10] = {0};
  for (int i = 0; i < 20000; i++) {
    int64_t d = backoff_next_ms(&a, -1);
    if (CHECK(d >= 10 && d <= 19)) count[d - 10]++;
  }
  for (int i = 0; i < 10; i++)
    if (!CHECK(count[i] > 1700 && count[i] < 2300)) fprintf(stderr, "    %d: %d\n", i, count[i]);

  backoff_init(&a, 1, 1000000, 99);
  backoff_init(&b, 1, 1000000, 99);
  backoff_init(&c, 1, 1000000, 100);
  int same_ab = 0, same_ac = 0;
  for (int i = 0; i < 100; i++) {
    int64_t x = backoff_next_ms(&a, -1), y = backoff_next_ms(&b, -1), z = backoff_next_ms(&c, -1);
    same_ab += x == y;
    same_ac += x == z;
  }
  CHECK_INT(same_ab, 100);
  CHECK(same_ac < 20);

  /* Seed 0: seeded from the system; two objects differ. */
  backoff_init(&a, 1, 1000000000, 0);
  backoff_init(&b, 1, 1000000000, 0);
  CHECK(a.rng != b.rng);
  int same = 0;
  for (int i = 0; i < 20; i++)
    backoff_next_ms(&a, -1) == backoff_next_ms(&b, -1) ? same++ : 0;
  CHECK(same < 20);
  check_case = "";
}

static void test_overflow(void) {
  check_case = "overflow";
  backoff b;
  backoff_init(&b, 1, INT64_MAX, 3);
  for (int n = 0; n < 1000; n++) {
    int64_t d = backoff_next_ms(&b, -1);
    CHECK(d >= 1);
  }
  backoff_init(&b, INT64_MAX / 2 + 1, INT64_MAX, 3);
  for (int n = 0; n < 100; n++)
    CHECK(backoff_next_ms(&b, -1) >= INT64_MAX / 2 + 1);
  backoff_init(&b, 1000, 60000, 3);
  b.attempt = UINT32_MAX - 2;
  for (int n = 0; n < 5; n++) {
    int64_t d = backoff_next_ms(&b, -1);
    CHECK(d >= 1000 && d <= 60000);
  }
  CHECK(b.attempt >= UINT32_MAX - 2); /* saturated, not wrapped */
  check_case = "";
}

static void test_retry_after_wins(void) {
  check_case = "retry-after-max";
  backoff b;
  backoff_init(&b, 100, 10000, 9);
  CHECK_INT(backoff_next_ms(&b, 5000), 5000); /* window [100, 200] */
  CHECK_INT(b.attempt, 1);
  int64_t d = backoff_next_ms(&b, 50);
  CHECK(d >= 100 && d <= 400);
  d = backoff_next_ms(&b, 0);
  CHECK(d >= 100 && d <= 800);
  CHECK_INT(backoff_next_ms(&b, 86400000), 86400000); /* beyond max_ms: the server wins */
  CHECK_INT(b.attempt, 4);
  check_case = "";
}

static void test_parse_seconds(void) {
  check_case = "retry-after-seconds";
  time_t now = 1700000000;
  CHECK_INT(backoff_parse_retry_after("120", now), 120000);
  CHECK_INT(backoff_parse_retry_after("0", now), 0);
  CHECK_INT(backoff_parse_retry_after("007", now), 7000);
  CHECK_INT(backoff_parse_retry_after(" 5 ", now), 5000);
  CHECK_INT(backoff_parse_retry_after("\t5\r\n", now), 5000);
  CHECK_INT(backoff_parse_retry_after("2147483", now), 2147483000);
  CHECK_INT(backoff_parse_retry_after("2147484", now), BACKOFF_RETRY_AFTER_MAX);
  CHECK_INT(backoff_parse_retry_after("99999999999999999999999999999", now),
            BACKOFF_RETRY_AFTER_MAX);
  check_case = "retry-after-invalid";
  CHECK_INT(backoff_parse_retry_after(0, now), -1);
  CHECK_INT(backoff_parse_retry_after("", now), -1);
  CHECK_INT(backoff_parse_retry_after(" \r\n", now), -1);
  CHECK_INT(backoff_parse_retry_after("-5", now), -1);
  CHECK_INT(backoff_parse_retry_after("+5", now), -1);
  CHECK_INT(backoff_parse_retry_after("5s", now), -1);
  CHECK_INT(backoff_parse_retry_after("1.5", now), -1);
  CHECK_INT(backoff_parse_retry_after("1 2", now), -1);
  CHECK_INT(backoff_parse_retry_after("0x10", now), -1);
  CHECK_INT(backoff_parse_retry_after("soon", now), -1);
  check_case = "";
}

static void test_parse_dates(void) {
  check_case = "retry-after-date";
  const time_t t = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example) */
  CHECK_INT(backoff_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t - 120), 120000);
  CHECK_INT(backoff_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", t - 120), 120000);
  CHECK_INT(backoff_parse_retry_after("Sun Nov  6 08:49:37 1994", t - 120), 120000);
  CHECK_INT(backoff_parse_retry_after(" Sun, 06 Nov 1994 08:49:37 GMT\r\n", t - 1), 1000);
  CHECK_INT(backoff_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t), 0);
  CHECK_INT(backoff_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t + 3600), 0);
  CHECK_INT(backoff_parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", t), BACKOFF_RETRY_AFTER_MAX);
  CHECK_INT(backoff_parse_retry_after("Thu, 29 Feb 2024 00:00:00 GMT", 1709164800 - 10), 10000);
  CHECK_INT(backoff_parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 0), 10000);
  /* Weekdays are not checked against the date (recipients need the date). */
  CHECK_INT(backoff_parse_retry_after("Mon, 06 Nov 1994 08:49:37 GMT", t - 1), 1000);
  /* RFC 850 two-digit years: within 50 years ahead, else the past century. */
  const time_t y2026 = 1767225600; /* 2026-01-01 */
  CHECK_INT(backoff_parse_retry_after("Wednesday, 01-Jan-30 00:00:00 GMT", y2026),
            BACKOFF_RETRY_AFTER_MAX); /* 2030: in the future */
  CHECK_INT(backoff_parse_retry_after("Saturday, 01-Jan-77 00:00:00 GMT", y2026), 0); /* 1977 */
  CHECK_INT(backoff_parse_retry_after("Thursday, 01-Jan-26 00:01:00 GMT", y2026), 60000);

  check_case = "retry-after-date-invalid";
  static const char *const bad[] = {
      "Sun, 06 Nov 1994 08:49:37 UTC",
      "sun, 06 Nov 1994 08:49:37 GMT",
      "Sun, 6 Nov 1994 08:49:37 GMT",
      "Sun, 06 nov 1994 08:49:37 GMT",
      "Sun, 06 Nov 94 08:49:37 GMT",
      "Sun, 06 Nov 1994 24:00:00 GMT",
      "Sun, 06 Nov 1994 08:60:00 GMT",
      "Sun, 06 Nov 1994 08:49:61 GMT",
      "Sun, 06 Nov 1994 08:49:37 GMTx",
      "Sun, 06 Nov 1994 08:49:37",
      "Sun, 06 Nov 1994 8:49:37 GMT",
      "Sun, 00 Nov 1994 08:49:37 GMT",
      "Sun, 31 Nov 1994 08:49:37 GMT",
      "Wed, 29 Feb 2023 00:00:00 GMT",
      "Sun, 06 Foo 1994 08:49:37 GMT",
      "Sun,06 Nov 1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 08:49:37 GMT ,",
      "Sunday, 06-Nov-1994 08:49:37 GMT",
      "Sunday, 06 Nov 94 08:49:37 GMT",
      "Sun Nov 6 08:49:37 1994",
      "Sun Nov  6 08:49:37 94",
      "Sun Nov 06 08:49:37 1994 GMT",
      "Sunday Nov  6 08:49:37 1994",
      "Xyz, 06 Nov 1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 08:49:37 GMT\x01",
      "Sun, 06 Nov 1994",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (!CHECK(backoff_parse_retry_after(bad[i], t - 100) == -1))
      fprintf(stderr, "    accepted: \"%s\"\n", bad[i]);

  /* Random times from 1970 to 2200 in all three forms, as the C library
  ** prints them, each 1000 s ahead of now. */
  check_case = "retry-after-date-random";
  uint64_t r = 88172645463325252ULL;
  for (int i = 0; i < 3000; i++) {
    r ^= r << 13;
    r ^= r >> 7;
    r ^= r << 17;
    time_t when = (time_t)(r % 7258118400ULL); /* up to 2200-01-01 */
    struct tm tm;
    char buf[64];
    if (!CHECK(gmtime_r(&when, &tm) != 0)) continue;
    static const char *const fmts[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                       "%a %b %e %H:%M:%S %Y"};
    for (int f = 0; f < 3; f++) {
      strftime(buf, sizeof buf, fmts[f], &tm);
      int64_t ms = backoff_parse_retry_after(buf, when - 1000);
      if (!CHECK(ms == 1000000)) fprintf(stderr, "    \"%s\": %lld\n", buf, (long long)ms);
    }
  }
  check_case = "";
}

int main(void) {
  test_bounds();
  test_clamps();
  test_growth();
  test_cap();
  test_reset();
  test_jitter();
  test_overflow();
  test_retry_after_wins();
  test_parse_seconds();
  test_parse_dates();
  return check_done("backoff_test");
}
