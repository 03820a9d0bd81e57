/*
** rebase.h: a key's visible row re-derived from its server image and its
** pending mutations (rebase.c).
*/
#ifndef SYNC_REBASE_H
#define SYNC_REBASE_H

#include "table.h"

int rebase_before_pull(SyncCtx *);
int rebase_pulled(SyncCtx *, sqlite3_int64 top);
sqlite3_int64 rebase_pulled_version(SyncCtx *);
int rebase_key(SyncCtx *, SyncTable *, const char *pk, int fresh, int *pFell, char **pzErr);
int rebase_write(SyncCtx *, SyncTable *, const char *pk, const char *image, int gone, int *pPending,
                 int *pNet, int *pFell, char **pzErr);
int rebase_guard(SyncCtx *, const char *tbl, const char *pk, const char *row, sqlite3_int64 version,
                 int hasVersion, int put);
int rebase_initial_begin(SyncCtx *);
int rebase_initial_end(SyncCtx *, char **pzErr);
int rebase_make_room(SyncCtx *, SyncTable *, const char *pk, const char *row, char **pzErr);
/* Drops the image of key pk of tbl (sync_shadow), if any. */
int rebase_drop_image(SyncCtx *, const char *tbl, const char *pk);
int rebase_set_image(SyncCtx *, const char *tbl, const char *pk, const char *row,
                     sqlite3_int64 version, int hasVersion);

#endif
