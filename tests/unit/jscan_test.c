/*
** jscan_test.c: unit tests for common/jscan.c, the JSON scanner the engine
** and syncd share. Most checks are differential against the SQLite this
** test links (Debian 12's 3.40, whose JSON rules jscan follows): validity
** against json_valid, types against json_type, member lookup against ->,
** compaction against json(), unescaping against ->> '$', over hand-picked
** cases and over random texts built from a small JSON grammar and then
** damaged byte by byte. Every text is scanned from a buffer of exactly its
** size with no NUL after it, so a read past the end shows under ASan
** (make test-unit-asan).
**
** Build: cc -Icommon tests/unit/jscan_test.c common/jscan.c -lsqlite3 (see
** mk/unit.mk).
*/
#include "jscan.h"
#include "check.h"

#include <stdint.h>
#include <stdlib.h>

static sqlite3 *db;

/* A copy of z[0..n) in a buffer of exactly n bytes (malloc, not SQLite's:
** the leak check counts only what jscan allocates). */
static char *exact(const char *z, size_t n) {
  char *b = malloc(n ? n : 1);
  memcpy(b, z, n);
  return b;
}

/* What SQLite answers for sql with ?1 bound to z[0..n): its first column
** as text (NULL for SQL NULL), malloc'd; *isNull set accordingly. */
static char *ask(const char *sql, const char *z, size_t n, int *isNull) {
  sqlite3_stmt *s = 0;
  char *out = 0;
  *isNull = 1;
  if (sqlite3_prepare_v2(db, sql, -1, &s, 0) != SQLITE_OK) {
    fprintf(stderr, "prepare %s: %s\n", sql, sqlite3_errmsg(db));
    return 0;
  }
  sqlite3_bind_text(s, 1, z, (int)n, SQLITE_STATIC);
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
    const char *t = (const char *)sqlite3_column_text(s, 0);
    int tn = sqlite3_column_bytes(s, 0);
    out = malloc((size_t)tn + 1);
    memcpy(out, t, (size_t)tn + 1);
    *isNull = 0;
  }
  sqlite3_finalize(s);
  return out;
}

static int sqlite_valid(const char *z, size_t n) {
  int isNull;
  char *v = ask("SELECT json_valid(?1)", z, n, &isNull);
  int ok = v && strcmp(v, "1") == 0;
  free(v);
  return ok;
}

/* Validity, then for a valid text: its type, its compact form, and every
** top-level member of an object looked up by name. */
static void compare(const char *z, size_t n) {
  char *b = exact(z, n);
  int mine = jscan_document(b, b + n), theirs = sqlite_valid(z, n);
  if (!CHECK(mine == theirs)) fprintf(stderr, "    text: %.*s\n", (int)n, z);
  if (mine && theirs) {
    const char *v = jscan_ws(b, b + n), *ve = jscan_skip(v, b + n);
    jspan whole = {v, (int)(ve - v)};
    int isNull;
    char *type = ask("SELECT json_type(?1)", z, n, &isNull);
    CHECK_STR(jscan_type(whole), type);
    free(type);
    char *compact = jscan_compact(whole), *ref = ask("SELECT json(?1)", z, n, &isNull);
    if (!CHECK(compact && ref && strcmp(compact, ref) == 0))
      fprintf(stderr, "    text: %.*s\n    mine: %s\n    json(): %s\n", (int)n, z, compact, ref);
    sqlite3_free(compact);
    free(ref);
    if (v[0] == '"') {
      int nul;
      char *text = jscan_text(whole, &nul);
      char *t = ask("SELECT ?1 ->> '$'", z, n, &isNull);
      if (!nul) CHECK_STR(text, t);
      sqlite3_free(text);
      free(t);
    }
    if (v[0] == '{') {
      const char *p = v;
      jspan key, val;
      while (jscan_member(&p, b + n, &key, &val)) {
        if (memchr(key.z, '\\', (size_t)key.n) || memchr(key.z, '"', (size_t)key.n)) continue;
        char *name = sqlite3_mprintf("%.*s", key.n, key.z);
        jspan first = jscan_field(whole, name);
        char *sql = sqlite3_mprintf("SELECT ?1 -> '$.\"%s\"'", name);
        char *mineV = jscan_compact(first), *ref2 = ask(sql, z, n, &isNull);
        CHECK_STR(mineV, ref2);
        sqlite3_free(mineV);
        free(ref2);
        sqlite3_free(sql);
        sqlite3_free(name);
      }
      CHECK(p < b + n && *p == '}');
    }
  }
  free(b);
}

static void test_cases(void) {
  check_case = "cases";
  static const char *const cases[] = {
      "{}",
      "[]",
      " {} ",
      "{\"a\":1}",
      "{\"a\":1,}",
      "[1,]",
      "[1 2]",
      "{\"a\" 1}",
      "{1:2}",
      "01",
      "-0",
      "-",
      "1.",
      ".5",
      "1.5",
      "1e5",
      "1E+5",
      "1e",
      "1e+",
      "-1.5e-7",
      "1.5.2",
      "1e5e5",
      "0x10",
      "9223372036854775807",
      "-9223372036854775808",
      "99999999999999999999",
      "true",
      "false",
      "null",
      "nul",
      "truex",
      "true1",
      "\"a\"",
      "\"a",
      "\"\\u00e9\"",
      "\"\\u12\"",
      "\"\\x\"",
      "\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"",
      "\"\\ud83d\\ude00\"",
      "\"\\ud83d\"",
      "\"\t\"",
      "\"\x01\"",
      "{\"a\":{\"b\":[1,{\"c\":null}]}}",
      "{\"a\":1,\"a\":2}",
      "{ \"a\" : [ 1 , 2 ] , \"b\" : \"x y\" }",
      "",
      " ",
      "[",
      "]",
      "{\"a\":1}}",
      "[[[[]]]]",
      "\"\xc3\xa9\"",
      "{\"x\":\"}\"}",
      "[\"]\",\"[\"]",
      "{\"k\":-0.0}",
      "[1e999]",
      "{\"a\":tru}",
      "[nulll]",
      "[-]",
      "[+1]",
      "[1,-]",
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    compare(cases[i], strlen(cases[i]));
  /* SQLite 3.40 accepts a key that is an array ending in a string (and its
  ** json_tree crashes on it); jscan refuses it */
  static const char bad_key[] = "{[\"\"]:0}";
  CHECK(sqlite_valid(bad_key, sizeof bad_key - 1));
  CHECK(!jscan_document(bad_key, bad_key + sizeof bad_key - 1));
  /* nesting: SQLite's limit, exactly */
  for (int depth = JSCAN_MAX_DEPTH - 1; depth <= JSCAN_MAX_DEPTH + 1; depth++) {
    char *z = malloc((size_t)depth * 2);
    memset(z, '[', (size_t)depth);
    memset(z + depth, ']', (size_t)depth);
    compare(z, (size_t)depth * 2);
    free(z);
  }
  check_case = "";
}

/* A NUL byte is the end of the text: what follows it is not JSON. */
static void test_nul(void) {
  check_case = "nul";
  static const char z[] = "{}\0garbage";
  CHECK(jscan_document(z, z + 2));
  CHECK(!jscan_document(z, z + sizeof z - 1));
  static const char s[] = "\"a\0b\"";
  CHECK(!jscan_document(s, s + sizeof s - 1));
  check_case = "";
}

static void test_int64(void) {
  check_case = "int64";
  static const struct {
    const char *z;
    int ok;
    sqlite3_int64 v;
  } cases[] = {
      {"0", 1, 0},
      {"-0", 1, 0},
      {"9223372036854775807", 1, INT64_MAX},
      {"-9223372036854775808", 1, INT64_MIN},
      {"9223372036854775808", 0, 0},
      {"-9223372036854775809", 0, 0},
      {"18446744073709551616", 0, 0},
      {"1.0", 0, 0},
      {"1e3", 0, 0},
      {"\"1\"", 0, 0},
      {"9007199254740993", 1, 9007199254740993LL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    jspan v = {cases[i].z, (int)strlen(cases[i].z)};
    sqlite3_int64 out = 42;
    CHECK_INT(jscan_int64(v, &out), cases[i].ok);
    if (cases[i].ok) CHECK_INT(out, cases[i].v);
  }
  jspan none = {0, 0};
  sqlite3_int64 out;
  CHECK(!jscan_int64(none, &out));
  CHECK_STR(jscan_type(none), "");
  check_case = "";
}

static int keys_cb(void *arg, const char *key) {
  sqlite3_str *s = arg;
  sqlite3_str_appendf(s, "[%s]", key);
  return strcmp(key, "stop") == 0 ? 7 : 0;
}

static void test_keys_utf8(void) {
  check_case = "keys";
  sqlite3_str *s = sqlite3_str_new(0);
  CHECK_INT(jscan_object_keys("{\"a\":1, \"b\\u0063\":{\"x\":2}, \"\\\"\":[]}", keys_cb, s), 0);
  char *got = sqlite3_str_finish(s);
  CHECK_STR(got, "[a][bc][\"]");
  sqlite3_free(got);
  /* a key longer than the copy kept on the stack */
  char longkey[400];
  memset(longkey, 'k', sizeof longkey);
  char *obj = sqlite3_mprintf("{\"%.*s\":1,\"%.*s\":2}", 127, longkey, 300, longkey);
  s = sqlite3_str_new(0);
  CHECK_INT(jscan_object_keys(obj, keys_cb, s), 0);
  got = sqlite3_str_finish(s);
  char *want = sqlite3_mprintf("[%.*s][%.*s]", 127, longkey, 300, longkey);
  CHECK_STR(got, want);
  sqlite3_free(want);
  sqlite3_free(got);
  sqlite3_free(obj);
  s = sqlite3_str_new(0);
  CHECK_INT(jscan_object_keys("{\"stop\":1,\"after\":2}", keys_cb, s), 7);
  sqlite3_free(sqlite3_str_finish(s));
  CHECK(jscan_utf8_valid((const unsigned char *)"a\xc3\xa9\xf0\x9f\x98\x80", 7));
  CHECK(!jscan_utf8_valid((const unsigned char *)"\xc0\xaf", 2));         /* overlong */
  CHECK(!jscan_utf8_valid((const unsigned char *)"\xed\xa0\x80", 3));     /* surrogate */
  CHECK(!jscan_utf8_valid((const unsigned char *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
  CHECK(!jscan_utf8_valid((const unsigned char *)"\xc3", 1));             /* cut */
  check_case = "";
}

/* ---- random texts ---- */

static uint64_t rng = 0x243F6A8885A308D3ULL;

static unsigned rnd(unsigned n) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (unsigned)(rng % n);
}

static void gen(sqlite3_str *s, int depth) {
  static const char *const atoms[] = {"0",           "-1",
                                      "12.5",        "1e10",
                                      "-0.0",        "9223372036854775807",
                                      "true",        "false",
                                      "null",        "\"\"",
                                      "\"a\"",       "\"\\n\"",
                                      "\"\\u00e9\"", "\"x y\"",
                                      "1E-3",        "\"\\ud83d\\ude00\""};
  static const char *const ws[] = {"", "", "", " ", "\n", "\t ", "\r\n"};
  unsigned k = depth > 4 ? 0 : rnd(4);
  if (k == 1 || k == 2) {
    int obj = k == 1, n = (int)rnd(4);
    sqlite3_str_appendchar(s, 1, obj ? '{' : '[');
    for (int i = 0; i < n; i++) {
      if (i) sqlite3_str_appendall(s, ",");
      sqlite3_str_appendall(s, ws[rnd(7)]);
      if (obj) sqlite3_str_appendf(s, "\"%c\"%s:%s", 'a' + rnd(3), ws[rnd(7)], ws[rnd(7)]);
      gen(s, depth + 1);
      sqlite3_str_appendall(s, ws[rnd(7)]);
    }
    sqlite3_str_appendchar(s, 1, obj ? '}' : ']');
  } else {
    sqlite3_str_appendall(s, atoms[rnd(sizeof atoms / sizeof atoms[0])]);
  }
}

static void test_random(void) {
  check_case = "random";
  static const char damage[] = "{}[],:\"\\ 0-.eE+tfnu\x01x";
  int valid = 0, total = 0;
  for (int i = 0; i < 20000; i++) {
    sqlite3_str *s = sqlite3_str_new(0);
    gen(s, 0);
    int n = sqlite3_str_length(s);
    char *z = sqlite3_str_finish(s);
    if (rnd(2) && n > 0) {
      int edits = 1 + (int)rnd(3);
      for (int k = 0; k < edits && n > 0; k++) {
        unsigned op = rnd(3), at = rnd((unsigned)n);
        if (op == 0) {
          z[at] = damage[rnd(sizeof damage - 1)];
        } else if (op == 1 && n > 1) {
          memmove(z + at, z + at + 1, (size_t)(n - (int)at - 1));
          n--;
        } else {
          n = (int)at; /* cut */
        }
      }
    }
    valid += sqlite_valid(z, (size_t)n);
    total++;
    compare(z, (size_t)n);
    sqlite3_free(z);
  }
  /* the damage must leave both kinds in the mix, or the comparison says little */
  CHECK(valid > total / 4 && valid < total * 3 / 4);
  printf("jscan random: %d texts, %d valid\n", total, valid);
  check_case = "";
}

int main(void) {
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) return 2;
  test_cases();
  test_nul();
  test_int64();
  test_keys_utf8();
  test_random();
  sqlite3_close(db);
  return check_done("jscan_test");
}
