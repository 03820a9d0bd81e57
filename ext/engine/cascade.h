/*
** cascade.h: whether deleting a local row would take rows that may be the
** server's (cascade.c).
*/
#ifndef SYNC_CASCADE_H
#define SYNC_CASCADE_H

#include "table.h"

/* *pYes 1 when deleting the row of key pk of t would take, through foreign
** keys, a row that may be the server's (0 when there is no such row). */
int cascade_reaches_server(SyncCtx *, SyncTable *, const char *pk, int *pYes);

/* *pYes 1 when some row refers to the row of key pk of t through a foreign
** key (a row referring to itself does not count). One statement kept with
** t: cheap enough to ask for every server delete. */
int cascade_referred(SyncCtx *, SyncTable *, const char *pk, int *pYes);

/* Appends " AND (x.k IS NOT p.k OR ...)" over t's key when child (a table
** name, or NULL) is t itself: a row referring to itself does not count. */
void cascade_not_self(sqlite3_str *, SyncTable *, const char *child);

#endif
