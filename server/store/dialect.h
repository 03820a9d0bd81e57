/*
** dialect.h: what a storage engine must provide to the one push algorithm
** (push.c) and the one pull algorithm (pull.c). dialect_sqlite.c and
** dialect_pg.c each define one `const dialect` table; the algorithms call
** them only through it, and a dialect never calls back into push.c or
** pull.c (it may use catalog.h and wire.h, the leaves below both).
**
** Internal tables every dialect keeps next to the synced ones (names
** starting with _syncd_ are never synced and never writable through the
** protocol):
**   _syncd_state(db_id, version, horizon)         one row: counter, horizon
**   _syncd_changes(tbl, pk, op, row, version)     latest change per row
**   _syncd_clients(client_id, last_id)            last processed mutation id
**   _syncd_outcomes(client_id, id, status, ...)   recent outcomes, for replays
**   _syncd_fp_*                                   POST /verify's cache (fp_cache.c)
**
** Conventions: methods returning int return 0 on success and -1 with *err
** set (sqlite3_malloc'd) on failure, except the row methods (read_row,
** write_row, settle), which return a dialect_result. Strings they hand
** back are sqlite3_malloc'd and become the caller's.
*/
#ifndef SYNCD_DIALECT_H
#define SYNCD_DIALECT_H

#include "catalog.h"
#include "store.h"
#include "wire.h"

/* The outcome of one row statement. */
typedef enum {
  DIALECT_OK,
  DIALECT_REJECTED, /* the data was refused; *reason says why */
  DIALECT_FATAL,    /* the database failed; the whole batch fails (*err) */
  DIALECT_ENDED,    /* the refusal ended the transaction (SQLite's RAISE(ROLLBACK)) */
  DIALECT_AGAIN     /* settle rolled the batch back: run it again (the dialect
                    ** then keeps each mutation's refusal to itself) */
} dialect_result;

/* What a mutation's data names, in t's column indexes: every column of
** data in data's order, each once (data), and those outside the key (set). */
typedef struct dialect_cols {
  int *data, n_data;
  int *set, n_set;
} dialect_cols;

/* One mutation of a batch whose statements are sent at once (write_batch):
** t, m and cols as write_row takes them; the rest write_batch fills. */
typedef struct dialect_write {
  const catalog_table *t;
  const store_mutation *m;
  const dialect_cols *cols;
  char *reason;   /* refused before anything was sent (a value); nothing ran */
  int changed;    /* a row changed (write_row's *changed) */
  char *row, *pk; /* an insert's or update's row that changed, or the row an
                  ** update naming no column to set read (NULL: none), and
                  ** its key as stored; a delete's: the deleted key in pk */
} dialect_write;

/* A row a push batch wrote (an insert's or update's, as stored at the
** batch's end) or deleted, for fk_dangling to judge. */
typedef struct dialect_written {
  const catalog_table *t;
  const char *pk; /* borrowed */
  int deleted;    /* a delete's key: judged as a parent gone */
  char *reason;   /* fk_dangling's, sqlite3_malloc'd: the row refers to no row,
                  ** or rows refer to the key deleted */
} dialect_written;

/* Which transaction begin opens. A push's foreign keys are checked at the
** batch's end where the dialect has fk_dangling (a mutation may refer to a
** row a later one of the batch writes: a key change's children come before
** its new row), at each mutation in DIALECT_PUSH_STRICT. */
enum { DIALECT_SETUP, DIALECT_PUSH, DIALECT_PUSH_STRICT };

/* One table of an initial sync's walk under rules (read_page): its rows
** that pass cond (a read rule's SQL, rules.h: parameters 2 on are vals;
** parameter 1 is free) in key order, after the row whose pk JSON is after
** (NULL: from the first). */
typedef struct dialect_walk {
  const catalog_table *t;
  const char *cond;
  char **vals; /* NULL: SQL NULL */
  int n_vals;
  const char *after;
  int sorted; /* cond selects from another table: no index of t gives its
              ** rows in key order, so a page sorts them (their keys first,
              ** then the changes of the limit's worth) */
} dialect_walk;

typedef struct dialect_db dialect_db;     /* one per store */
typedef struct dialect_conn dialect_conn; /* one per pooled connection */

typedef struct dialect {
  int pool_max;  /* connections a store opens at most */
  int fold_case; /* identifiers compare case-insensitively */

  /* The database: target is a file path or a URL; cfg's settings of the
  ** dialect's own (SQLite: mmap_size) are read here. */
  int (*open)(const char *target, const store_config *cfg, dialect_db **db, char **err);
  /* Call on_change(arg) whenever another process committed changes;
  ** NULL for a dialect that has no such processes. */
  int (*listen)(dialect_db *db, void (*on_change)(void *), void *arg, char **err);
  void (*close)(dialect_db *db);

  /* Connections (the pool in pool.c keeps them). */
  dialect_conn *(*connect)(dialect_db *db, char **err);
  /* Roll back what an error path left open; nonzero when c can serve again. */
  int (*reusable)(dialect_conn *c);
  /* Nonzero when the last failure on c was a conflict with a concurrent
  ** transaction (a deadlock, a serialization failure) that running the
  ** whole batch again can resolve; NULL: the dialect never has one. */
  int (*conflicted)(dialect_conn *c);
  /* Nonzero when a statement since the last savepoint failed because it
  ** broke a foreign key checked at once (a parent not there yet): push.c
  ** tries the mutation again after the rest of its batch. NULL: never
  ** (SQLite storage checks a batch's foreign keys at its end). */
  int (*fk_refused)(dialect_conn *c);
  void (*disconnect)(dialect_conn *c);

  /* Transactions: begin (DIALECT_SETUP or DIALECT_PUSH), commit, and the
  ** savepoint around each mutation (release NULL: the next savepoint or
  ** commit releases it). */
  int (*begin)(dialect_conn *c, int what, char **err);
  int (*commit)(dialect_conn *c, char **err);
  int (*savepoint)(dialect_conn *c, char **err);
  int (*rollback_to)(dialect_conn *c, char **err);
  int (*release)(dialect_conn *c, char **err);
  /* Who the push begun is for (NULLs: no one), for the schema's defaults
  ** and triggers (docs/RULES.md): SQLite keeps it on the connection for
  ** syncd_sub() and syncd_claims(); PostgreSQL sets syncd.sub and
  ** syncd.claims, local to the transaction, with client_last's statement
  ** (so it comes between begin and client_last; the strings are borrowed
  ** until then). */
  int (*set_user)(dialect_conn *c, const char *sub, const char *claims, char **err);
  /* After a mutation's statements: the result r becomes final (a trigger
  ** that ended the transaction, a deferred foreign key broken now, or
  ** DIALECT_AGAIN: a refusal its savepoint, which the dialect skipped,
  ** would have had to undo -- the batch was rolled back and the next run
  ** takes savepoints, so it never asks twice); NULL when r is always
  ** final. */
  dialect_result (*settle)(dialect_conn *c, dialect_result r, char **reason, char **err);
  /* After a DIALECT_PUSH batch's last mutation: 1 when it leaves a foreign
  ** key broken, 0 when none, -1 on failure (*err). On 1, each row of
  ** w[0..n) (the rows the batch wrote or deleted) that refers to a row that
  ** does not exist, or each key deleted that no row holds and rows still
  ** refer to, gets the reason its mutation would have been refused with,
  ** where the dialect can tell; then the transaction is rolled back.
  ** push.c runs the batch again without those mutations, or, none named,
  ** as DIALECT_PUSH_STRICT, where the mutations that break one are
  ** refused. NULL: every push is strict. */
  int (*fk_dangling)(dialect_conn *c, dialect_written *w, int n, char **err);

  /* Opening a store, inside a DIALECT_SETUP transaction: run schema_sql
  ** when the database has none yet and create the internal tables; fill
  ** cat with the synced tables; read the db id (*found 0: none yet) or
  ** write a new one; hand every row of t to each (pk and row JSON). */
  int (*setup)(dialect_conn *c, const char *schema_sql, char **err);
  /* cat stays the store's until use_catalog names another: the dialect
  ** may keep it to watch every synced table for rows a push changes
  ** besides its own. */
  int (*load_catalog)(dialect_conn *c, catalog *cat, char **err);
  /* The catalog to watch from now on (a reload replaced the one
  ** load_catalog filled): connections drop what they built from the old
  ** one before their next push. Called with no request running. */
  void (*use_catalog)(dialect_db *db, const catalog *cat);
  /* A text that changes whenever a synced table or column is added,
  ** dropped or changed (SQLite: the schema cookie; PostgreSQL: the tables
  ** of the schema with a digest of their columns' names and types), cheap
  ** enough to read at every push. */
  int (*schema_stamp)(dialect_conn *c, char **stamp, char **err);
  int (*read_db_id)(dialect_conn *c, char *id, int size, int *found, char **err);
  int (*write_db_id)(dialect_conn *c, const char *id, char **err);
  /* Every row of t, or with cond (a read rule's SQL, rules.h: parameters
  ** 2 on are vals[0..n_vals); parameter 1 is free) only those that pass. */
  int (*scan)(dialect_conn *c, const catalog_table *t, const char *cond, char *const *vals,
              int n_vals, int (*each)(void *arg, const char *pk, const char *row, char **err),
              void *arg, char **err);

  /* Rows of synced tables. read_row: the row whose key is in pk (*row and
  ** *pk_out NULL when none). write_row: m's INSERT, UPDATE or DELETE of
  ** cols; *changed when a row changed, *del_pk the deleted row's key. */
  dialect_result (*read_row)(dialect_conn *c, const catalog_table *t, const char *pk, char **row,
                             char **pk_out, char **reason, char **err);
  dialect_result (*write_row)(dialect_conn *c, const catalog_table *t, const store_mutation *m,
                              const dialect_cols *cols, int *changed, char **del_pk, char **reason,
                              char **err);
  /* The statements of w[0..n), in order, without savepoints, none waiting
  ** for the answer of the one before (NULL: not offered): each write_row's,
  ** or an update naming no column to set (cols->n_set 0) the read_row of
  ** its key. DIALECT_OK when each ran and its answer is all its mutation
  ** needs (w filled); else the transaction was rolled back and the batch
  ** is to run again one mutation at a time: DIALECT_AGAIN (a statement
  ** failed, so the dialect runs the next try with savepoints as settle's
  ** DIALECT_AGAIN does; or a row written is not the one pk names, which
  ** needs read_row) or DIALECT_FATAL (*err; a conflict: conflicted). */
  dialect_result (*write_batch)(dialect_conn *c, dialect_write *w, int n, char **err);

  /* The change log: make (t, pk) the latest change at the next version
  ** (row NULL: a delete) and store that version in *version (NULL: not
  ** wanted); fresh: an insert of a key that did not exist, so the log
  ** keeps since when the key was absent (column gap: the version of the
  ** delete it replaces, 0 when none is logged; NULL when the key may have
  ** existed before this change: pull.c's move-in) -- a dialect may give versions only at commit,
  *holding a
  ** nonzero placeholder there meanwhile, so *version must outlive the
  ** commit; purge tombstones beyond max, raising the horizon (at the latest
  ** at commit); tell other processes a push changed rows (NULL: no one to
  ** tell). */
  int (*log_change)(dialect_conn *c, const char *table, const char *pk, const char *row, int fresh,
                    long long *version, char **err);
  /* After a mutation's statements (and its own row's log_change): log
  ** every other row of a synced table they changed -- a foreign key's
  ** cascade, a trigger's writes -- as it stands now (deleted: a delete),
  ** adding the changes to *n_changed and the deletes to *n_deleted. t and
  ** pk name the mutation's own row (pk NULL: none changed). NULL: the
  ** dialect logs those rows itself before it commits. */
  int (*log_touched)(dialect_conn *c, const catalog *cat, const catalog_table *t, const char *pk,
                     int *n_changed, int *n_deleted, char **err);
  /* Purges the tombstones beyond the newest max_tombstones, raising the
  ** horizon; purge[0..n_purge): statements that go with it, run before the
  ** tombstones go (SQLite: the new horizon in parameter 2; PostgreSQL:
  ** steps of its purge, the tombstones going named "d"). */
  int (*compact)(dialect_conn *c, long long max_tombstones, const char *const *purge, int n_purge,
                 char **err);
  int (*notify)(dialect_conn *c, char **err);

  /* Per client: read (and hold to commit) the last processed id, write the
  ** new one, record an outcome, replay a recorded one (the row as it is
  ** now when applied; its version, like log_change's, may be filled at
  ** commit, so o must outlive the commit), keep only the newest `keep`
  ** outcomes. */
  int (*client_last)(dialect_conn *c, const char *client, long long *last, char **err);
  /* The last processed ids of the clients the JSON array `clients` names,
  ** into last[0..n) in its order (0: a client never seen), in one statement
  ** outside a transaction, without locking: the streams of a fan-out
  ** (store_pull_group). */
  int (*client_lasts)(dialect_conn *c, const char *clients, long long *last, int n, char **err);
  int (*client_set_last)(dialect_conn *c, const char *client, long long last, char **err);
  int (*record)(dialect_conn *c, const char *client, long long id, const wire_outcome *o,
                const char *table, char **err);
  int (*replay)(dialect_conn *c, const char *client, long long id, wire_outcome *o, char **err);
  int (*prune)(dialect_conn *c, const char *client, int keep, char **err);

  /* Reading, each in one snapshot: a pull page (state, changes after
  ** `after` -- live rows only unless all, of the tables in the JSON array
  ** of names `tables` only unless NULL --, or with w an initial sync's
  ** walk under rules (pull.c): the rows of w[0..n) in turn, each table's
  ** readable rows in key order with their latest change, through
  ** wire_page_walk until p is full, the query reading only those rows (by
  ** an index on the rule's columns then the key, where there is one);
  ** then the client's last id and, when p->rejected, its rejected outcomes
  ** from pending_from on), and the head. */
  int (*read_page)(dialect_conn *c, const char *client, long long after, int all,
                   const char *tables, const dialect_walk *w, int n, long long pending_from,
                   wire_page *p, char **err);
  /* The rows of w[0..n) as a walk reads them, into p (a walk's, or a
  ** scratch page: pull.c's move-in), on c as it stands: inside read_page's
  ** snapshot when called from its filter. */
  int (*walk_rows)(dialect_conn *c, const dialect_walk *w, int n, wire_page *p, char **err);
  /* The key a walk's cursor names by reference (wire.h, WIRE_WALK_MAX):
  ** the pk of table's change whose pk hashes to hash (wire_key_hash), at
  ** version or, the key changed since the cursor was made, after it and
  ** after `after` (the cursor's version). *pk sqlite3_malloc'd; 0 found,
  ** 1 none, -1 with *err. */
  int (*walk_key)(dialect_conn *c, const char *table, long long version, long long after,
                  const char *hash, char **pk, char **err);
  int (*head)(dialect_conn *c, long long *version, char **err);

  /* Run sql with the text parameters vals[0..n) (NULL: SQL NULL) and set
  ** *yes to the boolean its first row holds (no row: 0): the rules' checks
  ** and their bookkeeping (rules_store.c). */
  int (*select_bool)(dialect_conn *c, const char *sql, const char *const *vals, int n, int *yes,
                     char **err);
  /* A read-only snapshot around head and scan (fingerprint.c): end 0
  ** opens it, 1 closes it. */
  int (*snapshot)(dialect_conn *c, int end, char **err);
  /* What the dialect's fingerprint cache functions (fp_dialect.h) take
  ** for c. */
  void *(*native)(dialect_conn *c);
} dialect;

extern const dialect dialect_sqlite;
extern const dialect dialect_pg;

#endif
