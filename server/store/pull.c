/*
** pull.c: the one pull algorithm (store_pull and store_head in store.h),
** for every storage dialect. The dialect reads the state, the changes after
** the cursor, the client's last id and its rejected outcomes in one
** snapshot (wire_page); the cursor's checks and the page's shape are here.
*/
#include "store_impl.h"

#include <string.h>

void store_page_clear(store_page *page) {
  sqlite3_free(page->json);
  sqlite3_free(page->cursor);
  memset(page, 0, sizeof *page);
}

int store_pull(store *s, const char *client, const char *cursor, int limit, long long pending_from,
               store_page *page, char **err) {
  long long after = 0, snap = 0;
  memset(page, 0, sizeof *page);
  if (cursor) {
    int rc = wire_cursor_parse(cursor, s->db_id, &after, &snap);
    if (rc != STORE_OK) return rc;
  }
  dialect_conn *c = pool_get(&s->pool, err);
  if (!c) return STORE_ERROR;
  wire_page p;
  wire_page_start(&p, limit, pending_from > 0);
  int rc = STORE_ERROR;
  if (!s->d->read_page(c, client, after, cursor != 0, pending_from, &p, err)) {
    /* An initial sync pages through live rows by version, so its cursor
    ** falls below the horizon as soon as tombstones are purged. Its
    ** continuation carries the head h its first page read: a row it sent
    ** can only have been deleted after h, so the deletes it may need are
    ** the ones above max(after, h), and purged ones stop below the
    ** horizon. Any other cursor below the horizon misses deletes; one
    ** above the head names versions this database never had. */
    long long needs = snap > after ? snap : after;
    p.snap = cursor ? snap : p.head;
    if (cursor && (needs < p.horizon || after > p.head || snap > p.head))
      rc = STORE_EXPIRED;
    else
      rc = wire_page_finish(&p, s->db_id, page, err);
  }
  wire_page_drop(&p);
  pool_put(&s->pool, c);
  return rc;
}

int store_head(store *s, char **cursor, char **err) {
  dialect_conn *c = pool_get(&s->pool, err);
  if (!c) return STORE_ERROR;
  long long version;
  int rc = STORE_ERROR;
  if (!s->d->head(c, &version, err)) {
    *cursor = wire_cursor(s->db_id, version);
    rc = *cursor ? STORE_OK : (*err = wire_errf("out of memory"), STORE_ERROR);
  }
  pool_put(&s->pool, c);
  return rc;
}
