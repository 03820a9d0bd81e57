/*
** fsync_gate.c: an LD_PRELOAD shim for test_durable.py. Each fsync or
** fdatasync of a file whose name ends in "-wal" appends one byte to the
** file named by $FSYNC_GATE_COUNT (so the test can count them), then
** waits while the file named by $FSYNC_GATE_HOLD exists (so the test can
** hold a write-ahead log sync open and look at what syncd answers
** meanwhile). While the file named by $FSYNC_GATE_FAIL exists, they fail
** with EIO instead (a disk that lost the writes). $FSYNC_GATE_DELAY_US,
** when set, adds that many microseconds to each (bench: a disk whose
** fsync is slower than this machine's). $FSYNC_GATE_READS, when set,
** names a file that gets one byte for each page read from the database
** file or its WAL (a pread of a file whose name ends in ".db" or
** ".db-wal"), so test_durable.py can count them.
**
**     cc -shared -fPIC -o fsync_gate.so fsync_gate.c -ldl
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int ends_with(int fd, const char *end) {
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  size_t e = strlen(end);
  return n > (ssize_t)e && memcmp(path + n - e, end, e) == 0;
}

static int is_wal(int fd) {
  return ends_with(fd, "-wal");
}

static void tally(const char *file) {
  int c = open(file, O_WRONLY | O_APPEND | O_CREAT, 0600);
  if (c >= 0) {
    (void)!write(c, "s", 1);
    close(c);
  }
}

/* 0 to go on with the real call, or -1 with errno set. */
static int gate(int fd) {
  const char *count = getenv("FSYNC_GATE_COUNT"), *hold = getenv("FSYNC_GATE_HOLD");
  const char *fail = getenv("FSYNC_GATE_FAIL");
  if (!is_wal(fd)) return 0;
  if (count) tally(count);
  struct timespec ms = {0, 1000000};
  while (hold && access(hold, F_OK) == 0)
    nanosleep(&ms, 0);
  const char *delay = getenv("FSYNC_GATE_DELAY_US");
  long us = delay ? atol(delay) : 0;
  struct timespec d = {us / 1000000, us % 1000000 * 1000};
  if (us > 0) nanosleep(&d, 0);
  if (fail && access(fail, F_OK) == 0) return errno = EIO, -1;
  return 0;
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  return gate(fd) ? -1 : real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  return gate(fd) ? -1 : real(fd);
}

static void read_page(int fd) {
  const char *reads = getenv("FSYNC_GATE_READS");
  if (reads && (ends_with(fd, ".db") || ends_with(fd, ".db-wal"))) tally(reads);
}

ssize_t pread(int fd, void *buf, size_t n, off_t at) {
  static ssize_t (*real)(int, void *, size_t, off_t);
  if (!real) real = (ssize_t(*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
  read_page(fd);
  return real(fd, buf, n, at);
}

ssize_t pread64(int fd, void *buf, size_t n, off64_t at) {
  static ssize_t (*real)(int, void *, size_t, off64_t);
  if (!real) real = (ssize_t(*)(int, void *, size_t, off64_t))dlsym(RTLD_NEXT, "pread64");
  read_page(fd);
  return real(fd, buf, n, at);
}
