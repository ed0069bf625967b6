/* The stream schema: partition hash and the bar entry parser (schema.h). */
#include "scale/schema.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

uint32_t ap__scale_partition(const char *symbol, uint32_t P)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)symbol; *p; p++)
        h = (h ^ *p) * 16777619u;
    return P ? h % P : 0;
}

static const char *const names[AP_SCALE_BAR_FIELDS] = {"symbol", "timeframe", "t", "open",
                                                       "high", "low", "close", "volume"};

/* The value as a C string (fields hold no NUL) into buf; -1: too long. */
static int copy_val(char *buf, size_t size, const char *v, size_t n)
{
    if (n >= size || memchr(v, 0, n))
        return -1;
    memcpy(buf, v, n);
    buf[n] = 0;
    return 0;
}

int ap__scale_bar_parse(const char *const *f, const size_t *len, size_t n, ap_scale_bar *out,
                        ap_error *err)
{
    memset(out, 0, sizeof *out);
    if (n % 2)
        return ap__error_set(err, AP_EINVAL, "an odd number of field strings");
    const char *val[AP_SCALE_BAR_FIELDS] = {0};
    size_t vlen[AP_SCALE_BAR_FIELDS] = {0};
    for (size_t i = 0; i < n; i += 2) {
        int k = -1;
        for (int j = 0; j < AP_SCALE_BAR_FIELDS && k < 0; j++)
            if (len[i] == strlen(names[j]) && !memcmp(f[i], names[j], len[i]))
                k = j;
        if (k < 0)
            return ap__error_set(err, AP_EINVAL, "unknown field '%.*s' (a bar has symbol, "
                                "timeframe, t, open, high, low, close, volume)",
                                (int)(len[i] > 40 ? 40 : len[i]), f[i]);
        if (val[k])
            return ap__error_set(err, AP_EINVAL, "field '%s' given twice", names[k]);
        val[k] = f[i + 1];
        vlen[k] = len[i + 1];
    }
    for (int j = 0; j < AP_SCALE_BAR_FIELDS; j++)
        if (!val[j])
            return ap__error_set(err, AP_EINVAL, "field '%s' is missing", names[j]);
    if (!vlen[0] || copy_val(out->symbol, sizeof out->symbol, val[0], vlen[0]))
        return ap__error_set(err, AP_EINVAL, "symbol must be 1 to %d bytes", AP_SYMBOL_MAX - 1);
    if (copy_val(out->timeframe, sizeof out->timeframe, val[1], vlen[1]) ||
        ap_timeframe_parse(out->timeframe, &out->tf_s, err) != AP_OK)
        return ap__error_set(err, AP_EINVAL, "timeframe '%.*s' is not one (1m, 4h, 1d ...)",
                            (int)(vlen[1] > 16 ? 16 : vlen[1]), val[1]);
    char b[64], *end;
    if (copy_val(b, sizeof b, val[2], vlen[2]))
        return ap__error_set(err, AP_EINVAL, "t is not an integer of epoch milliseconds");
    errno = 0;
    long long t = strtoll(b, &end, 10);
    /* ms within +-2^53 us: the bar time in us must not overflow */
    if (!b[0] || *end || errno || t < -9007199254740LL || t > 9007199254740LL)
        return ap__error_set(err, AP_EINVAL, "t '%s' is not an integer of epoch milliseconds "
                            "(at most 9007199254740)", b);
    out->bar.t = (int64_t)t * 1000;
    double *v[5] = {&out->bar.open, &out->bar.high, &out->bar.low, &out->bar.close,
                    &out->bar.volume};
    for (int k = 0; k < 5; k++) {
        if (copy_val(b, sizeof b, val[3 + k], vlen[3 + k]))
            return ap__error_set(err, AP_EINVAL, "%s is not a number", names[3 + k]);
        errno = 0;
        *v[k] = strtod(b, &end);
        if (!b[0] || *end || errno == ERANGE || !isfinite(*v[k]))
            return ap__error_set(err, AP_EINVAL, "%s '%s' is not a finite number", names[3 + k],
                                b);
        /* beyond any real market: such a value only overflows the features */
        if (fabs(*v[k]) > (k < 4 ? 1e15 : 1e18))
            return ap__error_set(err, AP_EINVAL, "%s %s is beyond %s", names[3 + k], b,
                                k < 4 ? "1e15" : "1e18");
    }
    return ap_bar_check(&out->bar, err);
}

int ap__scale_id_parse(const char *s, ap_scale_id *id)
{
    char *end;
    errno = 0;
    id->ms = strtoull(s, &end, 10);
    if (end == s || *end != '-' || errno)
        return -1;
    const char *q = end + 1;
    id->seq = strtoull(q, &end, 10);
    return end == q || *end || errno ? -1 : 0;
}

int ap__scale_id_cmp(ap_scale_id a, ap_scale_id b)
{
    return a.ms != b.ms ? (a.ms < b.ms ? -1 : 1) : a.seq != b.seq ? (a.seq < b.seq ? -1 : 1) : 0;
}
