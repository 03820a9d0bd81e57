/*
** Exact conversion between SQLite values and JSON text, shared by the
** extension and syncd. Row values never pass through cJSON (it keeps numbers
** as doubles): they are printed here and read back by SQLite's JSON functions
** plus sync_val().
*/
#ifndef SYNC_VALUE_H
#define SYNC_VALUE_H

#include "sqlite_api.h"

/* Append the JSON for one value: integers in full, reals in the shortest
** text that reads back to the same double (always with a '.' or exponent so
** they stay REAL; infinities as +/-1e999, NaN as null), text as an escaped
** string, BLOB as {"$base64":"..."}, NULL as null. */
void value_append_json(sqlite3_str *out, sqlite3_value *v);

/* Same, for column iCol of a row that stmt has just stepped to. */
void value_append_column(sqlite3_str *out, sqlite3_stmt *stmt, int iCol);

/* Append {"name":value,...} for every column of the current row of stmt. */
void value_append_row(sqlite3_str *out, sqlite3_stmt *stmt);

/* Append z[0..n) as a JSON string literal (n<0: up to the NUL). */
void value_append_string(sqlite3_str *out, const char *z, int n);

/* Append a JSON object text in wire form: every nested {"$hex":"..."} (the
** blob form the capture triggers store, as plain SQL has no base64) as
** {"$base64":"..."}, and every REAL number (a '.' or an exponent) in the
** shortest form above (the triggers store 17 digits). Integers, strings and
** the rest are copied unchanged. */
void value_append_wire(sqlite3_str *out, const char *z, int n);

/* Register sync_val(json_fragment) on db: the SQLite value of one JSON value
** as produced by the -> operator: numbers as INTEGER when they fit 64 bits
** and have no fraction or exponent, else REAL (correctly rounded); strings
** unescaped to TEXT; true/false as 1/0; {"$base64":..} and {"$hex":..} as
** BLOB; any other object or array as its JSON text; SQL NULL stays NULL.
** Returns an SQLite result code. */
int value_register(sqlite3 *db);

/* The double a JSON number's text z denotes, correctly rounded, whatever
** the host's locale. */
double value_atof(const char *z);

/* Bind the one JSON value z[0..n) (as the -> operator renders it) to
** parameter idx of stmt, by the rules of sync_val. A string without escapes
** is bound in place: z must outlive the statement's next reset. Returns an
** SQLite code; SQLITE_ERROR with *pzErr (static) set to sync_val's message
** for a malformed value. */
int value_bind(sqlite3_stmt *stmt, int idx, const char *z, int n, const char **pzErr);

/* The same as the result of ctx (an error with sync_val's message for a
** malformed value). A string without escapes points into z, which must
** outlive the statement's use of the result. */
void value_result(sqlite3_context *ctx, const char *z, int n);

#endif
