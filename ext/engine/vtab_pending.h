/*
** vtab_pending.h: the sync_pending virtual table (vtab_pending.c), the anchor that empties a
*connection's caches at close.
*/
#ifndef SYNC_VTAB_PENDING_H
#define SYNC_VTAB_PENDING_H

#include "ctx.h"

extern sqlite3_module vtab_pending_module;

#endif
