/*
** batchcut.h: where a push batch ends (batchcut.c).
*/
#ifndef SYNC_BATCHCUT_H
#define SYNC_BATCHCUT_H

#include "ctx.h"

/* Where the push batch of limit mutations with ids in (after, top] ends:
** *pTop is top, or a later id, past the insert of a row that a mutation of
** the batch refers to through a foreign key between tracked tables (at
** most max(limit, 100) ids later); top itself for a limit of 1. An SQLite
** code. */
int cut_extend(SyncCtx *, sqlite3_int64 limit, sqlite3_int64 after, sqlite3_int64 top,
               sqlite3_int64 *pTop);

#endif
