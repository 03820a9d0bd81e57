/*
** replace.c: the rows a REPLACE deletes, which no delete trigger reports.
**
** INSERT OR REPLACE, REPLACE INTO, UPDATE OR REPLACE and a constraint
** declared ON CONFLICT REPLACE delete each row the new values collide with
** (same key, or same value in a UNIQUE index) before writing, and fire the
** delete triggers for it only under PRAGMA recursive_triggers=ON. The server
** must hear of those deletions, before the write that caused them, or it
** refuses the write and keeps the other row. For table T:
**
**   sync_bi_T  BEFORE INSERT: clear T's rows of sync_stash, then keep each
**              row NEW collides with, through the key or a UNIQUE index
**   sync_bu_T  BEFORE UPDATE OF the key, the UNIQUE columns and the rowid's
**              names: the same for the rows NEW collides with but OLD
**   sync_bs_T  AFTER UPDATE OF rid ON sync_req_T (tables with a rowid): the
**              BEFORE triggers only set sync_req_T.rid to a colliding rowid,
**              and this program, allocated only when one exists, builds the
**              row's JSON into the stash
**   sync_rp_T  AFTER UPDATE OF k ON sync_req_T: run by the first statement of
**              the AFTER triggers when T's stash is not empty (k = NEW's key,
**              op = 'insert', 'update' or 'rekey'):
**              - each stashed row that is gone (or, for 'rekey', whose key
**                NEW now holds) and not already queued as a 'delete' since it
**                was stashed (recursive_triggers) is queued as 'delete', with
**                its server image when it is its key's first mutation;
**              - 'insert': a 'delete' of NEW's own key queued since the stash
**                (recursive_triggers: the replaced row's delete trigger) is
**                dropped, and the insert is queued as an 'update' of the
**                whole row, so both settings queue the same;
**              - the stash is cleared but for NEW's own row on 'insert',
**                which tells sync_ai_T to queue 'update'.
**
** The stash is only read after the write succeeded, so nothing is queued by
** a statement that fails (its statement rollback undoes the stash too), by
** INSERT OR IGNORE (it fires BEFORE but not AFTER triggers), or by an
** UPSERT's DO UPDATE (whose own row is not gone). A row stashed by a write
** that did not happen stays until T's next BEFORE trigger; a stashed row
** counts as replaced only if it is really gone, and the engine clears the
** stash whenever it starts writing (sync_stash_clear), so a stale row is
** never queued. A UNIQUE index on expressions is looked up through the
** expressions as its text gives them (uniqexpr.c), a partial one with its
** WHERE, a generated column through its generation expression computed
** over NEW's columns; one whose text cannot be read (or whose expression
** names the rowid or another generated column) and a collision through the
** hidden rowid of a table whose key is not the rowid (an explicit rowid in
** the INSERT or UPDATE) are not seen.
**
** Cost: a table with no UNIQUE index pays nothing more on INSERT than the
** key lookup sync_bi_T did before; each UNIQUE index adds one lookup to
** every INSERT (and to every UPDATE that sets one of its columns), and the
** AFTER triggers one scan of the (empty) stash.
*/
#include "replace.h"

/* sync_req_T: one row, whose updates fire T's programs that do rare work
** (SQLite allocates a trigger program's registers only when it fires). An
** UPDATE that sets no row (its WHERE is false) costs a seek; an INSERT ...
** SELECT into a table with triggers would build a temporary table every
** time. One table per tracked table: a statement compiles every trigger of
** the tables it writes, whatever their WHEN says, so one table shared by all
** tracked tables made preparing an INSERT compile every table's programs. A
** database from before gets the new columns of sync_stash. */
int replace_install(SyncCtx *c, SyncTable *t) {
  char *sql =
      sqlite3_mprintf("CREATE TABLE IF NOT EXISTS main.\"sync_req_%w\"(rid INTEGER, op TEXT, "
                      "k TEXT);"
                      "INSERT INTO main.\"sync_req_%w\"(rowid) SELECT 1 WHERE NOT EXISTS "
                      "(SELECT 1 FROM main.\"sync_req_%w\");"
                      "CREATE TRIGGER IF NOT EXISTS main.sync_stash_clear AFTER UPDATE OF "
                      "applying ON sync_control WHEN NEW.applying BEGIN "
                      "DELETE FROM sync_stash WHERE true; END;",
                      t->name, t->name, t->name);
  int rc = sql ? ctx_exec(c, sql) : SQLITE_NOMEM;
  sqlite3_free(sql);
  if (rc == SQLITE_OK) rc = ctx_add_column(c, "sync_stash", "rid", "INTEGER", 0);
  if (rc == SQLITE_OK) rc = ctx_add_column(c, "sync_stash", "mark", "INTEGER", 0);
  return rc;
}

int replace_remove(SyncCtx *c, const char *table) {
  char *sql = sqlite3_mprintf("DROP TABLE IF EXISTS main.\"sync_req_%w\"", table);
  int rc = sql ? ctx_exec(c, sql) : SQLITE_NOMEM;
  sqlite3_free(sql);
  return rc;
}

void replace_of_key(sqlite3_str *s, SyncTable *t) {
  static const char *const rowid_names[] = {"rowid", "_rowid_", "oid"};
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(s, "%s\"%w\"", i ? "," : "", t->cols[t->pk[i]]);
  for (int i = 0; i < 3; i++) {
    int col = 0;
    for (int j = 0; j < t->nCol && !col; j++)
      col = sqlite3_stricmp(t->cols[j], rowid_names[i]) == 0;
    if (!col) sqlite3_str_appendf(s, ",%s", rowid_names[i]);
  }
}

/* The highest mutation id now: a row stashed before a 'delete' of its key
** with a higher id was deleted by a trigger, not by the REPLACE alone. */
static const char mark[] = "coalesce((SELECT max(id) FROM sync_outbox),0)";

/* Keeps in the stash the rows NEW collides with, but OLD's (update). */
static void stash(sqlite3_str *s, SyncTable *t, const JxShape *sh, int update) {
  const char *T = t->name;
  sqlite3_str_appendf(s, "DELETE FROM sync_stash WHERE tbl=%Q; ", T);
  if (sh->rowid) {
    /* One lookup per index (at most one row each) that hands the rowid to
    ** sync_bs_T, whose program alone builds JSON. */
    for (int u = 0; u < sh->nUniq; u++) {
      sqlite3_str *w = sqlite3_str_new(0);
      sqlite3_str_appendf(w, " FROM \"%w\" AS o WHERE ", T);
      jx_uniq_match(w, t, &sh->uniq[u], "o", "NEW");
      if (update) sqlite3_str_appendf(w, " AND o.%s <> OLD.%s", sh->rid, sh->rid);
      char *from = sqlite3_str_finish(w);
      sqlite3_str_appendf(s,
                          "UPDATE \"sync_req_%w\" SET rid=(SELECT o.%s%s) WHERE rowid=1 AND "
                          "EXISTS (SELECT 1%s); ",
                          T, sh->rid, from ? from : "", from ? from : "");
      sqlite3_free(from);
    }
    return;
  }
  /* Without a rowid there is nothing to hand over: one query, the indexes
  ** ORed (SQLite looks each up), builds the JSON here. */
  sqlite3_str_appendf(s, "INSERT INTO sync_stash(tbl,pk,row,mark) SELECT %Q,", T);
  jx_key(s, t, sh->kind, "o");
  sqlite3_str_appendall(s, ",");
  jx_row(s, t, sh->kind, "o");
  sqlite3_str_appendf(s, ",%s FROM \"%w\" AS o WHERE (", mark, T);
  for (int u = 0; u < sh->nUniq; u++) {
    sqlite3_str_appendall(s, u ? " OR (" : "(");
    jx_uniq_match(s, t, &sh->uniq[u], "o", "NEW");
    sqlite3_str_appendall(s, ")");
  }
  sqlite3_str_appendall(s, ")");
  if (update) {
    sqlite3_str_appendall(s, " AND NOT (");
    for (int i = 0; i < t->nPk; i++)
      sqlite3_str_appendf(s, "%so.\"%w\" IS OLD.\"%w\"", i ? " AND " : "", t->cols[t->pk[i]],
                          t->cols[t->pk[i]]);
    sqlite3_str_appendall(s, ")");
  }
  sqlite3_str_appendall(s, "; ");
}

void replace_before_insert(sqlite3_str *s, SyncTable *t, const JxShape *sh) {
  stash(s, t, sh, 0);
}

void replace_kick(sqlite3_str *s, SyncTable *t, const JxShape *sh, const char *op) {
  sqlite3_str_appendf(s, "UPDATE \"sync_req_%w\" SET op='%s', k=", t->name, op);
  jx_key(s, t, sh->kind, "NEW");
  sqlite3_str_appendf(s, " WHERE rowid=1 AND EXISTS (SELECT 1 FROM sync_stash WHERE tbl=%Q); ",
                      t->name);
}

/* Stash row sync_stash is no longer in T. With a rowid: by its rowid (only
** an explicit rowid, which these triggers do not see, could give it to
** another row). Without: by its key, looked up through the key's index when
** every part is an integer or text (which json_extract gives back exactly),
** else by a scan. */
static void gone(sqlite3_str *s, SyncTable *t, const JxShape *sh) {
  sqlite3_str_appendf(s, "NOT EXISTS (SELECT 1 FROM \"%w\" AS o WHERE ", t->name);
  if (sh->rowid) {
    sqlite3_str_appendf(s, "o.%s = sync_stash.rid)", sh->rid);
    return;
  }
  for (int i = 0; i < t->nPk; i++) {
    const char *col = t->cols[t->pk[i]];
    sqlite3_str_appendf(s, "o.\"%w\" = json_extract(sync_stash.pk,'$.\"%q\"') AND ", col, col);
  }
  jx_key(s, t, sh->kind, "o");
  sqlite3_str_appendall(s, " = sync_stash.pk) AND (");
  for (int i = 0; i < t->nPk; i++)
    sqlite3_str_appendf(s, "json_type(sync_stash.pk,'$.\"%q\"') IN ('integer','text') AND ",
                        t->cols[t->pk[i]]);
  sqlite3_str_appendf(s, "1 OR NOT EXISTS (SELECT 1 FROM \"%w\" AS o WHERE ", t->name);
  jx_key(s, t, sh->kind, "o");
  sqlite3_str_appendall(s, " = sync_stash.pk))");
}

void replace_triggers(sqlite3_str *s, SyncTable *t, const JxShape *sh) {
  const char *T = t->name;
  if (sh->rowid) {
    sqlite3_str_appendf(
        s,
        "CREATE TRIGGER main.\"sync_bs_%w\" AFTER UPDATE OF rid ON "
        "\"sync_req_%w\" BEGIN INSERT INTO sync_stash(tbl,pk,row,rid,mark) SELECT %Q,",
        T, T, T);
    jx_key(s, t, sh->kind, "o");
    sqlite3_str_appendall(s, ",");
    jx_row(s, t, sh->kind, "o");
    sqlite3_str_appendf(s,
                        ",o.%s,%s FROM \"%w\" AS o WHERE o.%s = NEW.rid AND NOT EXISTS "
                        "(SELECT 1 FROM sync_stash WHERE tbl=%Q AND rid=NEW.rid); END;\n",
                        sh->rid, mark, T, sh->rid, T);
  }

  /* UPDATE OF: SQLite leaves this trigger out of every UPDATE that sets
  ** none of the columns a collision can come through. */
  sqlite3_str_appendf(s, "CREATE TRIGGER main.\"sync_bu_%w\" BEFORE UPDATE OF ", T);
  replace_of_key(s, t);
  for (int u = 1; u < sh->nUniq; u++) {
    const JxUniq *x = &sh->uniq[u];
    for (int i = 0; i < x->n; i++)
      if (x->col[i] >= 0) sqlite3_str_appendf(s, ",\"%w\"", t->cols[x->col[i]]);
    /* the columns an expression or a partial index's WHERE reads: a row
    ** that enters the index collides as one whose key changed */
    for (int i = 0; x->used && i < t->nCol; i++)
      if (x->used[i]) sqlite3_str_appendf(s, ",\"%w\"", t->cols[i]);
  }
  sqlite3_str_appendf(s, " ON \"%w\" WHEN %s BEGIN ", T, jx_ctrl);
  stash(s, t, sh, 1);
  sqlite3_str_appendall(s, "END;\n");

  /* sync_rp_T keeps in the stash the rows to act on: those replaced (gone,
  ** or for 'rekey' under NEW's key; not queued as deleted since stashed, as
  ** the delete trigger does under recursive_triggers) and NEW's own row on
  ** 'insert', which it then marks used (mark NULL): sync_ai_T reads it, and
  ** the next kick drops it. Unmarked, it stayed until T's next BEFORE
  ** trigger; an UPDATE that sets no UNIQUE column fires none, its kick
  ** found the row's old rowid gone (REPLACE gives the new row another) and
  ** queued a delete of the key the table still holds. Several rows at once: the ids are numbered
  *here, as the
  ** subquery is evaluated once (and before any row is written: the SELECT
  ** reads the table it fills, so SQLite runs it to the end first). */
  sqlite3_str_appendf(s,
                      "CREATE TRIGGER main.\"sync_rp_%w\" AFTER UPDATE OF k ON \"sync_req_%w\" "
                      "BEGIN "
                      "DELETE FROM sync_outbox WHERE NEW.op = 'insert' AND tbl=%Q AND pk=NEW.k "
                      "AND op='delete' AND id > (SELECT min(mark) FROM sync_stash WHERE tbl=%Q "
                      "AND pk=NEW.k); "
                      "DELETE FROM sync_stash WHERE tbl=%Q AND (mark IS NULL OR NOT (NEW.op = "
                      "'insert' AND pk = NEW.k) AND NOT (NOT EXISTS (SELECT 1 FROM sync_outbox "
                      "WHERE tbl=%Q AND "
                      "pk=sync_stash.pk AND op='delete' AND id > sync_stash.mark) AND CASE WHEN "
                      "pk = NEW.k THEN NEW.op = 'rekey' ELSE ",
                      T, T, T, T, T, T);
  gone(s, t, sh);
  sqlite3_str_appendf(
      s,
      " END)); "
      "INSERT INTO sync_shadow(tbl,pk,row) SELECT tbl, pk, row FROM sync_stash AS s "
      "WHERE tbl=%Q AND NOT EXISTS (SELECT 1 FROM sync_outbox WHERE tbl=%Q AND pk=s.pk) "
      "ON CONFLICT(tbl,pk) DO NOTHING; "
      "INSERT INTO sync_outbox(id,tbl,op,pk,data) SELECT %s + row_number() OVER (ORDER BY "
      "rowid), %Q, 'delete', pk, NULL FROM sync_stash WHERE tbl=%Q AND NOT (NEW.op = 'insert' "
      "AND pk = NEW.k); "
      "DELETE FROM sync_stash WHERE tbl=%Q AND NOT (NEW.op = 'insert' AND pk = NEW.k); "
      "UPDATE sync_stash SET mark = NULL WHERE tbl=%Q; END;\n",
      T, T, jx_last_id, T, T, T, T);
}
