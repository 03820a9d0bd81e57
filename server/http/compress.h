/*
** compress.h: gzip for syncd's answers (compress.c): whether a request's
** Accept-Encoding takes it, a whole JSON body compressed at once, and an
** event stream's deflate state flushed after every event. A leaf: it calls
** only zlib and SQLite's allocator.
*/
#ifndef SYNCD_COMPRESS_H
#define SYNCD_COMPRESS_H

#include <stddef.h>

/* Bodies shorter than this go uncompressed: gzip's 18 bytes of frame and
** the time would buy little. */
#define COMPRESS_MIN 1024

/* 1 when an Accept-Encoding header value (NULL: none) accepts gzip: a
** "gzip" or "x-gzip" coding, or "*" when gzip is not named, with a q above 0. */
int compress_accepts(const char *accept_encoding);

/* body (n bytes) as one gzip member, sqlite3_malloc'd, its length in
** *out_n; NULL when out of memory. */
char *compress_gzip(const char *body, size_t n, size_t *out_n);

/* One gzip member written piece by piece, each piece ready to send at once
** (Z_SYNC_FLUSH). Its deflate state is about 64 KB, whatever it carries. */
typedef struct compress_stream compress_stream;

/* NULL when out of memory. */
compress_stream *compress_stream_new(void);

/* The bytes that carry text (n bytes) to the reader now; with finish, the
** member's end too (nothing may follow). sqlite3_malloc'd, length in
** *out_n; NULL when out of memory, and for every later call (the member
** cannot go on). */
char *compress_stream_put(compress_stream *, const char *text, size_t n, int finish, size_t *out_n);

void compress_stream_free(compress_stream *);

#endif
