/*
** inbox.h: apply's slow paths (inbox.c): rows a UNIQUE index refused,
** retried once the rest is written and parked out of each other's way, and
** pages that cannot apply yet, staged in sync_inbox until the pull's end.
*/
#ifndef SYNC_INBOX_H
#define SYNC_INBOX_H

#include "jscan.h"
#include "table.h"

/* A row write a UNIQUE index refused, kept to be retried. */
typedef struct Deferred {
  SyncTable *t;
  int chg;   /* its change's number on its page (from 1), for messages */
  char *key; /* canonical key text */
  char *row; /* the server's row, JSON */
} Deferred;

/* The deferred rows of one apply, in page order. */
typedef struct Settle {
  Deferred *a;
  int n, cap;
  int depth; /* 0 for an apply's; the nesting of hides clearing their way */
} Settle;

int settle_add(Settle *, SyncTable *, int chg, const char *key, const char *row, int nRow);
void settle_drop(Settle *, SyncTable *, const char *key);
int settle_run(SyncCtx *, Settle *, int final, int *pLater, char **pzErr);
void settle_free(Settle *);
int settle_hide(SyncCtx *, SyncTable *, const char *key);
int settle_hide_referrers(SyncCtx *, SyncTable *, const char *pk, int nPk, int force);

/* Deletes put off.
**
** The change log keeps the latest change per row, so a row the server
** detached from a parent before deleting that parent, and changed since,
** arrives after the parent's delete: locally it still refers to the parent
** when the delete comes. Deleting at once would cascade (or SET NULL)
** through that stale row into rows the server keeps, delivered earlier and
** never sent again (a user's delete taking the project the server moved
** away, and that project's tasks). So a server delete of a row that other
** rows refer to (cascade_referred) is put off to the end of the apply,
** after the changes that follow it (apply.c, put_off). Whether those rows
** may be the server's is not asked: the walk that tells (cascade.c) costs
** too much for every delete, and waiting changes nothing for rows only
** this client has. Then it
** takes only what the server's took: syncd logs the rows its cascade
** removed as deletes of their own, which have applied meanwhile. One still
** referred to waits for the pull's last page (the page is staged), where
** the server's state is whole and the delete is applied whatever it
** takes. A later change of the key replaces it. */
typedef struct PutOff {
  SyncTable *t;
  int chg;   /* its change's number on its page (from 1), for messages */
  char *key; /* canonical key text */
  char *pk;  /* the key object as the page wrote it, compacted (a staged
             ** page's text is freed once walked) */
  char *ver; /* the version as written, or NULL */
} PutOff;

/* The deletes put off by one apply, in page order. */
typedef struct PutOffs {
  PutOff *a;
  int n, cap;
} PutOffs;

/* Adds the delete of key (canonical; pk and ver as the page wrote them) and
** drops an earlier one of the same key. */
int putoff_add(PutOffs *, SyncTable *, int chg, const char *key, jspan pk, jspan ver);
void putoff_drop(PutOffs *, SyncTable *, const char *key);
PutOff putoff_take(PutOffs *, int k); /* removes entry k; the caller clears it */
void putoff_clear(PutOff *);
void putoff_free(PutOffs *);

int fk_unresolved(SyncCtx *);
int fk_explain(SyncCtx *, char **pzErr);
int fk_hide_deletes(SyncCtx *, int *pN);

int inbox_count(SyncCtx *, sqlite3_int64 *pN);
int inbox_stage(SyncCtx *, const char *page);
int inbox_clear(SyncCtx *);
sqlite3_stmt *inbox_scan(SyncCtx *);

#endif
