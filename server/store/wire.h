/*
** store_impl.h: helpers shared by the two store implementations (not part
** of the interface routes.c and events.c see). They keep the cursor format
** and the JSON shapes of push results and pull pages identical on SQLite
** and PostgreSQL.
*/
#ifndef SYNCD_STORE_IMPL_H
#define SYNCD_STORE_IMPL_H

#include <sqlite3.h>

#include "store.h"

/* Outcomes of a recorded mutation beyond this many per client are purged,
** when the client's last id crosses a multiple of STORE_PRUNE_EVERY. */
#define STORE_KEEP_OUTCOMES 10000
#define STORE_PRUNE_EVERY 1000

/* Fill id (at least 13 bytes) with a fresh random database id. */
void store_new_db_id(char *id);

/* Parse "<db id>-<version>". Returns STORE_OK with *version set, or
** STORE_BAD_CURSOR when it is not a cursor, or STORE_EXPIRED when it names
** another database. */
int store_cursor_parse(const char *cursor, const char *db_id, long long *version);

/* A new cursor string (sqlite3_malloc'd), NULL when out of memory. */
char *store_cursor_format(const char *db_id, long long version);

/* Append one change of a pull page; row is NULL for a delete. pk and row
** are JSON texts printed exactly by the store. */
void store_append_change(sqlite3_str *out, const char *table, const char *pk, const char *row,
                         long long version);

/* Finish a page whose "changes" entries were appended to out after
** "{\"changes\":[" ; fills page (json, cursor) and frees out. rejected, when
** not NULL, holds the entries of the "rejected" key (store_append_rejected)
** and is freed too; NULL: no such key. Returns STORE_OK or STORE_ERROR (out
** of memory). */
int store_page_finish(sqlite3_str *out, store_page *page, const char *db_id, long long cursor,
                      long long last_id, sqlite3_str *rejected, char **err);

/* Append one entry to the "rejected" list of a pull page (rejected starts
** empty; store_page_finish adds the brackets and frees it). */
void store_append_rejected(sqlite3_str *rejected, long long id, const char *reason);

/* The outcome of one mutation of a push, as recorded and as answered.
** Strings are sqlite3_malloc'd. */
typedef struct store_outcome {
  int applied; /* else rejected, with reason */
  char *reason;
  char *row;         /* the row's JSON after it; NULL: none (deleted, rejected) */
  char *pk;          /* canonical pk when applied, else the request's */
  long long version; /* 0: nothing changed */
} store_outcome;

void store_outcome_clear(store_outcome *o);

/* Fill order[0..n) with the indexes of m in id order (stable for equal
** ids: a repeated id is then answered from the first one's outcome). */
void store_order_by_id(const store_mutation *m, int n, int *order);

/* {"results":[...]}, res[i] answering m[i]; NULL when out of memory. */
char *store_results_json(const store_mutation *m, const store_outcome *res, int n);

/* A sqlite3_malloc'd copy of a printf-style message. */
char *store_errf(const char *fmt, ...);

#endif
