/*
** mutate.h: sync_mutate (mutate.c).
*/
#ifndef SYNC_MUTATE_H
#define SYNC_MUTATE_H

#include "ctx.h"

void mutate_fn(sqlite3_context *, int, sqlite3_value **);

#endif
