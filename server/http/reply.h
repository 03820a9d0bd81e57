/*
** reply.h: the JSON responses of syncd's HTTP side, shared by routes.c and
** events.c (a leaf but for compress.c: it calls libmicrohttpd and common/).
*/
#ifndef SYNCD_REPLY_H
#define SYNCD_REPLY_H

#include <microhttpd.h>

/* A JSON response (body sqlite3_malloc'd, taken over); NULL on failure. */
struct MHD_Response *reply_json(char *body);

/* reply_json, gzipped (Content-Encoding: gzip) when gzip is set and the
** body is COMPRESS_MIN bytes or more; the caller decides from the request
** (compress_accepts) and adds Vary. */
struct MHD_Response *reply_json_gz(char *body, int gzip);

/* {"error":msg} */
struct MHD_Response *reply_error(const char *msg);

/* {"error":msg,key:value}: a refusal a client tells from others by a field
** rather than by the message's words (key NULL: reply_error). */
struct MHD_Response *reply_error_with(const char *msg, const char *key, const char *value);

#endif
