/*
** sqlite_fk.h: which rows of a push batch refer to rows that do not exist
** at its end, and which keys it deleted rows still refer to (sqlite_fk.c),
** for dialect_sqlite.c's fk_dangling (dialect.h).
*/
#ifndef SYNCD_SQLITE_FK_H
#define SYNCD_SQLITE_FK_H

#include <sqlite3.h>

#include "dialect.h"

/* Give each row of w[0..n) that, as it stands in db, refers through one of
** its table's foreign keys to a row that does not exist, and each key
** deleted of w that no row holds and a row refers to, a copy of reason. A
** foreign key this cannot judge (fk_sql.h) names none. 0, or -1 with *err
** (some may be named). */
int sqlite_fk_find(sqlite3 *db, dialect_written *w, int n, const char *reason, char **err);

#endif
