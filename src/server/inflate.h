/* Request bodies with a Content-Encoding (inflate.c): gzip and deflate
   through zlib, bounded by the body limit. */
#ifndef AP_SERVER_INFLATE_H
#define AP_SERVER_INFLATE_H

#include <stddef.h>

/*
 * Decode n bytes of in, sent with Content-Encoding enc: "gzip" (RFC 1952),
 * "deflate" (the zlib format, RFC 1950, as RFC 9110 defines it) or
 * "identity" (case-insensitive, one coding). *out is malloc'd, NUL-terminated
 * (*outn bytes before the NUL); for identity *out is NULL (the body stays).
 * Returns 0, or an HTTP status with why: 415 (another coding), 413 (more
 * than limit bytes once decoded: decoding stops there), 400 (not a valid
 * stream, truncated, or bytes after its end), 500 (out of memory).
 */
int ap__srv_inflate(const char *enc, const char *in, size_t n, size_t limit, char **out,
                    size_t *outn, char *why, size_t whysize);

#endif
