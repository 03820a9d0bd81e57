/*
** oneshot.h: sync_push() and sync_pull() on the caller's thread
** (oneshot.c).
*/
#ifndef SYNC_ONESHOT_H
#define SYNC_ONESHOT_H

#include "sqlite_api.h"

void oneshot_fn_push(sqlite3_context *, int, sqlite3_value **);
void oneshot_fn_pull(sqlite3_context *, int, sqlite3_value **);

#endif
