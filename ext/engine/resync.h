/*
** resync.h: a full resync's engine side (resync.c), for the network layer.
*/
#ifndef SYNC_RESYNC_H
#define SYNC_RESYNC_H

#include "apply.h"

/* Deletes the cursor and starts noting the keys a resync delivers. Returns
** an SQLite code. */
int resync_start(SyncCtx *);

/* 1 when a resync was started and its last page not yet applied (on any
** connection, in any process): it was cut short, and the next pull starts
** it over. */
int resync_owed(SyncCtx *);

/* Applies one page of a resync as apply_page does, noting its keys first;
** after the last page (res->more 0) deletes the rows the resync did not
** deliver that no pending mutation holds (res->n counts them too). All in
** one savepoint: on failure nothing changed and *pzErr says why. The
** caller frees res with apply_result_clear. */
int resync_page(SyncCtx *, const char *page, ApplyResult *res, char **pzErr);

#endif
