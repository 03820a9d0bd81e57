/*
** verify.h: divergence detection and repair (verify.c), the engine's side
** of sync_verify: what the client believes the server has, hashed as the
** server hashes it (common/fphash.h), compared range by range with the
** server's answers to POST /verify, and the differing keys repaired.
*/
#ifndef SYNC_VERIFY_H
#define SYNC_VERIFY_H

#include "apply.h"
#include "ctx.h"

typedef struct Verify Verify;

/* The repair's spool (verify.c): a temporary table the walks write the
** changes they find into, so that memory does not grow with them. Opens it
** for a new walk (a sync_verify call's tables, or one bring-your-own-
** transport walk): deletes what other walks left there (the connection's
** walk under way, c->verify, aside) and gives the new walk's id. */
int verify_spool_open(SyncCtx *, sqlite3_int64 *pWalk, char **pzErr);

/* Deletes walk's spooled changes (a walk given up; verify_repair does it
** itself). A failure leaves them to the next verify_spool_open. */
void verify_spool_drop(SyncCtx *, sqlite3_int64 walk);

/* Starts verifying table (tracked) for client at cursor (the client's,
** caught up with the server), its changes spooled under walk. Returns an
** SQLite code; *pzErr on failure. */
int verify_begin(SyncCtx *, const char *table, const char *client, const char *cursor,
                 sqlite3_int64 walk, Verify **pOut, char **pzErr);

/* The body of the next POST /verify (sqlite3_malloc'd), or NULL in *pBody
** when the comparison is complete. */
int verify_next(Verify *, char **pBody, char **pzErr);

/* Takes the server's answer to the last body; an answer of rows spools the
** changes it calls for. SQLITE_ABORT (with *pzErr) when the answer is for
** another cursor than the client's: the server moved on, pull and start
** again. */
int verify_take(Verify *, const char *answer, char **pzErr);

/* Once complete: the keys checked (the server's rows) and the keys that
** differ (the changes spooled). */
sqlite3_int64 verify_checked(const Verify *);
sqlite3_int64 verify_diverged(const Verify *);

void verify_free(Verify *);

/* Applies walk's spooled changes (of one or more tables) in one
** transaction, page by page, rebasing pending mutations on top, the cursor
** kept, and records the verification in sync_meta in the same transaction:
** last_verified_at (now, ISO-8601 UTC), diverged_total (+ diverged) and
** last_verify (report, the JSON sync_verify returns). Inside the caller's
** transaction, in a savepoint. Fails, applying nothing, when the spool
** holds another number of changes than diverged (a transaction that held
** some rolled back during the walk). Either way the walk's spool is then
** deleted; on failure nothing of the repair stays. *res says what the
** apply wrote (the tables, for sync_wait); free it with apply_result_clear
** (emptied on failure). */
int verify_repair(SyncCtx *, sqlite3_int64 walk, sqlite3_int64 diverged, const char *report,
                  ApplyResult *res, char **pzErr);

/* Bring-your-own-transport sync_verify, one table at a time:
**   sync_verify_request(table)  the first POST /verify body of a walk at the
**                               client's cursor (replaces one under way)
**   sync_verify_answer(answer)  the next body, or once complete the repair
**                               applied and its report (it has "tables") */
void verify_fn_request(sqlite3_context *, int, sqlite3_value **);
void verify_fn_answer(sqlite3_context *, int, sqlite3_value **);

#endif
