/*
** sqlite_watch.h: the TEMP triggers with which the SQLite dialect
** (dialect_sqlite.c) watches the synced tables on one connection for rows
** a push changes besides its own (sqlite_watch.c).
*/
#ifndef SYNCD_SQLITE_WATCH_H
#define SYNCD_SQLITE_WATCH_H

#include <sqlite3.h>

#include "catalog.h"

/* The script that watches every table of cat: TEMP triggers (seen by no
** other connection, and gone with it) record the key of each row a write
** inserts, updates (the old key too when it changed) or deletes in
** temp._syncd_touched as (catalog index, key columns). *undo: the script
** that drops them and the table again (the indexes are cat's, so another
** catalog needs other triggers). A table with a _syncd_was_<t> on db
** (rules.c) has its former values kept there by the same triggers. NULL
** when out of memory or when db fails. */
char *sqlite_watch_sql(sqlite3 *db, const catalog *cat, char **undo);

#endif
