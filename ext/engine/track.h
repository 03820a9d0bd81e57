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

#endif
