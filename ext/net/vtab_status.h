/*
** vtab_status.h: the sync_status eponymous virtual table (vtab_status.c);
** its aux data is the connection's NetConn.
*/
#ifndef SYNC_VTAB_STATUS_H
#define SYNC_VTAB_STATUS_H

#include "site.h"

extern sqlite3_module vtab_status_module;

#endif
