/*
** fsync_gate.c: an LD_PRELOAD shim for test_durable.py. Each fsync or
** fdatasync of a file whose name ends in "-wal" appends one byte to the
** file named by $FSYNC_GATE_COUNT (so the test can count them), then
** waits while the file named by $FSYNC_GATE_HOLD exists (so the test can
** hold a write-ahead log sync open and look at what syncd answers
** meanwhile). While the file named by $FSYNC_GATE_FAIL exists, they fail
** with EIO instead (a disk that lost the writes). $FSYNC_GATE_DELAY_US,
** when set, adds that many microseconds to each (bench: a disk whose
** fsync is slower than this machine's).
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

static int is_wal(int fd) {
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  return n > 4 && memcmp(path + n - 4, "-wal", 4) == 0;
}

/* 0 to go on with the real call, or -1 with errno set. */
static int gate(int fd) {
  const char *count = getenv("FSYNC_GATE_COUNT"), *hold = getenv("FSYNC_GATE_HOLD");
  const char *fail = getenv("FSYNC_GATE_FAIL");
  if (!is_wal(fd)) return 0;
  if (count) {
    int c = open(count, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (c >= 0) {
      (void)!write(c, "s", 1);
      close(c);
    }
  }
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
