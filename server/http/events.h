/*
** events.h: GET /events, the Server-Sent Events fan-out (events.c), as
** routes.c and syncd.c use it.
*/
#ifndef SYNCD_EVENTS_H
#define SYNCD_EVENTS_H

#include <microhttpd.h>

#include "server_ctx.h"

/* The threads that pull for streams: each wake of every stream is a pull,
** and these bound how many storage serves at once. On PostgreSQL a pull
** is a round trip, so more of them wait in parallel: 10,000 streams got a
** change with a p99 of 1.3 s with four, 0.77 s with eight; with syncd.c's
** eight request workers they use all of PostgreSQL's pool of 16, so a
** fan-out never makes a push wait for a connection. */
#define EVENT_WORKERS 8

/* Start the event workers and the heartbeat ticker (before the daemon
** serves). 0 on success. */
int events_run(void);

/* Start an SSE stream for client_id after cursor (taken over), limited to
** the tables= query argument when c has one, or answer 410/400/500 when
** the cursor cannot be served and 429 when streams hold their share of the
** connections (conns.c); returns the HTTP status. A newer stream of the
** same client replaces its oldest beyond ctx->max_streams_per_client.
** user: whose rules filter the stream (NULL: none; copied).
** expires: when the stream's credentials lapse (seconds since the epoch,
** a JWT's exp plus leeway), the stream ends then; 0: never.
** gzip: the stream is one gzip member, flushed after every event and
** heartbeat (Content-Encoding: gzip). Called on a worker (work.c), c
** suspended; the caller sets c's timeout to 0 when it queues the stream:
** idle streams are normal. */
int events_start(const server_ctx *ctx, struct MHD_Connection *c, const char *client_id,
                 char *cursor, const store_user *user, long long expires, int gzip,
                 struct MHD_Response **resp);

/* Wake every stream: a push committed changes (or a NOTIFY said so). */
void events_notify(void *unused);

/* How many times the change log was read for event streams since start
** (a read serves every stream waiting at its cursor): /health's
** "event_reads". */
unsigned long long events_reads(void);

/* End every stream (shutdown) and join the event workers: no stream is
** left suspended, and one opened later ends at its first wait. */
void events_shutdown(void);

#endif
