/*
** track.h: sync_track and sync_untrack (track.c).
*/
#ifndef SYNC_TRACK_H
#define SYNC_TRACK_H

#include "ctx.h"

void track_fn_track(sqlite3_context *, int, sqlite3_value **);
void track_fn_untrack(sqlite3_context *, int, sqlite3_value **);

/* Rebuilds the triggers of every tracked table that still exists when
** they were written by a build with another CAPTURE_VERSION (sync_meta
** 'capture_version'); sync_init calls it inside its transaction. */
int track_refresh(SyncCtx *);

/* The tracked tables' names in name order (only those whose table exists
** when present is set): *pNames an sqlite3_malloc'd array of *pN names, for
** track_names_free. An SQLite code. */
int track_names(SyncCtx *, int present, char ***pNames, int *pN);
void track_names_free(char **names, int n);

#endif
