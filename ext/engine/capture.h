/*
** capture.h: the capture triggers (capture.c), written in plain SQL.
*/
#ifndef SYNC_CAPTURE_H
#define SYNC_CAPTURE_H

#include "table.h"

/* The canonical key text for a key object, as the capture triggers write it
** into sync_outbox.pk (the same JSON expression). pkJson is n bytes, so
** apply.c passes a span of its page without copying it. *pOut is NULL (and
** *pzErr set) when a key column is missing or null. */
int capture_canon_pk(SyncCtx *, SyncTable *, const char *pkJson, int n, char **pOut, char **pzErr);
int capture_install(SyncCtx *, SyncTable *);

/* The shape of the triggers capture_install writes: raised whenever what
** they queue changes, so sync_init rebuilds those of a database tracked by
** an older build (track_refresh). 2: REPLACE's deletions, NULL key parts,
** -0.0 (issue 13). */
#define CAPTURE_VERSION "2"
int capture_remove(SyncCtx *, const char *table);

#endif
