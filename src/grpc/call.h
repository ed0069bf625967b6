/*
 * One gRPC call between the transport (transport.c: HTTP/2 streams) and
 * the RPCs (rpc.c, rpc_infer.c). The transport reads the headers and the
 * request message, checks the caller's token against the method's role and
 * calls the method's handler on the loop thread. The handler answers at
 * once (returns 1, the answer in code/msg/resp) or submits an inference
 * and returns 0; the completion, on whichever thread ran the batch, fills
 * the call and calls ap__grpc_call_complete, and the loop calls the
 * method's finish to write the answer.
 *
 * Ownership: the transport allocates and frees the call. A call whose
 * stream closed while it waits (the client went away) stays until its
 * completion came back to the loop.
 */
#ifndef AP_GRPC_CALL_H
#define AP_GRPC_CALL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "serve/service.h"

struct ap_server;
typedef struct ap_grpc_call ap_grpc_call;

typedef struct ap_grpc_method {
    const char *path; /* "/inference.GRPCInferenceService/ModelInfer" */
    int role;         /* ROLE_* of server/routes.h */
    /* 1: answered; 0: an inference was submitted and will complete */
    int (*handle)(ap_grpc_call *c, const uint8_t *msg, size_t len);
    void (*finish)(ap_grpc_call *c); /* on the loop, after the completion */
} ap_grpc_method;

#define AP_GRPC_MSG_MAX 512

struct ap_grpc_call {
    struct ap_server *srv;
    void *transport;           /* the owning front (ap__grpc_call_complete) */
    const ap_grpc_method *m;
    uint64_t t0_ns;            /* arrival */
    uint64_t deadline_ns;      /* the earlier of grpc-timeout and inference_timeout */
    ap_service_pass *pass;     /* the loop's pass: submits are deferred to its end */

    /* the answer: code; msg for grpc-message; resp the framed message (OK) */
    int code;
    char msg[AP_GRPC_MSG_MAX];
    uint8_t *resp;
    size_t resp_len;

    /* an inference in flight (rpc_infer.c) */
    void *infer;
    /* called once, from any thread, when that inference completed: the
       transport's hands the call back to its loop (the fuzz target's runs
       it at once) */
    void (*on_complete)(ap_grpc_call *c);

    /* transport-owned */
    void *stream;
    ap_grpc_call *next_done;
};

/* The method of a request path, or NULL (UNIMPLEMENTED). */
const ap_grpc_method *ap__grpc_method(const char *path);
/* Free what a handler left in the call (an inference's state). */
void ap__grpc_call_clear(ap_grpc_call *c);

/* Answers, for handlers. */
int ap__grpc_reply(ap_grpc_call *c, const ProtobufCMessage *m); /* returns 1 */
int ap__grpc_fail(ap_grpc_call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4))); /* returns 1 */

#endif
