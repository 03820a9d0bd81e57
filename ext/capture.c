/*
** capture.c: the triggers that queue every write to a tracked table.
**
** They are plain SQL, so a connection that never loaded the extension still
** queues its writes. For table T with key (id) and columns (id, a, b):
**
**   sync_bi_T  BEFORE INSERT  keep the row an INSERT OR REPLACE will replace
**   sync_ai_T  AFTER INSERT   queue 'insert' with the whole row
**   sync_ar_T  AFTER INSERT   (a row was replaced) queue 'update' with the whole row
**   sync_au_T  AFTER UPDATE   queue 'update' with the changed columns only
**   sync_ak_T  AFTER UPDATE   (key changed) queue 'delete' old key + 'insert' new
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
*/
#include "sync.h"

static void append(sqlite3_str *s, const char *z) {
  sqlite3_str_appendall(s, z);
}

/* A REAL expression x as JSON number text that reads back exactly. */
static void real_text(sqlite3_str *s, const char *x) {
  append(s, "(SELECT CASE WHEN v = 9e999 THEN '1e999' WHEN v = -9e999 THEN '-1e999'"
            " WHEN CAST(p AS REAL) = v THEN p");
  static const char *const steps[] = {"+1", "-1", "+2", "-2"};
  for (int i = 0; i < 4; i++)
    sqlite3_str_appendf(s, " WHEN CAST((m%s)||'e'||x AS REAL) = v THEN (m%s)||'e'||x", steps[i],
                        steps[i]);
  append(s, " ELSE p END FROM (SELECT v, p,"
            " CAST(replace(substr(q,1,instr(q,'e')-1),'.','') AS INTEGER) AS m,"
            " CAST(substr(q,instr(q,'e')+1) AS INTEGER)-16 AS x"
            " FROM (SELECT v, printf('%!.17g',v) AS p, printf('%!.16e',v) AS q FROM (SELECT ");
  append(s, x);
  append(s, " AS v))))");
}

void capture_value_expr(sqlite3_str *s, const char *x) {
  sqlite3_str_appendf(s, "CASE typeof(%s) WHEN 'real' THEN json(", x);
  real_text(s, x);
  sqlite3_str_appendf(s, ") WHEN 'blob' THEN json_object('$hex',hex(%s)) ELSE %s END", x, x);
}

/* json_object of the columns listed in idx (n of them) read from prefix. */
static void object_expr(sqlite3_str *s, SyncTable *t, const int *idx, int n, const char *prefix) {
  append(s, "json_object(");
  for (int i = 0; i < n; i++) {
    const char *col = t->cols[idx ? idx[i] : i];
    char *x = sqlite3_mprintf("%s.\"%w\"", prefix, col);
    sqlite3_str_appendf(s, "%s'%q',", i ? "," : "", col);
    if (x) capture_value_expr(s, x);
    sqlite3_free(x);
  }
  append(s, ")");
}

void capture_key_expr(sqlite3_str *s, SyncTable *t, const char *prefix) {
  object_expr(s, t, t->pk, t->nPk, prefix);
}

static void row_expr(sqlite3_str *s, SyncTable *t, const char *prefix) {
  object_expr(s, t, 0, t->nCol, prefix);
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

/* Records prefix's row as the server image unless the key already has
** pending mutations (then the image was taken by the first of them). */
static void shadow_if_first(sqlite3_str *s, SyncTable *t, const char *prefix) {
  sqlite3_str_appendf(s, "INSERT OR REPLACE INTO sync_shadow(tbl,pk,row) SELECT %Q,", t->name);
  capture_key_expr(s, t, prefix);
  append(s, ",");
  row_expr(s, t, prefix);
  sqlite3_str_appendf(s,
                      " WHERE NOT EXISTS (SELECT 1 FROM sync_outbox WHERE tbl=%Q AND pk=", t->name);
  capture_key_expr(s, t, prefix);
  append(s, ");");
}

static void enqueue(sqlite3_str *s, SyncTable *t, const char *op, const char *prefix, int withRow) {
  sqlite3_str_appendf(s, "INSERT INTO sync_outbox(tbl,op,pk,data) VALUES(%Q,%s,", t->name, op);
  capture_key_expr(s, t, prefix);
  append(s, ",");
  if (withRow)
    row_expr(s, t, prefix);
  else
    append(s, "NULL");
  append(s, ");");
}

static const char *const kinds[] = {"bi", "ai", "ar", "au", "ak", "ad"};

int capture_remove(SyncCtx *c, const char *table) {
  int rc = SQLITE_OK;
  for (int i = 0; rc == SQLITE_OK && i < 6; i++) {
    char *sql = sqlite3_mprintf("DROP TRIGGER IF EXISTS main.\"sync_%s_%w\"", kinds[i], table);
    rc = sql ? sync_exec(c, sql) : SQLITE_NOMEM;
    sqlite3_free(sql);
  }
  return rc;
}

/* (Re)creates the six triggers of t. */
int capture_install(SyncCtx *c, SyncTable *t) {
  int rc = capture_remove(c, t->name);
  if (rc != SQLITE_OK) return rc;
  sqlite3_str *s = sqlite3_str_new(c->db);
  const char *T = t->name;

  sqlite3_str_appendf(s,
                      "CREATE TRIGGER main.\"sync_bi_%w\" BEFORE INSERT ON \"%w\" WHEN %s BEGIN "
                      "DELETE FROM sync_stash; INSERT INTO sync_stash(tbl,pk,row) SELECT %Q,",
                      T, T, ctrl, T);
  capture_key_expr(s, t, "o");
  append(s, ",");
  row_expr(s, t, "o");
  sqlite3_str_appendf(s, " FROM \"%w\" AS o WHERE ", T);
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(s, "%so.\"%w\" = NEW.\"%w\"", i ? " AND " : "", t->cols[t->pk[i]],
                        t->cols[t->pk[i]]);
  append(s, "; END;\n");

  /* sync_ai and sync_ar test the same condition and neither changes it (the
  ** next BEFORE INSERT clears the stash), so exactly one of them fires. */
  sqlite3_str_appendf(s,
                      "CREATE TRIGGER main.\"sync_ai_%w\" AFTER INSERT ON \"%w\" WHEN %s "
                      "AND NOT EXISTS (SELECT 1 FROM sync_stash) BEGIN ",
                      T, T, ctrl);
  enqueue(s, t, "'insert'", "NEW", 1);
  append(s, " END;\n");

  sqlite3_str_appendf(s,
                      "CREATE TRIGGER main.\"sync_ar_%w\" AFTER INSERT ON \"%w\" WHEN %s "
                      "AND EXISTS (SELECT 1 FROM sync_stash) BEGIN "
                      "INSERT OR REPLACE INTO sync_shadow(tbl,pk,row) SELECT tbl, pk, row "
                      "FROM sync_stash WHERE tbl=%Q AND pk=",
                      T, T, ctrl, T);
  capture_key_expr(s, t, "NEW");
  sqlite3_str_appendf(s, " AND NOT EXISTS (SELECT 1 FROM sync_outbox WHERE tbl=%Q AND pk=", T);
  capture_key_expr(s, t, "NEW");
  sqlite3_str_appendf(s,
                      "); INSERT INTO sync_outbox(tbl,op,pk,data) VALUES(%Q, CASE WHEN EXISTS "
                      "(SELECT 1 FROM sync_stash WHERE tbl=%Q AND pk=",
                      T, T);
  capture_key_expr(s, t, "NEW");
  append(s, ") THEN 'update' ELSE 'insert' END,");
  capture_key_expr(s, t, "NEW");
  append(s, ",");
  row_expr(s, t, "NEW");
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
    shadow_if_first(s, t, "OLD");
    sqlite3_str_appendf(s, "INSERT INTO sync_outbox(tbl,op,pk,data) VALUES(%Q,'update',", T);
    capture_key_expr(s, t, "NEW");
    append(s, ",json_remove(json_object(");
    for (int i = 0, n = 0; i < t->nCol; i++) {
      if (is_key(t, i)) continue;
      char *x = sqlite3_mprintf("NEW.\"%w\"", t->cols[i]);
      sqlite3_str_appendf(s, "%s'%q',", n++ ? "," : "", t->cols[i]);
      if (x) capture_value_expr(s, x);
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

  sqlite3_str_appendf(s, "CREATE TRIGGER main.\"sync_ak_%w\" AFTER UPDATE ON \"%w\" WHEN %s AND ",
                      T, T, ctrl);
  key_same(s, t, 0);
  append(s, " BEGIN ");
  shadow_if_first(s, t, "OLD");
  enqueue(s, t, "'delete'", "OLD", 0);
  enqueue(s, t, "'insert'", "NEW", 1);
  append(s, " END;\n");

  sqlite3_str_appendf(s, "CREATE TRIGGER main.\"sync_ad_%w\" AFTER DELETE ON \"%w\" WHEN %s BEGIN ",
                      T, T, ctrl);
  shadow_if_first(s, t, "OLD");
  enqueue(s, t, "'delete'", "OLD", 0);
  append(s, " END;\n");

  char *sql = sqlite3_str_finish(s);
  rc = sql ? sync_exec(c, sql) : SQLITE_NOMEM;
  sqlite3_free(sql);
  return rc;
}
