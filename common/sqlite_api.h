/*
** Which SQLite API a file is compiled against.
**
** The extension (built with -DSYNC_LOADABLE) reaches SQLite only through the
** routine table the host hands to sqlite3_sync_init, so it never links
** libsqlite3 and runs inside whatever SQLite the host carries. Files shared
** with syncd (value.c) are compiled a second time without the macro and then
** call the library the server links.
*/
#ifndef SYNC_SQLITE_API_H
#define SYNC_SQLITE_API_H

#ifdef SYNC_LOADABLE
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3
#else
#include <sqlite3.h>
#endif

#endif
