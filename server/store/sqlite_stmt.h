/*
** sqlite_stmt.h: statements kept prepared on a SQLite connection between
** requests (sqlite_stmt.c), for the SQLite dialect and its fingerprint
** cache, which share connections.
*/
#ifndef SYNCD_SQLITE_STMT_H
#define SYNCD_SQLITE_STMT_H

#include <sqlite3.h>

/* An idle statement of text sql on db, or a new one: an SQLite code. */
int sqlite_stmt_get(sqlite3 *db, const char *sql, sqlite3_stmt **st);

/* Give st back (NULL is fine): reset, unbound, finalized when db holds too
** many. The error of its last step stays readable through sqlite3_errmsg. */
void sqlite_stmt_put(sqlite3_stmt *st);

#endif
