/*
 * gRPC framing and header values (framing.h). Everything here reads
 * untrusted bytes: lengths are checked before use, nothing is copied.
 */
#include "grpc/framing.h"

#include <stdio.h>
#include <string.h>

#include "alphapulse/common.h"

uint32_t ap__grpc_declared(const uint8_t *p)
{
    return (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | (uint32_t)p[4];
}

void ap__grpc_prefix(uint8_t *p, uint32_t n)
{
    p[0] = 0;
    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
}

int ap__grpc_unframe(const uint8_t *buf, size_t len, size_t max, const uint8_t **msg,
                     size_t *mlen, char *why, size_t whysize)
{
    if (len < AP_GRPC_PREFIX) {
        snprintf(why, whysize, "a unary call needs one request message (got %zu bytes)", len);
        return AP_GRPC_INTERNAL;
    }
    if (buf[0] > 1) {
        snprintf(why, whysize, "bad message prefix: compressed flag %u", buf[0]);
        return AP_GRPC_INTERNAL;
    }
    if (buf[0] == 1) {
        snprintf(why, whysize, "compressed messages are not supported (grpc-accept-encoding: "
                 "identity)");
        return AP_GRPC_UNIMPLEMENTED;
    }
    uint32_t n = ap__grpc_declared(buf);
    if (n > max) {
        snprintf(why, whysize, "request message of %u bytes is larger than "
                 "grpc_max_message_bytes (%zu)", n, max);
        return AP_GRPC_RESOURCE_EXHAUSTED;
    }
    if (len - AP_GRPC_PREFIX < n) {
        snprintf(why, whysize, "request message cut short: %zu of %u bytes",
                 len - AP_GRPC_PREFIX, n);
        return AP_GRPC_INTERNAL;
    }
    if (len - AP_GRPC_PREFIX > n) {
        snprintf(why, whysize, "a unary call takes one request message (%zu more bytes)",
                 len - AP_GRPC_PREFIX - n);
        return AP_GRPC_INTERNAL;
    }
    *msg = buf + AP_GRPC_PREFIX;
    *mlen = n;
    return AP_GRPC_OK;
}

int ap__grpc_timeout_parse(const char *v, uint64_t *ns)
{
    uint64_t x = 0;
    size_t i = 0;
    for (; v[i] >= '0' && v[i] <= '9'; i++) {
        if (i == 8)
            return -1; /* the spec allows 8 digits at most */
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (i == 0 || !v[i] || v[i + 1])
        return -1;
    uint64_t unit;
    switch (v[i]) {
    case 'H': unit = 3600000000000ull; break;
    case 'M': unit = 60000000000ull; break;
    case 'S': unit = 1000000000ull; break;
    case 'm': unit = 1000000ull; break;
    case 'u': unit = 1000ull; break;
    case 'n': unit = 1; break;
    default: return -1;
    }
    *ns = x * unit; /* 99999999 H fits in 64 bits */
    return 0;
}

void ap__grpc_percent_encode(const char *in, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (!size)
        return;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        int plain = *p >= 0x20 && *p <= 0x7e && *p != '%';
        size_t need = plain ? 1 : 3;
        if (o + need >= size)
            break;
        if (plain)
            out[o++] = (char)*p;
        else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
}

int ap__grpc_code_of(int st)
{
    switch (st) {
    case AP_OK: return AP_GRPC_OK;
    case AP_ENOTFOUND: return AP_GRPC_NOT_FOUND;
    case AP_ETIMEDOUT: return AP_GRPC_DEADLINE_EXCEEDED;
    case AP_EOVERLOAD: /* a queue is full: come back later */
    case AP_EFULL: return AP_GRPC_RESOURCE_EXHAUSTED;
    case AP_ECANCELLED: return AP_GRPC_UNAVAILABLE; /* shutting down */
    case AP_ERANGE: return AP_GRPC_RESOURCE_EXHAUSTED;
    case AP_ECONFLICT: return AP_GRPC_FAILED_PRECONDITION;
    case AP_EUNSUPPORTED: return AP_GRPC_UNIMPLEMENTED;
    case AP_ENOMEM:
    case AP_EIO: return AP_GRPC_INTERNAL;
    default: return AP_GRPC_INVALID_ARGUMENT; /* EINVAL, EFORMAT: the request is wrong */
    }
}

const char *ap__grpc_code_name(int code)
{
    static const char *const names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED"};
    return code >= 0 && code <= 16 ? names[code] : "?";
}
