/*
** vtab_orphans.h: the sync_orphans virtual table (vtab_orphans.c).
*/
#ifndef SYNC_VTAB_ORPHANS_H
#define SYNC_VTAB_ORPHANS_H

#include "ctx.h"

extern sqlite3_module vtab_orphans_module;

#endif
