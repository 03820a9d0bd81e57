/*
** http.h: the worker's HTTP transport over libcurl.
**
** One http_req per channel (push, pull, events, health probe). The easy
** handle is kept and reset between requests, so connections are reused by
** the curl_multi handle (worker) or by the handle itself (sync_push and
** sync_pull on the caller's thread). Every request has a connect timeout
** and a low-speed timeout; a response body is buffered up to a cap (or
** streamed to a callback, for the event stream), never more. TLS peers are
** verified (libcurl's default, never turned off; ca_file adds a CA bundle)
** and redirects are not followed. Compressed answers are asked for and
** decoded by libcurl (CURLOPT_ACCEPT_ENCODING); the cap counts decoded bytes.
**
**   http_req r; http_req_init(&r);
**   http_opts o = {.token = tok, .timeout_ms = 30000, .max_body = 16 << 20};
**   if (http_prepare(&r, url, body, &o) == 0) {
**     CURLcode cc = curl_easy_perform(r.easy);     // or add r.easy to a multi
**     http_finish(&r, cc);                          // status, error text
**   }
**   http_req_free(&r);
*/
#ifndef SYNC_HTTP_H
#define SYNC_HTTP_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

/* Returns 0 once curl_global_init has succeeded (done once per process,
** under pthread_once; curl_global_cleanup is never called). */
int http_global_init(void);

typedef struct http_opts {
  const char *token;         /* Bearer token or NULL */
  const char *ca_file;       /* CAINFO or NULL */
  const char *header;        /* one extra "Name: value" header or NULL */
  const char *last_event_id; /* Last-Event-ID header or NULL */
  long timeout_ms;           /* total time for a request; 0 = none (event stream) */
  long stall_ms;             /* abort when under 1 byte/s for this long */
  size_t max_body;           /* response body cap in bytes */
  int identity;              /* ask for uncompressed answers only */
} http_opts;

/* Streamed response: called with each chunk of a 2xx body instead of
** buffering it. Return 0 to go on, HTTP_PAUSE to pause the transfer (the
** same bytes come again after curl_easy_pause(easy, CURLPAUSE_CONT)), any
** other non-zero value to abort it. */
#define HTTP_PAUSE (-1)
typedef int (*http_on_data)(void *arg, const char *p, size_t n);

typedef struct http_req {
  CURL *easy;
  struct curl_slist *hdrs;
  char *post; /* the request body (owned) */
  char *buf;  /* the response body, NUL-terminated when n > 0 */
  size_t n, cap, max;
  int too_big; /* the body went over max: the transfer was aborted */
  int aborted; /* on_data asked to stop */
  http_on_data on_data;
  void *arg;
  int stream;       /* an event-stream request: the answer must be text/event-stream */
  int bad_type;     /* a 2xx answer of another content type: aborted */
  char *token;      /* a copy of the token, to keep it out of msg (wiped at free) */
  long status;      /* HTTP status, 0 when no response */
  int64_t retry_ms; /* parsed Retry-After, -1 when none */
  char err[CURL_ERROR_SIZE];
  char ctype[64]; /* the content type of a refused 2xx answer */
  char msg[320];  /* after http_finish: "" on a 2xx, else what went wrong */
  int net;        /* after http_finish: 1 when the server could not be reached */
} http_req;

void http_req_init(http_req *);

/* Sets the request up: GET when post is NULL, else POST of that JSON (the
** text is copied). Returns 0, or -1 when out of memory (r->msg says so). */
int http_prepare(http_req *, const char *url, const char *post, const http_opts *);

/* After the transfer ends with cc: fills status, retry_ms, msg and net.
** A 2xx answer counts as one only with the expected content type
** (application/json, or text/event-stream for a stream); a 3xx is an error
** naming where it pointed (redirects are never followed: they could take
** the token to another host); the token is masked out of msg. */
void http_finish(http_req *, CURLcode cc);

/* Replaces each occurrence of token in the string z, in place, with
** "********" (shorter tokens with as many stars): an error text can hold
** what a server echoed back. NULL or empty token: nothing. */
void http_mask_token(char *z, const char *token);

/* Frees what the request holds (the easy handle too). Safe to repeat. */
void http_req_free(http_req *);

/* base + path + "?" + query built from name/value pairs (values escaped;
** a NULL value leaves the pair out). sqlite3_malloc'd, NULL on OOM. */
char *http_url(const char *base, const char *path, const char *const *pairs, int nPairs);

#endif
