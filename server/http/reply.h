/*
** reply.h: the JSON responses of syncd's HTTP side, shared by routes.c and
** events.c (a leaf: it calls only libmicrohttpd and common/).
*/
#ifndef SYNCD_REPLY_H
#define SYNCD_REPLY_H

#include <microhttpd.h>

/* A JSON response (body sqlite3_malloc'd, taken over); NULL on failure. */
struct MHD_Response *reply_json(char *body);

/* {"error":msg} */
struct MHD_Response *reply_error(const char *msg);

#endif
