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
** update or a delete adds its values now; RULES_WAS_DROP after an update or
** an insert removes the values it has now (they are not former ones), but
** push.c keeps them instead for a membership table (rt->membership): a
** cascade that deletes the row later keeps nothing (docs/RULES.md). A
** deleted key's values stay while its tombstone does (the compaction
** purges them, rules.h was_purge): the key may be inserted again, and the
** tombstone that a reader of the old row needed is then gone. Nothing
** when the rule names no column of the row. 0, or -1 with *err. */
enum { RULES_WAS_KEEP, RULES_WAS_DROP };
int rules_was(const store *s, dialect_conn *c, const rules_table *rt, int what, const char *pk,
              char **err);

/* Whether a former value of the row keyed by pk passed rt's read rule for
** u: *yes (0 when none is kept). 0, or -1 with *err. */
int rules_was_readable(const store *s, dialect_conn *c, const rules_table *rt, const char *pk,
                       const store_user *u, int *yes, char **err);

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
