/*
** catalog.h: the synced tables of a store, read when it opens and again
** when the database's schema changes (schema.c swaps the whole catalog
** while no request holds the store's schema lock).
**
** A dialect fills the catalog (catalog_add_table, catalog_add_column,
** catalog_finish) and builds the per-table SQL it wants (read_sql,
** insert_sql); the push algorithm looks tables and columns up by the
** names a mutation carries, folding case when the dialect's identifiers
** do (SQLite) and not when they do not (PostgreSQL).
*/
#ifndef SYNCD_CATALOG_H
#define SYNCD_CATALOG_H

typedef struct catalog_col {
  char *name;
  char *type; /* the declared type, for dialects that cast (NULL: none) */
  char *decl; /* the type with its modifiers, when it has any (varchar(3)) */
  int kind;   /* the dialect's class of the type (0: text-like) */
  char *key;  /* what a dialect binds to read the column out of a JSON object */
  int pk_pos; /* 1-based position in the primary key, 0: not a key column */
} catalog_col;

typedef struct catalog_table {
  char *name;
  int n_cols;
  catalog_col *cols; /* in table order */
  int n_pk;
  int *pk;          /* indexes into cols, in primary key order */
  char *read_sql;   /* the dialect's read of one row by key */
  char *insert_sql; /* the dialect's insert naming every column in table order
                    ** (NULL: the dialect builds every insert as it comes) */
} catalog_table;

typedef struct catalog {
  catalog_table *tables;
  int n_tables;
  int fold_case; /* names compare case-insensitively */
} catalog;

/* Append a table named name (no columns yet); NULL when out of memory. */
catalog_table *catalog_add_table(catalog *cat, const char *name);

/* Append a column to t; 0, or -1 when out of memory. */
int catalog_add_column(catalog_table *t, const char *name, const char *type, int kind, int pk_pos);

/* Order each table's key, drop the tables without one (not synced: no key
** to address rows by), and let the dialect prepare each table left (its
** column keys and SQL; nonzero: out of memory). 0, or -1 with *err. */
int catalog_finish(catalog *cat, int (*prepare)(catalog_table *t), char **err);

/* The synced table called name, or NULL. */
const catalog_table *catalog_table_find(const catalog *cat, const char *name);

/* The index of t's column called name, or -1. */
int catalog_column_find(const catalog *cat, const catalog_table *t, const char *name);

int catalog_is_pk(const catalog_table *t, int col);

void catalog_free(catalog *cat);

#endif
