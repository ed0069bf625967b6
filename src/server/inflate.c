/*
 * Content-Encoding of request bodies (tritonclient's
 * request_compression_algorithm): zlib inflates into a buffer that grows up
 * to the body limit and no further, so a small hostile body that would
 * inflate to gigabytes costs at most max_body_bytes.
 */
#include "server/inflate.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

int ap__srv_inflate(const char *enc, const char *in, size_t n, size_t limit, char **out,
                    size_t *outn, char *why, size_t whysize)
{
    *out = NULL;
    *outn = n;
    while (*enc == ' ' || *enc == '\t')
        enc++;
    size_t el = strlen(enc);
    while (el && (enc[el - 1] == ' ' || enc[el - 1] == '\t'))
        el--;
    int gzip = el == 4 && !strncasecmp(enc, "gzip", 4);
    int deflate = el == 7 && !strncasecmp(enc, "deflate", 7);
    if (el == 8 && !strncasecmp(enc, "identity", 8))
        return 0;
    if (!gzip && !deflate) {
        snprintf(why, whysize, "Content-Encoding '%.*s' is not supported (gzip, deflate, "
                 "identity)", (int)(el > 40 ? 40 : el), enc);
        return 415;
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, gzip ? 15 + 16 : 15) != Z_OK) {
        snprintf(why, whysize, "out of memory for the %s decoder", gzip ? "gzip" : "deflate");
        return 500;
    }
    size_t cap = n * 4 < 4096 ? 4096 : n * 4, len = 0;
    if (cap > limit + 1)
        cap = limit + 1; /* one byte over the limit tells that it is over */
    char *buf = malloc(cap + 1);
    int rc = Z_OK, status = 0;
    z.next_in = (unsigned char *)(uintptr_t)in;
    while (buf) {
        /* zlib counts in uInt: feed and drain at most 1 GiB at a time */
        size_t left_in = n - (size_t)((const char *)z.next_in - in);
        z.avail_in = (uInt)(left_in > (1u << 30) ? (1u << 30) : left_in);
        size_t room = cap - len;
        z.next_out = (unsigned char *)buf + len;
        z.avail_out = (uInt)(room > (1u << 30) ? (1u << 30) : room);
        uInt before = z.avail_out;
        rc = inflate(&z, Z_NO_FLUSH);
        len += before - z.avail_out;
        if (rc == Z_STREAM_END)
            break;
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            snprintf(why, whysize, "the %s body is not valid: %s", gzip ? "gzip" : "deflate",
                     z.msg ? z.msg : "corrupt stream");
            status = 400;
            break;
        }
        if (len > limit) {
            snprintf(why, whysize, "the %s body inflates to more than the limit "
                     "(max_body_bytes = %zu)", gzip ? "gzip" : "deflate", limit);
            status = 413;
            break;
        }
        if (len == cap) {
            size_t nc = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
            char *nb = realloc(buf, nc + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap = nc;
            continue;
        }
        if (rc == Z_BUF_ERROR || (const char *)z.next_in == in + n) { /* the input ended early */
            snprintf(why, whysize, "the %s body is truncated", gzip ? "gzip" : "deflate");
            status = 400;
            break;
        }
    }
    if (!buf) {
        inflateEnd(&z);
        snprintf(why, whysize, "out of memory inflating the body");
        return 500;
    }
    if (!status && len > limit) {
        snprintf(why, whysize, "the %s body inflates to more than the limit (max_body_bytes = "
                 "%zu)", gzip ? "gzip" : "deflate", limit);
        status = 413;
    }
    if (!status && z.avail_in) {
        snprintf(why, whysize, "%u bytes after the end of the %s stream", z.avail_in,
                 gzip ? "gzip" : "deflate");
        status = 400;
    }
    inflateEnd(&z);
    if (status) {
        free(buf);
        return status;
    }
    buf[len] = 0;
    *out = buf;
    *outn = len;
    return 0;
}
