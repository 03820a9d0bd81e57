/*
** uniqexpr.h: the expressions of a UNIQUE index on expressions, cut from
** its CREATE INDEX text (uniqexpr.c), for replace.c's collision lookups.
*/
#ifndef SYNC_UNIQEXPR_H
#define SYNC_UNIQEXPR_H

#include "table.h"

/* The text of each of the nKey parts of index text sql (ASC, DESC and
** COLLATE cut off) into part[0..nKey), and its WHERE (NULL when not
** partial) into *where, each sqlite3_malloc'd. SQLITE_ERROR, and nothing
** kept, when the text does not read as an index of nKey parts. */
int ux_parse(const char *sql, int nKey, char **part, char **where);
/* Sets used[i] for each column of t that expr names (a word that is a
** column's name counts even where it is not one: the callers only widen
** what they look at). */
void ux_refs(SyncTable *t, const char *expr, unsigned char *used);

#endif
