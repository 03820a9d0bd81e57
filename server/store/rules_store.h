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

/* Whether a former value of the row keyed by pk passed rt's read rule for
** u: *yes (0 when none is kept). 0, or -1 with *err. */
int rules_was_readable(const store *s, dialect_conn *c, const rules_table *rt, const char *pk,
                       const store_user *u, int *yes, char **err);

/* Whether a former value of the row of rt's table keyed by pk is kept:
** *yes. 0, or -1 with *err. */
int rules_was_kept(const store *s, dialect_conn *c, const rules_table *rt, const char *pk, int *yes,
                   char **err);

/* Whether u may be told that the row keyed by pk was deleted: a former
** value of it passes rt's read rule, or none was kept (deleted behind
** syncd, or the rule names no column of the row). *yes. 0, or -1 with
** *err. */
int rules_gone_readable(const store *s, dialect_conn *c, const rules_table *rt, const char *pk,
                        const store_user *u, int *yes, char **err);

/* Whether a change of membership table rt's row keyed by pk (live: the
** row is there, not deleted) may change what u's read rules select from
** it (rules.h, concern): the row as it is or a former value matches the
** WHERE of one of those selects, or the key was deleted with no former
** values kept, after version since for a live row (deleted and made
** again: the change log's gap, dialect.h). *yes. 0, or -1 with *err. */
int rules_concerns(const store *s, dialect_conn *c, const rules_table *rt, const char *pk, int live,
                   long long since, const store_user *u, int *yes, char **err);

/* Whether the row of table keyed by pk is there and its key did not exist
** at version after: its latest change is an insert of an absent key (the
** change log's gap, dialect.h) and the key was absent since a version at
** or below after. *yes. 0, or -1 with *err. */
int rules_new_since(const store *s, dialect_conn *c, const char *table, const char *pk,
                    long long after, int *yes, char **err);

#endif
