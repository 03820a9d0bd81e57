/*
** uniqexpr.c: the parts of a UNIQUE index that are expressions, read from
** the index's CREATE INDEX text, for replace.c.
**
**     CREATE UNIQUE INDEX docs_body ON docs(lower(body)) WHERE body IS NOT NULL;
**
** An INSERT OR REPLACE that collides through such an index deletes the
** other row without firing its delete trigger, like any REPLACE; to queue
** that delete the capture must find the row, and PRAGMA index_xinfo names
** no expression (its part is cid -2, name NULL). SQLite keeps the index's
** text as written in sqlite_schema, so the expressions (and a partial
** index's WHERE) are cut from it here, as text, without rewriting them:
** replace.c evaluates each against the table (its columns unqualified) and
** against NEW through a one-row subquery that names NEW's columns as the
** table does.
**
** A part that is a generated column is read from the table as it is, and
** computed for the other row through its generation expression, cut here
** from the CREATE TABLE text (ux_generated): a pull's row (rebase.c,
** inbox.c) carries no generated column, and one lookup serves both.
**
** Only what the index and table texts are made of is tokenized: identifiers
** (bare or quoted four ways), strings, comments and parentheses. A text that
** does not read as expected gives SQLITE_ERROR (NULL), and the caller leaves
** the index out, as before this module.
*/
#include "uniqexpr.h"

#include <ctype.h>
#include <string.h>

enum { T_SPACE, T_ID, T_QID, T_STR, T_LP, T_RP, T_COMMA, T_OTHER, T_END };

/* The length of the token at z, and its type. An unterminated quote or
** comment runs to the end. */
static int token(const char *z, int *type) {
  int i = 0;
  if (!z[0]) return *type = T_END, 0;
  if (isspace((unsigned char)z[0])) {
    while (isspace((unsigned char)z[i]))
      i++;
    return *type = T_SPACE, i;
  }
  if (z[0] == '-' && z[1] == '-') {
    while (z[i] && z[i] != '\n')
      i++;
    return *type = T_SPACE, i;
  }
  if (z[0] == '/' && z[1] == '*') {
    const char *e = strstr(z + 2, "*/");
    return *type = T_SPACE, e ? (int)(e - z) + 2 : (int)strlen(z);
  }
  if (z[0] == '\'' || z[0] == '"' || z[0] == '`' || z[0] == '[') {
    char close = z[0] == '[' ? ']' : z[0];
    for (i = 1; z[i]; i++) {
      if (z[i] != close) continue;
      if (close != ']' && z[i + 1] == close) {
        i++;
        continue;
      }
      i++;
      break;
    }
    return *type = z[0] == '\'' ? T_STR : T_QID, i;
  }
  if (isalpha((unsigned char)z[0]) || z[0] == '_' || (unsigned char)z[0] >= 0x80) {
    while (isalnum((unsigned char)z[i]) || z[i] == '_' || z[i] == '$' ||
           (unsigned char)z[i] >= 0x80)
      i++;
    return *type = T_ID, i;
  }
  *type = z[0] == '(' ? T_LP : z[0] == ')' ? T_RP : z[0] == ',' ? T_COMMA : T_OTHER;
  return 1;
}

static int is_word(const char *z, int n, const char *word) {
  return (int)strlen(word) == n && sqlite3_strnicmp(z, word, n) == 0;
}

/* z[0..n) without its surrounding space and a trailing ASC or DESC and
** COLLATE name (index_xinfo gives the collation); NULL when empty. */
static char *part_text(const char *z, int n) {
  /* the last four tokens, latest first */
  int first = -1, at[4] = {0}, len[4] = {0}, k = 0, type;
  for (int i = 0, m; i < n && (m = token(z + i, &type)) > 0; i += m) {
    if (type == T_SPACE) continue;
    if (first < 0) first = i;
    memmove(at + 1, at, 3 * sizeof *at);
    memmove(len + 1, len, 3 * sizeof *len);
    at[0] = i, len[0] = m, k++;
  }
  if (first < 0) return 0;
  int last = 0;
  if (k > 1 && (is_word(z + at[0], len[0], "ASC") || is_word(z + at[0], len[0], "DESC"))) last++;
  if (k > last + 2 && is_word(z + at[last + 1], len[last + 1], "COLLATE")) last += 2;
  return sqlite3_mprintf("%.*s", at[last] + len[last] - first, z + first);
}

int ux_parse(const char *sql, int nKey, char **part, char **where) {
  int type, i = 0, on = 0, m;
  for (int j = 0; j < nKey; j++)
    part[j] = 0;
  *where = 0;
  /* the first "(" after the word ON */
  while ((m = token(sql + i, &type)) > 0) {
    if (type == T_ID && is_word(sql + i, m, "ON")) on = 1;
    i += m;
    if (on && type == T_LP) break;
  }
  if (!on || type != T_LP) return SQLITE_ERROR;
  int depth = 0, start = i, n = 0, rc = SQLITE_OK;
  while (rc == SQLITE_OK && (m = token(sql + i, &type)) > 0) {
    if (type == T_LP) depth++;
    if ((type == T_COMMA && depth == 0) || (type == T_RP && depth == 0)) {
      if (n == nKey)
        rc = SQLITE_ERROR;
      else if (!(part[n++] = part_text(sql + start, i - start)))
        rc = SQLITE_ERROR;
      start = i + m;
    }
    if (type == T_RP && depth-- == 0) break;
    i += m;
  }
  if (rc == SQLITE_OK && (type != T_RP || n != nKey)) rc = SQLITE_ERROR;
  if (rc == SQLITE_OK) {
    i += m;
    while ((m = token(sql + i, &type)) > 0 && type == T_SPACE)
      i += m;
    if (type == T_ID && is_word(sql + i, m, "WHERE") &&
        !(*where = part_text(sql + i + m, (int)strlen(sql + i + m))))
      rc = SQLITE_ERROR;
    else if (type != T_ID && type != T_END)
      rc = SQLITE_ERROR;
  }
  if (rc != SQLITE_OK) {
    for (int j = 0; j < nKey; j++)
      sqlite3_free(part[j]), part[j] = 0;
    sqlite3_free(*where), *where = 0;
  }
  return rc;
}

/* The name identifier token z (m bytes, of that type) spells, unquoted;
** NULL when out of memory. */
static char *id_name(const char *z, int m, int type) {
  char *name =
      type == T_QID ? sqlite3_mprintf("%.*s", m - 2, z + 1) : sqlite3_mprintf("%.*s", m, z);
  /* inside quotes (not brackets) a doubled quote is one */
  if (name && type == T_QID && *z != '[')
    for (char *p = name; (p = strchr(p, *z)); p++)
      memmove(p, p + 1, strlen(p));
  return name;
}

void ux_refs(SyncTable *t, const char *expr, unsigned char *used) {
  int type, m;
  for (const char *z = expr; (m = token(z, &type)) > 0; z += m) {
    if (type != T_ID && type != T_QID) continue;
    char *name = id_name(z, m, type);
    if (!name) continue;
    for (int i = 0; i < t->nCol; i++)
      if (sqlite3_stricmp(t->cols[i], name) == 0) used[i] = 1;
    sqlite3_free(name);
  }
}

char *ux_generated(const char *sql, const char *col) {
  int type, m;
  const char *z = sql;
  /* the definitions: after the first "(" (a quoted name is one token) */
  while ((m = token(z, &type)) > 0 && type != T_LP)
    z += m;
  if (type != T_LP) return 0;
  int depth = 0, first = 1, mine = 0, afterAs = 0;
  for (z += m; (m = token(z, &type)) > 0; z += m) {
    if (type == T_SPACE) continue;
    if (first) {
      /* a definition's first word: the column's name, or a table
      ** constraint's keyword (they come after every column) */
      char *name = type == T_ID || type == T_QID ? id_name(z, m, type) : 0;
      mine = name && sqlite3_stricmp(name, col) == 0;
      sqlite3_free(name);
      first = 0;
      continue;
    }
    /* "AS (" at the definition's own level: its generation expression */
    if (type == T_LP && depth++ == 0 && afterAs && mine) {
      const char *start = z + m;
      for (depth = 0, z = start; (m = token(z, &type)) > 0; z += m) {
        if (type == T_LP) depth++;
        if (type == T_RP && depth-- == 0) return part_text(start, (int)(z - start));
      }
      return 0;
    }
    if (type == T_RP && depth-- == 0) return 0;
    if (type == T_COMMA && depth == 0) first = 1;
    afterAs = depth == 0 && type == T_ID && is_word(z, m, "AS");
  }
  return 0;
}
