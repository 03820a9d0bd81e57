/*
** listen_pg.c: the LISTEN thread of the PostgreSQL dialect (listen_pg.h).
** It reconnects after a lost connection (once a second) and ends when a
** byte arrives on its wake pipe.
*/
#include "listen_pg.h"

#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "wire.h"

struct listen_pg {
  char *url;
  void (*on_change)(void *);
  void *arg;
  char me[17]; /* the payload of this process's own notifications */
  pthread_t thread;
  int wake[2]; /* a write ends the thread */
};

/* A connection that LISTENs, or NULL (the reason printed). */
static PGconn *listen_connect(const char *url) {
  PGconn *c = PQconnectdb(url);
  PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, "LISTEN syncd_changes") : 0;
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (ok) return c;
  fprintf(stderr, "syncd: listener: PostgreSQL: %s\n", PQerrorMessage(c));
  PQfinish(c);
  return 0;
}

static void *listen_main(void *arg) {
  listen_pg *l = arg;
  PGconn *c = 0;
  for (;;) {
    if (!c && (c = listen_connect(l->url))) l->on_change(l->arg);
    struct pollfd fds[2] = {{l->wake[0], POLLIN, 0}, {c ? PQsocket(c) : -1, POLLIN, 0}};
    int n = poll(fds, 2, c ? -1 : 1000);
    if (n > 0 && fds[0].revents) break;
    if (!c || n <= 0) continue;
    if (!PQconsumeInput(c)) {
      PQfinish(c);
      c = 0;
      continue;
    }
    int got = 0;
    PGnotify *note;
    while ((note = PQnotifies(c))) {
      /* this process's own pushes woke its streams at their commit */
      if (!note->extra || strcmp(note->extra, l->me) != 0) got = 1;
      PQfreemem(note);
    }
    if (got) l->on_change(l->arg);
  }
  PQfinish(c);
  return 0;
}

listen_pg *listen_pg_start(const char *url, const char *me, void (*on_change)(void *), void *arg,
                           char **err) {
  listen_pg *l = sqlite3_malloc64(sizeof *l);
  if (!l) return *err = wire_errf("out of memory"), (listen_pg *)0;
  snprintf(l->me, sizeof l->me, "%s", me);
  l->on_change = on_change;
  l->arg = arg;
  l->url = sqlite3_mprintf("%s", url);
  int piped = l->url && pipe(l->wake) == 0;
  if (piped && pthread_create(&l->thread, 0, listen_main, l) == 0) return l;
  if (piped) close(l->wake[0]), close(l->wake[1]);
  sqlite3_free(l->url);
  sqlite3_free(l);
  *err = wire_errf("cannot start the LISTEN thread");
  return 0;
}

void listen_pg_stop(listen_pg *l) {
  char b = 1;
  if (write(l->wake[1], &b, 1) != 1) perror("syncd: waking the listener");
  pthread_join(l->thread, 0);
  close(l->wake[0]);
  close(l->wake[1]);
  sqlite3_free(l->url);
  sqlite3_free(l);
}
