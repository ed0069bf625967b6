/*
 * The gRPC front: inference.GRPCInferenceService of the Open Inference
 * Protocol (proto/grpc_service.proto) on grpc_port, next to the HTTP front,
 * over the same service, batchers, tokens and roles. docs/SERVER.md "gRPC".
 *
 * Why nghttp2 + protobuf-c and not gRPC's own library: gRPC's C core
 * (grpc/grpc.h) has no stable public API for writing a server in C — its
 * supported server API is grpc++ (C++), the C surface is an internal one
 * that changes between releases. gRPC is HTTP/2 with a 5-byte message
 * prefix and two trailers; nghttp2 (Debian's libnghttp2) is the HTTP/2
 * library curl and Apache use, with a callback API made for an event loop
 * like ours, and protobuf-c is already how we read ONNX. What is ours is
 * small: the framing (framing.c) and the RPCs (rpc*.c).
 *
 * Threads: one event loop thread (transport.c) reads, decodes and submits;
 * inference completions come from the batchers' threads and wake the loop
 * through an eventfd; the loop writes the answers.
 */
#ifndef AP_GRPC_GRPC_H
#define AP_GRPC_GRPC_H

#include "alphapulse/common.h"

struct ap_server;
typedef struct ap_srv_grpc ap_srv_grpc;

/* Bind cfg->host:cfg->grpc_port and start the loop. */
int ap__grpc_start(struct ap_server *s, ap_srv_grpc **out, ap_error *err);
int ap__grpc_port(const ap_srv_grpc *g);
/* Stop accepting connections; open ones go on (the drain). */
void ap__grpc_quiesce(ap_srv_grpc *g);
/* Stop the loop (after the service stopped: every call has completed). */
void ap__grpc_stop(ap_srv_grpc *g);
void ap__grpc_free(ap_srv_grpc *g);

#endif
