/* The one latency bucket scheme (common.h): every histogram of the library
   and the server counts into these buckets. */
#include "alphapulse/common.h"

#include <math.h>

static const uint64_t bound_ns[AP_LATENCY_BUCKETS - 1] = {
    1000,    2500,    5000,     10000,    25000,    50000,     100000,    250000,    500000,
    1000000, 2500000, 5000000, 10000000, 25000000, 100000000, 250000000, 1000000000};

double ap_latency_bucket_bound(int i)
{
    if (i < 0 || i >= AP_LATENCY_BUCKETS)
        return NAN;
    /* divide (not * 1e-9) so that the bounds are exactly 1e-06, 2.5e-06, ... */
    return i == AP_LATENCY_BUCKETS - 1 ? INFINITY : (double)bound_ns[i] / 1e9;
}

int ap_latency_bucket(uint64_t ns)
{
    int b = 0; /* "le": a value equal to a bound belongs to that bound's bucket */
    while (b < AP_LATENCY_BUCKETS - 1 && ns > bound_ns[b])
        b++;
    return b;
}
