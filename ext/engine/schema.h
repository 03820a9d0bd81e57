/*
** schema.h: sync_init and sync_cursor (schema.c): the engine's tables.
*/
#ifndef SYNC_SCHEMA_H
#define SYNC_SCHEMA_H

#include "ctx.h"

void schema_fn_init(sqlite3_context *, int, sqlite3_value **);
void schema_fn_cursor(sqlite3_context *, int, sqlite3_value **);

#endif
