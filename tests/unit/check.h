/*
** check.h: the unit tests' whole harness. CHECK macros count passes and
** failures and print file:line and the failing expression (they stay in
** under NDEBUG, unlike assert). check_done() ends a test program: it fails
** the run if SQLite still has memory allocated (every ext/ allocation goes
** through sqlite3_malloc64, so that is a leak) and prints the closing line
** "NAME: N passed, N failed" that mk/unit.mk adds up.
*/
#ifndef SYNC_CHECK_H
#define SYNC_CHECK_H

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;
static const char *check_case = ""; /* name of the case running, for messages */

static int check_report(int ok, const char *file, int line, const char *expr) {
  if (ok) {
    check_passed++;
  } else {
    check_failed++;
    fprintf(stderr, "%s:%d: [%s] CHECK failed: %s\n", file, line, check_case, expr);
  }
  return ok;
}

#define CHECK(expr) check_report((expr) ? 1 : 0, __FILE__, __LINE__, #expr)

#define CHECK_INT(a, b)                                                                            \
  do {                                                                                             \
    long long check_a_ = (long long)(a), check_b_ = (long long)(b);                                \
    if (!CHECK(check_a_ == check_b_))                                                              \
      fprintf(stderr, "    %s = %lld, %s = %lld\n", #a, check_a_, #b, check_b_);                   \
  } while (0)

#define CHECK_STR(a, b)                                                                            \
  do {                                                                                             \
    const char *check_a_ = (a), *check_b_ = (b);                                                   \
    if (!CHECK(check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0))                           \
      fprintf(stderr, "    %s = \"%s\", %s = \"%s\"\n", #a, check_a_ ? check_a_ : "(null)", #b,    \
              check_b_ ? check_b_ : "(null)");                                                     \
  } while (0)

/* Byte strings that may hold NUL. */
#define CHECK_MEM(a, an, b, bn)                                                                    \
  do {                                                                                             \
    size_t check_an_ = (an), check_bn_ = (bn);                                                     \
    if (!CHECK(check_an_ == check_bn_ && memcmp((a), (b), check_an_) == 0))                        \
      fprintf(stderr, "    %s: %zu bytes, %s: %zu bytes\n", #a, check_an_, #b, check_bn_);         \
  } while (0)

/* End of a test program: leak check and the closing line. Returns the exit
** status for main. */
static int check_done(const char *name) {
  sqlite3_int64 used = sqlite3_memory_used();
  if (!CHECK(used == 0)) fprintf(stderr, "    sqlite3_memory_used() = %lld\n", (long long)used);
  printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
  return check_failed ? 1 : 0;
}

#endif
