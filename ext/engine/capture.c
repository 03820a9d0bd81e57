/*
** capture.c: the triggers that queue every write to a tracked table.
**
** They are plain SQL, so a connection that never loaded the extension still
** queues its writes. For table T with key (id) and columns (id, a, b):
**
**   sync_bi_T  BEFORE INSERT  keep the row an INSERT OR REPLACE will replace
**                             in sync_stash (a rowid table: hand its rowid to
**                             sync_bs_T through the one row of sync_req)
**   sync_bs_T  AFTER UPDATE OF rid ON sync_req (rowid tables): stash that row
**   sync_ai_T  AFTER INSERT   queue 'insert' with the whole row, or 'update'
**                             when the stash holds the row it replaced
**   sync_au_T  AFTER UPDATE   queue 'update' with the changed columns only
**   sync_ak_T  AFTER UPDATE OF the key (and the rowid's names), key changed:
**                             queue 'delete' old key + 'insert' new
**   sync_ad_T  AFTER DELETE   queue 'delete'
**
** Each fires only while sync_control.applying is 0, so the engine's own
** writes are not queued. The first pending mutation of a key also records the
** row as it was before (the server's last known row) in sync_shadow; a key
** with pending mutations and no sync_shadow entry was absent on the server.
**
** Values are written as JSON by SQL alone: SQLite has no base64 function, so
** a BLOB is stored as {"$hex":"..."} (turned into {"$base64":...} on the
** way out), and json_object() prints only 15 digits of a REAL, so REALs go
** through printf('%!.17g') with a check that the text reads back to the same
** double, trying the neighbouring 17-digit decimals when it does not (SQLite's
** printf is off by one unit in the last digit for some huge magnitudes).
**
** Speed: these triggers run on every write the app makes. SQLite allocates
** and initialises a frame of registers for a trigger program on every
** statement that fires it, so the size of the generated SQL is paid on every
** write, not only its executed branches: a column that cannot hold a REAL
** (TEXT affinity, a rowid alias, STRICT INT/INTEGER/TEXT) gets no REAL branch
** and one that cannot hold a BLOB no BLOB branch (column_kinds), and the
** REAL neighbour search is one subquery over a VALUES list of the offsets.
** Work that is rare goes into a program of its own, allocated only when it
** fires: the replaced row's JSON is built by sync_bs_T, fired by an UPDATE of
** sync_req whose WHERE is false unless a row is about to be replaced (an
** INSERT ... SELECT into a table with triggers would build a temporary table
** on every insert). Measured with callgrind (bench/RESULTS.md, "Capture
** triggers"): the BEFORE INSERT trigger went from 21k to 10k instructions;
** an untracked insert is 11.7k, a tracked one 82k (UPDATE 100k, DELETE 81k),
** most of it the JSON of the values, the outbox row and its index, and for
** UPDATE and DELETE the server image in sync_shadow. Under valgrind
** SQLite's printf misses far more often than natively (x87 long double is
** emulated with 64 bits), so plain callgrind runs the neighbour search on
** many rows that never need it; RESULTS.md says how to measure without that.
** bench/ measures the wall time (make bench).
*/
#include "capture.h"

#include <string.h>

static void append(sqlite3_str *s, const char *z) {
  sqlite3_str_appendall(s, z);
}

/* A REAL expression x as JSON number text that reads back exactly:
** printf('%!.17g') when it reads back, else the first of the neighbouring
** 17-digit decimals that does (one subquery, run only when printf misses,
** over a VALUES list: its column name cannot capture a name used in x). */
static void real_text(sqlite3_str *s, const char *x) {
  char *q = sqlite3_mprintf("printf('%%!.16e',%s)", x);
  char *m = sqlite3_mprintf("CAST(replace(substr(%s,1,instr(%s,'e')-1),'.','') AS INTEGER)", q, q);
  char *e = sqlite3_mprintf("(CAST(substr(%s,instr(%s,'e')+1) AS INTEGER)-16)", q, q);
  sqlite3_str_appendf(s,
                      "CASE WHEN %s = 9e999 THEN '1e999' WHEN %s = -9e999 THEN '-1e999' WHEN "
                      "CAST(printf('%%!.17g',%s) AS REAL) = %s THEN printf('%%!.17g',%s) ELSE "
                      "coalesce((SELECT (%s+column1)||'e'||%s FROM (VALUES(1),(-1),(2),(-2)) "
                      "WHERE CAST((%s+column1)||'e'||%s AS REAL) = %s), printf('%%!.17g',%s)) END",
                      x, x, x, x, x, m, e, m, e, x, x);
  sqlite3_free(q);
  sqlite3_free(m);
  sqlite3_free(e);
}

/* What a column can hold besides INTEGER, TEXT and NULL, which JSON carries
** as they are. */
enum { MAY_REAL = 1, MAY_BLOB = 2, MAY_ANY = 3 };

/* x as a JSON value, for a column that can hold what kind says. */
static void value_expr(sqlite3_str *s, const char *x, int kind) {
  switch (kind) {
  case MAY_ANY:
    sqlite3_str_appendf(s, "CASE typeof(%s) WHEN 'real' THEN json(", x);
    real_text(s, x);
    sqlite3_str_appendf(s, ") WHEN 'blob' THEN json_object('$hex',hex(%s)) ELSE %s END", x, x);
    break;
  case MAY_REAL:
    sqlite3_str_appendf(s, "CASE WHEN typeof(%s) = 'real' THEN json(", x);
    real_text(s, x);
    sqlite3_str_appendf(s, ") ELSE %s END", x);
    break;
  case MAY_BLOB:
    sqlite3_str_appendf(
        s, "CASE WHEN typeof(%s) = 'blob' THEN json_object('$hex',hex(%s)) ELSE %s END", x, x, x);
    break;
  default:
    append(s, x);
  }
}

/* The column kinds of t (MAY_* per column), from the declared types: a
** column with TEXT affinity turns every number into text before NEW sees it
** or the row is stored, a rowid alias holds only integers, and a STRICT
** table's INT, INTEGER and TEXT columns hold nothing else. Every column gets
** MAY_ANY when the types cannot be read. */
static int *column_kinds(SyncCtx *c, SyncTable *t, int *pRowid) {
  int *kind = sqlite3_malloc64(sizeof(int) * (sqlite3_uint64)t->nCol);
  if (!kind) return 0;
  for (int i = 0; i < t->nCol; i++)
    kind[i] = MAY_ANY;
  sqlite3_stmt *s = 0;
  int strict = 0, pkIndex = 0;
  *pRowid = 0;
  if (sqlite3_prepare_v2(c->db,
                         "SELECT strict, wr FROM pragma_table_list(?1) WHERE schema = 'main'", -1,
                         &s, 0) == SQLITE_OK) {
    sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) {
      strict = sqlite3_column_int(s, 0);
      *pRowid = !sqlite3_column_int(s, 1);
    }
  }
  sqlite3_finalize(s);
  /* An INTEGER PRIMARY KEY is a rowid alias unless the key has its own index
  ** (WITHOUT ROWID, or the INTEGER PRIMARY KEY DESC quirk). */
  if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM pragma_index_list(?1, 'main') WHERE origin = 'pk'",
                         -1, &s, 0) == SQLITE_OK) {
    sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    pkIndex = sqlite3_step(s) != SQLITE_DONE;
  } else {
    pkIndex = 1;
  }
  sqlite3_finalize(s);
  if (sqlite3_prepare_v2(c->db,
                         "SELECT upper(type) FROM pragma_table_xinfo(?1, 'main') WHERE hidden = 0 "
                         "ORDER BY cid",
                         -1, &s, 0) != SQLITE_OK) {
    sqlite3_finalize(s);
    return kind;
  }
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  for (int i = 0; i < t->nCol && sqlite3_step(s) == SQLITE_ROW; i++) {
    const char *ty = (const char *)sqlite3_column_text(s, 0);
    if (!ty) ty = "";
    if (strict) {
      if (!strcmp(ty, "INT") || !strcmp(ty, "INTEGER") || !strcmp(ty, "TEXT"))
        kind[i] = 0;
      else if (!strcmp(ty, "REAL"))
        kind[i] = MAY_REAL;
      else if (!strcmp(ty, "BLOB"))
        kind[i] = MAY_BLOB;
    } else if (strstr(ty, "INT")) {
      if (!strcmp(ty, "INTEGER") && t->nPk == 1 && t->pk[0] == i && !pkIndex) kind[i] = 0;
    } else if (strstr(ty, "CHAR") || strstr(ty, "CLOB") || strstr(ty, "TEXT")) {
      kind[i] = MAY_BLOB;
    }
  }
  sqlite3_finalize(s);
  return kind;
}

/* json_object of the columns listed in idx (n of them) read from prefix;
** kind gives what each column can hold (NULL: anything). */
static void object_expr(sqlite3_str *s, SyncTable *t, const int *kind, const int *idx, int n,
                        const char *prefix) {
  append(s, "json_object(");
  for (int i = 0; i < n; i++) {
    int col = idx ? idx[i] : i;
    char *x = sqlite3_mprintf("%s.\"%w\"", prefix, t->cols[col]);
    sqlite3_str_appendf(s, "%s'%q',", i ? "," : "", t->cols[col]);
    if (x) value_expr(s, x, kind ? kind[col] : MAY_ANY);
    sqlite3_free(x);
  }
  append(s, ")");
}

static void key_expr(sqlite3_str *s, SyncTable *t, const int *kind, const char *prefix) {
  object_expr(s, t, kind, t->pk, t->nPk, prefix);
}

static void row_expr(sqlite3_str *s, SyncTable *t, const int *kind, const char *prefix) {
  object_expr(s, t, kind, 0, t->nCol, prefix);
}

static int is_key(SyncTable *t, int col) {
  for (int i = 0; i < t->nPk; i++)
    if (t->pk[i] == col) return 1;
  return 0;
}

/* OLD and NEW have the same key (same=1) or not (same=0). */
static void key_same(sqlite3_str *s, SyncTable *t, int same) {
  append(s, same ? "(" : "NOT (");
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(s, "%sOLD.\"%w\" IS NEW.\"%w\"", i ? " AND " : "", t->cols[t->pk[i]],
                        t->cols[t->pk[i]]);
  append(s, ")");
}

static const char ctrl[] = "coalesce((SELECT applying FROM sync_control),0)=0";

/* The next mutation id: never one issued before, even once its row is gone
** (see schema.c); max(id) is one b-tree seek. */
static const char next_id[] =
    "(SELECT max(coalesce((SELECT max(id) FROM sync_outbox),0),last_id)+1 FROM sync_control)";

/* Records prefix's row as the server image unless the key already has
** pending mutations (then the image was taken by the first of them). */
static void shadow_if_first(sqlite3_str *s, SyncTable *t, const int *kind, const char *prefix) {
  sqlite3_str_appendf(s, "INSERT OR REPLACE INTO sync_shadow(tbl,pk,row) SELECT %Q,", t->name);
  key_expr(s, t, kind, prefix);
  append(s, ",");
  row_expr(s, t, kind, prefix);
  sqlite3_str_appendf(s,
                      " WHERE NOT EXISTS (SELECT 1 FROM sync_outbox WHERE tbl=%Q AND pk=", t->name);
  key_expr(s, t, kind, prefix);
  append(s, ");");
}

static void enqueue(sqlite3_str *s, SyncTable *t, const int *kind, const char *op,
                    const char *prefix, int withRow) {
  sqlite3_str_appendf(s, "INSERT INTO sync_outbox(id,tbl,op,pk,data) VALUES(%s,%Q,%s,", next_id,
                      t->name, op);
  key_expr(s, t, kind, prefix);
  append(s, ",");
  if (withRow)
    row_expr(s, t, kind, prefix);
  else
    append(s, "NULL");
  append(s, ");");
}

/* sync_req: one row, whose updates fire the triggers that do rare work in
** their own programs (SQLite allocates a trigger program's registers only
** when it fires): setting rid to the rowid of a row an INSERT OR REPLACE is
** about to replace makes sync_bs_T stash that row of table tbl. An UPDATE
** that sets no row (its WHERE is false) costs a seek; an INSERT ... SELECT
** into a table with triggers would build a temporary table every time. */
static int req_install(SyncCtx *c) {
  return ctx_exec(c, "CREATE TABLE IF NOT EXISTS main.sync_req(tbl TEXT, rid INTEGER);"
                     "INSERT INTO main.sync_req(rowid) SELECT 1 WHERE NOT EXISTS "
                     "(SELECT 1 FROM main.sync_req)");
}

/* Every name a trigger of ours ever had, so that re-tracking drops them
** (sync_ar_T, the replace case, is now part of sync_ai_T). */
static const char *const kinds[] = {"bi", "bs", "ai", "ar", "au", "ak", "ad"};

int capture_remove(SyncCtx *c, const char *table) {
  int rc = SQLITE_OK;
  for (int i = 0; rc == SQLITE_OK && i < 7; i++) {
    char *sql = sqlite3_mprintf("DROP TRIGGER IF EXISTS main.\"sync_%s_%w\"", kinds[i], table);
    rc = sql ? ctx_exec(c, sql) : SQLITE_NOMEM;
    sqlite3_free(sql);
  }
  return rc;
}

/* FROM the row of T an insert of NEW would replace (by its key), as o. */
static void from_replaced(sqlite3_str *s, SyncTable *t) {
  sqlite3_str_appendf(s, " FROM \"%w\" AS o WHERE ", t->name);
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(s, "%so.\"%w\" = NEW.\"%w\"", i ? " AND " : "", t->cols[t->pk[i]],
                        t->cols[t->pk[i]]);
}

/* The start of the INSERT that stashes row o of t (its FROM follows). */
static void stash_row(sqlite3_str *s, SyncTable *t, const int *kind) {
  sqlite3_str_appendf(s, "INSERT INTO sync_stash(tbl,pk,row) SELECT %Q,", t->name);
  key_expr(s, t, kind, "o");
  append(s, ",");
  row_expr(s, t, kind, "o");
}

static void triggers(sqlite3_str *s, SyncTable *t, const int *kind, int rowid) {
  const char *T = t->name;

  /* "DELETE FROM sync_stash" alone would rewrite the stash's (empty) root
  ** page on every insert; with a WHERE it only scans it. In a rowid table
  ** the row's JSON is built by sync_bs_T, fired through sync_req only when
  ** there is a row to replace, so its registers are not allocated on every
  ** insert; a WITHOUT ROWID table has no rowid to hand over and builds it
  ** here. */
  sqlite3_str_appendf(s,
                      "CREATE TRIGGER main.\"sync_bi_%w\" BEFORE INSERT ON \"%w\" WHEN %s BEGIN "
                      "DELETE FROM sync_stash WHERE true; ",
                      T, T, ctrl);
  if (rowid) {
    sqlite3_str_appendf(s, "UPDATE sync_req SET tbl=%Q,rid=(SELECT o.rowid", T);
    from_replaced(s, t);
    append(s, ") WHERE rowid=1 AND EXISTS (SELECT 1");
    from_replaced(s, t);
    append(s, "); END;\n");
    sqlite3_str_appendf(s,
                        "CREATE TRIGGER main.\"sync_bs_%w\" AFTER UPDATE OF rid ON sync_req WHEN "
                        "NEW.tbl = %Q BEGIN ",
                        T, T);
    stash_row(s, t, kind);
    sqlite3_str_appendf(s, " FROM \"%w\" AS o WHERE o.rowid = NEW.rid; END;\n", T);
  } else {
    stash_row(s, t, kind);
    from_replaced(s, t);
    append(s, "; END;\n");
  }

  /* One AFTER INSERT trigger for both cases: a row it finds in the stash
  ** under its own key was replaced (the stash is empty otherwise, or holds
  ** another key's row left by an INSERT OR IGNORE or an UPSERT). Each
  ** trigger costs a frame of registers per statement, so there is no
  ** separate trigger for the replace case. */
  sqlite3_str_appendf(s,
                      "CREATE TRIGGER main.\"sync_ai_%w\" AFTER INSERT ON \"%w\" WHEN %s BEGIN "
                      "INSERT OR REPLACE INTO sync_shadow(tbl,pk,row) SELECT tbl, pk, row "
                      "FROM sync_stash WHERE tbl=%Q AND pk=",
                      T, T, ctrl, T);
  key_expr(s, t, kind, "NEW");
  sqlite3_str_appendf(s, " AND NOT EXISTS (SELECT 1 FROM sync_outbox WHERE tbl=%Q AND pk=", T);
  key_expr(s, t, kind, "NEW");
  sqlite3_str_appendf(s,
                      "); INSERT INTO sync_outbox(id,tbl,op,pk,data) VALUES(%s,%Q, CASE WHEN "
                      "EXISTS (SELECT 1 FROM sync_stash WHERE tbl=%Q AND pk=",
                      next_id, T, T);
  key_expr(s, t, kind, "NEW");
  append(s, ") THEN 'update' ELSE 'insert' END,");
  key_expr(s, t, kind, "NEW");
  append(s, ",");
  row_expr(s, t, kind, "NEW");
  append(s, "); END;\n");

  if (t->nCol > t->nPk) {
    sqlite3_str_appendf(s, "CREATE TRIGGER main.\"sync_au_%w\" AFTER UPDATE ON \"%w\" WHEN %s AND ",
                        T, T, ctrl);
    key_same(s, t, 1);
    append(s, " AND (");
    for (int i = 0, n = 0; i < t->nCol; i++)
      if (!is_key(t, i))
        sqlite3_str_appendf(s, "%sOLD.\"%w\" IS NOT NEW.\"%w\"", n++ ? " OR " : "", t->cols[i],
                            t->cols[i]);
    append(s, ") BEGIN ");
    shadow_if_first(s, t, kind, "OLD");
    sqlite3_str_appendf(s, "INSERT INTO sync_outbox(id,tbl,op,pk,data) VALUES(%s,%Q,'update',",
                        next_id, T);
    key_expr(s, t, kind, "NEW");
    /* The object of every non-key column, unchanged ones as NULL (not worth
    ** formatting), then json_remove drops the unchanged ones. */
    append(s, ",json_remove(json_object(");
    for (int i = 0, n = 0; i < t->nCol; i++) {
      if (is_key(t, i)) continue;
      char *x = sqlite3_mprintf("NEW.\"%w\"", t->cols[i]);
      sqlite3_str_appendf(s, "%s'%q',", n++ ? "," : "", t->cols[i]);
      if (kind[i]) {
        sqlite3_str_appendf(s, "CASE WHEN OLD.\"%w\" IS %s THEN NULL ELSE ", t->cols[i],
                            x ? x : "NULL");
        if (x) value_expr(s, x, kind[i]);
        append(s, " END");
      } else if (x) {
        append(s, x);
      }
      sqlite3_free(x);
    }
    append(s, ")");
    for (int i = 0; i < t->nCol; i++)
      if (!is_key(t, i))
        sqlite3_str_appendf(s,
                            ",CASE WHEN OLD.\"%w\" IS NEW.\"%w\" THEN '$.\"%q\"' ELSE '$[0]' END",
                            t->cols[i], t->cols[i], t->cols[i]);
    append(s, ")); END;\n");
  }

  /* UPDATE OF the key: SQLite leaves a trigger out of every UPDATE whose SET
  ** names none of its columns, so the common UPDATE does not even allocate
  ** this program's registers (a fifth of an UPDATE's instructions). The
  ** rowid's names count too: with a rowid alias key, SET rowid = x changes
  ** the key (a name the table uses for a column means that column). */
  sqlite3_str_appendf(s, "CREATE TRIGGER main.\"sync_ak_%w\" AFTER UPDATE OF ", T);
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(s, "%s\"%w\"", i ? "," : "", t->cols[t->pk[i]]);
  static const char *const rowid_names[] = {"rowid", "_rowid_", "oid"};
  for (int i = 0; i < 3; i++) {
    int col = 0;
    for (int j = 0; j < t->nCol && !col; j++)
      col = sqlite3_stricmp(t->cols[j], rowid_names[i]) == 0;
    if (!col) sqlite3_str_appendf(s, ",%s", rowid_names[i]);
  }
  sqlite3_str_appendf(s, " ON \"%w\" WHEN %s AND ", T, ctrl);
  key_same(s, t, 0);
  append(s, " BEGIN ");
  shadow_if_first(s, t, kind, "OLD");
  enqueue(s, t, kind, "'delete'", "OLD", 0);
  enqueue(s, t, kind, "'insert'", "NEW", 1);
  append(s, " END;\n");

  sqlite3_str_appendf(s, "CREATE TRIGGER main.\"sync_ad_%w\" AFTER DELETE ON \"%w\" WHEN %s BEGIN ",
                      T, T, ctrl);
  shadow_if_first(s, t, kind, "OLD");
  enqueue(s, t, kind, "'delete'", "OLD", 0);
  append(s, " END;\n");
}

/* (Re)creates the triggers of t. */
int capture_install(SyncCtx *c, SyncTable *t) {
  int rc = capture_remove(c, t->name);
  if (rc == SQLITE_OK) rc = req_install(c);
  if (rc != SQLITE_OK) return rc;
  int rowid = 0;
  int *kind = column_kinds(c, t, &rowid);
  if (!kind) return SQLITE_NOMEM;
  sqlite3_str *s = sqlite3_str_new(c->db);
  triggers(s, t, kind, rowid);
  sqlite3_free(kind);
  char *sql = sqlite3_str_finish(s);
  rc = sql ? ctx_exec(c, sql) : SQLITE_NOMEM;
  sqlite3_free(sql);
  return rc;
}

/* t->canon: ?1 key object -> the key text the triggers write, NULL when a
** part is missing or null. */
static int canon_prepare(SyncCtx *c, SyncTable *t) {
  sqlite3_str *s = sqlite3_str_new(c->db);
  sqlite3_str_appendall(s, "SELECT CASE WHEN ");
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(s, "%scoalesce(?1 -> '$.\"%q\"', 'null') = 'null'", i ? " OR " : "",
                        t->cols[t->pk[i]]);
  sqlite3_str_appendall(s, " THEN NULL ELSE json_object(");
  for (int i = 0; i < t->nPk; i++) {
    const char *col = t->cols[t->pk[i]];
    char *src = sqlite3_mprintf("sync_val(?1 -> '$.\"%q\"')", col);
    sqlite3_str_appendf(s, "%s'%q',", i ? "," : "", col);
    if (src) value_expr(s, src, MAY_ANY);
    sqlite3_free(src);
  }
  sqlite3_str_appendall(s, ") END");
  char *sql = sqlite3_str_finish(s);
  if (!sql) return SQLITE_NOMEM;
  int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &t->canon, 0);
  sqlite3_free(sql);
  return rc;
}

int capture_canon_pk(SyncCtx *c, SyncTable *t, const char *pkJson, int n, char **pOut,
                     char **pzErr) {
  *pOut = 0;
  int rc = t->canon ? SQLITE_OK : canon_prepare(c, t);
  if (rc != SQLITE_OK) {
    *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(c->db));
    return rc;
  }
  sqlite3_stmt *s = t->canon;
  sqlite3_bind_text(s, 1, pkJson, n, SQLITE_STATIC);
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    rc = SQLITE_OK;
    if (sqlite3_column_type(s, 0) == SQLITE_NULL) {
      *pzErr = sqlite3_mprintf("primary key of \"%s\" is missing or null", t->name);
      rc = SQLITE_ERROR;
    } else {
      *pOut = sqlite3_mprintf("%s", sqlite3_column_text(s, 0));
      if (!*pOut) rc = SQLITE_NOMEM;
    }
  } else {
    *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(c->db));
  }
  sqlite3_reset(s);
  return rc;
}
