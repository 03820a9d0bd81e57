/*
** migrate.h: sync_migrate and the check of the capture triggers after a
** schema change (migrate.c).
*/
#ifndef SYNC_MIGRATE_H
#define SYNC_MIGRATE_H

#include "ctx.h"

void migrate_fn(sqlite3_context *, int, sqlite3_value **);

/* Rebuilds the triggers of every tracked table altered since they were
** written, and records which in sync_meta (schema_change,
** schema_changed_at). Runs inside the caller's write transaction: the
** engine's SyncCtx.schemaHook. */
int migrate_check(SyncCtx *);

#endif
