/*
** conns.c: keeps idle, slow and streaming connections from starving syncd.
**
** libmicrohttpd refuses connections over its limit and closes a connection
** only after --timeout seconds without any byte, so a client dripping one
** byte a second, a pile of connections that never send a request, or a
** pile of event streams would hold every slot (and thread) for good. Every
** connection is registered here (MHD_OPTION_NOTIFY_CONNECTION) with its
** phase, and
**   - a request head must be complete within `timeout` seconds of the
**     connection opening or of the previous answer;
**   - a body must arrive at an average of at least MIN_RATE bytes a second
**     after the same grace, and be complete within `body_timeout` seconds
**     whatever its rate;
**   - while the open connections are past the cap less a reserve (checked
**     when one opens, when one goes idle, and every tick), the longest
**     idle ones (waiting for a head) are closed at once, then the slowest
**     body readers, so a new client (a /health probe, a push) always finds
**     a free slot: libmicrohttpd refuses a connection over its limit before
**     we hear of it, so the room must be made beforehand, and a pile of
**     idle or dripping connections only ever pushes out its own members;
**   - event streams may hold at most the cap less the reserve, and at most
**     `per_client` per client_id: a newer stream of a client replaces its
**     oldest (a client that reconnects after losing its network must not
**     wait for its dead stream to time out), and at most `per_user` per
**     JWT user across their clients: one user's devices cannot take the
**     streams everyone shares. A client with a stream of its own replaces
**     its oldest then; another client of the user is refused (which of the
**     user's devices should lose its stream is not ours to pick).
** A connection is closed with shutdown(2) on its socket: libmicrohttpd's
** polling thread then sees the end of input and closes it normally; a
** replaced stream waits suspended instead, its socket unwatched, so
** events.c hands it to a worker, which asks conns_cut and ends it.
** Requests being answered are never cut.
*/
#include "conns.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
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
  char *client;           /* CONN_STREAM: whose stream (malloc'd) */
  char *user;             /* CONN_STREAM: the JWT user it was opened for (malloc'd; NULL: none) */
  unsigned long long age; /* CONN_STREAM: its rank, oldest lowest (ms can tie) */
  struct conn *prev, *next;
} conn;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static conn *all;
static unsigned n_open; /* connections in all not yet cut */
static unsigned long long streams_begun;
static unsigned cap, reserve;
static long long timeout_ms, body_timeout_ms;
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
  n_open--;
  shutdown(k->fd, SHUT_RDWR);
}

/* Whether body reader a has read more slowly than b (b NULL: yes). The
** rates are compared as a.body / a.elapsed < b.body / b.elapsed, without
** dividing; the older one goes first on a tie. */
static int slower(const conn *a, const conn *b, long long now) {
  if (!b) return 1;
  long long ta = now - a->since + 1, tb = now - b->since + 1;
  unsigned long long ra = (unsigned long long)a->body * (unsigned long long)tb;
  unsigned long long rb = (unsigned long long)b->body * (unsigned long long)ta;
  return ra < rb || (ra == rb && a->since < b->since);
}

/* The connection to close first to make room: the longest idle one, else
** the slowest body reader; never spared (a newcomer), a stream or an
** answer. */
static conn *victim(const conn *spared, long long now) {
  conn *idle = 0, *body = 0;
  for (conn *k = all; k; k = k->next) {
    /* k is never NULL here; cppcheck reads the test of spared (which may
    ** be) as one of k */
    // cppcheck-suppress nullPointerRedundantCheck
    if (k->cut || k == spared) continue;
    if (k->phase == CONN_IDLE && (!idle || k->since < idle->since)) idle = k;
    if (k->phase == CONN_BODY && slower(k, body, now)) body = k;
  }
  return idle ? idle : body;
}

/* Over the cap less the reserve: make room, sparing spared (NULL: none).
** Only connections not yet shut down count: those already cut are closing
** (libmicrohttpd sees the end of input), and counting them until then made
** every tick cut each newcomer still sending its head (a /health probe, a
** push) while a pile of cut connections was being closed. They are
** counted as they come and go: with thousands of streams open, a walk of
** the list on every request's end held the lock longer than the request. */
static void relieve(const conn *spared) {
  long long now = now_ms();
  while (n_open + reserve > cap) {
    conn *v = victim(spared, now);
    if (!v) return;
    cut(v);
  }
}

static void *watch(void *unused) {
  (void)unused;
  pthread_mutex_lock(&mu);
  while (running) {
    long long now = now_ms();
    for (conn *k = all; k; k = k->next) {
      long long age = now - k->since;
      if (k->phase == CONN_IDLE && age > timeout_ms) cut(k);
      if (k->phase == CONN_BODY &&
          (age > timeout_ms + (long long)(k->body * 1000 / MIN_RATE) || age > body_timeout_ms))
        cut(k);
    }
    relieve(0);
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

int conns_start(unsigned limit, int timeout, int body_timeout) {
  cap = limit;
  /* 1/16 of the cap, but a few slots even for a small one */
  reserve = limit / 16 > 4 ? limit / 16 : limit / 2 < 4 ? limit / 2 : 4;
  if (!reserve) reserve = 1;
  timeout_ms = (long long)timeout * 1000;
  body_timeout_ms = (long long)body_timeout * 1000;
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

static void set_phase(conn *k, conn_phase p) {
  if (k->phase == p) return;
  k->phase = p;
  k->since = now_ms();
  k->body = 0;
  free(k->client);
  free(k->user);
  k->client = k->user = 0;
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
    n_open++;
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
  if (!k->cut) n_open--;
  pthread_mutex_unlock(&mu);
  free(k->client);
  free(k->user);
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
  set_phase(k, p);
  if (p == CONN_IDLE) relieve(0);
  pthread_mutex_unlock(&mu);
}

void conns_body(struct MHD_Connection *c, size_t n) {
  conn *k = find(c);
  if (!k) return;
  pthread_mutex_lock(&mu);
  k->body += n;
  pthread_mutex_unlock(&mu);
}

int conns_stream(struct MHD_Connection *c, const char *client, const char *user,
                 unsigned per_client, unsigned per_user, int *replaced) {
  conn *k = find(c);
  char *copy = malloc(strlen(client) + 1), *who = user ? malloc(strlen(user) + 1) : 0;
  *replaced = 0;
  if (!k || !copy || (user && !who)) {
    free(copy);
    free(who);
    return CONNS_STREAM_ERROR;
  }
  strcpy(copy, client);
  if (who) strcpy(who, user);
  pthread_mutex_lock(&mu);
  unsigned total = 0, mine = 0, users = 0;
  for (conn *o = all; o; o = o->next) {
    if (o->cut || o->phase != CONN_STREAM) continue;
    total++;
    if (strcmp(o->client, client) == 0) mine++;
    if (user && o->user && strcmp(o->user, user) == 0) users++;
  }
  int rc = CONNS_STREAM_OK;
  /* the client's oldest streams give way to its new one (the total does
  ** not grow): past its own share, and when its user's is full (a device
  ** reconnecting before its dead stream is noticed) */
  while (mine > 0 && (mine >= per_client || (user && per_user && users >= per_user))) {
    conn *oldest = 0;
    for (conn *o = all; o; o = o->next)
      if (!o->cut && o->phase == CONN_STREAM && strcmp(o->client, client) == 0 &&
          (!oldest || o->age < oldest->age))
        oldest = o;
    if (!oldest) break;
    cut(oldest);
    mine--;
    if (user && oldest->user && strcmp(oldest->user, user) == 0) users--;
    *replaced = 1;
  }
  if (user && per_user && users >= per_user)
    rc = CONNS_STREAM_USER;
  else if (!*replaced && total + reserve >= cap)
    rc = CONNS_STREAM_FULL;
  if (rc == CONNS_STREAM_OK) {
    set_phase(k, CONN_STREAM);
    k->client = copy;
    k->user = who;
    k->age = ++streams_begun;
    copy = who = 0;
  }
  pthread_mutex_unlock(&mu);
  free(copy);
  free(who);
  return rc;
}

int conns_cut(struct MHD_Connection *c) {
  conn *k = find(c);
  if (!k) return 0;
  pthread_mutex_lock(&mu);
  int was = k->cut;
  pthread_mutex_unlock(&mu);
  return was;
}
