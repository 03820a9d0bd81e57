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

/* Move-out through a row's own columns (docs/RULES.md): the former values
** of the row keyed by pk that rt's read rule names. RULES_WAS_KEEP before an
** update adds its values now; RULES_WAS_DROP after it removes the values it
** has now (they are not former ones); RULES_WAS_FORGET after a delete
** removes them all (a delete is sent to everyone). Nothing when the rule
** names no column of the row. 0, or -1 with *err. */
enum { RULES_WAS_KEEP, RULES_WAS_DROP, RULES_WAS_FORGET };
int rules_was(const store *s, dialect_conn *c, const rules_table *rt, int what, const char *pk,
              char **err);

/* Whether a former value of the row keyed by pk passed rt's read rule for
** u: *yes (0 when none is kept). 0, or -1 with *err. */
int rules_was_readable(const store *s, dialect_conn *c, const rules_table *rt, const char *pk,
                       const store_user *u, int *yes, char **err);

#endif
