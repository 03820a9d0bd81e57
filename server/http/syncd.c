/*
** syncd.c: the reference sync server's entry point: options, storage,
** the HTTP daemon, and a clean stop on SIGTERM/SIGINT.
**
**   server/syncd --listen 127.0.0.1:8080 --schema schema.sql --db server.db
**                [--pg 'postgresql://...'] [--token SECRET | --token-file FILE]
**                [--client-secret KEY | --client-secret-file FILE]
**                [--verbose]
**                [--heartbeat SECONDS] [--max-body BYTES]
**                [--max-tombstones N] [--max-connections N]
**                [--request-timeout SECONDS] [--body-timeout SECONDS]
**                [--max-streams-per-client N] [--max-streams-per-user N]
**                [--max-requests-per-user N]
**                [--jwt-secret-file FILE | --jwt-public-key FILE]
**                [--jwt-audience AUD] [--jwt-issuer ISS] [--jwt-leeway SECONDS]
**                [--rules FILE] [--no-compress] [--verify-scan]
**                [--mmap-size BYTES]
**
**   server/syncd (--client-secret KEY | --client-secret-file FILE) --issue-token ID
**                prints client ID's token (auth.c) and exits.
**
** With --listen HOST:0 the kernel picks the port; the first line of stdout
** is always the base url, e.g. http://127.0.0.1:41234 (tests read it).
*/
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conns.h"
#include "events.h"
#include "routes.h"
#include "work.h"

/* The threads that answer requests waiting on storage (work.c). With
** events.h's EVENT_WORKERS they fill PostgreSQL's pool of 16 connections
** (SQLite's is 32): a request waits for a worker, never then for a
** connection as well. */
#define REQUEST_WORKERS 8
/* libmicrohttpd's polling threads, each with its own share of the
** connections: while one writes an event to its thousands of streams, a
** request on another is not kept waiting behind them. With 10,000 streams
** /health's p99 during a fan-out was 300 ms with one, 47 ms with two, 5 to
** 10 ms with four (bench/RESULTS.md, "Live clients"). */
#define POLL_THREADS 4

static void usage(void) {
  fprintf(stderr, "usage: syncd --listen HOST:PORT --schema FILE (--db FILE | --pg URL)\n"
                  "             [--token SECRET | --token-file FILE]\n"
                  "             [--client-secret KEY | --client-secret-file FILE] [--verbose]\n"
                  "             [--heartbeat SECONDS] [--max-body BYTES]\n"
                  "             [--max-tombstones N] [--max-connections N]\n"
                  "             [--request-timeout SECONDS] [--body-timeout SECONDS]\n"
                  "             [--max-streams-per-client N] [--max-streams-per-user N]\n"
                  "             [--max-requests-per-user N]\n"
                  "             [--jwt-secret-file FILE | --jwt-public-key FILE]\n"
                  "             [--jwt-audience AUD] [--jwt-issuer ISS] [--jwt-leeway SECONDS]\n"
                  "             [--rules FILE] [--no-compress] [--verify-scan]\n"
                  "             [--mmap-size BYTES]\n"
                  "       syncd (--client-secret KEY | --client-secret-file FILE)"
                  " --issue-token CLIENT_ID\n");
  exit(2);
}

static long long number_arg(const char *name, const char *v, long long min, long long max) {
  char *end;
  errno = 0;
  long long n = strtoll(v, &end, 10);
  if (!*v || *end || errno || n < min || n > max) {
    fprintf(stderr, "syncd: %s must be an integer in [%lld, %lld]\n", name, min, max);
    exit(2);
  }
  return n;
}

/* The whole file, NUL-terminated (sqlite3_malloc'd), its length in *len
** (when not NULL: a key file may hold NUL bytes). */
static char *read_file(const char *path, int *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  sqlite3_str *out = sqlite3_str_new(0);
  char buf[8192];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    sqlite3_str_append(out, buf, (int)n);
  int bad = ferror(f) || sqlite3_str_errcode(out) != SQLITE_OK;
  fclose(f);
  if (len) *len = sqlite3_str_length(out);
  char *z = sqlite3_str_finish(out);
  if (bad) {
    sqlite3_free(z);
    return 0;
  }
  return z ? z : sqlite3_mprintf("");
}

/* A secret kept in a file (off the command line, which any local user can
** read): its text without trailing whitespace; exits on failure. */
static char *secret_file(const char *opt, const char *path, int *len) {
  int n = 0;
  char *z = read_file(path, &n);
  if (!z) {
    fprintf(stderr, "syncd: %s: cannot read %s: %s\n", opt, path, strerror(errno));
    exit(2);
  }
  while (n > 0 && (z[n - 1] == '\n' || z[n - 1] == '\r' || z[n - 1] == ' ' || z[n - 1] == '\t'))
    z[--n] = 0;
  if (len) *len = n;
  return z;
}

/* HOST:PORT or [V6HOST]:PORT into addr; returns its length or 0. */
static socklen_t parse_listen(const char *spec, struct sockaddr_storage *addr) {
  char host[256];
  const char *colon = strrchr(spec, ':');
  if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof host) return 0;
  memcpy(host, spec, colon - spec);
  host[colon - spec] = 0;
  long long port = strtoll(colon + 1, 0, 10);
  if (port < 0 || port > 65535 || !colon[1]) return 0;
  memset(addr, 0, sizeof *addr);
  size_t hn = strlen(host);
  if (host[0] == '[' && hn > 2 && host[hn - 1] == ']') {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
    host[hn - 1] = 0;
    if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1) return 0;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((unsigned short)port);
    return sizeof *a6;
  }
  struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
  if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
  if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) return 0;
  a4->sin_family = AF_INET;
  a4->sin_port = htons((unsigned short)port);
  return sizeof *a4;
}

int main(int argc, char **argv) {
  const char *listen = 0, *schema = 0, *rules = 0, *dbpath = 0, *pg = 0, *issue = 0;
  long long max_conn = 1024, max_tomb = 0, request_timeout = 10, body_timeout = 60, mmap_size = -1;
  server_ctx ctx = {.max_body = 16u << 20,
                    .heartbeat = 15,
                    .timeout = 60,
                    .max_streams_per_client = 2,
                    .max_streams_per_user = 16,
                    .max_requests_per_user = 0,
                    .compress = 1};
  char *token_file = 0, *secret_from_file = 0;
  const char *jwt_secret = 0, *jwt_public = 0, *jwt_aud = 0, *jwt_iss = 0;
  int jwt_leeway = 30, verify_scan = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--verbose") == 0) {
      ctx.verbose = 1;
      continue;
    }
    /* answers and streams stay identity whatever the client accepts */
    if (strcmp(a, "--no-compress") == 0) {
      ctx.compress = 0;
      continue;
    }
    /* POST /verify scans the table: no cache, no triggers made */
    if (strcmp(a, "--verify-scan") == 0) {
      verify_scan = 1;
      continue;
    }
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (strcmp(a, "--listen") == 0)
      listen = v;
    else if (strcmp(a, "--schema") == 0)
      schema = v;
    else if (strcmp(a, "--rules") == 0)
      rules = v;
    else if (strcmp(a, "--db") == 0)
      dbpath = v;
    else if (strcmp(a, "--pg") == 0)
      pg = v;
    else if (strcmp(a, "--token") == 0)
      ctx.auth.token = v;
    else if (strcmp(a, "--client-secret") == 0)
      ctx.auth.secret = v;
    else if (strcmp(a, "--token-file") == 0 && !token_file)
      ctx.auth.token = token_file = secret_file(a, v, 0);
    else if (strcmp(a, "--client-secret-file") == 0 && !secret_from_file)
      ctx.auth.secret = secret_from_file = secret_file(a, v, 0);
    else if (strcmp(a, "--issue-token") == 0)
      issue = v;
    else if (strcmp(a, "--heartbeat") == 0)
      ctx.heartbeat = (int)number_arg(a, v, 1, 3600);
    else if (strcmp(a, "--max-body") == 0)
      ctx.max_body = (size_t)number_arg(a, v, 1, INT_MAX);
    else if (strcmp(a, "--max-tombstones") == 0)
      max_tomb = number_arg(a, v, 0, LLONG_MAX);
    else if (strcmp(a, "--request-timeout") == 0)
      request_timeout = number_arg(a, v, 1, 3600);
    else if (strcmp(a, "--body-timeout") == 0)
      body_timeout = number_arg(a, v, 1, 3600);
    else if (strcmp(a, "--max-streams-per-client") == 0)
      ctx.max_streams_per_client = (unsigned)number_arg(a, v, 1, 100000);
    else if (strcmp(a, "--max-streams-per-user") == 0)
      ctx.max_streams_per_user = (unsigned)number_arg(a, v, 0, 100000);
    else if (strcmp(a, "--max-requests-per-user") == 0)
      ctx.max_requests_per_user = (unsigned)number_arg(a, v, 0, 1000000);
    else if (strcmp(a, "--jwt-secret-file") == 0)
      jwt_secret = v;
    else if (strcmp(a, "--jwt-public-key") == 0)
      jwt_public = v;
    else if (strcmp(a, "--jwt-audience") == 0)
      jwt_aud = v;
    else if (strcmp(a, "--jwt-issuer") == 0)
      jwt_iss = v;
    else if (strcmp(a, "--jwt-leeway") == 0)
      jwt_leeway = (int)number_arg(a, v, 0, 600);
    else if (strcmp(a, "--max-connections") == 0)
      max_conn = number_arg(a, v, 1, 100000);
    else if (strcmp(a, "--mmap-size") == 0)
      mmap_size = number_arg(a, v, 0, LLONG_MAX);
    else
      usage();
  }
  if ((ctx.auth.token && !*ctx.auth.token) || (ctx.auth.secret && !*ctx.auth.secret)) {
    fprintf(stderr, "syncd: a token or client secret must not be empty\n");
    return 2;
  }
  if (issue) {
    char tok[AUTH_CLIENT_TOKEN_LEN + 1];
    if (!ctx.auth.secret || !*issue ||
        auth_client_token(ctx.auth.secret, issue, strlen(issue), tok))
      usage();
    printf("%s\n", tok);
    sqlite3_free(token_file);
    sqlite3_free(secret_from_file);
    return 0;
  }
  if (!listen || !dbpath == !pg || (jwt_secret && jwt_public)) usage();
  if (pg && mmap_size >= 0) {
    fprintf(stderr, "syncd: --mmap-size is for SQLite storage (--db), not --pg\n");
    return 2;
  }
  if ((jwt_aud || jwt_iss) && !jwt_secret && !jwt_public) {
    fprintf(stderr, "syncd: --jwt-audience and --jwt-issuer need --jwt-secret-file or "
                    "--jwt-public-key\n");
    return 2;
  }
  if (jwt_secret || jwt_public) {
    const char *opt = jwt_secret ? "--jwt-secret-file" : "--jwt-public-key";
    const char *path = jwt_secret ? jwt_secret : jwt_public;
    char *jerr = 0;
    int len = 0;
    char *key = jwt_secret ? secret_file(opt, path, &len) : read_file(path, &len);
    if (!key) {
      fprintf(stderr, "syncd: %s: cannot read %s: %s\n", opt, path, strerror(errno));
      return 2;
    }
    ctx.auth.jwt =
        jwt_secret ? jwtauth_secret(key, len, &jerr) : jwtauth_public_key(key, len, &jerr);
    if (!ctx.auth.jwt) {
      fprintf(stderr, "syncd: %s: %s: %s\n", opt, path, jerr ? jerr : "out of memory");
      sqlite3_free(jerr);
      return 2;
    }
    jwtauth_set_checks(ctx.auth.jwt, jwt_aud, jwt_iss, jwt_leeway);
  }
  struct sockaddr_storage addr;
  if (!parse_listen(listen, &addr)) {
    fprintf(stderr, "syncd: --listen wants HOST:PORT, got %s\n", listen);
    return 2;
  }
  char *ddl = 0;
  if (schema && !(ddl = read_file(schema, 0))) {
    fprintf(stderr, "syncd: cannot read %s: %s\n", schema, strerror(errno));
    return 1;
  }

  /* Signals are taken by sigwait below; every thread inherits the mask.
  ** SIGPIPE is ignored: a client that hangs up is not a reason to die. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, 0);
  signal(SIGPIPE, SIG_IGN);

  store_config cfg = {.schema_sql = ddl,
                      .max_tombstones = max_tomb,
                      .verify_scan = verify_scan,
                      .mmap_size = mmap_size > 0 ? mmap_size : 0,
                      .on_change = events_notify};
  char *err = 0;
  ctx.st = pg ? store_pg_open(pg, &cfg, &err) : store_sqlite_open(dbpath, &cfg, &err);
  char *folded = ctx.st ? store_folded_warning(ctx.st, ddl) : 0;
  if (folded) fprintf(stderr, "syncd: warning: %s\n", folded);
  sqlite3_free(folded);
  sqlite3_free(ddl);
  if (!ctx.st) {
    fprintf(stderr, "syncd: cannot open storage: %s\n", err ? err : "?");
    sqlite3_free(err);
    return 1;
  }
  char *rules_text = rules ? read_file(rules, 0) : 0;
  if (rules && (!rules_text || store_set_rules(ctx.st, rules_text, &err) != STORE_OK)) {
    if (!rules_text)
      fprintf(stderr, "syncd: --rules: cannot read %s: %s\n", rules, strerror(errno));
    else
      fprintf(stderr, "syncd: --rules %s: %s\n", rules, err ? err : "?");
    sqlite3_free(err);
    sqlite3_free(rules_text);
    store_close(ctx.st);
    return 2;
  }
  sqlite3_free(rules_text);
  char *names = store_name_warning(ctx.st);
  if (names) fprintf(stderr, "syncd: warning: %s\n", names);
  sqlite3_free(names);

  if (conns_start((unsigned)max_conn, (int)request_timeout, (int)body_timeout)) {
    fprintf(stderr, "syncd: cannot start a thread\n");
    store_close(ctx.st);
    return 1;
  }
  if (events_run() || work_start(REQUEST_WORKERS)) {
    fprintf(stderr, "syncd: cannot start a thread\n");
    events_shutdown();
    conns_stop();
    store_close(ctx.st);
    return 1;
  }
  /* POLL_THREADS polling threads serve every connection (epoll where there
  ** is one): a stream waits suspended, not in a thread of its own
  ** (events.c), and requests that wait on storage go to work.c's threads
  ** (docs/ARCHITECTURE.md, "syncd's threads"). */
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
      0, 0, 0, routes_handle, &ctx, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned int)max_conn, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned int)ctx.timeout, MHD_OPTION_NOTIFY_COMPLETED, routes_completed, &ctx,
      MHD_OPTION_NOTIFY_CONNECTION, conns_notify, NULL, MHD_OPTION_THREAD_POOL_SIZE,
      (unsigned)POLL_THREADS, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "syncd: cannot listen on %s\n", listen);
    work_stop();
    events_shutdown();
    conns_stop();
    store_close(ctx.st);
    return 1;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  char host[INET6_ADDRSTRLEN] = "127.0.0.1";
  if (addr.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&addr)->sin6_addr, host, sizeof host);
    printf("http://[%s]:%u\n", host, info ? info->port : 0);
  } else {
    inet_ntop(AF_INET, &((struct sockaddr_in *)&addr)->sin_addr, host, sizeof host);
    printf("http://%s:%u\n", host, info ? info->port : 0);
  }
  fflush(stdout);
  if (ctx.verbose) fprintf(stderr, "syncd: listening on %s\n", listen);

  int sig = 0;
  sigwait(&sigs, &sig);
  if (ctx.verbose) fprintf(stderr, "syncd: signal %d, shutting down\n", sig);
  /* streams end and every request handed over is answered before the
  ** daemon stops: libmicrohttpd must find no connection suspended */
  events_shutdown();
  work_stop();
  conns_stop();
  MHD_stop_daemon(d);
  store_close(ctx.st);
  sqlite3_free(token_file);
  sqlite3_free(secret_from_file);
  jwtauth_free(ctx.auth.jwt);
  return 0;
}
