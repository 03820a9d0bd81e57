/*
** loop.h: sync_start() and sync_stop(), the worker thread's life (loop.c).
*/
#ifndef SYNC_LOOP_H
#define SYNC_LOOP_H

#include "sqlite_api.h"

void loop_fn_start(sqlite3_context *, int, sqlite3_value **);
void loop_fn_stop(sqlite3_context *, int, sqlite3_value **);

#endif
