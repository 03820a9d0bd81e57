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
int capture_remove(SyncCtx *, const char *table);

#endif
