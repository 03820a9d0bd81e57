/*
** inbox.h: apply's slow paths (inbox.c): rows a UNIQUE index refused,
** retried once the rest is written and parked out of each other's way, and
** pages that cannot apply yet, staged in sync_inbox until the pull's end.
*/
#ifndef SYNC_INBOX_H
#define SYNC_INBOX_H

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
int settle_hide_referrers(SyncCtx *, SyncTable *, const char *pk, int nPk);

int fk_unresolved(SyncCtx *);
int fk_explain(SyncCtx *, char **pzErr);
int fk_hide_deletes(SyncCtx *, int *pN);

int inbox_count(SyncCtx *, sqlite3_int64 *pN);
int inbox_stage(SyncCtx *, const char *page);
int inbox_clear(SyncCtx *);
sqlite3_stmt *inbox_scan(SyncCtx *);

#endif
