/*
 * ec_clock.h - the one clock: monotonic seconds, for deadlines that survive
 * changes of the wall clock (core.now, the multi handle's poll).
 */
#ifndef EC_CLOCK_H
#define EC_CLOCK_H

#include <time.h>

static inline double ec_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
