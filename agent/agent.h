/*
** agent.h: what the background agent's two files share: one watched
** database (AgentDb), the log (text or JSON lines on stderr) and the state
** file next to each database (PATH-syncagent) that `sync-agent status`
** reads. main.c runs the agent; report.c logs, keeps the state file and
** answers `status`.
*/
#ifndef SYNC_AGENT_H
#define SYNC_AGENT_H

#include <sqlite3.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define AGENT_TEXT_MAX 1024 /* an error message or a time, as kept */

/* One --db: the agent's own connection and what it last saw of the
** worker, so that only changes are logged. */
typedef struct AgentDb {
  const char *path;
  sqlite3 *db;
  int started;                /* sync_start() returned */
  int role;                   /* 0 unknown, 1 worker, 2 standby */
  int online;                 /* -1 unknown */
  struct timespec tokenMtime; /* of the token file when last read */
  int64_t pushed, pulled;
  char curError[AGENT_TEXT_MAX];  /* the worker's error now ("" when none) */
  char lastError[AGENT_TEXT_MAX]; /* the last one seen, for status */
  char lastPushAt[64], lastPullAt[64];
} AgentDb;

/* Log lines: text ("TIME sync-agent DB: EVENT") or one JSON object per
** line; detail may be NULL, count < 0 leaves it out. */
void agent_log_json(int on);
void agent_log(const char *db, const char *event, const char *detail, int64_t count);

/* Writes PATH-syncagent (pid, role, last error, last push and pull
** times) atomically; pid 0 says no agent runs. Returns 0 or -1 (errno). */
int agent_state_write(const AgentDb *d, pid_t pid);
/* Reads the times and the last error an earlier run left, so a new run
** keeps them until it has its own. */
void agent_state_load(AgentDb *d);

/* sync-agent status --db PATH [--log json]: exit status. */
int agent_status(const char *path, const char *extension, int json);

#endif
