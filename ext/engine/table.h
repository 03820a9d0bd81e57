/*
** table.h: the cached description of each tracked table (table.c), rebuilt
** when the schema changes, with the statements the engine writes it with.
*/
#ifndef SYNC_TABLE_H
#define SYNC_TABLE_H

#include "ctx.h"

/* A tracked table as the engine writes it. Built from PRAGMA table_info on
** first use and dropped whenever the schema changes. */
struct SyncTable {
  char *name;
  int nCol;
  char **cols; /* column names, table order (generated columns left out) */
  char **dflt; /* DEFAULT expression text or NULL, per column */
  int nPk;
  int *pk;                /* column index of each primary key part, in key order */
  unsigned char *pkColl;  /* per key part: its collation is not BINARY (table_key_match) */
  unsigned char *server;  /* per column: the server's (sync_track's server_columns); NULL: none */
  sqlite3_stmt *upsert;   /* ?1 data: insert it, or on a key conflict set the columns it has */
  sqlite3_stmt *update;   /* ?1 data, ?2 pk: set the columns data has on that key */
  sqlite3_stmt *del;      /* ?1 pk: delete that key */
  sqlite3_stmt *exists;   /* ?1 pk -> 1 if the key exists */
  sqlite3_stmt *row;      /* ?1 pk -> the row's columns */
  sqlite3_stmt *canon;    /* capture.c: ?1 pk object -> the key as the triggers write it */
  sqlite3_stmt *bound[2]; /* apply.c: [0] whole rows of a batch, [1] delete by key (lazily) */
  sqlite3_stmt *referred; /* cascade.c: ?1 pk -> 1 if a row refers to that row (lazily) */
  int referredKnown;      /* referred has been built (NULL: no foreign key refers to t) */
  SyncTable *next;
};

int table_get(SyncCtx *, const char *name, int tracked, SyncTable **pOut, char **pzErr);
int table_is_tracked(SyncCtx *, const char *name);
void table_cache_clear(SyncCtx *);
int table_row_json(SyncCtx *, SyncTable *, const char *pkJson, char **pOut);
int table_write(sqlite3_stmt *, const char *a, const char *b);
void table_key_match(sqlite3_str *, SyncTable *, int part, const char *lhs, const char *rhs);
void table_key_where(sqlite3_str *, SyncTable *, const char *lhs, int param);
void table_upsert_tail(sqlite3_str *, SyncTable *, int whole);
int table_park_set(sqlite3_str *, SyncTable *, const unsigned char *cols);
int table_park_run(SyncCtx *, sqlite3_stmt *, const char *a);

#endif
