/*
** capture.h: the capture triggers (capture.c), written in plain SQL.
*/
#ifndef SYNC_CAPTURE_H
#define SYNC_CAPTURE_H

#include "table.h"

void capture_value_expr(sqlite3_str *, const char *expr);
int capture_install(SyncCtx *, SyncTable *);
int capture_remove(SyncCtx *, const char *table);

#endif
