/*
** wire.h: the texts the store hands to clients, built in one place so that
** every storage dialect speaks exactly the same protocol: cursors, pull
** pages, push results, and the error messages of the store.
**
** A leaf of server/store/: it calls nothing but common/, SQLite's string
** builder and libcrypto's SHA-256 (a long key's reference in a cursor), so
** the push and pull algorithms and the dialects may all use it.
*/
#ifndef SYNCD_WIRE_H
#define SYNCD_WIRE_H

#include <sqlite3.h>

#include "store_types.h"

/* Fill id (at least 13 bytes) with a fresh random database id. */
void wire_new_db_id(char *id);

/* Parse "<db id>-<version>", or an initial sync's continuation
** "<db id>-<version>s<snapshot>" (snapshot: the head when that initial
** sync began). Returns STORE_OK with *version and *snap (0: not a
** continuation) set, or STORE_BAD_CURSOR when it is not a cursor, or
** STORE_EXPIRED when it names another database. */
int wire_cursor_parse(const char *cursor, const char *db_id, long long *version, long long *snap);

/* The same, also giving (when table and pk are not NULL) the position of
** the continuation of an initial sync under rules, which walks each
** table's readable rows in key order (pull.c): "<db id>-<head>w<hex of the
** table's name>.<hex of the last row's pk JSON>" (head: the head when that
** initial sync began, in both *version and *snap), the position in *table
** and *pk (sqlite3_malloc'd; both NULL for any other cursor); or of a
** move-in too large for one page, which walks the rows one membership row
** opens and then goes on after that row's change at version v:
** "<db id>-<v>i<hex of its table's name>.<hex of its pk JSON>", then
** ".<position>" as above once a page has walked some (v in *version, *snap
** 0, the membership row in *in_table and *in_pk, NULL for any other
** cursor), or the same with "o" for "i", a move-out, whose walk of the
** rows the row's former values opened comes first (*out 1; out may be
** NULL); or, under rules, of an increment's page with more to come,
** "<db id>-<version>f<from>": the pages since the cursor from, where the
** client had every change (0: not known), in *from (-1 for any other
** cursor; from may be NULL). STORE_ERROR when out of memory.
** wire_cursor_parse reads such a cursor's version alone (whether it is
** this database's, at or below its head). */
int wire_cursor_parse_walk(const char *cursor, const char *db_id, long long *version,
                           long long *snap, char **table, char **pk, char **in_table, char **in_pk,
                           long long *from, int *out);

/* The longest table name plus pk JSON a walk's cursor carries, in bytes.
** A longer key is named in the cursor by reference instead: the version
** of its change in the log and a hash of its pk JSON, "v<version>h<hash>"
** in place of "<hex of the pk JSON>", which wire_cursor_parse_walk hands
** back as *pk (or *in_pk) as written; the store finds the key it names
** (wire_key_ref, dialect.h walk_key) before the page is read. A table's
** name alone over WIRE_WALK_MAX still cannot be paged. */
#define WIRE_WALK_MAX 2048

/* Hex digits of a key's hash in a reference (128 bits of SHA-256), and
** the same as an SQL literal. */
#define WIRE_HASH_HEX 32
#define WIRE_HASH_HEX_SQL "32"

/* The hash of the pk JSON pk, WIRE_HASH_HEX lowercase hex digits and a
** NUL into out: 0, or -1 when out of memory. */
int wire_key_hash(const char *pk, char *out);

/* Whether pk (from wire_cursor_parse_walk) is a reference to a key, not
** the key's JSON: 1 with the version of its change in *version and its
** hash in hash (WIRE_HASH_HEX + 1 bytes), else 0. */
int wire_key_ref(const char *pk, long long *version, char *hash);

/* A new cursor string (sqlite3_malloc'd), NULL when out of memory. */
char *wire_cursor(const char *db_id, long long version);

/* A pull page while it is read: the dialect reports the state it read
** (head, horizon, last_id) and appends changes and rejected mutations;
** wire_page_finish turns it into a store_page. */
typedef struct wire_page {
  sqlite3_str *out;      /* "{"changes":[" and the changes so far */
  sqlite3_str *rejected; /* the "rejected" entries; NULL: no such key */
  int limit;             /* changes a page holds; one more sets has_more */
  int n_changes;
  int has_more;
  long long last_version; /* of the last change appended */
  long long snap;         /* an initial sync's snapshot head (0: none): see pull.c */
  long long head, horizon, last_id;
  /* Under rules (pull.c): whether each change is sent, WIRE_KEEP, WIRE_SKIP,
  ** WIRE_GONE (sent as a delete: a move-out), WIRE_STOP (the page ends
  ** before it, with more to come: it follows on the next) or WIRE_FAIL
  ** (failed set); NULL: all kept.
  ** A skipped change still counts toward limit and moves the cursor. */
  int (*filter)(void *arg, const char *table, const char *pk, const char *row, long long version);
  void *filter_arg;
  int n_seen; /* changes counted toward limit, skipped ones too */
  int failed;
  /* An initial sync's walk under rules (wire_page_walk): the table and pk
  ** of the last row counted, "<table>\0<pk>\0" in walk_at (walk_size
  ** bytes allocated, reused row after row), and the version of its key's
  ** change in the log (walk_version; 0: none), which names a key too long
  ** for the cursor (WIRE_WALK_MAX); the cursor continues after it while
  ** has_more; walk_bad: out of memory. walk 0: not a walk. */
  int walk, walk_size, walk_bad;
  char *walk_at;
  /* A move-out's walk (pull.c): its rows are sent as deletes at this
  ** version (0: as upserts, their changes) */
  long long gone;
  long long walk_version;
  /* The pk of the last row read when wire_page_walk passed it over without
  ** counting it (a key too long for a cursor with no change logged: never
  ** sent, never a page's last row); walk_skipped: the last row read was
  ** one (wire_page_walk_last). */
  sqlite3_str *walk_skip;
  int walk_skipped;
  /* The walk's position (a cursor's key) is no key of its table: a crafted
  ** cursor whose key the store's types cannot read (PostgreSQL). */
  int walk_bad_position;
  /* A move-in walked over pages (wire_page_move_in): the membership row's
  ** table and key, and the version of its change, which the page goes on
  ** after once the walk is done; NULL: none. */
  char *in_table, *in_pk;
  long long in_version;
  int in_out; /* the walk is the move-out's, "o" */
  /* Under rules, an increment's: the cursor its pages began at (0: not
  ** known), which its continuation cursors carry ("f"; pull.c's move-in
  ** judges a key's past against it); -1: none, continuations are plain. */
  long long from;
} wire_page;

enum { WIRE_KEEP, WIRE_SKIP, WIRE_GONE, WIRE_STOP, WIRE_FAIL };

/* Start p for up to limit changes, with a "rejected" key when rejected. */
void wire_page_start(wire_page *p, int limit, int rejected);

/* Append one change; row is NULL for a delete. pk and row are JSON texts
** printed exactly by the dialect. Past limit, only sets has_more. */
void wire_page_change(wire_page *p, const char *table, const char *pk, const char *row,
                      long long version);

/* Make p a page of an initial sync's walk (pull.c): rows come from
** wire_page_walk, and the cursor says where the walk stands. */
void wire_page_walk_start(wire_page *p);

/* The walk read every row: p goes on as a page of changes (wire_page_change)
** after the version snap. */
void wire_page_walk_end(wire_page *p, long long snap);

/* Append one row a walk read, unfiltered (the page query chose it): row its
** JSON as the table holds it in the snapshot whose head is p->head, sent
** at that version; version the version of its key's change in the log,
** which names a key too long for a cursor (looked up for such keys alone;
** 0 for the others, or none logged: then a key too long for a cursor is
** passed over without counting, as no cursor could name it). Past limit,
** only sets has_more. */
void wire_page_walk(wire_page *p, const char *table, const char *pk, const char *row,
                    long long version);

/* The pk of the last row wire_page_walk read, counted or not (NULL: none):
** a page query that returned as many rows as it asked for without filling
** p (rows passed over did not count) goes on after it. */
const char *wire_page_walk_last(const wire_page *p);

/* One table of a walk into p: the dialect's query(conn, walk, after,
** limit, p, &n_read, err) from after (NULL: the first row), run again after
** the last row read while it returned all it was asked for yet left p
** short (rows wire_page_walk passed over uncounted). 0, or -1 with *err. */
typedef int wire_walk_query(void *conn, const void *walk, const char *after, int limit,
                            wire_page *p, int *n_read, char **err);
int wire_page_walk_table(wire_page *p, wire_walk_query *query, void *conn, const void *walk,
                         const char *after, char **err);

/* Make p's cursor, while it has more, go on with the move-in of the row
** of table keyed by pk, whose change has version, or (out) with its
** move-out, from the position the walk of page walked (its rows already
** taken into p; none: from the start). 0, or -1 when out of memory. */
int wire_page_move_in(wire_page *p, const char *table, const char *pk, long long version,
                      const wire_page *walked, int out);

/* p's walk begins again from its first row (a move-out's walk of the rows
** it opens, after those it closed). */
void wire_page_walk_restart(wire_page *p);

/* Append the changes of the page from (read by a filter of p's into a
** page of its own, pull.c's move-in) to p, counted toward p's limit. */
void wire_page_take(wire_page *p, const wire_page *from);

/* Append one entry to the "rejected" list (reason NULL: empty). */
void wire_page_rejected(wire_page *p, long long id, const char *reason);

/* Finish p into page (json and cursor: the last change's version when
** has_more -- as a continuation of snap while below it, or a walk's
** position --, else head), freeing p's builders. STORE_OK, or STORE_ERROR
** with *err when out of memory or a walk's position is too long. */
int wire_page_finish(wire_page *p, const char *db_id, store_page *page, char **err);

/* Free p's builders without a page (p read but not answered). */
void wire_page_drop(wire_page *p);

/* The outcome of one mutation of a push, as recorded and as answered.
** Strings are sqlite3_malloc'd. */
typedef struct wire_outcome {
  int applied; /* else rejected, with reason */
  char *reason;
  char *row;         /* the row's JSON after it; NULL: none (deleted, rejected) */
  char *pk;          /* canonical pk when applied, else the request's */
  long long version; /* 0: nothing changed */
  int hidden;        /* under rules: the user may not read row, answered as none */
} wire_outcome;

void wire_outcome_clear(wire_outcome *o);

/* {"results":[...]}, res[i] answering m[i]; NULL when out of memory. */
char *wire_results(const store_mutation *m, const wire_outcome *res, int n);

/* A sqlite3_malloc'd copy of a printf-style message (for *err, *reason). */
char *wire_errf(const char *fmt, ...);

#endif
