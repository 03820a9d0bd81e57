/*
** work.h: a fixed set of threads that run syncd's blocking requests (the
** ones that wait on storage) while libmicrohttpd's polling threads go on
** serving every other connection (work.c).
*/
#ifndef SYNCD_WORK_H
#define SYNCD_WORK_H

#include <microhttpd.h>

/* One request handed over: the caller's, kept alive until fn returns. */
typedef struct work_item {
  struct MHD_Connection *c;
  void (*fn)(void *arg);
  void *arg;
  struct work_item *next;
} work_item;

/* Start n threads. 0 on success. */
int work_start(int n);

/* From c's access handler: suspend c and run it->fn(it->arg) on a worker,
** then resume c (its handler is called again, and answers what fn left).
** -1 when the workers are stopping or were never started: c is not
** suspended and the caller runs fn itself. */
int work_submit(work_item *it);

/* Take no more work, finish what was handed over, join the threads
** (before MHD_stop_daemon: no connection may stay suspended). */
void work_stop(void);

#endif
