/*
** store_pg.c: the PostgreSQL implementation of store.h (in progress).
*/
#include "store_impl.h"

store *store_pg_open(const char *url, const store_config *cfg, char **err) {
  (void)url;
  (void)cfg;
  *err = store_errf("PostgreSQL storage is not available yet");
  return 0;
}
