/*
** sqlite_open.h: a connection of the SQLite dialect to its database file,
** with syncd's settings (sqlite_open.c).
*/
#ifndef SYNCD_SQLITE_OPEN_H
#define SYNCD_SQLITE_OPEN_H

#include <sqlite3.h>

/* A connection to the file at path (created if absent) in WAL mode (*wal
** says whether the file took it), with
** foreign keys on, a busy timeout for other processes' writers, syncd's
** value functions (value_register), and up to mmap_size bytes of the file
** mapped into memory (0: none, every page read by a system call). NULL
** with *err (sqlite3_malloc'd, naming path) on failure. */
sqlite3 *sqlite_open_conn(const char *path, long long mmap_size, int *wal, char **err);

#endif
