/*
 * libFuzzer target: a bar entry of the Redis partition streams
 * (src/scale/schema.c, docs/SCALE_OUT.md) as the worker gets it: field
 * strings (the input split at '\n', up to 64, with their lengths; the
 * strings may hold any byte, NUL too), then an entry id. An accepted bar
 * must satisfy what the parser promises: every field found, a finite bar
 * ap_bar_check accepts, prices <= 1e15, a timeframe that parses to the
 * same seconds, a symbol within AP_SYMBOL_MAX; the partition of its symbol
 * is below P. An id that parses compares equal to itself.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scale/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *f[64];
    size_t len[64], n = 0;
    const char *p = (const char *)data, *end = p + size;
    while (n < 64 && p <= end) {
        const char *q = memchr(p, '\n', (size_t)(end - p));
        if (!q)
            q = end;
        f[n] = p;
        len[n++] = (size_t)(q - p);
        p = q + 1;
    }
    ap_scale_bar b;
    ap_error err;
    if (ap__scale_bar_parse(f, len, n & ~(size_t)1, &b, &err) == AP_OK) {
        if (ap_bar_check(&b.bar, &err) != AP_OK || fabs(b.bar.open) > 1e15 ||
            fabs(b.bar.close) > 1e15 || !isfinite(b.bar.volume))
            abort();
        int64_t tf;
        if (ap_timeframe_parse(b.timeframe, &tf, &err) != AP_OK || tf != b.tf_s ||
            !b.symbol[0] || strlen(b.symbol) >= AP_SYMBOL_MAX)
            abort();
        if (ap__scale_partition(b.symbol, 7) >= 7)
            abort();
    } else if (!err.msg[0])
        abort(); /* a refusal always says why */
    if (n) {
        char id[64];
        size_t l = len[n - 1] < sizeof id - 1 ? len[n - 1] : sizeof id - 1;
        memcpy(id, f[n - 1], l);
        id[l] = 0;
        ap_scale_id a;
        if (!ap__scale_id_parse(id, &a) && ap__scale_id_cmp(a, a))
            abort();
    }
    return 0;
}
