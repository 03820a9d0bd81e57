/*
** guard.h: guards written again once they can be (guard.c).
*/
#ifndef SYNC_GUARD_H
#define SYNC_GUARD_H

#include "table.h"

/* Writes every guard listed in sync_meta 'guards' again from its image;
** those that still cannot stay listed. Inside an engine write. Returns an
** SQLite code; on failure *pzErr may name the key. */
int rebase_guards(SyncCtx *, int pull, char **pzErr);

#endif
