/*
** lock.h: one worker per database file across processes.
**
** An exclusive flock(2) on a side file next to the database
** ("<db>-synclock"). The holder runs the worker; any other process trying
** is a standby and polls with lock_try until the holder exits (the kernel
** drops the lock when the holder's process dies, even on kill -9).
**
**   int fd = -1;
**   if (lock_try(path, &fd) == 1) ... we are the worker ...
**   lock_release(&fd);
*/
#ifndef SYNC_LOCK_H
#define SYNC_LOCK_H

/* 1: the lock is now held (*pfd is its descriptor); 0: another process
** holds it; -1: the side file cannot be opened (errno set). Calling it again
** while *pfd already holds the lock returns 1. */
int lock_try(const char *dbPath, int *pfd);

/* Drops the lock (closes *pfd) and sets *pfd to -1. */
void lock_release(int *pfd);

#endif
