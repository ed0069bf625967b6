/*
 * libFuzzer target for the gRPC front's byte-level paths: a unary request
 * body (the 5-byte prefix and its message, ap__grpc_unframe) and the
 * protobuf-c decode and handling of every RPC (src/grpc/rpc*.c) on a
 * server core with the demo repository, inline inference so that a
 * ModelInfer completes inside its own submit. Also grpc-timeout parsing
 * and grpc-message encoding. Input: byte 0 picks the method, byte 1 the
 * path (0..9: that method; 10+: the grpc-timeout parser and the
 * percent-encoder on the rest), the rest is the HTTP/2 body.
 *
 *   make fuzz && build/fuzz/fuzz_grpc tests/fuzz/corpus/grpc
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "grpc/call.h"
#include "grpc/framing.h"
#include "server/server_internal.h"

static ap_server *srv;
static const char *const names[] = {
    "ServerLive",      "ServerReady",         "ServerMetadata",       "ModelReady",
    "ModelMetadata",   "ModelStatistics",     "ModelInfer",           "RepositoryIndex",
    "RepositoryModelLoad", "RepositoryModelUnload"};

static void completed(ap_grpc_call *c) { c->code = -1; /* marks it: finish below */ }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ap_server_config cfg;
    ap_error err;
    ap__server_config_default(&cfg);
    snprintf(cfg.repository, sizeof cfg.repository, "examples/models");
    cfg.workers = 1;
    cfg.inline_inference = 1;
    if (ap__srv_create(&cfg, NULL, NULL, 0, NULL, &srv, &err) != AP_OK) {
        fprintf(stderr, "fuzz_grpc: %s\n", err.msg);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] >= 10) { /* header values */
        char t[32], out[64];
        size_t n = size - 1 < sizeof t - 1 ? size - 1 : sizeof t - 1;
        memcpy(t, data + 1, n);
        t[n] = 0;
        uint64_t ns;
        ap__grpc_timeout_parse(t, &ns);
        ap__grpc_percent_encode(t, out, sizeof out);
        if (strlen(out) >= sizeof out)
            abort();
        return 0;
    }
    char path[96];
    snprintf(path, sizeof path, "/inference.GRPCInferenceService/%s", names[data[0]]);
    const ap_grpc_method *m = ap__grpc_method(path);
    if (!m)
        abort(); /* every name of the table is served */
    const uint8_t *msg;
    size_t mlen;
    char why[200];
    if (ap__grpc_unframe(data + 1, size - 1, 1 << 20, &msg, &mlen, why, sizeof why))
        return 0;
    ap_grpc_call c = {0};
    c.srv = srv;
    c.m = m;
    c.t0_ns = ap__clock_ns();
    c.deadline_ns = c.t0_ns + 5000000000ull;
    c.on_complete = completed;
    c.code = -2;
    if (!m->handle(&c, msg, mlen)) {
        if (c.code != -1)
            abort(); /* inline inference: the completion came inside the submit */
        m->finish(&c);
    }
    if (c.code < 0 || c.code > 16 || (c.code == 0) != (c.resp != NULL))
        abort(); /* every call ends with a status, and OK with a message */
    free(c.resp);
    ap__grpc_call_clear(&c);
    return 0;
}
