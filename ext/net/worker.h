/*
** worker.h: sync_start() and sync_stop(), the worker thread's life
** (worker.c).
*/
#ifndef SYNC_WORKER_H
#define SYNC_WORKER_H

#include "sqlite_api.h"

void worker_fn_start(sqlite3_context *, int, sqlite3_value **);
void worker_fn_stop(sqlite3_context *, int, sqlite3_value **);

#endif
