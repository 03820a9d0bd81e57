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
/* (Re)creates the triggers of the table, and records what they were
** written from (its CREATE text and its indexes', in sync_meta). */
int capture_install(SyncCtx *, SyncTable *);

/* The shape of the triggers capture_install writes: raised whenever what
** they queue changes, so sync_init rebuilds those of a database tracked by
** an older build (track_refresh). 2: REPLACE's deletions, NULL key parts,
** -0.0 (issue 13). 3: REPLACE through expression and partial UNIQUE
** indexes, changes of case in NOCASE columns, the refused change of a key
** its collation does not see. */
#define CAPTURE_VERSION "3"
int capture_remove(SyncCtx *, const char *table);

/* The tracked tables that exist and whose table or indexes changed since
** their triggers were installed: *pNames (sqlite3_malloc'd names) and
** *pKnown (0 when nothing was recorded, as for triggers of a build before
** the record) of *pN each, freed by the caller. An SQLite code. */
int capture_stale(SyncCtx *, char ***pNames, int **pKnown, int *pN);

#endif
