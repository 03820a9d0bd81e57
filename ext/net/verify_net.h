/*
** verify_net.h: sync_verify([table]) over HTTP (verify_net.c).
*/
#ifndef SYNC_VERIFY_NET_H
#define SYNC_VERIFY_NET_H

#include "sqlite_api.h"

void verify_net_fn(sqlite3_context *, int, sqlite3_value **);

#endif
