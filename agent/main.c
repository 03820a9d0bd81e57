/*
** main.c: sync-agent, a process that keeps database files in sync while no
** app runs (docs/AGENT.md).
**
**   sync-agent --db app.db [--db other.db] --url URL [--token-file FILE]
**              [--track t1,t2] [--log text|json]
**   sync-agent status --db app.db [--log json]
**
** For each --db it opens a connection of its own, loads the extension into
** it (the agent links libsqlite3; the extension never does), runs
** sync_init(URL), sync_config('token', ...) and sync_track() for each
** table, then sync_start(). The capture triggers are plain SQL, so writes
** by any process (the sqlite3 shell without .load, another driver) are
** queued and sent by this worker, and the server's changes land in the file
** with no app running. When an app's worker already holds the file, this
** one waits as standby, and says so; while another connection holds the
** write lock (a long transaction), setting up waits for it and says so. One line per change of
*state on
** stderr; the token never appears. SIGTERM or SIGINT: sync_stop() joins
** each worker (what is queued stays in the outbox for the next run), the
** connections close, exit 0.
**
** The extension: $SYNC_EXTENSION if set, else ../ext/sync.so next to the
** binary (the build tree), ../lib/sqlite-sync/sync.so next to it (an
** install), then the install path built in (SYNC_AGENT_LIBDIR).
** Exit status: 0 after a clean stop, 1 when a database cannot be set up,
** 2 on a usage error.
*/
#include "agent.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Each try at the write lock (exec1 tries again while it is held). */
#define BUSY_MS 2000

#ifndef SYNC_AGENT_LIBDIR
#define SYNC_AGENT_LIBDIR "/usr/local/lib/sqlite-sync"
#endif
#ifndef SYNC_SO
#define SYNC_SO "so"
#endif
#define POLL_MS 200     /* how often sync_status is read */
#define MAX_DBS 64      /* --db given at most this often */
#define TOKEN_MAX 16384 /* a longer token file is refused */

static volatile sig_atomic_t stopSignal;

static void on_signal(int sig) {
  stopSignal = sig;
}

static void usage(void) {
  fputs("usage: sync-agent --db FILE [--db FILE...] --url URL [--token-file FILE]\n"
        "                  [--track t1,t2] [--log text|json]\n"
        "       sync-agent status --db FILE [--log json]\n",
        stderr);
}

static int readable(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The extension's path into buf (see the opening comment); 0 if none. */
static int find_extension(char *buf, size_t n) {
  const char *env = getenv("SYNC_EXTENSION");
  if (env && *env) {
    snprintf(buf, n, "%s", env);
    return 1;
  }
  char self[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len > 0) {
    self[len] = 0;
    char *slash = strrchr(self, '/');
    if (slash) {
      *slash = 0;
      static const char *const rel[] = {"/../ext/sync.", "/../lib/sqlite-sync/sync."};
      for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        snprintf(buf, n, "%s%s%s", self, rel[i], SYNC_SO);
        if (readable(buf)) return 1;
      }
    }
  }
  snprintf(buf, n, "%s/sync.%s", SYNC_AGENT_LIBDIR, SYNC_SO);
  return readable(buf);
}

/* The token file's first line (CR/LF stripped) into buf; 0 or -1 with a
** message in err (which never holds the token). */
static int read_token(const char *file, char *buf, size_t n, char *err, size_t errn) {
  FILE *f = fopen(file, "r");
  if (!f) {
    snprintf(err, errn, "cannot read the token file %s: %s", file, strerror(errno));
    return -1;
  }
  size_t got = fread(buf, 1, n - 1, f);
  int toolong = got == n - 1 && fgetc(f) != EOF;
  fclose(f);
  buf[got] = 0;
  buf[strcspn(buf, "\r\n")] = 0;
  if (toolong || !buf[0]) {
    snprintf(err, errn, "the token file %s is %s", file, toolong ? "too long" : "empty");
    return -1;
  }
  return 0;
}

/* Runs sql with one optional text parameter; logs and returns -1 on error.
** A write lock another connection holds past the busy timeout (an app's
** long transaction, a bulk import) is waited for, logged once, until it is
** had or a signal stops the agent: a daemon that starts beside a busy app
** must not exit for it. */
static int exec1(AgentDb *d, const char *sql, const char *arg) {
  int rc, waited = 0;
  for (;;) {
    sqlite3_stmt *st = 0;
    rc = sqlite3_prepare_v2(d->db, sql, -1, &st, 0);
    if (rc == SQLITE_OK && arg) rc = sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) {
      while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      }
      if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    int busy = (sqlite3_extended_errcode(d->db) & 0xff) == SQLITE_BUSY;
    if (rc == SQLITE_OK || !busy || stopSignal) break;
    if (!waited++)
      agent_log(d->path, "waiting", "another connection holds the write lock; trying again", -1);
  }
  if (rc != SQLITE_OK) agent_log(d->path, "error", sqlite3_errmsg(d->db), -1);
  return rc == SQLITE_OK ? 0 : -1;
}

static int set_token(AgentDb *d, const char *tokenFile) {
  char tok[TOKEN_MAX], err[512];
  struct stat st;
  if (stat(tokenFile, &st) == 0) d->tokenMtime = st.st_mtim;
  if (read_token(tokenFile, tok, sizeof tok, err, sizeof err) != 0) {
    agent_log(d->path, "error", err, -1);
    return -1;
  }
  int rc = exec1(d, "SELECT sync_config('token', ?1)", tok);
  memset(tok, 0, sizeof tok);
  return rc;
}

/* Opens the file, loads the extension, sync_init, token, tracking,
** sync_start. Returns 0, or -1 after logging why. */
static int setup(AgentDb *d, const char *ext, const char *url, const char *tokenFile,
                 const char *track) {
  if (sqlite3_open_v2(d->path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 0) !=
      SQLITE_OK) {
    agent_log(d->path, "error", d->db ? sqlite3_errmsg(d->db) : "out of memory", -1);
    return -1;
  }
  sqlite3_busy_timeout(d->db, BUSY_MS);
  char *err = 0;
  sqlite3_db_config(d->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, (int *)0);
  if (sqlite3_load_extension(d->db, ext, "sqlite3_sync_init", &err) != SQLITE_OK) {
    char *msg = sqlite3_mprintf("cannot load the extension %s: %s", ext, err ? err : "unknown");
    sqlite3_free(err);
    agent_log(d->path, "error", msg ? msg : "out of memory", -1);
    sqlite3_free(msg);
    return -1;
  }
  sqlite3_db_config(d->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)0);
  if (exec1(d, "SELECT sync_init(?1)", url) != 0) return -1;
  if (tokenFile && set_token(d, tokenFile) != 0) return -1;
  for (const char *p = track; p && *p;) {
    size_t len = strcspn(p, ",");
    char name[256];
    if (len == 0 || len >= sizeof name) {
      agent_log(d->path, "error", "--track: a table name is empty or too long", -1);
      return -1;
    }
    memcpy(name, p, len);
    name[len] = 0;
    if (exec1(d, "SELECT sync_track(?1)", name) != 0) return -1;
    p += len + (p[len] == ',');
  }
  if (exec1(d, "SELECT sync_start()", 0) != 0) return -1;
  d->started = 1;
  agent_log(d->path, "started", ext, -1);
  if (agent_state_write(d, getpid()) != 0)
    agent_log(d->path, "error", "cannot write the state file next to the database", -1);
  return 0;
}

static void text_col(sqlite3_stmt *st, int i, char *buf, size_t n) {
  const unsigned char *t = sqlite3_column_text(st, i);
  snprintf(buf, n, "%s", t ? (const char *)t : "");
}

/* Reads sync_status, logs what changed and rewrites the state file. The
** role is sync_status.role: worker while this process's worker holds the
** file's lock, standby while another process does; unchanged while it is
** NULL (the worker thread has not tried the lock yet, or cannot open the
** lock file, an error it logs). */
static void poll_db(AgentDb *d, const char *tokenFile) {
  sqlite3_stmt *st = 0;
  if (sqlite3_prepare_v2(d->db,
                         "SELECT online, last_error, pushed_total, pulled_total, last_push_at,"
                         " last_pull_at, needs_token, role FROM sync_status",
                         -1, &st, 0) != SQLITE_OK ||
      sqlite3_step(st) != SQLITE_ROW) {
    sqlite3_finalize(st);
    return;
  }
  char err[AGENT_TEXT_MAX], pushAt[64], pullAt[64];
  text_col(st, 1, err, sizeof err);
  text_col(st, 4, pushAt, sizeof pushAt);
  text_col(st, 5, pullAt, sizeof pullAt);
  int online = sqlite3_column_int(st, 0);
  int64_t pushed = sqlite3_column_int64(st, 2), pulled = sqlite3_column_int64(st, 3);
  int needsToken = sqlite3_column_int(st, 6);
  const char *r = (const char *)sqlite3_column_text(st, 7);
  int role = !r ? d->role : strcmp(r, "standby") == 0 ? 2 : 1;
  sqlite3_finalize(st);

  int changed = 0;
  if (role != d->role) {
    agent_log(d->path, role == 2 ? "standby" : "worker",
              role == 2 ? err : "this process syncs the file", -1);
    d->role = role;
    changed = 1;
  }
  if (role == 1 && online != d->online) {
    agent_log(d->path, online ? "online" : "offline", 0, -1);
    d->online = online;
  }
  if (pushed > d->pushed) agent_log(d->path, "pushed", 0, pushed - d->pushed);
  if (pulled > d->pulled) agent_log(d->path, "pulled", 0, pulled - d->pulled);
  d->pushed = pushed;
  d->pulled = pulled;
  if (role != 2 && strcmp(err, d->curError) != 0) {
    if (err[0]) {
      agent_log(d->path, "error", err, -1);
      snprintf(d->lastError, sizeof d->lastError, "%s", err);
      changed = 1;
    }
    snprintf(d->curError, sizeof d->curError, "%s", err);
  }
  if (pushAt[0] && strcmp(pushAt, d->lastPushAt) != 0) {
    snprintf(d->lastPushAt, sizeof d->lastPushAt, "%s", pushAt);
    changed = 1;
  }
  if (pullAt[0] && strcmp(pullAt, d->lastPullAt) != 0) {
    snprintf(d->lastPullAt, sizeof d->lastPullAt, "%s", pullAt);
    changed = 1;
  }
  /* The server refused the token: once the token file is rewritten (a
  ** renewed token) it is read again, and the worker resumes as soon as it
  ** is set. An unchanged file is not sent again. */
  struct stat tst;
  if (needsToken && tokenFile && stat(tokenFile, &tst) == 0 &&
      (tst.st_mtim.tv_sec != d->tokenMtime.tv_sec ||
       tst.st_mtim.tv_nsec != d->tokenMtime.tv_nsec) &&
      set_token(d, tokenFile) == 0)
    agent_log(d->path, "token", "read again from the token file", -1);
  if (changed && agent_state_write(d, getpid()) != 0)
    agent_log(d->path, "error", "cannot write the state file next to the database", -1);
}

static void stop_db(AgentDb *d, const char *tokenFile) {
  if (d->started) {
    exec1(d, "SELECT sync_stop()", 0);
    poll_db(d, tokenFile);
    sqlite3_stmt *st = 0;
    int64_t pending = -1;
    if (sqlite3_prepare_v2(d->db, "SELECT pending FROM sync_status", -1, &st, 0) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      pending = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    agent_state_write(d, 0);
    char msg[96];
    snprintf(msg, sizeof msg, "%lld pending, kept in the outbox for the next run",
             (long long)pending);
    agent_log(d->path, "stopped", msg, -1);
  }
  sqlite3_close(d->db);
  d->db = 0;
}

int main(int argc, char **argv) {
  AgentDb dbs[MAX_DBS];
  int ndb = 0, json = 0, status = 0;
  const char *url = 0, *tokenFile = 0, *track = 0;
  memset(dbs, 0, sizeof dbs);
  int i = 1;
  if (argc > 1 && strcmp(argv[1], "status") == 0) status = 1, i = 2;
  for (; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : 0;
    if (!v) {
      fprintf(stderr, "sync-agent: %s needs a value\n", a);
      usage();
      return 2;
    }
    if (strcmp(a, "--db") == 0 && ndb == MAX_DBS) {
      fprintf(stderr, "sync-agent: at most %d --db\n", MAX_DBS);
      return 2;
    } else if (strcmp(a, "--db") == 0) {
      dbs[ndb].path = v;
      dbs[ndb].online = -1;
      ndb++;
    } else if (strcmp(a, "--url") == 0)
      url = v;
    else if (strcmp(a, "--token-file") == 0)
      tokenFile = v;
    else if (strcmp(a, "--track") == 0)
      track = v;
    else if (strcmp(a, "--log") == 0 && (strcmp(v, "json") == 0 || strcmp(v, "text") == 0))
      json = strcmp(v, "json") == 0;
    else {
      fprintf(stderr, "sync-agent: unknown option or value: %s %s\n", a, v);
      usage();
      return 2;
    }
    i++;
  }
  char ext[PATH_MAX + 64];
  int haveExt = find_extension(ext, sizeof ext);
  agent_log_json(json);
  if (status) {
    if (ndb != 1) {
      usage();
      return 2;
    }
    if (!haveExt) fprintf(stderr, "sync-agent: the extension is not at %s\n", ext);
    return haveExt ? agent_status(dbs[0].path, ext, json) : 1;
  }
  if (ndb == 0 || !url) {
    usage();
    return 2;
  }
  if (!haveExt) {
    agent_log("-", "error", "the extension was not found (set SYNC_EXTENSION)", -1);
    return 1;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, 0);
  sigaction(SIGINT, &sa, 0);
  /* A log reader that went away must not kill the agent mid-write. */
  signal(SIGPIPE, SIG_IGN);

  int failed = 0;
  for (int k = 0; k < ndb && !failed && !stopSignal; k++) {
    agent_state_load(&dbs[k]);
    failed = setup(&dbs[k], ext, url, tokenFile, track) != 0;
  }
  while (!failed && !stopSignal) {
    for (int k = 0; k < ndb; k++)
      poll_db(&dbs[k], tokenFile);
    struct timespec ts = {0, POLL_MS * 1000000L};
    nanosleep(&ts, 0);
  }
  for (int k = 0; k < ndb; k++)
    stop_db(&dbs[k], tokenFile);
  return failed ? 1 : 0;
}
