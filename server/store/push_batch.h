/*
** push_batch.h: a batch's mutations in one go (push_batch.c), for push.c.
*/
#ifndef SYNCD_PUSH_BATCH_H
#define SYNCD_PUSH_BATCH_H

#include "store_impl.h"

/* After client_last, in attempt's transaction: the mutations m[order[0..n))
** through the dialect's write_batch, when the batch allows it (no rules; ids
** above *last and increasing; every name known; no key that data gives in
** another text than pk; none doomed), their outcomes recorded in res and
** logged as attempt does, *last moved. Returns n (all done), 0 (nothing
** done or sent: run them one at a time), -1 (*err), or -3 (rolled back:
** run the batch again one at a time). */
int push_batch(store *s, dialect_conn *c, const char *client, const store_mutation *m, int n,
               const int *order, char *const *doomed, long long *last, wire_outcome *res,
               int *n_changed, int *n_deleted, char **err);

#endif
