/*
** value_test.c: unit tests for common/value.c's REALs on the wire. A REAL
** goes out as the shortest of %.15g, %.16g and %.17g that reads back to its
** very bits (docs/PROTOCOL.md, "values"): printed from a value
** (value_append_column, syncd's rows) and rewritten from the 17-digit text
** the capture triggers store (value_append_wire, every push body). -0.0,
** the infinities (1e999) and whole REALs (100.0) keep their pinned forms;
** integers and strings pass untouched. Then random doubles over the whole
** range: each comes back bit for bit, with no shorter form that would.
**
** Build: cc -Icommon tests/unit/value_test.c common/value.c -lsqlite3 (see
** mk/unit.mk).
*/
#include "value.h"
#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static sqlite3 *db;

/* value_append_wire's output for the JSON text in (sqlite3_malloc'd). */
static char *wire(const char *in) {
  sqlite3_str *out = sqlite3_str_new(0);
  value_append_wire(out, in, (int)strlen(in));
  return sqlite3_str_finish(out);
}

/* value_append_column's JSON for the REAL r. */
static char *column(double r) {
  sqlite3_stmt *s = 0;
  sqlite3_prepare_v2(db, "SELECT ?1", -1, &s, 0);
  sqlite3_bind_double(s, 1, r);
  sqlite3_str *out = sqlite3_str_new(0);
  if (sqlite3_step(s) == SQLITE_ROW) value_append_column(out, s, 0);
  sqlite3_finalize(s);
  return sqlite3_str_finish(out);
}

static void check_wire(const char *in, const char *want) {
  char *got = wire(in);
  CHECK_STR(got, want);
  sqlite3_free(got);
}

static void test_wire_cases(void) {
  check_case = "wire cases";
  check_wire("{\"v\":0.10000000000000001}", "{\"v\":0.1}");
  check_wire("{\"v\":0.30000000000000004}", "{\"v\":0.30000000000000004}");
  check_wire("{\"v\":3.1415926535897931}", "{\"v\":3.141592653589793}");
  check_wire("{\"v\":-0.0}", "{\"v\":-0.0}");
  check_wire("{\"v\":0.0}", "{\"v\":0.0}");
  check_wire("{\"v\":1e999,\"w\":-1e999}", "{\"v\":1e999,\"w\":-1e999}");
  check_wire("{\"v\":1.0,\"w\":100.0}", "{\"v\":1.0,\"w\":100.0}");
  check_wire("{\"v\":1.0e+20}", "{\"v\":1e+20}");
  check_wire("{\"v\":17976931348623157e292}", "{\"v\":1.7976931348623157e+308}");
  check_wire("{\"v\":4.9406564584124654e-324}", "{\"v\":5e-324}");
  check_wire("{\"v\":2.2250738585072014e-308}", "{\"v\":2.2250738585072014e-308}");
  /* integers stay exact, whatever their size */
  check_wire("{\"id\":9007199254740993,\"n\":-9223372036854775808}",
             "{\"id\":9007199254740993,\"n\":-9223372036854775808}");
  /* strings, names included, are not numbers */
  check_wire("{\"0.10000000000000001\":\"0.10000000000000001 \\\"1.50\\\" \\\\\"}",
             "{\"0.10000000000000001\":\"0.10000000000000001 \\\"1.50\\\" \\\\\"}");
  check_wire("[0.5,[2.50,{\"x\":1E2}],true,null]", "[0.5,[2.5,{\"x\":100.0}],true,null]");
  /* the blob form still turns into base64, next to a REAL */
  check_wire("{\"b\":{\"$hex\":\"00ff10\"},\"r\":0.20000000000000001}",
             "{\"b\":{\"$base64\":\"AP8Q\"},\"r\":0.2}");
  check_case = "";
}

static void test_column_cases(void) {
  check_case = "column cases";
  static const struct {
    double r;
    const char *want;
  } cases[] = {
      {0.1, "0.1"},
      {0.1 + 0.2, "0.30000000000000004"},
      {100.0, "100.0"},
      {1e20, "1e+20"},
      {-1.5e-200, "-1.5e-200"},
      {5e-324, "5e-324"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *got = column(cases[i].r);
    CHECK_STR(got, cases[i].want);
    sqlite3_free(got);
  }
  char *z = column(-0.0);
  CHECK_STR(z, "-0.0");
  sqlite3_free(z);
  z = column(INFINITY);
  CHECK_STR(z, "1e999");
  sqlite3_free(z);
  z = column(-INFINITY);
  CHECK_STR(z, "-1e999");
  sqlite3_free(z);
  check_case = "";
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next_u64(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Significant digits of a number's text (100.0 has one). */
static int digits(const char *z) {
  int n = 0, lead = 1, zeros = 0;
  for (; *z && *z != 'e' && *z != 'E'; z++) {
    if (*z < '0' || *z > '9') continue;
    if (lead && *z == '0') continue;
    lead = 0;
    n++;
    zeros = *z == '0' ? zeros + 1 : 0;
  }
  return n - zeros > 0 ? n - zeros : 1;
}

static void test_random_round_trip(void) {
  check_case = "random round trip";
  int bad = 0;
  for (int i = 0; i < 200000 && bad < 5; i++) {
    uint64_t bits = next_u64();
    double r;
    memcpy(&r, &bits, sizeof r);
    if (isnan(r) || isinf(r)) continue;
    /* what the capture triggers store: 17 digits, a whole one with ".0" */
    char stored[400], in[410];
    snprintf(stored, sizeof stored, "%.17g", r);
    if (!strpbrk(stored, ".e")) strcat(stored, ".0");
    snprintf(in, sizeof in, "[%s]", stored);
    char *out = wire(in);
    char *col = column(r);
    size_t n = out ? strlen(out) : 0;
    int ok = n > 2 && col && strncmp(out + 1, col, n - 2) == 0 && strlen(col) == n - 2;
    char *num = col ? col : "";
    double back = strtod(num, 0);
    ok = ok && memcmp(&back, &r, sizeof r) == 0 && strpbrk(num, ".e") != 0;
    /* shortest: one digit fewer would not read back */
    int d = digits(num);
    if (ok && d > 1) {
      char shorter[400];
      snprintf(shorter, sizeof shorter, "%.*g", d - 1, r);
      double s = strtod(shorter, 0);
      ok = memcmp(&s, &r, sizeof r) != 0;
    }
    if (!CHECK(ok)) {
      fprintf(stderr, "    %s -> wire %s, column %s\n", stored, out ? out : "?", num);
      bad++;
    }
    sqlite3_free(out);
    sqlite3_free(col);
  }
  check_case = "";
}

int main(void) {
  sqlite3_open(":memory:", &db);
  test_wire_cases();
  test_column_cases();
  test_random_round_trip();
  sqlite3_close(db);
  return check_done("value_test");
}
