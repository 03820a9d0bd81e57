/*
** routes.h: the handlers libmicrohttpd calls (routes.c; events.c streams
** GET /events), over syncd's HTTP configuration (server_ctx.h).
*/
#ifndef SYNCD_ROUTES_H
#define SYNCD_ROUTES_H

#include <microhttpd.h>
#include <stddef.h>

#include "server_ctx.h"

/* The MHD access handler; cls is the server_ctx. */
enum MHD_Result routes_handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls);

/* The MHD completion callback: logs (with --verbose) and frees the request. */
void routes_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                      enum MHD_RequestTerminationCode toe);

#endif
