/*
** replace.h: the capture triggers' handling of REPLACE, the rows a statement
** deletes without a delete trigger (replace.c).
*/
#ifndef SYNC_REPLACE_H
#define SYNC_REPLACE_H

#include "jsonexpr.h"

/* Creates sync_req_T, the columns of sync_stash the triggers use (a
** database from before lacks some) and the trigger that clears the stash
** when the engine writes; replace_remove drops sync_req_T and its triggers. */
int replace_install(SyncCtx *, SyncTable *);
int replace_remove(SyncCtx *, const char *table);
/* The body of sync_bi_T: clear the stash, keep the rows NEW would replace. */
void replace_before_insert(sqlite3_str *, SyncTable *, const JxShape *);
/* CREATE TRIGGER statements of sync_bs_T (rowid tables), sync_bu_T and
** sync_rp_T. */
void replace_triggers(sqlite3_str *, SyncTable *, const JxShape *);
/* The statement of an AFTER trigger that runs sync_rp_T when the stash holds
** rows; op is 'insert', 'update' (key unchanged) or 'rekey'. */
void replace_kick(sqlite3_str *, SyncTable *, const JxShape *, const char *op);
/* The UPDATE OF list of the columns that change the key: the key columns and
** the rowid's names the table does not use for a column. */
void replace_of_key(sqlite3_str *, SyncTable *);

#endif
