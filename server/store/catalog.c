/*
** catalog.c: the list of synced tables with their columns and keys
** (catalog.h). Filled by a dialect when the store opens, read by push.c.
*/
#include "catalog.h"

#include <sqlite3.h>
#include <string.h>

static void table_free(catalog_table *t) {
  for (int c = 0; c < t->n_cols; c++) {
    sqlite3_free(t->cols[c].name);
    sqlite3_free(t->cols[c].type);
    sqlite3_free(t->cols[c].decl);
    sqlite3_free(t->cols[c].key);
  }
  sqlite3_free(t->cols);
  sqlite3_free(t->pk);
  sqlite3_free(t->name);
  sqlite3_free(t->read_sql);
  sqlite3_free(t->insert_sql);
}

catalog_table *catalog_add_table(catalog *cat, const char *name) {
  catalog_table *more = sqlite3_realloc64(cat->tables, sizeof *more * (cat->n_tables + 1));
  if (!more) return 0;
  cat->tables = more;
  catalog_table *t = &cat->tables[cat->n_tables];
  memset(t, 0, sizeof *t);
  if (!(t->name = sqlite3_mprintf("%s", name))) return 0;
  cat->n_tables++;
  return t;
}

int catalog_add_column(catalog_table *t, const char *name, const char *type, int kind, int pk_pos) {
  catalog_col *more = sqlite3_realloc64(t->cols, sizeof *more * (t->n_cols + 1));
  if (!more) return -1;
  t->cols = more;
  catalog_col *col = &t->cols[t->n_cols];
  memset(col, 0, sizeof *col);
  col->kind = kind;
  col->pk_pos = pk_pos;
  col->name = sqlite3_mprintf("%s", name);
  if (type) col->type = sqlite3_mprintf("%s", type);
  t->n_cols++;
  return col->name && (!type || col->type) ? 0 : -1;
}

int catalog_finish(catalog *cat, int (*prepare)(catalog_table *t), char **err) {
  for (int i = 0; i < cat->n_tables; i++) {
    catalog_table *t = &cat->tables[i];
    t->n_pk = 0;
    for (int c = 0; c < t->n_cols; c++)
      if (t->cols[c].pk_pos > 0) t->n_pk++;
    if (t->n_pk && !(t->pk = sqlite3_malloc64(sizeof *t->pk * t->n_pk)))
      return *err = sqlite3_mprintf("out of memory"), -1;
    /* key positions are 1-based and dense: place each column at its slot */
    for (int c = 0; c < t->n_cols; c++) {
      int pos = t->cols[c].pk_pos;
      if (pos > 0 && pos <= t->n_pk) t->pk[pos - 1] = c;
    }
  }
  int kept = 0;
  for (int i = 0; i < cat->n_tables; i++) {
    if (cat->tables[i].n_pk)
      cat->tables[kept++] = cat->tables[i];
    else
      table_free(&cat->tables[i]);
  }
  cat->n_tables = kept;
  for (int i = 0; i < kept; i++)
    if (prepare(&cat->tables[i])) return *err = sqlite3_mprintf("out of memory"), -1;
  return 0;
}

const catalog_table *catalog_table_find(const catalog *cat, const char *name) {
  for (int i = 0; i < cat->n_tables; i++) {
    const char *n = cat->tables[i].name;
    if (cat->fold_case ? sqlite3_stricmp(n, name) == 0 : strcmp(n, name) == 0)
      return &cat->tables[i];
  }
  return 0;
}

int catalog_column_find(const catalog *cat, const catalog_table *t, const char *name) {
  for (int c = 0; c < t->n_cols; c++) {
    const char *n = t->cols[c].name;
    if (cat->fold_case ? sqlite3_stricmp(n, name) == 0 : strcmp(n, name) == 0) return c;
  }
  return -1;
}

int catalog_is_pk(const catalog_table *t, int col) {
  return t->cols[col].pk_pos > 0;
}

void catalog_free(catalog *cat) {
  for (int i = 0; i < cat->n_tables; i++)
    table_free(&cat->tables[i]);
  sqlite3_free(cat->tables);
  cat->tables = 0;
  cat->n_tables = 0;
}
