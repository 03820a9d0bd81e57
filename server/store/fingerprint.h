/*
** fingerprint.h: POST /verify (docs/PROTOCOL.md), the fingerprints of a
** synced table's rows that a client compares with its own to find the rows
** where it diverged (fingerprint.c).
*/
#ifndef SYNCD_FINGERPRINT_H
#define SYNCD_FINGERPRINT_H

#include <stddef.h>

#include "fp_cache.h"
#include "store.h"

/* Parses a POST /verify body; NULL on success, else the 400 message
** (sqlite3_malloc'd). r is to be freed either way. */
char *fp_request_parse(const char *body, size_t n, fp_request *r);
void fp_request_free(fp_request *r);

/* The answer to r in one read snapshot: *json on STORE_OK. A table that is
** not synced is STORE_BAD_REQUEST-like: STORE_ERROR is never used for it;
** *bad receives the 400 message instead (sqlite3_malloc'd), *unknown is set
** (a table without a rule under rules alike, so that the answer does not
** tell them apart) and STORE_OK is returned with *json NULL. Under rules, of
** the rows u (NULL: no user, as the shared token) may read. */
int store_fingerprint(store *s, const store_user *u, const fp_request *r, char **json, char **bad,
                      int *unknown, char **err);

/* 1 when cursor, which the store refused as expired, names another
** database (the server's was replaced) or a version above the head (it was
** restored from an older copy): the client must not take the rows the
** server lacks for deleted. 0 for a cursor merely below the horizon (or
** when the head cannot be read). */
int store_cursor_reset(store *s, const char *cursor);

#endif
