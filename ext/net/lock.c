/*
** lock.c: the worker's cross-process lock (see lock.h). The side file is
** opened close-on-exec so a child process never inherits the lock.
*/
#include "sqlite_api.h"

#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

int lock_try(const char *dbPath, int *pfd) {
  if (*pfd >= 0) return 1;
  char *side = sqlite3_mprintf("%s-synclock", dbPath);
  if (!side) {
    errno = ENOMEM;
    return -1;
  }
  int fd = open(side, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  sqlite3_free(side);
  if (fd < 0) return -1;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    if (e == EWOULDBLOCK || e == EINTR) return 0;
    errno = e;
    return -1;
  }
  *pfd = fd;
  return 1;
}

void lock_release(int *pfd) {
  if (*pfd >= 0) {
    flock(*pfd, LOCK_UN);
    close(*pfd);
  }
  *pfd = -1;
}
