/*
** work.c: the threads that run syncd's blocking requests (work.h).
**
** libmicrohttpd serves every connection from a few polling threads
** (syncd.c), so a handler that waits on storage (/push, /pull, /verify,
** opening an event stream) would stall every other connection of its
** thread, and every stream's event, meanwhile. Such a request's connection is suspended instead,
*handed to
** one of a fixed number of workers here, and resumed when its answer is
** ready; its handler, called again, queues it. The workers take requests
** in arrival order; storage's own pool bounds how many run at once anyway.
*/
#include "work.h"

#include <pthread.h>
#include <stdlib.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready = PTHREAD_COND_INITIALIZER;
static work_item *head, *tail;
static pthread_t *threads;
static int n_threads, open_for_work;

static void *worker(void *unused) {
  (void)unused;
  pthread_mutex_lock(&mu);
  for (;;) {
    while (!head && open_for_work)
      pthread_cond_wait(&ready, &mu);
    work_item *it = head;
    if (!it) break; /* stopping, and nothing is left */
    head = it->next;
    if (!head) tail = 0;
    pthread_mutex_unlock(&mu);
    /* it belongs to c's request, which lives until c is resumed */
    struct MHD_Connection *c = it->c;
    it->fn(it->arg);
    MHD_resume_connection(c);
    pthread_mutex_lock(&mu);
  }
  pthread_mutex_unlock(&mu);
  return 0;
}

int work_start(int n) {
  threads = calloc((size_t)n, sizeof *threads);
  if (!threads) return -1;
  open_for_work = 1;
  for (n_threads = 0; n_threads < n; n_threads++)
    if (pthread_create(&threads[n_threads], 0, worker, 0)) {
      work_stop();
      return -1;
    }
  return 0;
}

int work_submit(work_item *it) {
  pthread_mutex_lock(&mu);
  int ok = open_for_work;
  if (ok) {
    /* suspended before a worker can see it, so its resume never comes
    ** first */
    MHD_suspend_connection(it->c);
    it->next = 0;
    if (tail)
      tail->next = it;
    else
      head = it;
    tail = it;
    pthread_cond_signal(&ready);
  }
  pthread_mutex_unlock(&mu);
  return ok ? 0 : -1;
}

void work_stop(void) {
  pthread_mutex_lock(&mu);
  open_for_work = 0;
  pthread_cond_broadcast(&ready);
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < n_threads; i++)
    pthread_join(threads[i], 0);
  free(threads);
  threads = 0;
  n_threads = 0;
}
