/*
** jsonexpr.h: what the capture triggers know of a tracked table (the kind of
** value each column can hold, its unique indexes) and the SQL expressions
** they turn its rows into JSON with (jsonexpr.c).
*/
#ifndef SYNC_JSONEXPR_H
#define SYNC_JSONEXPR_H

#include "table.h"

/* What a column can hold besides INTEGER, TEXT and NULL, which JSON carries
** as they are. EXACT: it has no affinity, so 1 and 1.0, or 0.0 and -0.0,
** are different values in it though = says they are equal; NEG_ZERO: the
** triggers can tell -0.0 (they need atan2 for it). */
enum { MAY_REAL = 1, MAY_BLOB = 2, MAY_ANY = 3, EXACT = 4, NEG_ZERO = 8 };

/* A unique index a REPLACE can delete another row through: the t->cols index
** of each part and the collation it compares that part with (NULL: the
** column's own). A part that is an expression has col -1 and its text in
** expr (uniqexpr.c); a part that is a generated column (which t->cols
** leaves out) has col -1, its name in gen and its generation expression in
** expr (gen[i] NULL for other parts; gen itself may be NULL); a partial
** index has its WHERE in where; used marks the columns those name (expr and
** used NULL when there are none). */
typedef struct JxUniq {
  int n;
  int *col;
  char **coll;
  char **expr;
  char **gen;
  char *where;
  unsigned char *used;
} JxUniq;

typedef struct JxShape {
  int rowid; /* the table has a rowid, named rid (a name no column has) */
  const char *rid;
  int *kind;    /* per column: MAY_* | NEG_ZERO */
  int *nullKey; /* per key part (t->pk order): 1 when SQLite lets it be NULL */
  int nUniq;    /* uniq[0] is the primary key, then the UNIQUE indexes */
  JxUniq *uniq;
} JxShape;

/* Reads the shape of t. Returns an SQLite code; the shape is freed by
** jx_shape_free whatever it returns. */
int jx_shape_read(SyncCtx *, SyncTable *, JxShape *);
/* Only sh->uniq and sh->nUniq of the shape (freed by jx_shape_free). */
int jx_uniq_read(SyncCtx *, SyncTable *, JxShape *);
void jx_shape_free(JxShape *);

/* x (an SQL expression) as a JSON value, for a column of that kind. */
void jx_value(sqlite3_str *, const char *x, int kind);
/* Column col of rows a and b holds the same value, type (and sign of zero)
** included. */
void jx_same(sqlite3_str *, const char *col, int kind, const char *a, const char *b);
/* Writes value i (0 <= i < n) of a jx_object, or path i of a jx_remove. */
typedef void (*JxValueFn)(sqlite3_str *, int i, void *arg);
/* The name of member i of a jx_object. */
typedef const char *(*JxNameFn)(int i, void *arg);
/* A JSON object of n members, of any n (a function takes at most 127
** arguments). */
void jx_object(sqlite3_str *, int n, JxNameFn name, JxValueFn value, void *arg);
/* json_remove of the SQL JSON expression obj and n paths, of any n. */
void jx_remove(sqlite3_str *, const char *obj, int n, JxValueFn path, void *arg);
/* json_object of the key columns / every column of t, read from prefix
** ("NEW", "OLD", an alias); kind NULL means anything. */
void jx_key(sqlite3_str *, SyncTable *, const int *kind, const char *prefix);
void jx_row(sqlite3_str *, SyncTable *, const int *kind, const char *prefix);
/* The row as a mutation sends it: json_object of every column of t but the
** server's (t->server), read from prefix. */
void jx_data(sqlite3_str *, SyncTable *, const int *kind, const char *prefix);
/* The parts of u of rows a and b are equal, as the index compares them, and
** a is in a partial index. a is the table's name or alias in the FROM (an
** expression reads a's columns unqualified, so no other table may have
** them); b is NEW or OLD, or NULL for a row of NULLs. */
void jx_uniq_match(sqlite3_str *, SyncTable *, const JxUniq *u, const char *a, const char *b);
/* The same with b the JSON object in SQL parameter param (say "?2"), whose
** members are read with sync_val. */
void jx_uniq_match_json(sqlite3_str *, SyncTable *, const JxUniq *u, const char *a,
                        const char *param);

/* Sets cols[i] for each column of t that a part of u reads: the part's
** own, or those its expression (a generated column's) names. */
void jx_uniq_reads(SyncTable *, const JxUniq *u, unsigned char *cols);

/* The triggers fire only while this is true (sync_control.applying is 0). */
extern const char jx_ctrl[];
/* The highest mutation id ever issued (see schema.c), and the next one;
** max(id) is one b-tree seek. */
extern const char jx_last_id[];
extern const char jx_next_id[];

#endif
