/*
** sync.h: what the extension's modules share. The per-connection state,
** the cached description of each tracked table, and the engine-write bracket
** that keeps the capture triggers from recording the engine's own writes.
*/
#ifndef SYNC_H
#define SYNC_H

#include "sqlite_api.h"

/* Statements every connection caches, prepared on first use. */
enum {
  STMT_META_GET,      /* ?1 key -> value */
  STMT_META_SET,      /* ?1 key, ?2 value */
  STMT_SCHEMA_VER,    /* PRAGMA schema_version */
  STMT_TRACKED,       /* ?1 name -> 1 if tracked */
  STMT_PENDING_COUNT, /* count of the outbox */
  STMT_HAS_PENDING,   /* ?1 tbl, ?2 pk -> 1 if the key has pending mutations */
  STMT_KEY_PENDING,   /* ?1 tbl, ?2 pk -> op, data of its pending mutations in id order */
  STMT_SHADOW_GET,    /* ?1 tbl, ?2 pk -> row, version */
  STMT_SHADOW_PUT,    /* ?1 tbl, ?2 pk, ?3 row (NULL = absent), ?4 version */
  STMT_SHADOW_DROP,   /* ?1 tbl, ?2 pk */
  STMT_OUTBOX_GET,    /* ?1 id -> tbl, op, pk, data */
  STMT_OUTBOX_DEL,    /* ?1 id */
  STMT_OUTBOX_UPTO,   /* ?1 id -> id, tbl, pk of pending mutations with id <= ?1 */
  STMT_REJECT,        /* ?1 id, ?2 reason: copy an outbox row into sync_rejected */
  STMT_CONTROL,       /* ?1 applying flag */
  STMT_LAST_ID,       /* the highest mutation id ever issued */
  STMT_JSON_IS,       /* ?1 json, ?2 path, ?3 type -> 1 if valid and of that type */
  STMT_COUNT
};

typedef struct SyncTable SyncTable;
typedef struct SyncCtx SyncCtx;

/* A tracked table as the engine writes it. Built from PRAGMA table_info on
** first use and dropped whenever the schema changes. */
struct SyncTable {
  char *name;
  int nCol;
  char **cols; /* column names, table order (generated columns left out) */
  char **dflt; /* DEFAULT expression text or NULL, per column */
  int nPk;
  int *pk;                /* column index of each primary key part, in key order */
  sqlite3_stmt *upsert;   /* ?1 data: insert it, or on a key conflict set the columns it has */
  sqlite3_stmt *update;   /* ?1 data, ?2 pk: set the columns data has on that key */
  sqlite3_stmt *del;      /* ?1 pk: delete that key */
  sqlite3_stmt *exists;   /* ?1 pk -> 1 if the key exists */
  sqlite3_stmt *row;      /* ?1 pk -> the row's columns */
  sqlite3_stmt *canon;    /* ?1 pk object -> the key in the triggers' canonical text */
  sqlite3_stmt *bound[2]; /* apply.c: [0] whole rows of a batch, [1] delete by key (lazily) */
  SyncTable *next;
};

struct SyncCtx {
  sqlite3 *db;
  sqlite3_stmt *stmt[STMT_COUNT];
  SyncTable *tables; /* tracked tables seen since the last schema change */
  int schemaVersion; /* schema_version the table cache belongs to */
  int anchored;      /* the sync_pending vtab is connected: it empties the caches at close */
  struct WorkerConn
      *wc; /* worker.c: link to this file's worker; freed by sync_status's destructor */
  /* What the last successful sync_apply read from its page, so that the
  ** worker need not parse the page again: has_more, and the tracked tables
  ** its changes wrote (distinct, as named). */
  int applyMore;
  char **applyTables;
  int nApplyTables;
};

/* sync.c */
int sync_register(sqlite3 *, SyncCtx **pc, char **pzErr);
void sync_apply_tables_clear(SyncCtx *);
sqlite3_stmt *sync_stmt(SyncCtx *, int id);
int sync_exec(SyncCtx *, const char *sql);
int sync_run(SyncCtx *, sqlite3_stmt *);
void sync_result_str(sqlite3_context *, sqlite3_str *);
int sync_anchor(SyncCtx *);
void sync_cache_clear(SyncCtx *);
int sync_begin(SyncCtx *);
int sync_end(SyncCtx *, int rc, char **pzErr);
int sync_engine_begin(SyncCtx *);
int sync_engine_end(SyncCtx *, int rc, char **pzErr);
void sync_error(sqlite3_context *, const char *fn, const char *fmt, ...);
void sync_error_db(sqlite3_context *, SyncCtx *, const char *fn, int rc);
void sync_error_msg(sqlite3_context *, SyncCtx *, const char *fn, int rc, char *zErr);
int sync_require_init(sqlite3_context *, SyncCtx *, const char *fn);
char *sync_meta_get(SyncCtx *, const char *key);
int sync_json_is(SyncCtx *, const char *json, const char *path, const char *type);
int sync_meta_set(SyncCtx *, const char *key, const char *value);

/* table.c */
int table_get(SyncCtx *, const char *name, int tracked, SyncTable **pOut, char **pzErr);
int table_is_tracked(SyncCtx *, const char *name);
void table_cache_clear(SyncCtx *);
int table_canon_pk(SyncCtx *, SyncTable *, const char *pkJson, char **pOut, char **pzErr);
int table_row_json(SyncCtx *, SyncTable *, const char *pkJson, char **pOut);
int table_write(sqlite3_stmt *, const char *a, const char *b);

/* capture.c */
void capture_value_expr(sqlite3_str *, const char *expr);
void capture_key_expr(sqlite3_str *, SyncTable *, const char *prefix);
int capture_install(SyncCtx *, SyncTable *);
int capture_remove(SyncCtx *, const char *table);

/* outbox.c */
int outbox_resolve(SyncCtx *, sqlite3_int64 id, int applied, const char *row, int hasRow,
                   const char *reason, sqlite3_int64 version, int hasVersion, int *pDone,
                   char **pzErr);
int outbox_sent_id(SyncCtx *, sqlite3_int64 *pSent);

/* rebase.c */
int rebase_key(SyncCtx *, SyncTable *, const char *pk, char **pzErr);
int rebase_write(SyncCtx *, SyncTable *, const char *pk, const char *image, int *pPending,
                 char **pzErr);
int rebase_set_image(SyncCtx *, const char *tbl, const char *pk, const char *row,
                     sqlite3_int64 version, int hasVersion);

/* SQL functions and modules, registered from the table in sync.c */
typedef void (*sync_fn)(sqlite3_context *, int, sqlite3_value **);
void schema_fn_init(sqlite3_context *, int, sqlite3_value **);
void schema_fn_cursor(sqlite3_context *, int, sqlite3_value **);
void track_fn_track(sqlite3_context *, int, sqlite3_value **);
void track_fn_untrack(sqlite3_context *, int, sqlite3_value **);
void mutate_fn(sqlite3_context *, int, sqlite3_value **);
void outbox_fn_pending(sqlite3_context *, int, sqlite3_value **);
void outbox_fn_push_batch(sqlite3_context *, int, sqlite3_value **);
void outbox_fn_ack(sqlite3_context *, int, sqlite3_value **);
void apply_fn(sqlite3_context *, int, sqlite3_value **);
void outbox_fn_wire(sqlite3_context *, int, sqlite3_value **);
extern sqlite3_module vtab_pending_module;
extern sqlite3_module apply_rows_module;
/* worker.c, config.c, vtab_status.c: the background worker */
void worker_fn_start(sqlite3_context *, int, sqlite3_value **);
void worker_fn_stop(sqlite3_context *, int, sqlite3_value **);
void worker_fn_push(sqlite3_context *, int, sqlite3_value **);
void worker_fn_pull(sqlite3_context *, int, sqlite3_value **);
void worker_fn_online(sqlite3_context *, int, sqlite3_value **);
void worker_fn_wait(sqlite3_context *, int, sqlite3_value **);
void config_fn(sqlite3_context *, int, sqlite3_value **);
int worker_conn_register(sqlite3 *, SyncCtx *);

#endif
