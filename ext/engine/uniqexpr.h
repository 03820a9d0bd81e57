/*
** uniqexpr.h: the expressions of a UNIQUE index on expressions, cut from
** its CREATE INDEX text, and those of generated columns, cut from the CREATE
** TABLE text (uniqexpr.c), for replace.c's collision lookups.
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
/* The expression generated column col is made of (its "AS (...)"), cut
** from CREATE TABLE text sql; sqlite3_malloc'd, NULL when the text does
** not show one or memory ran out. */
char *ux_generated(const char *sql, const char *col);

#endif
