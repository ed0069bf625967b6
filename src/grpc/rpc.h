/*
 * The RPCs' shared pieces (rpc.c, rpc_model.c, rpc_infer.c, index.c).
 */
#ifndef AP_GRPC_RPC_H
#define AP_GRPC_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "alphapulse.h"
#include "grpc/call.h"

struct ap_server;

/* Decode msg as d; NULL when it cannot be (answered: INVALID_ARGUMENT). */
ProtobufCMessage *ap__grpc_decode(ap_grpc_call *c, const ProtobufCMessageDescriptor *d,
                                  const uint8_t *msg, size_t len);
/* Answer err (its status mapped, its message); returns 1. */
int ap__grpc_fail_err(ap_grpc_call *c, const ap_error *err);
/* "" -> 0 (the one served), "N" -> N; -1 when malformed (answered). */
int ap__grpc_version(ap_grpc_call *c, const char *s, uint32_t *v);

/* The server is ready: serving, not draining (the REST /v2/health/ready). */
int ap__grpc_server_ready(struct ap_server *s);

/* The repository index as data: every repository model and every served
   one, READY with its version or UNAVAILABLE with the reason. */
typedef struct ap__grpc_index_entry {
    char name[65];
    char version[12]; /* "" when not ready */
    int ready;
    char reason[AP_ERROR_MSG_MAX];
} ap__grpc_index_entry;
typedef struct ap__grpc_index {
    ap__grpc_index_entry *e;
    size_t n;
} ap__grpc_index;
int ap__grpc_index_read(struct ap_server *s, int only_ready, ap__grpc_index *out, ap_error *err);
void ap__grpc_index_free(ap__grpc_index *idx);

/* rpc_model.c */
int ap__grpc_model_metadata(ap_grpc_call *c, const uint8_t *msg, size_t len);
int ap__grpc_model_statistics(ap_grpc_call *c, const uint8_t *msg, size_t len);
/* rpc_infer.c */
int ap__grpc_model_infer(ap_grpc_call *c, const uint8_t *msg, size_t len);
void ap__grpc_model_infer_finish(ap_grpc_call *c);

#endif
