/*
 * gRPC over HTTP/2, the parts that are plain bytes and text (gRPC's
 * PROTOCOL-HTTP2 document): the length-prefixed message of a unary call,
 * the grpc-timeout header, the percent-encoding of grpc-message, and the
 * status codes. No sockets, no nghttp2: the fuzz target drives these and
 * the message decoders directly (tests/fuzz/fuzz_grpc.c).
 */
#ifndef AP_GRPC_FRAMING_H
#define AP_GRPC_FRAMING_H

#include <stddef.h>
#include <stdint.h>

/* The gRPC status codes (grpc/status.h). */
enum {
    AP_GRPC_OK = 0,
    AP_GRPC_CANCELLED = 1,
    AP_GRPC_UNKNOWN = 2,
    AP_GRPC_INVALID_ARGUMENT = 3,
    AP_GRPC_DEADLINE_EXCEEDED = 4,
    AP_GRPC_NOT_FOUND = 5,
    AP_GRPC_PERMISSION_DENIED = 7,
    AP_GRPC_RESOURCE_EXHAUSTED = 8,
    AP_GRPC_FAILED_PRECONDITION = 9,
    AP_GRPC_ABORTED = 10,
    AP_GRPC_UNIMPLEMENTED = 12,
    AP_GRPC_INTERNAL = 13,
    AP_GRPC_UNAVAILABLE = 14,
    AP_GRPC_UNAUTHENTICATED = 16
};

#define AP_GRPC_PREFIX 5 /* compressed flag (1 byte) + length (4 bytes, big-endian) */

/*
 * The one message of a unary request body (buf, len: every DATA byte of the
 * stream). AP_GRPC_OK and *msg / *mlen inside buf, or the status to answer
 * with and why: INTERNAL (no message, a cut one, or more than one),
 * RESOURCE_EXHAUSTED (declared longer than max), UNIMPLEMENTED (compressed:
 * we accept identity only).
 */
int ap__grpc_unframe(const uint8_t *buf, size_t len, size_t max, const uint8_t **msg,
                     size_t *mlen, char *why, size_t whysize);
/* The declared length of the message whose prefix is p (5 bytes). */
uint32_t ap__grpc_declared(const uint8_t *p);
/* Write the 5-byte prefix of an uncompressed message of n bytes. */
void ap__grpc_prefix(uint8_t *p, uint32_t n);

/* grpc-timeout: 1 to 8 digits and a unit (H M S m u n). 0 and *ns, or -1. */
int ap__grpc_timeout_parse(const char *v, uint64_t *ns);

/* grpc-message: percent-encode what is not printable ASCII (and '%').
   Always NUL-terminates; cuts at a whole escape. */
void ap__grpc_percent_encode(const char *in, char *out, size_t size);

/* An ap_status (AP_OK, AP_E*) as a gRPC status. */
int ap__grpc_code_of(int ap_status);
/* "NOT_FOUND" ... for logs. */
const char *ap__grpc_code_name(int code);

#endif
