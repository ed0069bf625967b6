/* The one monotonic clock of the library: CLOCK_MONOTONIC in nanoseconds.
   Every latency, deadline and queue time is measured with it, so values
   from different modules compare. */
#ifndef AP_COMMON_CLOCK_H
#define AP_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t ap__clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
