/*
** api.c: the routine table through which every file of the extension
** reaches SQLite (see common/sqlite_api.h).
**
** It is set once by sqlite3_sync_init (sync.c) and read everywhere. It
** lives in a file of its own, which references nothing, so that the files
** that use it (all of them) do not depend on the entry point, which
** depends on them.
*/
#include "sqlite_api.h"
SQLITE_EXTENSION_INIT1
