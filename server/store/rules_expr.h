/*
** rules_expr.h: one rule expression compiled to SQL (rules_expr.c), and
** the parameters it names.
*/
#ifndef SYNCD_RULES_EXPR_H
#define SYNCD_RULES_EXPR_H

#include "catalog.h"

#define RULES_MAX_PARAMS 16
#define RULES_MAX_COLS 32

/* The named parameters of one compiled expression, in numbering order
** (the first is ?2 / $2): "sub" or "claim_NAME". */
typedef struct rules_params {
  char *names[RULES_MAX_PARAMS];
  int n;
  const catalog_table *selects[RULES_MAX_PARAMS]; /* the tables its selects read */
  int sel_col[RULES_MAX_PARAMS];                  /* the column of it each one selects */
  char *wheres[RULES_MAX_PARAMS];                 /* each one's WHERE, as the rule wrote it */
  int n_selects;
  /* Each select's comparison "x IN (SELECT ... WHERE w)" in the compiled
  ** text: at [atom, atom_end), its WHERE's expression at [where, where_end)
  ** (offsets into the SQL rules_expr_compile returns). mono: more rows
  ** from the select never make the rule false (no NOT, NOT IN or
  ** comparison of a truth value above it), so a row its table gains can
  ** only open rows (a move-in, rules.c). */
  int atom[RULES_MAX_PARAMS], atom_end[RULES_MAX_PARAMS];
  int where[RULES_MAX_PARAMS], where_end[RULES_MAX_PARAMS];
  unsigned char mono[RULES_MAX_PARAMS];
  int cols[RULES_MAX_COLS]; /* the rule's own table's columns it names, each once */
  int n_cols;
} rules_params;

/* The compiled expression of src over t (rules_expr.c): its SQL, with the
** parameters it names added to params; NULL with *err. */
char *rules_expr_compile(const catalog *cat, const catalog_table *t, const char *src, int pg,
                         rules_params *params, char **err);

#endif
