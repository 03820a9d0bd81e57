/*
** listen_pg.h: the one LISTEN connection of a syncd on PostgreSQL (used by
** dialect_pg.c): every notification of syncd_changes another process's push sends
** wakes this process's event streams.
*/
#ifndef SYNCD_LISTEN_PG_H
#define SYNCD_LISTEN_PG_H

typedef struct listen_pg listen_pg;

/* Start the listener thread on url: on_change(arg) is called on every
** notification but those whose payload is me (this process's own, whose
** pushes wake its streams themselves), and after every (re)connect, which
** may have missed some. NULL with *err set on failure. */
listen_pg *listen_pg_start(const char *url, const char *me, void (*on_change)(void *), void *arg,
                           char **err);

/* Stop the thread, close its connection, free l. */
void listen_pg_stop(listen_pg *l);

#endif
