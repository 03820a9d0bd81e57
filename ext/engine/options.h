/*
** options.h: the settings, one set for sync_init's options and
** sync_config's keys (options.c): the table of keys with their kind, range
** and default, and the one validator both functions use. The network layer
** (ext/net/config.c) reads the stored values back through it.
*/
#ifndef SYNC_OPTIONS_H
#define SYNC_OPTIONS_H

#include "ctx.h"

#include <stdint.h>

enum {
  OPT_TOKEN,  /* memory only: never stored (sync_config keeps it per file) */
  OPT_COUNT,  /* an integer from min to max */
  OPT_BOOL,   /* stored as 'on' or 'off' */
  OPT_FILE,   /* a readable PEM file */
  OPT_HEADER, /* one "Name: value" line */
  OPT_RESET,  /* on_server_reset: 'orphans' (none stored) or 'republish' */
};

typedef struct SyncOpt {
  const char *key;
  int kind;
  int64_t dflt; /* OPT_COUNT, OPT_BOOL: the value when none is stored */
  int64_t min;  /* OPT_COUNT: the smallest value accepted */
} SyncOpt;

/* The smallest max_body: a push answer or pull page of a few rows fits. */
#define OPT_MAX_BODY_MIN 4096
/* Every count fits a C int: curl and the wait loop take milliseconds as int. */
#define OPT_COUNT_MAX 2147483647

extern const SyncOpt opt_table[];
extern const int opt_count;

/* The setting named key, or NULL. */
const SyncOpt *opt_find(const char *key);

/* Checks v for o and sets *pOut (sqlite3_malloc'd) to the text to store:
** a count in decimal, a boolean as 'on'/'off', the rest as given. v is an
** SQL argument, or a JSON member's value as json_each gives it (jsonBool:
** the member was JSON true or false, which booleans take and the others
** refuse). v must not be NULL (NULL means "back to the default" and needs
** no check). Returns SQLITE_OK, SQLITE_NOMEM, or SQLITE_ERROR with *pzErr
** (sqlite3_malloc'd) such as `"batch_size" must be a positive integer`. */
int opt_check(const SyncOpt *o, sqlite3_value *v, int jsonBool, char **pOut, char **pzErr);

/* Stores checked text for o as sync_meta config.<key> (NULL: deletes it,
** back to the default). Not for the token. Returns an SQLite code. */
int opt_store(SyncCtx *c, const SyncOpt *o, const char *text);

/* 1 when o takes part in a check between settings (opt_agree). */
int opt_paired(const SyncOpt *o);

/* Checks the stored settings that must agree with each other
** (backoff_min_ms <= backoff_max_ms). Returns SQLITE_OK or SQLITE_ERROR
** with *pzErr. Call it after storing one of them, in the same savepoint. */
int opt_agree(SyncCtx *c, char **pzErr);

/* Readers of stored text, for values stored by any version: a count (-1
** when z is not one within o's range), a boolean (1, 0, or -1 when z is not
** one), a header line (1 when it is one opt_check accepts). */
int64_t opt_count_of(const SyncOpt *o, const char *z);
int opt_bool_of(const char *z);
int opt_header_ok(const char *z);

/* The stored text of o (sqlite3_malloc'd), or NULL when none. */
char *opt_get(SyncCtx *c, const SyncOpt *o);

#endif
