/*
 * The gRPC transport's internals, shared by its two files: session.c (one
 * HTTP/2 session's callbacks, a stream's request and answer, the dispatch
 * to the RPCs) and transport.c (the socket, connections, the loop, the
 * done list's drain, the life cycle). Loop thread only, except mu/done.
 */
#ifndef AP_GRPC_TRANSPORT_H
#define AP_GRPC_TRANSPORT_H

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>

#include "grpc/call.h"
#include "grpc/grpc.h"

typedef struct gconn gconn;
typedef struct gstream gstream;

struct gstream {
    gconn *conn;
    int32_t id;
    gstream *prev, *next;       /* the connection's streams */
    char path[96];
    int path_long, post, grpc_ct;
    char auth[300];
    int has_auth, auth_long;
    uint64_t timeout_ns;
    int has_timeout, timeout_bad;
    uint8_t *body;
    size_t len, cap;
    int answered;               /* an answer was submitted, or a call waits */
    ap_grpc_call *call;         /* a call waiting for its inference */
    uint8_t *out;               /* the framed answer message, sent from out_off */
    size_t out_len, out_off;
    char status[4], message[AP_GRPC_MSG_MAX * 3 + 1];
};

struct gconn {
    ap_srv_grpc *g;
    int fd;
    nghttp2_session *sess;
    gconn *prev, *next;
    gstream *streams;
    int out_armed;              /* EPOLLOUT asked for: a write would block */
    uint64_t last_ns;           /* the last byte read (the idle sweep) */
};

struct ap_srv_grpc {
    struct ap_server *s;
    int listen_fd, port, epfd, wake_fd;
    size_t max_msg;
    pthread_t th;
    int started;
    atomic_int stop, quiesce;
    int quiesced;
    ap_service_pass pass;
    pthread_mutex_t mu;
    ap_grpc_call *done;         /* completed calls (under mu) */
    gconn *conns;
    long nconns;
};

/* epoll tags for the two fds that are not connections */

/* session.c */
/* A new nghttp2 server session for c, its SETTINGS submitted. 0 or -1. */
int ap__grpc_session_new(gconn *c);
void ap__grpc_stream_free(gstream *st);
/* Submit the answer of a call (resp moves to the stream). */
void ap__grpc_answer(gstream *st, int code, const char *msg, uint8_t *resp, size_t resp_len);
/* A call answered: the server's drain counts it. */
void ap__grpc_inflight_done(struct ap_server *s);

#endif
