/*
** routes.h: the HTTP side of syncd (routes.c answers requests, events.c
** streams /events), sharing one read-only configuration.
*/
#ifndef SYNCD_ROUTES_H
#define SYNCD_ROUTES_H

#include <microhttpd.h>
#include <stddef.h>

#include "auth.h"
#include "store.h"

typedef struct server_ctx {
  store *st;
  auth_config auth;
  size_t max_body;
  int heartbeat; /* seconds between SSE comments */
  int timeout;   /* idle seconds before a non-SSE connection is closed */
  int verbose;
} server_ctx;

/* The MHD access handler; cls is the server_ctx. */
enum MHD_Result routes_handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls);

/* The MHD completion callback: logs (with --verbose) and frees the request. */
void routes_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                      enum MHD_RequestTerminationCode toe);

/* A JSON response (body sqlite3_malloc'd, taken over); NULL on failure. */
struct MHD_Response *routes_json(char *body);

/* {"error":msg} */
struct MHD_Response *routes_error(const char *msg);

/* Start an SSE stream for client_id after cursor (taken over), or answer
** 410/400/500 when the cursor cannot be served; returns the HTTP status. */
int events_start(const server_ctx *ctx, struct MHD_Connection *c, const char *client_id,
                 char *cursor, struct MHD_Response **resp);

/* Wake every stream: a push committed changes (or a NOTIFY said so). */
void events_notify(void *unused);

/* End every stream (shutdown): their content readers return at once. */
void events_shutdown(void);

#endif
