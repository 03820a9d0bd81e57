/*
** userlimit.h: requests per second per JWT user (userlimit.c), for
** syncd --max-requests-per-user.
*/
#ifndef SYNCD_USERLIMIT_H
#define SYNCD_USERLIMIT_H

/* Take one request of user sub at rate per second (bursts up to rate):
** 0 when it may go on, else the seconds to wait before the next one may
** (at least 1). */
int userlimit_take(const char *sub, unsigned rate);

#endif
