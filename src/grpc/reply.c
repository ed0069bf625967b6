/*
 * Answers and request helpers for the RPCs (rpc.h): a message framed for
 * the wire, an error with its status, decoding, version strings.
 */
#include "grpc/framing.h"
#include "grpc/rpc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

/* ---- answers ----------------------------------------------------------------------- */

int ap__grpc_reply(ap_grpc_call *c, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = n <= UINT32_MAX ? malloc(AP_GRPC_PREFIX + n) : NULL;
    if (!b)
        return ap__grpc_fail(c, AP_GRPC_RESOURCE_EXHAUSTED, "out of memory for the answer");
    ap__grpc_prefix(b, (uint32_t)n);
    protobuf_c_message_pack(m, b + AP_GRPC_PREFIX);
    free(c->resp);
    c->resp = b;
    c->resp_len = AP_GRPC_PREFIX + n;
    c->code = AP_GRPC_OK;
    return 1;
}

int ap__grpc_fail(ap_grpc_call *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    c->code = code;
    free(c->resp);
    c->resp = NULL;
    return 1;
}

int ap__grpc_fail_err(ap_grpc_call *c, const ap_error *err)
{
    char msg[AP_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", err->msg);
    ap__srv_scrub_paths(c->srv, msg); /* client-facing: no server paths */
    return ap__grpc_fail(c, ap__grpc_code_of(err->code), "%s", msg);
}

ProtobufCMessage *ap__grpc_decode(ap_grpc_call *c, const ProtobufCMessageDescriptor *d,
                                  const uint8_t *msg, size_t len)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, msg);
    if (!m)
        ap__grpc_fail(c, AP_GRPC_INVALID_ARGUMENT, "cannot decode the %s message", d->name);
    return m;
}

/* A version string as the protocol sends it: "" (the one served) or a
   decimal >= 1. 0 and *v, or -1 (answered). */
int ap__grpc_version(ap_grpc_call *c, const char *s, uint32_t *v)
{
    *v = 0;
    if (!*s)
        return 0;
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (*s < '1' || *s > '9' || *end || x > UINT32_MAX) {
        ap__grpc_fail(c, AP_GRPC_INVALID_ARGUMENT, "version '%.64s' must be a number >= 1 (or "
                      "empty: the version served)", s);
        return -1;
    }
    *v = (uint32_t)x;
    return 0;
}

