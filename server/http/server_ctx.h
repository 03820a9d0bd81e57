/*
** server_ctx.h: syncd's HTTP configuration, filled by syncd.c and read-only
** once it serves; routes.c and events.c both read it. Types only: no .c
** file goes with it.
*/
#ifndef SYNCD_SERVER_CTX_H
#define SYNCD_SERVER_CTX_H

#include <stddef.h>

#include "auth.h"
#include "store.h"

typedef struct server_ctx {
  store *st;
  auth_config auth;
  size_t max_body;
  int heartbeat;                   /* seconds between SSE comments */
  int timeout;                     /* idle seconds before a non-SSE connection is closed */
  unsigned max_streams_per_client; /* event streams one client_id may hold */
  unsigned max_streams_per_user;   /* event streams one JWT user may hold (0: no cap) */
  unsigned max_requests_per_user;  /* requests a second one JWT user may make (0: no cap) */
  int compress; /* gzip large answers and event streams for clients that take it */
  int verbose;
} server_ctx;

#endif
