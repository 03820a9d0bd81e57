/*
** jscan.h: the one JSON scanner for row-value JSON, shared by the extension
** (sync_apply's pages, sync_mutate's objects) and syncd (push bodies).
**
** It works in place on text [z, e) and never converts a number through a
** double, so 64-bit integers and the exact digits of REALs reach SQLite as
** they were written. A NUL byte counts as the end of the text, so callers
** with NUL-terminated text may pass the NUL's address as e. cJSON stays for
** small envelopes where exactness does not matter (DESIGN.md, section 3).
**
** jscan_valid decides validity rule for rule as SQLite 3.40's json_valid
** does (strict RFC 8259: no leading zeros, digits around '.', no control
** characters in strings, nesting at most JSCAN_MAX_DEPTH); the other
** functions walk text it has accepted and only find where things end.
*/
#ifndef SYNC_JSCAN_H
#define SYNC_JSCAN_H

#include "sqlite_api.h"

#include <stddef.h>

#define JSCAN_MAX_DEPTH 2000 /* SQLite's JSON_MAX_DEPTH */

/* One JSON value (or, for a member's key, the inside of its quotes) in
** place; z is NULL when absent. */
typedef struct jspan {
  const char *z;
  int n;
} jspan;

/* z past any JSON whitespace, at most e. */
const char *jscan_ws(const char *z, const char *e);

/* The end of the valid JSON value starting at z (no leading whitespace),
** or NULL when there is none. depth: the containers open around it. */
const char *jscan_valid(const char *z, const char *e, int depth);

/* 1 when [z, e) is exactly one valid JSON value, whitespace around it
** allowed (what json_valid answers). */
int jscan_document(const char *z, const char *e);

/* The end of the value at z, which jscan_valid has accepted. */
const char *jscan_skip(const char *z, const char *e);

/* Member iteration over an accepted object: *pz at its '{' on the first
** call, then where the previous call left it. Returns 1 with the key (the
** inside of its quotes, escapes as written) and the value, or 0 at the end
** with *pz at the closing '}'. */
int jscan_member(const char **pz, const char *e, jspan *key, jspan *val);

/* Element iteration over an accepted array: *pz at its '[' on the first
** call, then where the previous call left it. Returns 1 with the next
** element in *v, or 0 at the end. */
int jscan_element(const char **pz, const char *e, jspan *v);

/* The first member of the accepted object obj whose key is written as name
** (json_extract's lookup); z NULL when absent. */
jspan jscan_field(jspan obj, const char *name);

/* The same for names[0..n) in one pass, into out[0..n). */
void jscan_fields(jspan obj, const char *const *names, int n, jspan *out);

/* 1 when the span is exactly the text lit (a key, or a literal like null). */
int jscan_is(jspan v, const char *lit);

/* The JSON type of an accepted value as json_type() names it: "object",
** "array", "text", "integer", "real", "true", "false", "null"; "" for an
** absent span. */
const char *jscan_type(jspan v);

/* The integer v exactly into *out; 0 when v is not an integer that fits
** 64 bits. */
int jscan_int64(jspan v, sqlite3_int64 *out);

/* The accepted string v unescaped, sqlite3_malloc'd (a surrogate pair
** becomes one character, a lone surrogate its 3-byte form, as SQLite
** does); *nul is set when it holds an escaped NUL. NULL when out of
** memory. */
char *jscan_text(jspan v, int *nul);

/* The accepted value v as SQLite's -> operator renders it: without the
** whitespace between tokens. sqlite3_malloc'd; NULL when out of memory. */
char *jscan_compact(jspan v);

/* Calls fn(arg, key) for each member of the valid JSON object text z, keys
** unescaped as json_each gives them, in order. Returns 0, or the first
** nonzero fn returned (SQLITE_NOMEM when a key could not be copied). */
int jscan_object_keys(const char *z, int (*fn)(void *, const char *), void *arg);

/* p[0..n) is strict UTF-8: no overlongs, surrogates or code points past
** U+10FFFF (a NUL byte is valid UTF-8). */
int jscan_utf8_valid(const unsigned char *p, size_t n);

#endif
