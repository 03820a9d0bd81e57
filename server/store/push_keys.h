/*
** push_keys.h: the keys a mutation names, checked against its table
** (push_keys.c), for push.c and push_batch.c.
*/
#ifndef SYNCD_PUSH_KEYS_H
#define SYNCD_PUSH_KEYS_H

#include "catalog.h"
#include "dialect.h"
#include "jscan.h"
#include "store.h"

/* Check the keys of the mutation's pk and data objects against t: pk
** exactly the key columns, data only t's columns (those server marks, the
** rules' server-owned ones, left out: NULL, none); fills cols. used: one
** zeroed int per column of t, for data's columns seen. *unknown: a key
** named no column of t. DIALECT_OK, DIALECT_REJECTED with *reason, or
** DIALECT_FATAL when out of memory. */
dialect_result check_keys(const catalog *cat, const catalog_table *t, const store_mutation *m,
                          dialect_cols *cols, int *used, const unsigned char *server, int *unknown,
                          char **reason);

/* The value of each column of t that the JSON object obj names (its first
** member naming it, as check_keys counts), into vals[0..t->n_cols); -1
** when out of memory. */
int column_values(const catalog *cat, const catalog_table *t, const char *obj, jspan *vals);

#endif
