/*
** batchcut.h: where a push batch ends (batchcut.c).
*/
#ifndef SYNC_BATCHCUT_H
#define SYNC_BATCHCUT_H

#include "ctx.h"

/* The last id of the push batch of at most limit mutations after id
** after, moved on past the insert of a row that a mutation of the batch
** refers to through a foreign key between tracked tables (by at most
** max(limit, 100) more). *pTop 0: every mutation after `after` fits. An
** SQLite code. */
int cut_top(SyncCtx *, sqlite3_int64 limit, sqlite3_int64 after, sqlite3_int64 *pTop);

#endif
