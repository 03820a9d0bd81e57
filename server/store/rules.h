/*
** rules.h: per-table read and write rules and server-owned columns, from
** syncd --rules FILE (rules.c, rules_expr.c; docs/RULES.md). Loaded at
** startup against the catalog, and again with each catalog a schema
** change brings (schema.c).
*/
#ifndef SYNCD_RULES_H
#define SYNCD_RULES_H

#include "catalog.h"
#include "rules_expr.h"

typedef struct rules_table {
  const catalog_table *t;
  char *read, *write; /* the compiled boolean expressions */
  char *read_check;   /* SELECT EXISTS(the row keyed by ?1/$1 AND read) */
  /* read with each select from a membership table that keeps former
  ** values reading them too (rules.c read_wide): whether a row could have
  ** been read through a membership since changed. was_check and was_gone
  ** judge former values by it (pull.c, move-out) */
  char *read_wide;
  char *write_check; /* the same with write */
  rules_params read_params, write_params;
  unsigned char *server; /* one flag per column of t: server-owned */
  int membership;        /* a read rule selects from t: its changes move rows in and out */
  int hidden; /* t has no rule, only a read rule's select: judged (concern), never synced */
  /* For a membership table, whether one of its changes concerns a user
  ** (rules_concerns): concern is the WHERE of every select from t in a
  ** read rule, ORed (the rows whose coming or going changes what that
  ** user's selects return); concern_check judges the row as it is,
  ** concern_was its former values, concern_gone a deleted key's (true
  ** when none were kept: a write the triggers did not see), concern_remade
  ** whether a key made again keeps no value but its own now (its delete
  ** kept none, or the same values). The last three
  ** are NULL without _syncd_was_<t>. */
  char *concern, *concern_check, *concern_was, *concern_gone, *concern_remade;
  rules_params concern_params;
  /* Move-out through a row's own columns (rules_store.c, docs/RULES.md):
  ** the table _syncd_was_<t> keeps, per row, the distinct former values of
  ** the key and the columns read and concern name; its statements, each with the key
  ** as JSON in parameter 1 (check: and read's parameters after it). All
  ** NULL when neither names a column of t (no verdict on it moves);
  ** was_check NULL when read names none. */
  char *was_create, *was_index, *was_probe; /* at startup */
  /* for a membership table, an index of its former values by the columns
  ** concern names, then those selected (at startup; NULL otherwise):
  ** read_wide's selects read them by their WHERE, for every check of a
  ** former value and every delete a pull judges */
  char *was_concern_index;
  /* PostgreSQL's function and trigger keeping them, whatever writes the
  ** row (rules.c was_trigger; made at startup); none on SQLite, whose
  ** TEMP triggers keep them (sqlite_watch.c) */
  char *was_trigger[3];
  int n_was_trigger;
  char *was_purge; /* with a compaction: the values of keys whose tombstones go */
  char *was_check; /* a former value passes read */
  char *was_gone;  /* the same, or none is kept (a deleted key's: pull.c) */
  char *was_kept;  /* a value is kept for the key (move-out: pull.c) */
  /* Move-in through membership (pull.c, docs/RULES.md): for each table
  ** via_from[i] that read selects from, via[i] selects the rows one of its
  ** rows opens: those the rule passes through that row alone (its key as
  ** JSON in the parameter after read's) that pass read. NULL when a select
  ** of it is not monotone (rules_expr.h): its rows may close rows too. */
  const catalog_table *via_from[RULES_MAX_PARAMS];
  char *via[RULES_MAX_PARAMS];
  /* Move-out through membership (pull.c): via_out[i] selects the rows a
  ** former value of via_from[i]'s row keyed by the same parameter opened
  ** (read's selects from _syncd_was_<via_from[i]>) that fail read now.
  ** NULL where via is. */
  char *via_out[RULES_MAX_PARAMS];
  int n_via;
  /* For a membership table: the columns read rules select from it
  ** (rules_params.sel_col), which _syncd_was_<t> keeps too (via_out) */
  int sel_cols[RULES_MAX_PARAMS];
  int n_sel_cols;
} rules_table;

typedef struct rules {
  rules_table *tables;
  int n;
  const char **purge; /* the tables' was_purge, for the dialect's compact */
  int n_purge;
} rules;

/* Parse the rules file's text against cat; pg: render for PostgreSQL
** ($N, jsonb) rather than SQLite (?N, json_extract). NULL with *err (a
** message naming the table and the fault) when anything is refused. */
rules *rules_load(const catalog *cat, const char *json, int pg, char **err);

/* t's rule, or NULL: t has none, so nothing of it is synced. */
const rules_table *rules_find(const rules *r, const catalog_table *t);

/* The same, or t's hidden entry when t has no rule but a read rule selects
** from it: what a pull judges t's changes by. */
const rules_table *rules_judged(const rules *r, const catalog_table *t);

/* The values of p's parameters for a user (sub NULL: none; claims: the
** token's payload JSON or NULL) into vals[0..p->n), each sqlite3_malloc'd
** text or NULL (an absent claim, null, an object or an array). 0, or -1
** when out of memory. */
int rules_values(const rules_params *p, const char *sub, const char *claims, char **vals);

/* The names of the tables with a rule, percent-encoded and joined by ','
** (the form of store_pull_tables' tables); NULL when out of memory. */
char *rules_table_list(const rules *r);

void rules_free(rules *r);

#endif
