/*
** Event-stream (Server-Sent Events) parser, per WHATWG HTML "Server-sent
** events", section "Interpreting an event stream".
**
** The worker feeds whatever chunks libcurl hands it to sse_feed(); each
** complete event goes to a callback. Memory stays bounded by the caps given
** to sse_new(), whatever the server sends. The parser keeps the last event
** id (for Last-Event-ID on reconnect) and the server's retry time:
**
**   sse_parser *p = sse_new(64 * 1024, 8 * 1024 * 1024, on_event, ctx);
**   ... in the curl write callback:
**   if (sse_feed(p, buf, n) != SSE_OK) ... drop the connection, back off ...
**   ... when the response ends (or the connection drops):
**   sse_end(p);                 // ready for the next stream, id kept
**   send "Last-Event-ID: " sse_last_event_id(p) when it is not ""
**   sse_free(p);
*/
#ifndef SYNC_SSE_H
#define SYNC_SSE_H

#include <stddef.h>

/* Result codes of sse_feed(). */
#define SSE_OK 0
#define SSE_ELINE 1  /* a line was longer than max_line bytes */
#define SSE_EEVENT 2 /* an event's data was longer than max_event bytes */
#define SSE_ENOMEM 3 /* sqlite3_malloc64/sqlite3_realloc64 failed */
#define SSE_EABORT 4 /* the callback returned non-zero */

typedef struct sse_parser sse_parser;

/* Called once per dispatched event. type is the event type ("message" when
** the stream named none; as a C string, a type holding NUL is cut there), data/n the data lines
*joined with LF (may hold NUL
** bytes; data[n] is a NUL for convenience), id the last event id ("" if
** none). All three point into the parser and are valid only during the
** call; copy what you keep. Return 0 to go on; non-zero makes sse_feed()
** stop at once and return SSE_EABORT. The callback must not call sse_feed,
** sse_end or sse_free on the same parser. */
typedef int (*sse_on_event)(void *arg, const char *type, const char *data, size_t n,
                            const char *id);

/* New parser. max_line caps one line (field name, colon and value, without
** the line ending; comment lines are skipped unbuffered and have no cap);
** max_event caps the data of one event. Both must be at least 1 and at most
** 1 GiB. Memory held never exceeds about 4*max_line + max_event plus a small
** constant. Returns NULL on a bad argument or out of memory. Free with
** sse_free(). */
sse_parser *sse_new(size_t max_line, size_t max_event, sse_on_event cb, void *arg);

/* Feed the next n bytes of the stream (any chunking; n may be 0). Complete
** events are dispatched to the callback before it returns. Returns SSE_OK,
** or one of the SSE_E* codes above; an error is sticky: every later
** sse_feed() returns it without parsing until sse_end(). After an error the
** caller should drop the connection. */
int sse_feed(sse_parser *p, const char *buf, size_t n);

/* End of stream (clean or not): an event not yet closed by a blank line is
** dropped, not dispatched. The parser is then ready for a new stream (a
** leading BOM is stripped again, a sticky error is cleared). The last event
** id and the retry time are kept, and the new stream's id buffer starts from
** that last event id (as browsers do), so an event without an id line after
** a reconnect does not lose the resume point. */
void sse_end(sse_parser *p);

/* The last event id: the id buffer as of the last blank line (dispatched
** event or not). "" when none. Owned by the parser; valid until the next
** sse_feed/sse_end/sse_free. Never NULL (p must not be NULL). */
const char *sse_last_event_id(const sse_parser *p);

/* The last valid "retry" value in milliseconds, or -1 if the server sent
** none. Values too large for a long are clamped to LONG_MAX. */
long sse_retry_ms(const sse_parser *p);

/* How many lines (comments and blank lines included) have ended since
** sse_new. A stream is alive while this grows: bytes that never end a
** line (a 1 byte/s drip) are no sign of life. */
unsigned long long sse_lines(const sse_parser *p);

/* Free the parser and everything it holds. NULL is a no-op. */
void sse_free(sse_parser *p);

#endif
