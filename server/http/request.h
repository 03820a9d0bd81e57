/*
** request.h: parsing of POST /push bodies (see request.c).
*/
#ifndef SYNCD_REQUEST_H
#define SYNCD_REQUEST_H

#include <stddef.h>
#include <sqlite3.h>

#include "store.h"

typedef struct push_request {
  char *client_id;
  store_mutation *m; /* strings owned here, sqlite3_malloc'd */
  int n;
} push_request;

/* Parse and validate body[0..n). Returns NULL with *r filled, or the
** message of a 400 (sqlite3_malloc'd) with *r empty. */
char *push_request_parse(const char *body, size_t n, push_request *r);

void push_request_free(push_request *r);

/* Calls fn(arg, key) for each member of the JSON object z (valid JSON, as
** push_request_parse hands pk and data on), keys unescaped as json_each
** gives them, in order. Returns 0, or the first nonzero fn returned
** (SQLITE_NOMEM when a key could not be copied). */
int json_object_keys(const char *z, int (*fn)(void *, const char *), void *arg);

/* p[0..n) is strict UTF-8 (no overlongs, surrogates or code points past
** U+10FFFF). Checked on everything that reaches storage: PostgreSQL refuses
** anything else, and a batch refused for it would fail again on every retry. */
int utf8_valid(const unsigned char *p, size_t n);

#endif
