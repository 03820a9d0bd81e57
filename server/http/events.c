/*
** events.c: GET /events, the Server-Sent Events fan-out.
**
** Each stream runs in its own libmicrohttpd connection thread
** (MHD_USE_THREAD_PER_CONNECTION), so its content reader may block: it
** pulls the change log after its cursor and sends each non-empty page as
** one event, then sleeps on one shared condition variable until a push
** commits (events_notify, also called on a PostgreSQL NOTIFY), the
** heartbeat is due, a stream was replaced (conns.c cut it, and only its
** own reader can end it), or the server shuts down. Streams never hold
** data of their own beyond the event being written.
**
** With a tables parameter (read as /pull reads it, store_pull_tables) a
** stream carries only the changes of those tables, so a client receives
** only what it tracks; a commit that changes none of them sends nothing,
** the stream's cursor moves past it all the same.
**
** A stream whose client accepts gzip is one gzip member: each event and
** heartbeat is deflated and flushed (Z_SYNC_FLUSH) on its own, so the
** client can decode it the moment it arrives, while the deflate state
** (compress.c, a fixed size) lets later events refer to earlier ones; the
** member's end is written when the stream ends.
**
** A stream opened with a JWT ends when the token expires (its exp plus
** the leeway): the client reconnects with a renewed one, or gets a 401.
*/
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "value.h"
#include "compress.h"
#include "conns.h"
#include "events.h"
#include "reply.h"

#define EVENT_PAGE 1000

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static pthread_once_t cond_once = PTHREAD_ONCE_INIT;
static unsigned long long generation; /* bumped on every notify */
static unsigned long long kicks;      /* bumped when conns.c cut streams */
static int stopping;

/* Heartbeat deadlines must not jump with the wall clock. */
static void cond_init(void) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&cond, &a);
  pthread_condattr_destroy(&a);
}

void events_notify(void *unused) {
  (void)unused;
  pthread_once(&cond_once, cond_init);
  pthread_mutex_lock(&mu);
  generation++;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&mu);
}

/* Wake every stream to look whether conns.c cut it; none pulls for it. */
static void kick(void) {
  pthread_mutex_lock(&mu);
  kicks++;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&mu);
}

void events_shutdown(void) {
  pthread_once(&cond_once, cond_init);
  pthread_mutex_lock(&mu);
  stopping = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&mu);
}

typedef struct stream {
  store *st;
  struct MHD_Connection *c; /* valid in the content reader, which runs in c's thread */
  char *client_id;
  char *tables; /* the tables parameter as decoded (store_pull_tables); NULL: all */
  char *cursor;
  int heartbeat;
  long long expires;   /* wall-clock second the credentials lapse; 0: never */
  char *sub, *claims;  /* the user the rules filter for; sub NULL: none */
  int dirty;           /* the log may hold changes after cursor */
  compress_stream *gz; /* with gzip: the member's deflate state; else NULL */
  int ended;           /* the last bytes (a gzip member's end) are out */
  char *buf;           /* the event being written (deflated, with gzip) */
  size_t len, off;
  struct timespec sent; /* when buf was last filled: the heartbeat counts from it */
} stream;

static void stream_free(void *cls) {
  stream *s = cls;
  sqlite3_free(s->client_id);
  sqlite3_free(s->sub);
  sqlite3_free(s->claims);
  sqlite3_free(s->tables);
  sqlite3_free(s->cursor);
  sqlite3_free(s->buf);
  compress_stream_free(s->gz);
  sqlite3_free(s);
}

/* The next bytes to send: text (taken over; NULL: out of memory), deflated
** and flushed with gzip. s->buf is NULL when out of memory. */
static void stream_set(stream *s, char *text) {
  sqlite3_free(s->buf);
  s->buf = text;
  s->len = text ? strlen(text) : 0;
  s->off = 0;
  if (text && s->gz) {
    s->buf = compress_stream_put(s->gz, text, s->len, 0, &s->len);
    sqlite3_free(text);
  }
  clock_gettime(CLOCK_MONOTONIC, &s->sent);
}

/* Fill s->buf with the next event (or heartbeat). Returns 0, or -1 when the
** stream must end (shutdown, expired cursor, storage failure). */
static int next_event(stream *s) {
  for (;;) {
    if (s->expires && (long long)time(0) >= s->expires) return -1;
    pthread_mutex_lock(&mu);
    unsigned long long seen = generation, seen_kicks = kicks;
    int stop = stopping;
    pthread_mutex_unlock(&mu);
    if (stop || conns_cut(s->c)) return -1;
    if (s->dirty) {
      store_page page;
      char *err = 0;
      store_user u = {s->sub, s->claims};
      int rc = store_pull_as(s->st, s->sub ? &u : 0, s->client_id, s->cursor, EVENT_PAGE, 0,
                             s->tables, &page, &err);
      sqlite3_free(err);
      if (rc != STORE_OK) return -1;
      sqlite3_free(s->cursor);
      s->cursor = page.cursor;
      page.cursor = 0;
      /* a page whose changes the rules all withheld may have more after it */
      s->dirty = page.n_changes > 0 || page.has_more;
      if (page.n_changes > 0) {
        stream_set(s,
                   sqlite3_mprintf("event: changes\nid: %s\ndata: %s\n\n", s->cursor, page.json));
        store_page_clear(&page);
        return s->buf ? 0 : -1;
      }
      store_page_clear(&page);
    }
    struct timespec deadline = s->sent;
    deadline.tv_sec += s->heartbeat;
    if (s->expires) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      /* a second more: wake after the wall clock has passed it */
      long long left = s->expires - (long long)time(0) + 1;
      if (now.tv_sec + left < deadline.tv_sec) deadline = (struct timespec){now.tv_sec + left, 0};
    }
    int timedout = 0;
    pthread_mutex_lock(&mu);
    while (!stopping && generation == seen && kicks == seen_kicks && !timedout)
      timedout = pthread_cond_timedwait(&cond, &mu, &deadline) != 0;
    stop = stopping;
    s->dirty = generation != seen;
    pthread_mutex_unlock(&mu);
    if (stop || conns_cut(s->c)) return -1;
    if (s->expires && (long long)time(0) >= s->expires) return -1;
    if (timedout && !s->dirty) {
      stream_set(s, sqlite3_mprintf(": ping\n\n"));
      return s->buf ? 0 : -1;
    }
  }
}

/* The stream ends: with gzip, the member's end goes out first (a client
** may check it), then nothing more. Returns 0 when there is that to send. */
static int stream_end(stream *s) {
  if (s->ended || !s->gz) return -1;
  s->ended = 1;
  sqlite3_free(s->buf);
  s->buf = compress_stream_put(s->gz, "", 0, 1, &s->len);
  s->off = 0;
  return s->buf ? 0 : -1;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
  stream *s = cls;
  (void)pos;
  if (s->off == s->len && (s->ended || next_event(s)) && stream_end(s))
    return MHD_CONTENT_READER_END_OF_STREAM;
  size_t n = s->len - s->off < max ? s->len - s->off : max;
  memcpy(out, s->buf + s->off, n);
  s->off += n;
  return (ssize_t)n;
}

int events_start(const server_ctx *ctx, struct MHD_Connection *c, const char *client_id,
                 char *cursor, const store_user *user, long long expires, int gzip,
                 struct MHD_Response **resp) {
  pthread_once(&cond_once, cond_init);
  *resp = 0;
  stream *s = sqlite3_malloc64(sizeof *s);
  char *err = 0;
  if (!s) {
    sqlite3_free(cursor);
    *resp = reply_error("out of memory");
    return MHD_HTTP_INTERNAL_SERVER_ERROR;
  }
  memset(s, 0, sizeof *s);
  s->st = ctx->st;
  s->c = c;
  s->heartbeat = ctx->heartbeat;
  s->expires = expires;
  if (user) {
    s->sub = sqlite3_mprintf("%s", user->sub);
    s->claims = user->claims ? sqlite3_mprintf("%s", user->claims) : 0;
  }
  s->client_id = sqlite3_mprintf("%s", client_id);
  s->cursor = cursor;
  s->dirty = 1;
  const char *tables = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "tables");
  int oom = (gzip && !(s->gz = compress_stream_new())) ||
            (tables && !(s->tables = sqlite3_mprintf("%s", tables))) ||
            (user && (!s->sub || (user->claims && !s->claims)));
  /* Check the cursor now: an expired one must be a 410, not a stream. */
  int rc = oom ? STORE_ERROR : s->cursor ? STORE_OK : store_head(ctx->st, &s->cursor, &err);
  if (rc == STORE_OK) {
    store_page page;
    rc = store_pull(ctx->st, client_id, s->cursor, 1, 0, &page, &err);
    if (rc == STORE_OK) store_page_clear(&page);
  }
  if (rc != STORE_OK || !s->client_id) {
    int status = rc == STORE_EXPIRED      ? MHD_HTTP_GONE
                 : rc == STORE_BAD_CURSOR ? MHD_HTTP_BAD_REQUEST
                                          : MHD_HTTP_INTERNAL_SERVER_ERROR;
    *resp = reply_error(rc == STORE_EXPIRED      ? "cursor expired"
                        : rc == STORE_BAD_CURSOR ? "malformed cursor"
                        : err                    ? err
                                                 : "out of memory");
    sqlite3_free(err);
    stream_free(s);
    return status;
  }
  int replaced = 0;
  rc = conns_stream(c, client_id, s->sub, ctx->max_streams_per_client, ctx->max_streams_per_user,
                    &replaced);
  if (replaced) kick();
  if (rc != CONNS_STREAM_OK) {
    stream_free(s);
    if (rc == CONNS_STREAM_ERROR) {
      *resp = reply_error("out of memory");
      return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    /* streams may not take the slots requests need, nor one user those of
    ** the others; one ending frees one */
    *resp = reply_error(rc == CONNS_STREAM_USER
                            ? "too many event streams for this user: try again later"
                            : "too many event streams: try again later");
    if (*resp) MHD_add_response_header(*resp, MHD_HTTP_HEADER_RETRY_AFTER, "5");
    return MHD_HTTP_TOO_MANY_REQUESTS;
  }
  /* A first comment gets the headers out before the stream blocks. */
  stream_set(s, sqlite3_mprintf(": ok\n\n"));
  *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
  if (!*resp) {
    stream_free(s);
    return MHD_HTTP_INTERNAL_SERVER_ERROR;
  }
  MHD_add_response_header(*resp, "Content-Type", "text/event-stream");
  MHD_add_response_header(*resp, "Cache-Control", "no-cache");
  if (gzip) MHD_add_response_header(*resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
  if (ctx->compress) MHD_add_response_header(*resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
  /* Idle streams are normal; heartbeats keep the socket busy. */
  MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0);
  return MHD_HTTP_OK;
}
