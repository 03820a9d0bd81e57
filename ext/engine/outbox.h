/*
** outbox.h: the queue of pending mutations (outbox.c). Every query of
** sync_outbox outside the capture triggers is here or in the modules that
** rebase and apply; the network layer reaches the outbox only through the
** C API below.
*/
#ifndef SYNC_OUTBOX_H
#define SYNC_OUTBOX_H

#include "ctx.h"

/* A push request body and the ids it carries. */
typedef struct OutboxBatch {
  char *body;               /* sqlite3_malloc'd JSON; NULL: nothing left to send */
  sqlite3_int64 first, top; /* its first and last mutation id (0 when empty) */
} OutboxBatch;

/* Builds the body sync_push_batch(limit, after) returns: at most limit
** mutations with ids above after (more where a foreign key asks for it:
** batchcut.h), in id order, and raises
** sync_control.sent_id to its last id (in the caller's transaction). The
** caller frees out->body. Returns an SQLite code, *pzErr the cause. */
int outbox_batch(SyncCtx *, sqlite3_int64 limit, sqlite3_int64 after, OutboxBatch *out,
                 char **pzErr);

/* Resolves the answer to batch b in its own write transaction (unless the
** caller has one open): sync_ack(answer, b->top), and an answer that
** resolved none of a batch still pending is an error recorded on it.
** *pzErr gets "sync_ack: cause" or the recorded cause. */
int outbox_answer(SyncCtx *, const char *answer, const OutboxBatch *b, sqlite3_int64 *pDone,
                  char **pzErr);

/* After a failed push: counts an attempt and keeps why on the mutations
** with ids first..top. Best effort. */
void outbox_record_attempt(SyncCtx *, sqlite3_int64 first, sqlite3_int64 top, const char *why);

/* The lowest pending mutation id, 0 when the outbox is empty. */
sqlite3_int64 outbox_first(SyncCtx *);

/* The number of pending and of rejected mutations (sync_status). Fails
** before sync_init. */
int outbox_counts(SyncCtx *, sqlite3_int64 *pPending, sqlite3_int64 *pRejected);

/* For apply.c: the highest id handed out, and the mutations a pull page
** confirms up to upto. */
int outbox_sent_id(SyncCtx *, sqlite3_int64 *pSent);
int outbox_confirm_upto(SyncCtx *, const char *rejected, int nRejected, sqlite3_int64 upto,
                        char **pzErr);

/* Local writes, for sync_wait(.., 'all'): *pMark gets the outbox's
** high-water mark (the highest id ever issued: ids only grow, one per
** captured write). When lo >= 0 and the mark is above it, appends to names
** (each name NUL-terminated) the tables of the mutations with ids in
** (lo, mark], or every tracked table when some are gone already (sent and
** confirmed), whose tables cannot be told any more. Fails before sync_init. */
int outbox_changes_after(SyncCtx *, sqlite3_int64 lo, sqlite3_int64 *pMark, sqlite3_str *names);

void outbox_fn_pending(sqlite3_context *, int, sqlite3_value **);
void outbox_fn_push_batch(sqlite3_context *, int, sqlite3_value **);
void outbox_fn_ack(sqlite3_context *, int, sqlite3_value **);
void outbox_fn_wire(sqlite3_context *, int, sqlite3_value **);

#endif
