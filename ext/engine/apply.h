/*
** apply.h: the server's changes into the local tables (apply.c).
*/
#ifndef SYNC_APPLY_H
#define SYNC_APPLY_H

#include "apply_rows.h" /* apply_rows_module, registered by engine.c */
#include "ctx.h"

/* What apply_page read and wrote. */
typedef struct ApplyResult {
  sqlite3_int64 n;       /* changes applied (with a staged page's: 0 until the pull's end) */
  sqlite3_int64 skipped; /* changes to tables this client does not track, skipped */
  int more;              /* the page said has_more: true */
  int staged;            /* the page waits in sync_inbox (see apply.c) */
  char **tables;         /* the distinct tracked tables its changes named, as named */
  int nTables;
} ApplyResult;

/* apply_page flags */
#define APPLY_EVENT 1 /* an event: its last_mutation_id is ignored (events carry no "rejected") */
#define APPLY_SQL 2   /* sync_apply's page: not known to be a pull's (no initial-sync cleanup) */

/* Applies one pull page or event (the JSON text of sync_apply's argument)
** in one savepoint, cursor included. Returns an SQLite code; on failure
** nothing changed and *pzErr (sqlite3_malloc'd, never NULL then) gives the
** cause without the function's name. *res is filled on success; free it
** with apply_result_clear either way. */
int apply_page(SyncCtx *, const char *json, int flags, ApplyResult *res, char **pzErr);
void apply_result_clear(ApplyResult *);

void apply_fn(sqlite3_context *, int, sqlite3_value **);

#endif
