/*
** http.c: libcurl requests for the worker and for sync_push/sync_pull.
** See http.h. Memory for bodies comes from sqlite3_malloc64; curl's own
** allocations stay curl's.
*/
#include "sqlite_api.h"

#include "backoff.h"
#include "http.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_rc = CURLE_FAILED_INIT;

static void global_init(void) {
  init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int http_global_init(void) {
  pthread_once(&init_once, global_init);
  return init_rc == CURLE_OK ? 0 : -1;
}

void http_req_init(http_req *r) {
  memset(r, 0, sizeof *r);
  r->retry_ms = -1;
}

static void token_drop(http_req *r) {
  if (r->token) memset(r->token, 0, strlen(r->token));
  sqlite3_free(r->token);
  r->token = 0;
}

void http_req_free(http_req *r) {
  token_drop(r);
  if (r->easy) curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->hdrs);
  sqlite3_free(r->post);
  sqlite3_free(r->buf);
  http_req_init(r);
}

/* 1 when a 2xx answer has the content type the request asked for (the
** media type, compared without parameters such as charset); else 0, with
** the type it had kept in r->ctype. */
static int type_ok(http_req *r) {
  const char *want = r->stream ? "text/event-stream" : "application/json";
  const char *ct = 0;
  curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct);
  size_t n = strlen(want);
  if (ct && strncasecmp(ct, want, n) == 0 && strchr("; \t", ct[n])) return 1;
  snprintf(r->ctype, sizeof r->ctype, "%s", ct ? ct : "none");
  for (char *q = r->ctype; *q; q++)
    if ((unsigned char)*q < 0x20 || *q == '"') *q = '?';
  return 0;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg) {
  http_req *r = arg;
  size_t n = size * nmemb;
  long status = 0;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
  int ok = status >= 200 && status < 300;
  if (ok && !type_ok(r)) {
    /* Not the sync server's answer (a captive portal, a misrouted proxy):
    ** refused before any of it is kept. */
    r->bad_type = 1;
    return 0;
  }
  if (r->on_data) {
    if (ok) {
      int rc = r->on_data(r->arg, p, n);
      if (rc == HTTP_PAUSE) return CURL_WRITEFUNC_PAUSE;
      if (rc) {
        r->aborted = 1;
        return 0;
      }
      return n;
    }
    /* An error answer to a stream request is buffered like any other. */
  }
  if (r->n + n > r->max) {
    r->too_big = 1;
    return 0;
  }
  if (r->n + n + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < r->n + n + 1)
      cap *= 2;
    if (cap > r->max + 1) cap = r->max + 1;
    char *b = sqlite3_realloc64(r->buf, cap);
    if (!b) return 0;
    r->buf = b;
    r->cap = cap;
  }
  memcpy(r->buf + r->n, p, n);
  r->n += n;
  r->buf[r->n] = 0;
  return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg) {
  http_req *r = arg;
  size_t n = size * nmemb;
  static const char name[] = "retry-after:";
  if (n > sizeof name - 1 && n < 256 && strncasecmp(p, name, sizeof name - 1) == 0) {
    char v[256];
    memcpy(v, p + sizeof name - 1, n - (sizeof name - 1));
    v[n - (sizeof name - 1)] = 0;
    r->retry_ms = backoff_parse_retry_after(v, time(0));
  }
  return n;
}

int http_prepare(http_req *r, const char *url, const char *post, const http_opts *o) {
  if (r->easy)
    curl_easy_reset(r->easy);
  else
    r->easy = curl_easy_init();
  curl_slist_free_all(r->hdrs);
  r->hdrs = 0;
  sqlite3_free(r->post);
  r->post = 0;
  r->n = 0;
  if (r->buf) r->buf[0] = 0;
  r->too_big = r->aborted = r->net = r->bad_type = 0;
  r->stream = o->last_event_id != 0;
  r->status = 0;
  r->retry_ms = -1;
  r->err[0] = r->msg[0] = r->ctype[0] = 0;
  r->max = o->max_body ? o->max_body : (size_t)16 << 20;
  token_drop(r);
  if (o->token && *o->token && !(r->token = sqlite3_mprintf("%s", o->token))) goto nomem;
  if (!r->easy) goto nomem;
  CURL *e = r->easy;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->err);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  /* A declared Content-Length over the cap fails before the body comes
  ** (not for a stream: it has no end, its parser caps lines and events). */
  if (!r->stream) curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  /* Offer every coding this libcurl decodes (syncd gzips pages and event
  ** streams, docs/PROTOCOL.md): pages are JSON that shrinks several times.
  ** on_write sees the decoded bytes, so max_body still caps what is kept.
  ** sync_config('compress', 'off') offers none (a proxy that mangles it). */
  if (!o->identity) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  long connect_ms = o->timeout_ms > 0 && o->timeout_ms < 10000 ? o->timeout_ms : 10000;
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  if (o->timeout_ms > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
  long stall = o->stall_ms > 0 ? o->stall_ms : o->timeout_ms > 0 ? o->timeout_ms : 60000;
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, stall < 1000 ? 1L : stall / 1000);
  if (o->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
  struct curl_slist *h = 0, *t;
#define ADD(s)                                                                                     \
  do {                                                                                             \
    if (!(t = curl_slist_append(h, (s)))) goto nomem_h;                                            \
    h = t;                                                                                         \
  } while (0)
  ADD(o->last_event_id ? "Accept: text/event-stream" : "Accept: application/json");
  if (post) ADD("Content-Type: application/json");
  ADD("Expect:");
  if (o->token && *o->token) {
    char *a = sqlite3_mprintf("Authorization: Bearer %s", o->token);
    if (!a) goto nomem_h;
    t = curl_slist_append(h, a);
    sqlite3_free(a);
    if (!t) goto nomem_h;
    h = t;
  }
  if (o->header && *o->header) ADD(o->header);
  /* The id comes from the server (an event id or a page's cursor): one
  ** with a line break would smuggle in headers. The cursor parameter of
  ** the URL (escaped) still carries it. */
  if (o->last_event_id && *o->last_event_id && !strpbrk(o->last_event_id, "\r\n")) {
    char *a = sqlite3_mprintf("Last-Event-ID: %s", o->last_event_id);
    if (!a) goto nomem_h;
    t = curl_slist_append(h, a);
    sqlite3_free(a);
    if (!t) goto nomem_h;
    h = t;
  }
#undef ADD
  r->hdrs = h;
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  if (post) {
    size_t n = strlen(post);
    r->post = sqlite3_malloc64(n + 1);
    if (!r->post) goto nomem;
    memcpy(r->post, post, n + 1);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->post);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
  }
  return 0;
nomem_h:
  curl_slist_free_all(h);
nomem:
  snprintf(r->msg, sizeof r->msg, "out of memory");
  return -1;
}

/* The "error" of a JSON error answer, else the start of the body. */
static void error_text(http_req *r, char *out, size_t n) {
  out[0] = 0;
  if (!r->buf || !r->n) return;
  cJSON *j = cJSON_ParseWithLength(r->buf, r->n);
  const cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : 0;
  if (cJSON_IsString(e))
    snprintf(out, n, "%s", e->valuestring);
  else
    snprintf(out, n, "%.*s", (int)(r->n < 120 ? r->n : 120), r->buf);
  cJSON_Delete(j);
  for (char *p = out; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
}

void http_mask_token(char *z, const char *token) {
  static const char mask[] = "********";
  size_t n = token && z ? strlen(token) : 0;
  size_t m = sizeof mask - 1 < n ? sizeof mask - 1 : n;
  char *from = z, *p;
  while (n && (p = strstr(from, token)) != 0) {
    memmove(p + m, p + n, strlen(p + n) + 1);
    memcpy(p, mask, m);
    from = p + m;
  }
}

void http_finish(http_req *r, CURLcode cc) {
  r->status = 0;
  if (r->easy) curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
  r->net = 0;
  r->msg[0] = 0;
  int ok = r->status >= 200 && r->status < 300;
  if (ok && !r->bad_type && cc == CURLE_OK && !type_ok(r)) r->bad_type = 1;
  if (r->too_big || cc == CURLE_FILESIZE_EXCEEDED) {
    r->too_big = 1;
    snprintf(r->msg, sizeof r->msg, "response body over %zu bytes", r->max);
  } else if (r->bad_type) {
    snprintf(r->msg, sizeof r->msg, "HTTP %ld with content type \"%s\", not %s", r->status,
             r->ctype, r->stream ? "text/event-stream" : "application/json");
  } else if (r->aborted) {
    snprintf(r->msg, sizeof r->msg, "stream aborted");
  } else if (cc != CURLE_OK) {
    /* No usable answer: the server is unreachable, hung or went away. */
    r->net = 1;
    snprintf(r->msg, sizeof r->msg, "%s", r->err[0] ? r->err : curl_easy_strerror(cc));
  } else if (r->status >= 300 && r->status < 400) {
    const char *to = 0;
    curl_easy_getinfo(r->easy, CURLINFO_REDIRECT_URL, &to);
    snprintf(r->msg, sizeof r->msg, "HTTP %ld: redirect to %.200s not followed", r->status,
             to ? to : "(no Location)");
  } else if (!ok) {
    char e[200];
    error_text(r, e, sizeof e);
    snprintf(r->msg, sizeof r->msg, "HTTP %ld%s%s", r->status, e[0] ? ": " : "", e);
  }
  http_mask_token(r->msg, r->token);
}

char *http_url(const char *base, const char *path, const char *const *pairs, int nPairs) {
  sqlite3_str *s = sqlite3_str_new(0);
  size_t n = strlen(base);
  while (n > 0 && base[n - 1] == '/')
    n--;
  sqlite3_str_append(s, base, (int)n);
  sqlite3_str_appendall(s, path);
  int first = 1;
  for (int i = 0; i + 1 < 2 * nPairs; i += 2) {
    if (!pairs[i + 1]) continue;
    char *v = curl_easy_escape(0, pairs[i + 1], 0);
    if (!v) {
      sqlite3_free(sqlite3_str_finish(s));
      return 0;
    }
    sqlite3_str_appendf(s, "%c%s=%s", first ? '?' : '&', pairs[i], v);
    curl_free(v);
    first = 0;
  }
  return sqlite3_str_finish(s);
}
