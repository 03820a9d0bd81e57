/*
** conns.h: syncd's guard against clients that hold connections without
** using them, and its share of slots for event streams (see conns.c).
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
** seconds a request head may take, body_timeout the seconds a body may
** take at most. 0 on success. */
int conns_start(unsigned cap, int timeout, int body_timeout);

/* Stop the watcher (before MHD_stop_daemon). */
void conns_stop(void);

/* The MHD_OPTION_NOTIFY_CONNECTION callback. */
void conns_notify(void *cls, struct MHD_Connection *c, void **socket_ctx,
                  enum MHD_ConnectionNotificationCode code);

/* The connection moved to phase p. */
void conns_phase(struct MHD_Connection *c, conn_phase p);

/* n more body bytes arrived on c. */
void conns_body(struct MHD_Connection *c, size_t n);

enum { CONNS_STREAM_OK, CONNS_STREAM_FULL, CONNS_STREAM_USER, CONNS_STREAM_ERROR };

/* c becomes client's event stream, opened for user (a JWT's sub; NULL:
** none): CONNS_STREAM_OK, or CONNS_STREAM_FULL when streams hold their
** whole share of the slots, CONNS_STREAM_USER when the user's other clients
** hold per_user streams (0: no cap) -- c stays as it was --,
** CONNS_STREAM_ERROR out of memory. When the client already has per_client
** streams, or has one and its user per_user, its oldest are cut and
** *replaced set: their readers must be woken to see it (conns_cut). */
int conns_stream(struct MHD_Connection *c, const char *client, const char *user,
                 unsigned per_client, unsigned per_user, int *replaced);

/* Whether c was cut (called while c is alive: from its handler or reader,
** or while it is suspended). */
int conns_cut(struct MHD_Connection *c);

#endif
