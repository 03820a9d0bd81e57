/*
** store_types.h: the data syncd's storage and its HTTP side exchange (a
** push's mutations, a pull page, result codes, the store's configuration),
** apart from the store's functions (store.h), so that the wire texts
** (wire.c) and the push body parser (request.c) can build them without
** depending on the store that uses them. Types only: no .c file goes with it.
*/
#ifndef SYNCD_STORE_TYPES_H
#define SYNCD_STORE_TYPES_H

typedef enum { STORE_INSERT, STORE_UPDATE, STORE_DELETE } store_op;

/* One mutation of a push, its envelope already validated (request.c).
** pk and data are the exact JSON texts from the request (never re-printed:
** numbers must stay exact); data is NULL for a delete. */
typedef struct store_mutation {
  long long id;
  const char *table;
  store_op op;
  const char *pk;
  const char *data;
} store_mutation;

/* Result codes; routes.c maps them to HTTP statuses. */
enum {
  STORE_OK = 0,
  STORE_BAD_CURSOR, /* 400: not a cursor at all */
  STORE_EXPIRED,    /* 410: another database's cursor, or below the horizon */
  STORE_ERROR,      /* 500: the database failed; *err says why */
  STORE_BUSY,       /* 503: concurrent pushes kept conflicting; nothing committed */
  STORE_MOVED       /* 410 too: under rules, a membership of the user changed across the
                    ** cursor (docs/RULES.md); a full resync, not a lost change log */
};

/* One pull page. json is the whole response body:
** {"changes":[...],"cursor":"...","has_more":false,"last_mutation_id":17}
** plus ,"rejected":[{"id":18,"reason":"..."},...] when pending_from > 0. */
typedef struct store_page {
  char *json;
  char *cursor;  /* the cursor after this page (also inside json) */
  int n_changes; /* entries in "changes" */
  int has_more;
  long long last_id; /* its last_mutation_id */
  int last_at;       /* where in json that id's digits begin */
} store_page;

typedef struct store_config {
  const char *schema_sql;   /* DDL run when the database has no synced table yet */
  long long max_tombstones; /* <= 0: never purge */
  int verify_scan;          /* answer POST /verify by a scan of the table, not its cache */
  long long mmap_size;      /* SQLite: bytes of the file each connection maps (sqlite_open.c) */
  /* Called from a store thread when another process committed changes
  ** (PostgreSQL LISTEN/NOTIFY); may be NULL. */
  void (*on_change)(void *arg);
  void *on_change_arg;
} store_config;

#endif
