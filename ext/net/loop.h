/*
** loop.h: the worker's curl_multi scheduler (loop.c), run by the worker
** thread (worker.c) on its own connection.
*/
#ifndef SYNC_LOOP_H
#define SYNC_LOOP_H

#include "site.h"

typedef struct Loop Loop;

/* The loop of site s over db (engine context c): settings, the event-stream
** parser and the curl_multi handle, which becomes s->multi (the wake-up
** target). NULL on failure, with the cause in *pzErr (sqlite3_malloc'd). */
Loop *loop_new(Site *s, sqlite3 *db, SyncCtx *c, char **pzErr);

/* Pushes, pulls and follows events until s->stop is set. */
void loop_run(Loop *);

/* Ends every transfer and frees the loop (s->multi cleared first). */
void loop_free(Loop *);

#endif
