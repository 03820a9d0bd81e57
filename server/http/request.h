/*
** request.h: parsing of POST /push bodies (see request.c).
*/
#ifndef SYNCD_REQUEST_H
#define SYNCD_REQUEST_H

#include <stddef.h>
#include <sqlite3.h>

#include "store_types.h"

typedef struct push_request {
  char *client_id;
  store_mutation *m; /* strings owned here, sqlite3_malloc'd */
  int n;
} push_request;

/* Parse and validate body[0..n). Returns NULL with *r filled, or the
** message of a 400 (sqlite3_malloc'd) with *r empty. */
char *push_request_parse(const char *body, size_t n, push_request *r);

void push_request_free(push_request *r);

#endif
