/*
** engine.h: the engine as a whole (engine.c), for the entry point and for
** the network layer's own connection.
*/
#ifndef SYNC_ENGINE_H
#define SYNC_ENGINE_H

#include "ctx.h"

/* Registers the engine's SQL functions and modules on db with a fresh
** SyncCtx, which lives until db closes. On failure *pzErr
** (sqlite3_malloc'd) names what failed; else *pc (if given) gets the
** context. Returns an SQLite code. */
int engine_register(sqlite3 *db, SyncCtx **pc, char **pzErr);

#endif
