/*
** rules_store.c: syncd --rules on a store: store_set_rules loads the file
** and runs every check once, with no row and no user, so that what the
** storage itself refuses (a type mismatch on PostgreSQL, say) stops syncd
** at startup rather than failing pushes; rules_check_row is the write
** check push.c runs before and after each mutation;
** store_client_user keeps each client id to the user who first used it.
*/
#include "rules_store.h"

#include <stdio.h>
#include <string.h>

static int check(const store *s, dialect_conn *c, const char *sql, const rules_params *p,
                 const char *pk, const store_user *u, int *yes, char **err) {
  char *vals[RULES_MAX_PARAMS + 1];
  vals[0] = (char *)pk;
  if (rules_values(p, u ? u->sub : 0, u ? u->claims : 0, vals + 1)) {
    for (int i = 0; i < p->n; i++)
      sqlite3_free(vals[1 + i]);
    return *err = wire_errf("out of memory"), -1;
  }
  int rc = s->d->select_bool(c, sql, (const char *const *)vals, 1 + p->n, yes, err);
  for (int i = 0; i < p->n; i++)
    sqlite3_free(vals[1 + i]);
  return rc;
}

int rules_check_row(const store *s, dialect_conn *c, const rules_table *rt, int write,
                    const char *pk, const store_user *u, int *yes, char **err) {
  return check(s, c, write ? rt->write_check : rt->read_check,
               write ? &rt->write_params : &rt->read_params, pk, u, yes, err);
}

int rules_was_readable(const store *s, dialect_conn *c, const rules_table *rt, const char *pk,
                       const store_user *u, int *yes, char **err) {
  *yes = 0;
  return rt->was_check ? check(s, c, rt->was_check, &rt->read_params, pk, u, yes, err) : 0;
}

/* The latest change of table's key pk is an insert whose key was absent
** since a version (the change log's gap): at or below after (absent at
** after), or (made_again) above it and above 0 (deleted after it). */
static int key_gap(const store *s, dialect_conn *c, const char *table, const char *pk,
                   long long after, int made_again, int *yes, char **err) {
  char at[32];
  snprintf(at, sizeof at, "%lld", after);
  const char *vals[4] = {table, pk, at, made_again ? "1" : "0"};
  *yes = 0;
  return s->d->select_bool(
      c,
      s->d == &dialect_pg ? "SELECT CASE WHEN $4::int = 1 THEN gap > $3::bigint AND gap > 0"
                            " ELSE gap <= $3::bigint END FROM _syncd_changes"
                            " WHERE tbl = $1 AND pk = $2 AND op = 'upsert' AND gap IS NOT NULL"
                          : "SELECT CASE WHEN ?4 = '1' THEN gap > CAST(?3 AS INTEGER) AND gap > 0"
                            " ELSE gap <= CAST(?3 AS INTEGER) END FROM _syncd_changes"
                            " WHERE tbl = ?1 AND pk = ?2 AND op = 'upsert' AND gap IS NOT NULL",
      vals, 4, yes, err);
}

int rules_concerns(const store *s, dialect_conn *c, const rules_table *rt, const char *pk, int live,
                   long long since, const store_user *u, int *yes, char **err) {
  *yes = 1;
  if (live && check(s, c, rt->concern_check, &rt->concern_params, pk, u, yes, err)) return -1;
  if (live && *yes) return 0;
  const char *sql = live ? rt->concern_was : rt->concern_gone;
  if (sql && check(s, c, sql, &rt->concern_params, pk, u, yes, err)) return -1;
  if (!live) return *yes |= !sql, 0;
  if (sql && *yes) return 0;
  /* a key deleted after since and made again: the log keeps only the
  ** insert, so the delete it replaced is judged here as a pull meeting it
  ** would have judged it: by the values kept (concern_was, above), and
  ** when none is kept but the row's own now (concern_remade: the delete
  ** kept none, or the values the insert then made current again), for
  ** everyone, since the row as it was may have opened anyone's rows */
  if (key_gap(s, c, rt->t->name, pk, since, 1, yes, err)) return -1;
  if (!*yes || !rt->concern_remade) return 0;
  return s->d->select_bool(c, rt->concern_remade, &pk, 1, yes, err);
}

int rules_was_kept(const store *s, dialect_conn *c, const rules_table *rt, const char *pk, int *yes,
                   char **err) {
  *yes = 0;
  return rt->was_kept ? s->d->select_bool(c, rt->was_kept, &pk, 1, yes, err) : 0;
}

int rules_gone_readable(const store *s, dialect_conn *c, const rules_table *rt, const char *pk,
                        const store_user *u, int *yes, char **err) {
  *yes = 1;
  return rt->was_gone ? check(s, c, rt->was_gone, &rt->read_params, pk, u, yes, err) : 0;
}

int rules_new_since(const store *s, dialect_conn *c, const char *table, const char *pk,
                    long long after, int *yes, char **err) {
  return key_gap(s, c, table, pk, after, 0, yes, err);
}

/* Drop PostgreSQL's trigger keeping t's former values (rules.c
** was_trigger), for a table whose rule no longer names its columns. */
static int was_untrigger(const store *s, dialect_conn *c, const catalog_table *t, char **err) {
  int yes = 0, rc = 0;
  char *on = sqlite3_mprintf("\"%w\"", t->name);
  const char *v = on;
  rc = !on ? (*err = wire_errf("out of memory"), -1)
           : s->d->select_bool(c,
                               "SELECT EXISTS(SELECT 1 FROM pg_trigger WHERE tgname = '_syncd_was'"
                               " AND tgrelid = to_regclass($1) AND tgparentid = 0)",
                               &v, 1, &yes, err);
  char *drop = !rc && yes ? sqlite3_mprintf("DROP TRIGGER _syncd_was ON %s", on) : 0;
  if (!rc && yes)
    rc = drop ? s->d->select_bool(c, drop, 0, 0, &yes, err)
              : (*err = wire_errf("out of memory"), -1);
  sqlite3_free(drop);
  sqlite3_free(on);
  return rc;
}

/* _syncd_was_<t> for each rule that names its row's columns (rules.h): made
** when missing, made anew when it lacks a column the rule now names (the
** former values it held are then lost: docs/RULES.md), with PostgreSQL's
** triggers that keep them (SQLite's are TEMP, made on each connection from
** the table: sqlite_watch.c); a table whose rule names none loses its
** trigger. In one transaction, so that no write meets a trigger without
** its table. */
static int was_tables(const store *s, dialect_conn *c, const rules *r, char **err) {
  int yes = 0, pg = s->d == &dialect_pg;
  const char *none = "{}";
  for (int i = 0; i < s->cat.n_tables; i++) {
    const rules_table *rt = rules_judged(r, &s->cat.tables[i]);
    if (pg && (!rt || !rt->was_create) && was_untrigger(s, c, &s->cat.tables[i], err)) return -1;
  }
  /* every table first: a check may read another's (rules.h, read_wide) */
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < r->n; i++) {
      const rules_table *rt = &r->tables[i];
      if (!rt->was_create) continue;
      int bad = 0;
      if (!pass) {
        /* a refused statement ends a PostgreSQL transaction: the probe's
        ** failure goes back to its savepoint */
        if (s->d->select_bool(c, "SAVEPOINT _syncd_probe", 0, 0, &yes, err)) return -1;
        if (s->d->select_bool(c, rt->was_probe, 0, 0, &yes, err)) {
          sqlite3_free(*err);
          *err = 0;
          if (s->d->select_bool(c, "ROLLBACK TO SAVEPOINT _syncd_probe", 0, 0, &yes, err))
            return -1;
          char *drop = sqlite3_mprintf("DROP TABLE IF EXISTS \"_syncd_was_%w\"", rt->t->name);
          int rc = drop ? s->d->select_bool(c, drop, 0, 0, &yes, err)
                        : (*err = wire_errf("out of memory"), -1);
          sqlite3_free(drop);
          if (rc) return -1;
        }
        bad =
            s->d->select_bool(c, "RELEASE SAVEPOINT _syncd_probe", 0, 0, &yes, err) ||
            s->d->select_bool(c, rt->was_create, 0, 0, &yes, err) ||
            s->d->select_bool(c, rt->was_index, 0, 0, &yes, err) ||
            (rt->was_concern_index && s->d->select_bool(c, rt->was_concern_index, 0, 0, &yes, err));
      }
      for (int k = 0; pass && !bad && k < rt->n_was_trigger; k++)
        bad = s->d->select_bool(c, rt->was_trigger[k], 0, 0, &yes, err);
      if (bad || (pass && (s->d->select_bool(c, rt->was_probe, 0, 0, &yes, err) ||
                           rules_was_readable(s, c, rt, "{}", 0, &yes, err) ||
                           rules_gone_readable(s, c, rt, "{}", 0, &yes, err) ||
                           rules_was_kept(s, c, rt, "{}", &yes, err) ||
                           (rt->concern && (rules_concerns(s, c, rt, "{}", 1, 0, 0, &yes, err) ||
                                            rules_concerns(s, c, rt, "{}", 0, 0, 0, &yes, err))) ||
                           (rt->concern_remade &&
                            s->d->select_bool(c, rt->concern_remade, &none, 1, &yes, err))))) {
        char *why = *err;
        *err = wire_errf("rules: table %s: its former values (_syncd_was_%s): %s", rt->t->name,
                         rt->t->name, why ? why : "?");
        sqlite3_free(why);
        return -1;
      }
    }
  return 0;
}

int store_has_rules(const store *s) {
  return s->has_rules;
}

int store_set_rules(store *s, const char *json, char **err) {
  rules *r = rules_load(&s->cat, json, s->d == &dialect_pg, err);
  if (!r) return STORE_ERROR;
  dialect_conn *c = pool_get(&s->pool, err);
  if (!c) return rules_free(r), STORE_ERROR;
  int yes = 0, rc = 0;
  for (int i = 0; !rc && i < r->n; i++)
    for (int w = 0; !rc && w < 3; w++) {
      const rules_table *rt = &r->tables[i];
      rc = w < 2         ? rules_check_row(s, c, rt, w, "{}", 0, &yes, err)
           : rt->concern ? check(s, c, rt->concern_check, &rt->concern_params, "{}", 0, &yes, err)
                         : 0;
      if (rc) {
        char *why = *err;
        *err = wire_errf("rules: table %s, %s: the storage refuses it: %s", rt->t->name,
                         w == 2 ? "the selects that read it"
                         : w    ? "write"
                                : "read",
                         why ? why : "?");
        sqlite3_free(why);
      }
    }
  /* which user each client id belongs to (store_client_user) */
  if (!rc)
    rc = s->d->select_bool(c,
                           "CREATE TABLE IF NOT EXISTS _syncd_client_users("
                           "client_id TEXT PRIMARY KEY, sub TEXT NOT NULL)",
                           0, 0, &yes, err);
  if (!rc)
    rc = s->d->select_bool(c, s->d == &dialect_pg ? "BEGIN" : "BEGIN IMMEDIATE", 0, 0, &yes, err);
  if (!rc) {
    rc = was_tables(s, c, r, err);
    char *e = 0;
    if (s->d->select_bool(c, rc ? "ROLLBACK" : "COMMIT", 0, 0, &yes, rc ? &e : err)) rc = -1;
    sqlite3_free(e);
  }
  pool_put(&s->pool, c);
  /* kept to compile them again when the schema changes (schema.c) */
  char *text = rc ? 0 : sqlite3_mprintf("%s", json);
  if (!rc && !text) rc = -1, *err = wire_errf("out of memory");
  if (rc) return rules_free(r), STORE_ERROR;
  s->rules = r;
  s->rules_json = text;
  s->has_rules = 1;
  return STORE_OK;
}

int store_client_user(store *s, const store_user *u, const char *client, int *mine, char **err) {
  *mine = 1;
  if (!s->has_rules || !u) return STORE_OK;
  dialect_conn *c = pool_get(&s->pool, err);
  if (!c) return STORE_ERROR;
  const char *vals[2] = {client, u->sub};
  int pg = s->d == &dialect_pg, known = 0;
  const char *owner = pg ? "SELECT sub = $2 FROM _syncd_client_users WHERE client_id = $1"
                         : "SELECT sub = ?2 FROM _syncd_client_users WHERE client_id = ?1";
  /* read first: a client id is claimed once, and on SQLite a write would
  ** queue every pull behind the pushes */
  int rc = s->d->select_bool(c, owner, vals, 2, mine, err);
  if (!rc && !*mine)
    rc = s->d->select_bool(c,
                           pg ? "SELECT count(*) > 0 FROM _syncd_client_users WHERE client_id = $1"
                              : "SELECT count(*) > 0 FROM _syncd_client_users WHERE client_id = ?1",
                           vals, 1, &known, err);
  if (!rc && !*mine && !known) {
    rc = s->d->select_bool(c,
                           pg ? "INSERT INTO _syncd_client_users VALUES ($1, $2)"
                                " ON CONFLICT (client_id) DO NOTHING"
                              : "INSERT INTO _syncd_client_users VALUES (?1, ?2)"
                                " ON CONFLICT (client_id) DO NOTHING",
                           vals, 2, &known, err);
    if (!rc) rc = s->d->select_bool(c, owner, vals, 2, mine, err);
  }
  pool_put(&s->pool, c);
  return rc ? STORE_ERROR : STORE_OK;
}
