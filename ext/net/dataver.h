/*
** dataver.h: PRAGMA data_version on the worker's connection (dataver.c),
** how the worker notices other connections' commits without the host's
** hooks.
*/
#ifndef SYNC_DATAVER_H
#define SYNC_DATAVER_H

#include "sqlite_api.h"

/* PRAGMA data_version of db (-1 on failure): it changes when another
** connection commits. *pStmt is prepared on first use and kept (finalize it
** with the connection's other statements); it is reset at once, so no read
** stays open. */
int dataver_read(sqlite3_stmt **pStmt, sqlite3 *db);

#endif
