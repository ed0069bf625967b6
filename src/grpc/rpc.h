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

/* rpc.c */
int ap__grpc_server_live(ap_grpc_call *c, const uint8_t *msg, size_t len);
int ap__grpc_server_ready(ap_grpc_call *c, const uint8_t *msg, size_t len);
int ap__grpc_server_metadata(ap_grpc_call *c, const uint8_t *msg, size_t len);
int ap__grpc_model_ready(ap_grpc_call *c, const uint8_t *msg, size_t len);
int ap__grpc_repo_index(ap_grpc_call *c, const uint8_t *msg, size_t len);
int ap__grpc_repo_load(ap_grpc_call *c, const uint8_t *msg, size_t len);
int ap__grpc_repo_unload(ap_grpc_call *c, const uint8_t *msg, size_t len);
/* rpc_model.c */
int ap__grpc_model_metadata(ap_grpc_call *c, const uint8_t *msg, size_t len);
int ap__grpc_model_statistics(ap_grpc_call *c, const uint8_t *msg, size_t len);
/* rpc_infer.c */
int ap__grpc_model_infer(ap_grpc_call *c, const uint8_t *msg, size_t len);
void ap__grpc_model_infer_finish(ap_grpc_call *c);

#endif
