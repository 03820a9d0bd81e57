/*
** conns.c: keeps idle and slow connections from starving syncd.
**
** libmicrohttpd refuses connections over its limit and closes a connection
** only after --timeout seconds without any byte, so a client dripping one
** byte a second, or a pile of connections that never send a request, would
** hold their slots (and threads) for good. Every connection is registered
** here (MHD_OPTION_NOTIFY_CONNECTION) with its phase, and
**   - a request head must be complete within `timeout` seconds of the
**     connection opening or of the previous answer;
**   - a body must arrive at an average of at least MIN_RATE bytes a second
**     after the same grace;
**   - when a new connection brings the open ones past the cap less a
**     reserve, the longest idle ones (waiting for a head) are closed at
**     once, so a new client always finds a free slot: a pile of idle
**     connections only ever pushes out its own oldest.
** A connection is closed with shutdown(2) on its socket: its own thread
** then sees the end of input and MHD closes it normally. Event streams and
** requests being answered are never cut here.
*/
#include "conns.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#define MIN_RATE 1024 /* bytes per second */
#define TICK_MS 200

typedef struct conn {
  int fd;
  int cut; /* shut down, waiting for MHD to notice */
  conn_phase phase;
  long long since; /* ms, monotonic: when the phase began */
  size_t body;
  struct conn *prev, *next;
} conn;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static conn *all;
static unsigned cap, reserve;
static long long timeout_ms;
static int running;
static pthread_t watcher;

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void cut(conn *k) {
  if (k->cut) return;
  k->cut = 1;
  shutdown(k->fd, SHUT_RDWR);
}

/* Over the cap less the reserve: close the longest idle connections but
** the newcomer. Connections already shut down still count until their
** threads have closed them, as they do for libmicrohttpd's own limit. */
static void relieve(const conn *newcomer) {
  unsigned open = 0;
  for (conn *k = all; k; k = k->next)
    open++;
  while (open + reserve > cap) {
    conn *oldest = 0;
    for (conn *k = all; k; k = k->next)
      if (!k->cut && k != newcomer && k->phase == CONN_IDLE &&
          (!oldest || k->since < oldest->since))
        oldest = k;
    if (!oldest) return;
    cut(oldest);
    open--;
  }
}

static void *watch(void *unused) {
  (void)unused;
  pthread_mutex_lock(&mu);
  while (running) {
    long long now = now_ms();
    for (conn *k = all; k; k = k->next) {
      if (k->phase == CONN_IDLE && now - k->since > timeout_ms) cut(k);
      if (k->phase == CONN_BODY &&
          now - k->since > timeout_ms + (long long)(k->body * 1000 / MIN_RATE))
        cut(k);
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += TICK_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&wake, &mu, &until);
  }
  pthread_mutex_unlock(&mu);
  return 0;
}

int conns_start(unsigned limit, int timeout) {
  cap = limit;
  /* 1/16 of the cap, but a few slots even for a small one */
  reserve = limit / 16 > 4 ? limit / 16 : limit / 2 < 4 ? limit / 2 : 4;
  if (!reserve) reserve = 1;
  timeout_ms = (long long)timeout * 1000;
  running = 1;
  if (pthread_create(&watcher, 0, watch, 0) == 0) return 0;
  running = 0;
  return -1;
}

void conns_stop(void) {
  pthread_mutex_lock(&mu);
  int was = running;
  running = 0;
  pthread_cond_signal(&wake);
  pthread_mutex_unlock(&mu);
  if (was) pthread_join(watcher, 0);
}

void conns_notify(void *cls, struct MHD_Connection *c, void **socket_ctx,
                  enum MHD_ConnectionNotificationCode code) {
  (void)cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    conn *k = calloc(1, sizeof *k);
    if (!k || !fd) {
      free(k);
      return;
    }
    k->fd = fd->connect_fd;
    k->phase = CONN_IDLE;
    pthread_mutex_lock(&mu);
    k->since = now_ms();
    k->next = all;
    if (all) all->prev = k;
    all = k;
    relieve(k);
    pthread_mutex_unlock(&mu);
    *socket_ctx = k;
    return;
  }
  conn *k = *socket_ctx;
  if (!k) return;
  /* under the lock: the watcher must not shut a socket MHD is closing */
  pthread_mutex_lock(&mu);
  if (k->prev)
    k->prev->next = k->next;
  else
    all = k->next;
  if (k->next) k->next->prev = k->prev;
  pthread_mutex_unlock(&mu);
  free(k);
  *socket_ctx = 0;
}

static conn *find(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *i =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return i ? i->socket_context : 0;
}

void conns_phase(struct MHD_Connection *c, conn_phase p) {
  conn *k = find(c);
  if (!k) return;
  pthread_mutex_lock(&mu);
  if (k->phase != p) {
    k->phase = p;
    k->since = now_ms();
    k->body = 0;
  }
  pthread_mutex_unlock(&mu);
}

void conns_body(struct MHD_Connection *c, size_t n) {
  conn *k = find(c);
  if (!k) return;
  pthread_mutex_lock(&mu);
  k->body += n;
  pthread_mutex_unlock(&mu);
}
