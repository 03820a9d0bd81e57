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

/* The same without ending absent guards: the rows only. apply.c runs it
** on a pull's last page whose foreign keys do not hold, before it gives up:
** a guard kept because rows referred to it may go once the page has
** deleted them, and with it its reference to a row the page deletes. */
int rebase_guards_rewrite(SyncCtx *, char **pzErr);

#endif
