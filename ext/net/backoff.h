/*
** Retry delays for the worker: capped exponential backoff with jitter, reset
** on success, honouring a server's Retry-After.
**
**   backoff b;
**   backoff_init(&b, 500, 60000, 0);         // from the config keys
**   on a transient failure:
**     int64_t ra = backoff_parse_retry_after(header_or_NULL, time(0));
**     deadline = now_ms + backoff_next_ms(&b, ra);
**   on success:
**     backoff_reset(&b);
**
** A backoff is a plain struct owned by the caller (no allocation, nothing
** to free); one per retry loop, used by one thread.
*/
#ifndef SYNC_BACKOFF_H
#define SYNC_BACKOFF_H

#include <stdint.h>
#include <time.h>

/* Largest delay backoff_parse_retry_after() returns: INT32_MAX ms, about
** 24.8 days. */
#define BACKOFF_RETRY_AFTER_MAX ((int64_t)INT32_MAX)

typedef struct backoff {
  int64_t min_ms;   /* floor of every delay, >= 1 */
  int64_t max_ms;   /* cap of every computed delay, >= min_ms */
  uint32_t attempt; /* failures since the last reset (saturates) */
  uint64_t rng;     /* splitmix64 state, private to this object */
} backoff;

/* Set up b. min_ms below 1 is taken as 1; max_ms below min_ms as min_ms.
** seed 0 seeds the generator from getrandom() where available, else from
** the clock and b's address; any other seed gives a reproducible sequence
** (for tests). Starts at attempt 0. */
void backoff_init(backoff *b, int64_t min_ms, int64_t max_ms, uint64_t seed);

/* The delay before the next retry, in ms, and count one more failure.
** For attempt n (failures before this one since the last reset) the delay
** is uniform in [min_ms, min(max_ms, min_ms * 2^(n+1))]: the first retry
** waits between min_ms and 2*min_ms, the window doubles each time up to
** max_ms. Safe for any number of attempts. retry_after_ms is the server's
** Retry-After in ms (from backoff_parse_retry_after) or negative for none;
** the result is then max(retry_after_ms, computed delay), which may exceed
** max_ms: the caller may clamp a server's hint if it wants to. */
int64_t backoff_next_ms(backoff *b, int64_t retry_after_ms);

/* Back to attempt 0 after a success. The generator state is kept. */
void backoff_reset(backoff *b);

/* Parse an HTTP Retry-After value (RFC 9110 10.2.3): delay-seconds (ASCII
** digits) or an HTTP-date in any of the three forms (IMF-fixdate, RFC 850,
** asctime), with surrounding spaces, tabs, CR and LF ignored. now is the
** current time for a date. Returns the delay in ms (0 for a date in the
** past; longer delays saturate at BACKOFF_RETRY_AFTER_MAX, so the result
** fits an int timeout and now_ms + result cannot overflow), or -1 if z is
** NULL or not a valid value. */
int64_t backoff_parse_retry_after(const char *z, time_t now);

#endif
