/*
** ctx.h: the per-connection state of the engine (ctx.c) and what every
** engine module shares: the catalog of cached statements, the write
** brackets, error reporting and the sync_meta key-value store.
*/
#ifndef SYNC_CTX_H
#define SYNC_CTX_H

#include <stddef.h>

#include "sqlite_api.h"

/* Statements every connection caches, prepared on first use. */
enum {
  STMT_META_GET,      /* ?1 key -> value */
  STMT_META_SET,      /* ?1 key, ?2 value */
  STMT_META_DEL,      /* ?1 key */
  STMT_META_MAX,      /* ?1 key, ?2 integer: the value becomes the greater */
  STMT_SCHEMA_VER,    /* PRAGMA schema_version */
  STMT_TRACKED,       /* ?1 name -> 1 if tracked */
  STMT_PENDING_COUNT, /* count of the outbox */
  STMT_ANY_IMAGE,     /* 1 if a key has pending mutations or a guard (an image, nothing pending) */
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

typedef struct SyncTable SyncTable; /* table.h */
typedef struct SyncCtx SyncCtx;

/* rebase.c's foreign-key checks of one table, built from its schema and
** cached like the catalog; rebuilt when schemaVersion is no longer the
** connection's. */
typedef struct CtxFk {
  char *tbl;
  int schemaVersion;
  sqlite3_stmt *check[2]; /* a row lacks a parent; a row lost its parent; NULL: none */
  struct CtxFk *next;
} CtxFk;

/* One per connection that registered the engine; lives until it closes. */
struct SyncCtx {
  sqlite3 *db;
  sqlite3_stmt *stmt[STMT_COUNT]; /* the catalog; emptied by ctx_stmt_clear */
  SyncTable *tables;              /* tracked tables seen since the last schema change */
  int schemaVersion;              /* schema_version the table cache belongs to */
  int sweptVersion;               /* schema_version ctx_engine_begin last swept at */
  /* run by ctx_engine_begin once per schema change (migrate.c's check of
  ** the capture triggers; a pointer, as migrate.c sits above this file) */
  int (*schemaHook)(SyncCtx *);
  CtxFk *fks;    /* rebase.c's checks; emptied by ctx_stmt_clear */
  int imageKept; /* rebase_set_image kept a newer image; the next rebase_key reads and clears it */
  int anchored;  /* the sync_pending vtab is connected: it empties the caches at close */
  struct Verify *verify; /* sync_verify_request's walk under way (verify.c); freed at close */
  int txDepth; /* ctx_begin brackets open inside the transaction it began; 0: none began one */
};

typedef void (*sync_fn)(sqlite3_context *, int, sqlite3_value **);

sqlite3_stmt *ctx_stmt(SyncCtx *, int id);
void ctx_stmt_clear(SyncCtx *);
int ctx_anchor(SyncCtx *);
int ctx_exec(SyncCtx *, const char *sql);
int ctx_add_column(SyncCtx *, const char *table, const char *col, const char *decl, int *pAdded);
const char *ctx_errmsg(SyncCtx *, int rc);
int ctx_run(SyncCtx *, sqlite3_stmt *);
void ctx_result_str(sqlite3_context *, sqlite3_str *);
int ctx_begin(SyncCtx *);
int ctx_end(SyncCtx *, int rc, char **pzErr);
int ctx_engine_begin(SyncCtx *);
int ctx_engine_end(SyncCtx *, int rc, char **pzErr);
int ctx_tx_begin(SyncCtx *);
int ctx_tx_end(SyncCtx *, int began, int rc, char **pzErr);
void ctx_error(sqlite3_context *, const char *fn, const char *fmt, ...);
void ctx_error_db(sqlite3_context *, SyncCtx *, const char *fn, int rc);
void ctx_error_msg(sqlite3_context *, SyncCtx *, const char *fn, int rc, char *zErr);
int ctx_require_init(sqlite3_context *, SyncCtx *, const char *fn);
int ctx_json_is(SyncCtx *, const char *json, const char *path, const char *type);
char *ctx_meta_get(SyncCtx *, const char *key);
int ctx_meta_set(SyncCtx *, const char *key, const char *value);
int ctx_meta_del(SyncCtx *, const char *key);
/* Room for element n of the array *pArray (a T **) of *pCap elements of
** size bytes: doubles it (first 8) when n has reached *pCap. SQLITE_OK or
** SQLITE_NOMEM (the array as it was). */
int ctx_room(void *pArray, int *pCap, int n, size_t size);

#endif
