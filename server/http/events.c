/*
** events.c: GET /events, the Server-Sent Events fan-out.
**
** A stream holds no thread. The libmicrohttpd polling thread serving its
** connection calls its content reader whenever the socket can take more;
** when the event being written is out (and freed), the reader suspends
** the connection (MHD_suspend_connection: returning 0 without it would
** make the polling thread call it again at once) and queues the stream
** for one of EVENT_WORKERS event workers here. A worker pulls the change
** log after the stream's cursor and, when a non-empty page comes back,
** makes it the next event and resumes the connection; otherwise it parks
** the stream on the waiting list, still suspended. A push that commits
** (events_notify, also called on a PostgreSQL NOTIFY) moves every waiting
** stream back to the workers; a ticker moves those whose heartbeat is due
** or whose credentials lapsed, and at its next round those conns.c
** replaced (only a stream's own reader can end it); shutdown moves them
** all, and a worker ends each (the reader then returns the end of the
** stream). So the threads are a fixed few however many streams are open,
** a waiting stream costs its connection and its deflate state, and the
** storage sees at most EVENT_WORKERS pulls at once. The workers run nicer
** than the polling threads, which must not wait out a fan-out's pulls
** (docs/ARCHITECTURE.md, "syncd's threads").
**
** A worker that takes a stream to pull also takes the queued streams at
** the same cursor, with the same tables and user (up to EVENT_GROUP of
** them), and reads the change log once for all (store_pull_group): a push
** wakes every caught-up stream at the same cursor, so a fan-out to 10,000
** streams is a few reads, not 10,000. Their identity streams share the
** event's bytes (a counted `shared`), each adding only its own
** last_mutation_id; a gzip stream deflates its own copy. Streams are
** resumed at a steady pace (resume), not a read's hundreds at once.
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
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "value.h"
#include "compress.h"
#include "conns.h"
#include "events.h"
#include "reply.h"

#define EVENT_PAGE 1000
#define EVENT_GROUP 256              /* streams one read of the change log serves at most */
#define EVENT_SCAN 4096              /* queued streams a worker looks through for them */
#define EVENT_RESUME_NS 8000         /* streams are resumed at most one per this: resume() */
#define EVENT_RESUME_NS_PER_KB 1000  /* or per KB of its event, if more */
#define EVENT_RESUME_AHEAD_NS 300000 /* how far ahead of its time one may go */
#define TICK_MS 100
#define EVENT_NICE 10 /* how much nicer the event workers are than syncd */

/* The bytes a group's identity streams share: the event's name and id
** lines and its data up to the last_mutation_id's digits, NUL-ended. */
typedef struct shared {
  int refs; /* atomic: each stream writing it, and its maker until done */
  size_t len;
  char z[];
} shared;

static void shared_put(shared *h) {
  if (h && __atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) == 0) sqlite3_free(h);
}

typedef struct stream {
  store *st;
  struct MHD_Connection *c; /* alive while the stream is: suspended or in its reader */
  char *client_id;
  char *tables; /* the tables parameter as decoded (store_pull_tables); NULL: all */
  char *cursor;
  int heartbeat;
  long long expires;       /* wall-clock second the credentials lapse; 0: never */
  char *sub, *claims;      /* the user the rules filter for; sub NULL: none */
  int dirty;               /* the log may hold changes after cursor */
  unsigned long long seen; /* the generation its last pull began at */
  int finish;              /* end the stream once buf is out */
  compress_stream *gz;     /* with gzip: the member's deflate state; else NULL */
  int ended;               /* the last bytes (a gzip member's end) are out */
  shared *share;           /* the event's shared bytes, written before buf; NULL: none */
  size_t share_off;
  char *buf; /* the event being written (deflated, with gzip) */
  size_t len, off;
  struct timespec sent;       /* when buf was last filled: the heartbeat counts from it */
  struct stream *prev, *next; /* on the waiting list or the queue (under mu) */
} stream;

/* A list of suspended streams: the waiting ones, or those queued for a
** worker. Each stream is on one at most, and only while suspended. */
typedef struct stream_list {
  stream *head, *tail;
} stream_list;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER; /* the queue has streams */
static pthread_cond_t tick;                            /* the ticker's (monotonic) */
static stream_list waiting, queue;
static unsigned long long generation; /* bumped on every notify */
static int running, stopping;
static int kicked; /* conns.c cut streams since the ticker's last round */
static pthread_t workers[EVENT_WORKERS], ticker_thread;
static int n_workers, has_ticker;
static unsigned long long reads; /* the change log's reads for streams (atomic) */
static pthread_mutex_t pace_mu = PTHREAD_MUTEX_INITIALIZER;
static struct timespec pace_next; /* when the next stream may be resumed (resume) */

static void list_add(stream_list *l, stream *s) {
  s->next = 0;
  s->prev = l->tail;
  if (l->tail)
    l->tail->next = s;
  else
    l->head = s;
  l->tail = s;
}

static void list_remove(stream_list *l, stream *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    l->head = s->next;
  if (s->next)
    s->next->prev = s->prev;
  else
    l->tail = s->prev;
  s->prev = s->next = 0;
}

/* Every waiting stream to the workers, in one step (under mu). */
static void wake_all(void) {
  if (!waiting.head) return;
  if (queue.tail) {
    queue.tail->next = waiting.head;
    waiting.head->prev = queue.tail;
  } else {
    queue.head = waiting.head;
  }
  queue.tail = waiting.tail;
  waiting.head = waiting.tail = 0;
  pthread_cond_broadcast(&work);
}

void events_notify(void *unused) {
  (void)unused;
  pthread_mutex_lock(&mu);
  generation++;
  wake_all();
  pthread_mutex_unlock(&mu);
}

/* conns.c cut streams to admit a newer one: the ticker's next round
** hands the waiting ones it cut to a worker, which ends them. One round
** for any number of kicks: a storm of reconnecting clients must not walk
** the waiting list once each. */
static void kick(void) {
  pthread_mutex_lock(&mu);
  kicked = 1;
  pthread_mutex_unlock(&mu);
}

static void stream_free(void *cls) {
  stream *s = cls;
  sqlite3_free(s->client_id);
  sqlite3_free(s->sub);
  sqlite3_free(s->claims);
  sqlite3_free(s->tables);
  sqlite3_free(s->cursor);
  sqlite3_free(s->buf);
  shared_put(s->share);
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

static int heartbeat_due(const stream *s, const struct timespec *now) {
  return now->tv_sec > s->sent.tv_sec + s->heartbeat ||
         (now->tv_sec == s->sent.tv_sec + s->heartbeat && now->tv_nsec >= s->sent.tv_nsec);
}

/* One read of the change log for a group of streams (read_for), which
** each of them takes its event from (take). */
typedef struct group_read {
  int rc;
  store_page page;
  long long last[EVENT_GROUP]; /* each stream's last_mutation_id */
  shared *share;               /* made by the first stream that sends it */
} group_read;

static void read_for(stream *const *g, int n, group_read *r) {
  const char *clients[EVENT_GROUP];
  for (int i = 0; i < n; i++)
    clients[i] = g[i]->client_id;
  const stream *s = g[0];
  store_user u = {s->sub, s->claims};
  char *err = 0;
  r->share = 0;
  r->rc = store_pull_group(s->st, s->sub ? &u : 0, clients, n, s->cursor, EVENT_PAGE, s->tables,
                           &r->page, r->last, &err);
  sqlite3_free(err);
  __atomic_add_fetch(&reads, 1, __ATOMIC_RELAXED);
}

static void read_done(group_read *r) {
  store_page_clear(&r->page);
  shared_put(r->share);
}

/* "event: changes", the id line and the data up to the last id's digits */
static shared *share_make(const store_page *page) {
  static const char a[] = "event: changes\nid: ", b[] = "\ndata: ";
  size_t nc = strlen(page->cursor), n = sizeof a - 1 + nc + sizeof b - 1 + (size_t)page->last_at;
  shared *h = sqlite3_malloc64(sizeof *h + n + 1);
  if (!h) return 0;
  h->refs = 1;
  h->len = n;
  char *z = h->z;
  memcpy(z, a, sizeof a - 1), z += sizeof a - 1;
  memcpy(z, page->cursor, nc), z += nc;
  memcpy(z, b, sizeof b - 1), z += sizeof b - 1;
  memcpy(z, page->json, (size_t)page->last_at), z += page->last_at;
  *z = 0;
  return h;
}

/* s, the i-th stream of r's group, takes its part of r: 1, its next event
** is set; 0, the page was empty (the cursor moved on); -1, s must end. */
static int take(stream *s, group_read *r, int i) {
  if (r->rc != STORE_OK) return -1;
  char *cursor = sqlite3_mprintf("%s", r->page.cursor);
  if (!cursor) return -1;
  sqlite3_free(s->cursor);
  s->cursor = cursor;
  /* the page ends at the log's head as of the read unless it says more
  ** is there (the rules may have withheld a whole page) */
  s->dirty = r->page.has_more;
  if (r->page.n_changes <= 0) return 0;
  if (!r->share && !(r->share = share_make(&r->page))) return -1;
  const char *rest = r->page.json + r->page.last_at;
  rest += strspn(rest, "-0123456789");
  shared_put(s->share);
  s->share = 0;
  if (s->gz) {
    stream_set(s, sqlite3_mprintf("%s%lld%s\n\n", r->share->z, r->last[i], rest));
  } else {
    stream_set(s, sqlite3_mprintf("%lld%s\n\n", r->last[i], rest));
    if (s->buf) {
      __atomic_add_fetch(&r->share->refs, 1, __ATOMIC_RELAXED);
      s->share = r->share;
      s->share_off = 0;
    }
  }
  return s->buf ? 1 : -1;
}

/* On a worker, s suspended: fill s->buf with the next event or heartbeat,
** or set s->finish (shutdown, cut, expired credentials or cursor, storage
** failure): 1, resume it. 0: nothing to send yet, s is on the waiting
** list (or the queue again) and no longer the worker's. r: a read the
** worker made for s (its i-th stream) to take first. */
static int fill(stream *s, group_read *r, int i) {
  for (;;) {
    if (conns_cut(s->c) || (s->expires && (long long)time(0) >= s->expires)) return s->finish = 1;
    pthread_mutex_lock(&mu);
    unsigned long long now_gen = generation;
    int stop = stopping;
    pthread_mutex_unlock(&mu);
    if (stop) return s->finish = 1;
    int got = 0;
    if (r) {
      got = take(s, r, i);
      r = 0;
    } else if (s->dirty || s->seen != now_gen) {
      /* a commit notified after this read bumps the generation again */
      s->seen = now_gen;
      group_read own;
      read_for(&s, 1, &own);
      got = take(s, &own, 0);
      read_done(&own);
    }
    if (got < 0) return s->finish = 1;
    if (got) return 1;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (heartbeat_due(s, &now)) {
      stream_set(s, sqlite3_mprintf(": ping\n\n"));
      return s->buf ? 1 : (s->finish = 1);
    }
    pthread_mutex_lock(&mu);
    int park = !stopping && !s->dirty && s->seen == generation;
    if (park) list_add(&waiting, s);
    pthread_mutex_unlock(&mu);
    if (park) return 0;
  }
}

static int same(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* Under mu, s taken off the queue to pull: into g, s and the queued
** streams that can share its read (same store, cursor, tables and user,
** and due for a pull), taken off the queue and marked as pulled at this
** generation. Returns how many. */
static int gather(stream *s, stream **g) {
  int n = 0, scan = 0;
  g[n++] = s;
  for (stream *t = queue.head, *next; t && n < EVENT_GROUP && scan < EVENT_SCAN; t = next, scan++) {
    next = t->next;
    if (t->st == s->st && (t->dirty || t->seen != generation) && same(t->cursor, s->cursor) &&
        same(t->tables, s->tables) && same(t->sub, s->sub) && same(t->claims, s->claims)) {
      list_remove(&queue, t);
      g[n++] = t;
    }
  }
  for (int i = 0; i < n; i++)
    g[i]->seen = generation;
  return n;
}

/* Resume s, one stream every EVENT_RESUME_NS (or a microsecond per KB of
** its event, if more) across the workers on average. A polling thread
** writes every stream resumed since its last round before it looks at new
** requests: a read serves hundreds of streams at once, and resuming them
** all at once made /health and /push wait 100 ms behind 10,000 writes
** (bench/RESULTS.md, "Live clients"); paced near the rate the polling
** threads write at, they wait for a few. */
static void resume(stream *s) {
  struct timespec now, at;
  clock_gettime(CLOCK_MONOTONIC, &now);
  pthread_mutex_lock(&pace_mu);
  at = pace_next;
  if (at.tv_sec < now.tv_sec || (at.tv_sec == now.tv_sec && at.tv_nsec < now.tv_nsec)) at = now;
  /* a large event takes its bytes' time to write, a small one the write's */
  size_t bytes = s->len - s->off + (s->share ? s->share->len : 0);
  long long ns = (long long)bytes * EVENT_RESUME_NS_PER_KB / 1024;
  ns = ns > EVENT_RESUME_NS ? ns : EVENT_RESUME_NS;
  pace_next.tv_sec = at.tv_sec + ns / 1000000000LL;
  pace_next.tv_nsec = at.tv_nsec + ns % 1000000000LL;
  if (pace_next.tv_nsec >= 1000000000L) pace_next.tv_sec++, pace_next.tv_nsec -= 1000000000L;
  pthread_mutex_unlock(&pace_mu);
  /* a sleep costs its timer slack (50 us): a few go at once, then one */
  long long ahead = (long long)(at.tv_sec - now.tv_sec) * 1000000000LL + (at.tv_nsec - now.tv_nsec);
  while (ahead > EVENT_RESUME_AHEAD_NS &&
         clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, 0) == EINTR)
    ;
  MHD_resume_connection(s->c);
}

static void *worker(void *unused) {
  (void)unused;
#ifdef __linux__
  /* Linux gives each thread its own nice value: a fan-out to thousands of
  ** streams is thousands of pulls, and the polling thread (every /health,
  ** every answer, every event written) and the request workers must win
  ** the CPU from them, or they wait the fan-out out (bench/RESULTS.md,
  ** "Live clients"). Failing to lower it is harmless. */
  errno = 0;
  int nice = getpriority(PRIO_PROCESS, (id_t)gettid());
  if (!errno) (void)setpriority(PRIO_PROCESS, (id_t)gettid(), nice + EVENT_NICE);
#endif
  pthread_mutex_lock(&mu);
  for (;;) {
    while (!queue.head && !stopping)
      pthread_cond_wait(&work, &mu);
    stream *s = queue.head;
    if (!s) break; /* stopping, and every stream was ended */
    list_remove(&queue, s);
    stream *g[EVENT_GROUP];
    int n = !stopping && (s->dirty || s->seen != generation) ? gather(s, g) : 0;
    pthread_mutex_unlock(&mu);
    if (n) {
      /* the read is shared, not the streams: each is filled and resumed
      ** in turn, and ends on its own */
      group_read r;
      read_for(g, n, &r);
      for (int i = 0; i < n; i++)
        if (fill(g[i], &r, i)) resume(g[i]);
      read_done(&r);
    } else if (fill(s, 0, 0)) {
      resume(s);
    }
    pthread_mutex_lock(&mu);
  }
  pthread_mutex_unlock(&mu);
  return 0;
}

/* Every TICK_MS, the waiting streams whose heartbeat is due or whose
** credentials lapsed, or which conns.c cut (kick), go to the workers. */
static void *ticker(void *unused) {
  (void)unused;
  pthread_mutex_lock(&mu);
  while (!stopping) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long wall = (long long)time(0);
    int look = kicked;
    kicked = 0;
    for (stream *s = waiting.head, *next; s; s = next) {
      next = s->next;
      if (heartbeat_due(s, &now) || (s->expires && wall >= s->expires) ||
          (look && conns_cut(s->c))) {
        list_remove(&waiting, s);
        list_add(&queue, s);
        pthread_cond_signal(&work);
      }
    }
    struct timespec until = now;
    until.tv_nsec += TICK_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&tick, &mu, &until);
  }
  pthread_mutex_unlock(&mu);
  return 0;
}

int events_run(void) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&tick, &a);
  pthread_condattr_destroy(&a);
  pthread_mutex_lock(&mu);
  running = 1;
  pthread_mutex_unlock(&mu);
  int bad = pthread_create(&ticker_thread, 0, ticker, 0) != 0;
  has_ticker = !bad;
  for (n_workers = 0; !bad && n_workers < EVENT_WORKERS; n_workers++)
    if (pthread_create(&workers[n_workers], 0, worker, 0)) {
      bad = 1;
      break;
    }
  if (!bad) return 0;
  events_shutdown();
  return -1;
}

unsigned long long events_reads(void) {
  return __atomic_load_n(&reads, __ATOMIC_RELAXED);
}

void events_shutdown(void) {
  pthread_mutex_lock(&mu);
  stopping = 1;
  wake_all();
  pthread_cond_broadcast(&work);
  pthread_cond_signal(&tick);
  pthread_mutex_unlock(&mu);
  /* the workers end every stream left, then return */
  for (int i = 0; i < n_workers; i++)
    pthread_join(workers[i], 0);
  if (has_ticker) pthread_join(ticker_thread, 0);
  n_workers = has_ticker = 0;
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

/* On the polling thread: the bytes of the event being written, or, once
** they are out, the connection suspended and the stream queued for a
** worker (0 bytes: the worker resumes it with the next event). */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
  stream *s = cls;
  (void)pos;
  size_t done = 0;
  if (s->share) {
    done = s->share->len - s->share_off < max ? s->share->len - s->share_off : max;
    memcpy(out, s->share->z + s->share_off, done);
    s->share_off += done;
    if (s->share_off < s->share->len) return (ssize_t)done;
    shared_put(s->share);
    s->share = 0;
    /* its own end goes in the same chunk: one write per event, as before */
    if (s->off == s->len) return (ssize_t)done;
  }
  if (s->off == s->len) {
    if (s->ended) return MHD_CONTENT_READER_END_OF_STREAM;
    if (!s->finish) {
      pthread_mutex_lock(&mu);
      int go_on = running && !stopping;
      if (go_on) {
        /* suspended before a worker can see it, so its resume never
        ** comes first */
        MHD_suspend_connection(s->c);
        list_add(&queue, s);
        pthread_cond_signal(&work);
      }
      pthread_mutex_unlock(&mu);
      if (go_on) return 0;
      s->finish = 1;
    }
    if (stream_end(s)) return MHD_CONTENT_READER_END_OF_STREAM;
  }
  size_t n = s->len - s->off < max - done ? s->len - s->off : max - done;
  memcpy(out + done, s->buf + s->off, n);
  s->off += n;
  /* a waiting stream holds no event: thousands of them wait at a time */
  if (s->off == s->len) {
    sqlite3_free(s->buf);
    s->buf = 0;
    s->len = s->off = 0;
  }
  return (ssize_t)(done + n);
}

int events_start(const server_ctx *ctx, struct MHD_Connection *c, const char *client_id,
                 char *cursor, const store_user *user, long long expires, int gzip,
                 struct MHD_Response **resp) {
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
  /* A first comment gets the headers out before the stream waits. */
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
  return MHD_HTTP_OK;
}
