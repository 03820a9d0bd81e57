/*
** net.h: the network layer as a whole (net.c), for the entry point.
*/
#ifndef SYNC_NET_H
#define SYNC_NET_H

#include "ctx.h"

/* Registers the network layer's SQL functions and the sync_status module
** on db, whose engine context is c. On failure *pzErr (sqlite3_malloc'd)
** names what failed. Returns an SQLite code. */
int net_register(sqlite3 *db, SyncCtx *c, char **pzErr);

#endif
