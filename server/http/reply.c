/*
** reply.c: JSON responses (reply.h): a body taken over, gzipped when the
** client takes it and it is large enough, or {"error":msg}.
*/
#include "reply.h"

#include <string.h>

#include "compress.h"
#include "value.h"

struct MHD_Response *reply_json(char *body) {
  struct MHD_Response *r =
      body ? MHD_create_response_from_buffer_with_free_callback(strlen(body), body, sqlite3_free)
           : 0;
  if (!r) {
    sqlite3_free(body);
    return 0;
  }
  MHD_add_response_header(r, "Content-Type", "application/json");
  return r;
}

struct MHD_Response *reply_json_gz(char *body, int gzip) {
  size_t n = body ? strlen(body) : 0, zn = 0;
  char *z = gzip && n >= COMPRESS_MIN ? compress_gzip(body, n, &zn) : 0;
  /* out of memory for the copy, or nothing gained: the body as it is */
  if (!z || zn >= n) {
    sqlite3_free(z);
    return reply_json(body);
  }
  sqlite3_free(body);
  struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(zn, z, sqlite3_free);
  if (!r) {
    sqlite3_free(z);
    return 0;
  }
  MHD_add_response_header(r, "Content-Type", "application/json");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
  return r;
}

struct MHD_Response *reply_error(const char *msg) {
  return reply_error_with(msg, 0, 0);
}

struct MHD_Response *reply_error_with(const char *msg, const char *key, const char *value) {
  sqlite3_str *out = sqlite3_str_new(0);
  sqlite3_str_appendall(out, "{\"error\":");
  value_append_string(out, msg, -1);
  if (key) {
    sqlite3_str_appendchar(out, 1, ',');
    value_append_string(out, key, -1);
    sqlite3_str_appendchar(out, 1, ':');
    value_append_string(out, value, -1);
  }
  sqlite3_str_appendchar(out, 1, '}');
  return reply_json(sqlite3_str_finish(out));
}
