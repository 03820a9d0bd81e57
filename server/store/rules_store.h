/*
** rules_store.h: the rules as the push algorithm applies them
** (rules_store.c), over the store's dialect.
*/
#ifndef SYNCD_RULES_STORE_H
#define SYNCD_RULES_STORE_H

#include "rules.h"
#include "store_impl.h"

/* Whether the row of rt's table keyed by pk (JSON, as the store wrote it)
** passes rt's write rule (write) or read rule for user u (NULL: no user,
** every parameter NULL): *yes. 0, or -1 with *err. */
int rules_check_row(const store *s, dialect_conn *c, const rules_table *rt, int write,
                    const char *pk, const store_user *u, int *yes, char **err);

#endif
