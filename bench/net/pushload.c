/*
** pushload.c: figure 7's pushers without the clients' own cost. K threads,
** each a client of its own on one keep-alive connection, POST batches of
** B inserts into todos to /push for S seconds, client k to the k % N-th of
** the ports given; printed: the mutations the server answered "applied",
** the requests that failed, the seconds taken, and the median and 99th
** percentile of an answered request's time in ms (the first 65536 of each
** client).
**
**     cc -O2 -pthread -o pushload pushload.c
**     ./pushload PORT[,PORT...] K B S
**
** The Python pushers (netbench.py) run the extension and SQLite per client
** in one process, which on this 2-core machine takes half of it; this
** measures what syncd and PostgreSQL take alone. pgpush.py --cload runs it.
*/
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOAD_TIMES 65536

typedef struct load {
  int k, port, batch;
  double stop;
  long applied, failed;
  double *took; /* each answered request's seconds, n_took of them */
  int n_took;
} load;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
    if (fd >= 0) close(fd);
    return -1;
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static int send_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return -1;
    p += w, n -= (size_t)w;
  }
  return 0;
}

/* One answer into buf (its body NUL-terminated at *body); its status, or
** -1 when the connection failed. */
static int answer(int fd, char *buf, size_t cap, char **body) {
  size_t got = 0, want = 0;
  char *end = 0;
  for (;;) {
    if (got + 1 >= cap) return -1;
    ssize_t r = read(fd, buf + got, cap - 1 - got);
    if (r <= 0) return -1;
    got += (size_t)r;
    buf[got] = 0;
    if (!end && (end = strstr(buf, "\r\n\r\n"))) {
      for (char *h = buf; h && h < end; h = strstr(h, "\r\n"), h = h ? h + 2 : 0)
        if (strncasecmp(h, "Content-Length:", 15) == 0) want = strtoul(h + 15, 0, 10);
      end += 4;
    }
    if (end && got >= (size_t)(end - buf) + want) break;
  }
  *body = end;
  return atoi(buf + 9);
}

static void *run(void *arg) {
  load *l = arg;
  size_t cap = 4096 + (size_t)l->batch * 1024;
  char *body = malloc(cap), *req = malloc(cap + 256), *buf = malloc(cap);
  int fd = dial(l->port);
  long id = 0;
  while (fd >= 0 && now() < l->stop) {
    int n = snprintf(body, cap, "{\"client_id\":\"load%d\",\"mutations\":[", l->k);
    for (int i = 0; i < l->batch; i++, id++)
      n += snprintf(
          body + n, cap - n,
          "%s{\"id\":%ld,\"table\":\"todos\",\"op\":\"insert\",\"pk\":{\"id\":\"l%d-%ld\"},"
          "\"data\":{\"id\":\"l%d-%ld\",\"title\":\"push %ld\"}}",
          i ? "," : "", id + 1, l->k, id, l->k, id, id);
    n += snprintf(body + n, cap - n, "]}");
    int h = snprintf(req, 256,
                     "POST /push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n",
                     n);
    memcpy(req + h, body, (size_t)n);
    char *got = 0;
    double t0 = now();
    int status = send_all(fd, req, (size_t)(h + n)) ? -1 : answer(fd, buf, cap, &got);
    if (status == 200 && l->took && l->n_took < LOAD_TIMES) l->took[l->n_took++] = now() - t0;
    if (status != 200) {
      l->failed++;
      id -= l->batch; /* the same ids again, as a client retries */
      if (status < 0) close(fd), fd = dial(l->port);
      continue;
    }
    for (char *p = got; (p = strstr(p, "\"applied\"")); p++)
      l->applied++;
  }
  if (fd >= 0) close(fd);
  free(body), free(req), free(buf);
  return 0;
}

static int by_time(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: pushload PORT[,PORT...] CLIENTS BATCH SECONDS\n");
    return 2;
  }
  int ports[64], n_ports = 0, k = atoi(argv[2]), batch = atoi(argv[3]);
  for (char *p = strtok(argv[1], ","); p && n_ports < 64; p = strtok(0, ","))
    ports[n_ports++] = atoi(p);
  if (!n_ports || k < 1 || batch < 1) return 2;
  load *l = calloc((size_t)k, sizeof *l);
  pthread_t *t = calloc((size_t)k, sizeof *t);
  double t0 = now();
  for (int i = 0; i < k; i++) {
    l[i] = (load){i, ports[i % n_ports], batch, t0 + atof(argv[4]), 0, 0,
                  malloc(sizeof(double) * LOAD_TIMES), 0};
    pthread_create(&t[i], 0, run, &l[i]);
  }
  long applied = 0, failed = 0;
  size_t n = 0;
  for (int i = 0; i < k; i++) {
    pthread_join(t[i], 0);
    applied += l[i].applied, failed += l[i].failed, n += (size_t)l[i].n_took;
  }
  double wall = now() - t0, *all = malloc(sizeof(double) * (n ? n : 1));
  for (int i = 0, at = 0; i < k; at += l[i].n_took, i++) {
    if (all && l[i].took) memcpy(all + at, l[i].took, sizeof(double) * (size_t)l[i].n_took);
    free(l[i].took);
  }
  if (all && n) qsort(all, n, sizeof *all, by_time);
  printf("%ld %ld %.3f %.2f %.2f\n", applied, failed, wall, all && n ? all[n / 2] * 1e3 : 0,
         all && n ? all[n * 99 / 100] * 1e3 : 0);
  free(all), free(l), free(t);
  return 0;
}
