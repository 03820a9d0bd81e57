/*
** existing.h: rows a tracked table holds that the server has not confirmed
** (existing.c): what sync_track does with the rows already there, and what
** a full resync does with the rows it did not deliver.
*/
#ifndef SYNC_EXISTING_H
#define SYNC_EXISTING_H

#include "table.h"

/* The modes of sync_track's "existing" option, as stored in
** sync_tracked.existing. */
typedef enum { EXISTING_NONE = 0, EXISTING_PUSH, EXISTING_KEEP, EXISTING_SERVER } ExistingMode;

/* Creates sync_local, sync_tracked.existing and sync_tracked.server_columns
** when missing. */
int existing_ensure(SyncCtx *);

/* Reads sync_track's options (JSON text or NULL). *pMode is EXISTING_NONE
** when the object does not say. Returns an SQLite code; *pzErr the cause. */
int existing_options(SyncCtx *, const char *json, ExistingMode *pMode, char **pzErr);

/* Applies mode to the rows of t the server has not confirmed: all of them
** when the table is first tracked (first), else those sync_local keeps.
** Records the mode. On failure *pzErr may say why. */
int existing_track(SyncCtx *, SyncTable *t, ExistingMode mode, int first, char **pzErr);

/* Notes the url and cursor the database holds before sync_init changes the
** url (track_refresh calls it; see existing.c). */
int existing_note(SyncCtx *);

/* 1 when the cursor held was noted with no url (rows were confirmed by
** pages and answers given by hand) and a url is now set: the next pull
** must be a full resync, and no table counts as pulled from this server. */
int existing_foreign(SyncCtx *);

/* The end of a full resync for one table (an engine write). unseen and
** unqueued are SQL conditions on a row of t (?1 its name): the resync did
** not deliver it; no mutation is pending for it. Such a row goes when
** pulled (the table was pulled from this server before: it was confirmed)
** or when the server's rows replace it (listed as removed), is queued as
** an insert (push) or kept (keep) otherwise; a kept row always stays.
** *pN grows by the rows deleted. */
int existing_settle(SyncCtx *, SyncTable *t, const char *unseen, const char *unqueued, int pulled,
                    sqlite3_int64 *pN);

/* During a resync after the server went back in time, before page is
** applied: the rows of t it brings back older than the client holds them.
** match is an SQL condition on a row of t and a page upsert's key
** (sync_p_pk, JSON); unqueued as for existing_settle. A confirmed row
** that differs from the page's row was written after the copy the server
** went back to: it is listed as 'server_reset' with what it held (sync
** orphans), or with 'republish' queued as an update of its values, which
** the page's row is then rebased under. */
int existing_reset_page(SyncCtx *, SyncTable *t, const char *page, const char *match,
                        const char *unqueued);

/* Creates the trigger that keeps edits of listed rows local (sync_hold)
** while sync_local lists a kept or replaced row, and drops it otherwise
** (sync_track, sync_untrack, a full resync, and every sync_init). */
int existing_hold(SyncCtx *);

/* After a full resync: the note of existing_note is spent. */
int existing_resync_done(SyncCtx *);

#endif
