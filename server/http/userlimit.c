/*
** userlimit.c: one JWT user's requests may not starve the others' (syncd
** --max-requests-per-user N): a token bucket per user holds up to N
** requests and refills at N a second; a request that finds it empty is answered
** 429 with Retry-After (routes.c).
**
** Memory is fixed: the buckets are a set-associative table of SETS x WAYS
** entries keyed by a 64-bit hash of the user's sub (subs come from verified
** tokens, so users cannot pick colliding ones). A user not in the table
** takes the entry of its set whose bucket is fullest: an idle user, whose
** bucket has refilled anyway and who starts full again when it returns,
** loses nothing; a user being held back has an empty bucket and stays.
*/
#include "userlimit.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define SETS 256
#define WAYS 8

typedef struct bucket {
  uint64_t user; /* 0: free */
  double tokens;
  long long at; /* ms, monotonic: when tokens was last refilled */
} bucket;

static bucket table[SETS][WAYS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t hash(const char *s) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h ? h : 1;
}

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void refill(bucket *b, unsigned rate, long long now) {
  b->tokens += (double)(now - b->at) * rate / 1000.0;
  if (b->tokens > rate) b->tokens = rate;
  b->at = now;
}

int userlimit_take(const char *sub, unsigned rate) {
  uint64_t h = hash(sub);
  long long now = now_ms();
  pthread_mutex_lock(&mu);
  bucket *set = table[h % SETS], *b = 0, *fullest = 0;
  for (int i = 0; i < WAYS && !b; i++) {
    if (set[i].user == h) {
      b = &set[i];
      break;
    }
    if (set[i].user) refill(&set[i], rate, now);
    if (!fullest || !set[i].user || (fullest->user && set[i].tokens > fullest->tokens))
      fullest = &set[i];
  }
  if (!b) *(b = fullest) = (bucket){h, rate, now};
  refill(b, rate, now);
  int wait = 0;
  if (b->tokens >= 1)
    b->tokens -= 1;
  else
    wait = (int)((1 - b->tokens) / rate) + 1;
  pthread_mutex_unlock(&mu);
  return wait;
}
