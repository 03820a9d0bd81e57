/*
** store.h: the storage of syncd, as its HTTP side sees it.
**
** server/http/ (routes.c, events.c, syncd.c) talks to storage only through
** these functions. One push algorithm (push.c) and one pull algorithm
** (pull.c) serve every storage; what differs between SQLite and PostgreSQL
** is a dialect (dialect.h). Every function is safe to call from many
** threads at once (one per HTTP connection).
**
** Contract (docs/PROTOCOL.md is the spec):
**   - one version counter per database; every row change gets the next one;
**   - the change log keeps the latest change per (table, pk), deletes stay
**     as tombstones until more than max_tombstones exist, then the oldest go
**     and the horizon rises to the highest purged version;
**   - a cursor is "<db id>-<version>"; the db id is random, chosen once when
**     the database is created;
**   - per client: the last processed mutation id and the recorded outcome
**     (status, reason, table, pk) of at least its last 10000 mutations.
**
** Every string a store returns (json, cursor, err) is allocated with
** sqlite3_malloc (syncd uses sqlite3_str as its one string builder) and is
** freed by the caller with sqlite3_free.
*/
#ifndef SYNCD_STORE_H
#define SYNCD_STORE_H

#include "store_types.h"

typedef struct store store;

/* Open (creating if needed) a store on a SQLite file or a PostgreSQL URL;
** NULL with *err set on failure. */
store *store_sqlite_open(const char *path, const store_config *cfg, char **err);
store *store_pg_open(const char *url, const store_config *cfg, char **err);

/* Who a request acts for, when a JWT named a user: sub and the token's
** payload JSON (claims). The rules see them as :sub and :claim_NAME. */
typedef struct store_user {
  const char *sub;
  const char *claims;
} store_user;

/* Load the rules file's text (docs/RULES.md) and check it against the
** catalog and the storage; from then on pushes and pulls follow it. Once,
** before serving. STORE_OK, or STORE_ERROR with *err. (rules_store.c) */
int store_set_rules(store *s, const char *json, char **err);
/* 1 when rules were set (store_set_rules). (rules_store.c) */
int store_has_rules(const store *s);

/* Under rules, a client id belongs to the first user who used it: *mine
** is 0 when u is another user (u NULL, or no rules: always 1), so one user
** cannot push, pull or stream as another's device. (rules_store.c) */
int store_client_user(store *s, const store_user *u, const char *client_id, int *mine, char **err);

/* store_push for user u (NULL: none) under the rules, if any. (push.c) */
int store_push_as(store *s, const store_user *u, const char *client_id, const store_mutation *m,
                  int n, char **json, int *n_changed, char **err);

/* Apply a batch for client_id in ONE transaction, each mutation in its own
** savepoint, in id order, at most once. *json receives {"results":[...]}
** in the order of m[]; *n_changed the number of row changes committed (0:
** nothing to announce). (push.c) */
int store_push(store *s, const char *client_id, const store_mutation *m, int n, char **json,
               int *n_changed, char **err);

/* Read up to limit changes after cursor (NULL: initial sync, live rows
** only) and client_id's last_mutation_id, in one read transaction. When
** pending_from > 0, also the client's mutations with pending_from <= id <=
** last_mutation_id whose recorded status is rejected ("rejected", id
** order), in the same transaction; 0: no "rejected" key. (pull.c) */
int store_pull(store *s, const char *client_id, const char *cursor, int limit,
               long long pending_from, store_page *page, char **err);

/* store_pull shipping only the changes of the tables `tables` names (NULL:
** every table): the `tables` parameter of /pull and /events as the query
** decoding left it, names separated by ',', each percent-encoded (so a
** name may hold ',' or '%'); a name that is no synced table is ignored.
** (pull.c) */
int store_pull_tables(store *s, const char *client_id, const char *cursor, int limit,
                      long long pending_from, const char *tables, store_page *page, char **err);

/* store_pull_tables for user u (NULL: none) under the rules, if any.
** (pull.c) */
int store_pull_as(store *s, const store_user *u, const char *client_id, const char *cursor,
                  int limit, long long pending_from, const char *tables, store_page *page,
                  char **err);

/* store_pull_as for the n clients of clients[], all at one cursor, with
** one read of the change log (an event fan-out: thousands of streams wake
** at the same cursor): page is clients[0]'s, and last[i] each client's
** last_mutation_id, to print in its copy at page->last_at. The others'
** ids are read before the page, so each one's mutations have their
** effects at or before the page's cursor, as the page's own id has.
** (pull.c) */
int store_pull_group(store *s, const store_user *u, const char *const *clients, int n,
                     const char *cursor, int limit, const char *tables, store_page *page,
                     long long *last, char **err);

/* The cursor of the current head version. (pull.c) */
int store_head(store *s, char **cursor, char **err);

/* Release the strings of a page (the struct itself is the caller's). */
void store_page_clear(store_page *page);

/* A warning naming the synced tables and columns whose names a client
** could send in another case than the storage's: on a storage that
** compares names exactly (PostgreSQL), those with upper-case letters
** (created quoted). NULL when there are none (always on SQLite), or when
** out of memory. (store.c) */
char *store_name_warning(const store *s);

/* A warning naming the words of schema_sql written unquoted in mixed case
** (Todos) that name a synced table or column once folded to lower case
** (todos), on a storage that folds unquoted names and compares them
** exactly (PostgreSQL): clients following the schema would send the case
** the storage does not have. NULL when there are none (always on SQLite),
** or when out of memory. (store.c) */
char *store_folded_warning(const store *s, const char *schema_sql);

/* Stop background threads, close connections, free s. */
void store_close(store *s);

#endif
