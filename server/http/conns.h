/*
** conns.h: syncd's guard against clients that hold connections without
** using them (see conns.c).
*/
#ifndef SYNCD_CONNS_H
#define SYNCD_CONNS_H

#include <microhttpd.h>

typedef enum conn_phase {
  CONN_IDLE,  /* waiting for a request head (new or kept alive) */
  CONN_BODY,  /* head read, reading the body */
  CONN_BUSY,  /* answering */
  CONN_STREAM /* an event stream: held on purpose */
} conn_phase;

/* Start the watcher: cap is the daemon's connection limit, timeout the
** seconds a request head may take. 0 on success. */
int conns_start(unsigned cap, int timeout);

/* Stop the watcher (before MHD_stop_daemon). */
void conns_stop(void);

/* The MHD_OPTION_NOTIFY_CONNECTION callback. */
void conns_notify(void *cls, struct MHD_Connection *c, void **socket_ctx,
                  enum MHD_ConnectionNotificationCode code);

/* The connection moved to phase p. */
void conns_phase(struct MHD_Connection *c, conn_phase p);

/* n more body bytes arrived on c. */
void conns_body(struct MHD_Connection *c, size_t n);

#endif
