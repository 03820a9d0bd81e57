/*
** reply.c: JSON responses (reply.h): a body taken over, or {"error":msg}.
*/
#include "reply.h"

#include <string.h>

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

struct MHD_Response *reply_error(const char *msg) {
  sqlite3_str *out = sqlite3_str_new(0);
  sqlite3_str_appendall(out, "{\"error\":");
  value_append_string(out, msg, -1);
  sqlite3_str_appendchar(out, 1, '}');
  return reply_json(sqlite3_str_finish(out));
}
