/*
 * The gRPC transport: a listening socket, one epoll loop thread, an nghttp2
 * server session per connection (grpc.h says why nghttp2). Per stream it
 * collects the headers that matter (:path, content-type, grpc-timeout,
 * authorization) and the request message, bounded by
 * grpc_max_message_bytes before anything is buffered; at END_STREAM it
 * checks the token against the method's role and hands the message to the
 * method (call.h). Answers: HEADERS + the message + trailers (grpc-status,
 * grpc-message), or a trailers-only HEADERS for an error.
 *
 * Inference completions arrive from other threads on the done list (under
 * mu) and the eventfd wakes the loop, which writes them; the loop never
 * waits for an inference. Its pass (ap_service_pass) makes the requests one
 * read gathered run as one batch when the pass ends, like the HTTP loops.
 */
#include "grpc/grpc.h"
#include "grpc/call.h"
#include "grpc/framing.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "server/server_internal.h"
#include "server/routes.h"

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
};

struct ap_srv_grpc {
    ap_server *s;
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
static char TAG_LISTEN, TAG_WAKE;

/* ---- in-flight accounting (the server's drain waits for it) ----------------------- */

static void inflight_add(ap_server *s) { atomic_fetch_add(&s->inflight, 1); }

static void inflight_done(ap_server *s)
{
    if (atomic_fetch_sub_explicit(&s->inflight, 1, memory_order_acq_rel) == 1 &&
        atomic_load(&s->draining)) {
        pthread_mutex_lock(&s->drain_mu);
        pthread_cond_broadcast(&s->drain_cv);
        pthread_mutex_unlock(&s->drain_mu);
    }
}

/* ---- answers ------------------------------------------------------------------------ */

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), \
                  NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE}

static ssize_t read_out(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t length,
                        uint32_t *flags, nghttp2_data_source *src, void *user)
{
    gstream *st = src->ptr;
    size_t n = st->out_len - st->out_off;
    if (n > length)
        n = length;
    memcpy(buf, st->out + st->out_off, n);
    st->out_off += n;
    if (st->out_off == st->out_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv tr[] = {NV("grpc-status", "0")};
        if (nghttp2_submit_trailer(sess, id, tr, 1))
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

/* Submit the answer of code/msg/resp (resp moves to the stream). */
static void answer(gstream *st, int code, const char *msg, uint8_t *resp, size_t resp_len)
{
    st->answered = 1;
    nghttp2_session *sess = st->conn->sess;
    if (code == AP_GRPC_OK) {
        st->out = resp;
        st->out_len = resp_len;
        st->out_off = 0;
        nghttp2_nv h[] = {NV(":status", "200"), NV("content-type", "application/grpc"),
                          NV("grpc-accept-encoding", "identity")};
        nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_out};
        nghttp2_submit_response(sess, st->id, h, 3, &dp);
        return;
    }
    free(resp);
    snprintf(st->status, sizeof st->status, "%d", code);
    ap__grpc_percent_encode(msg ? msg : "", st->message, sizeof st->message);
    /* trailers-only: the status in the one HEADERS frame, which ends the stream */
    nghttp2_nv h[] = {NV(":status", "200"), NV("content-type", "application/grpc"),
                      NV("grpc-accept-encoding", "identity"), NV("grpc-status", st->status),
                      NV("grpc-message", st->message)};
    nghttp2_submit_response(sess, st->id, h, 5, NULL);
}

static void answer_http(gstream *st, const char *status)
{
    st->answered = 1;
    snprintf(st->status, sizeof st->status, "%s", status);
    nghttp2_nv h[] = {NV(":status", st->status)};
    nghttp2_submit_response(st->conn->sess, st->id, h, 1, NULL);
}

static void call_complete(ap_grpc_call *c);

/* ---- a request, once complete --------------------------------------------------------- */

static int auth_code(int a)
{
    return a == AP_AUTH_FORBIDDEN ? AP_GRPC_PERMISSION_DENIED
         : a == AP_AUTH_LIMITED   ? AP_GRPC_RESOURCE_EXHAUSTED
                                  : AP_GRPC_UNAUTHENTICATED;
}

static void dispatch(gstream *st)
{
    ap_srv_grpc *g = st->conn->g;
    ap_server *s = g->s;
    uint64_t now = ap__clock_ns();
    if (!st->post || !st->grpc_ct) { /* not gRPC at all: the spec's HTTP 415 */
        answer_http(st, st->post ? "415" : "405");
        return;
    }
    const ap_grpc_method *m = st->path_long ? NULL : ap__grpc_method(st->path);
    if (!m) {
        char why[256];
        snprintf(why, sizeof why, "unknown method %.96s%s (this server implements part of "
                 "inference.GRPCInferenceService: docs/SERVER.md)", st->path,
                 st->path_long ? "..." : "");
        answer(st, AP_GRPC_UNIMPLEMENTED, why, NULL, 0);
        return;
    }
    if (s->auth && m->role != ROLE_PUBLIC) {
        char name[64];
        int retry = 0;
        int a = st->auth_long ? AP_AUTH_INVALID
                              : ap__auth_check(s->auth, st->has_auth ? st->auth : NULL, m->role,
                                               now, name, sizeof name, &retry);
        if (a != AP_AUTH_OK) {
            char why[400];
            const char *need = ap__auth_role_name(m->role);
            if (a == AP_AUTH_FORBIDDEN)
                snprintf(why, sizeof why, "token '%s' may not call %s: it needs role %s or "
                         "above", name, m->path, need);
            else if (a == AP_AUTH_LIMITED)
                snprintf(why, sizeof why, "token '%s' is over rate_limit_rps; retry in %d s",
                         name, retry);
            else
                snprintf(why, sizeof why, "%s needs a token with role %s or above "
                         "(metadata authorization: Bearer TOKEN); %s", m->path, need,
                         a == AP_AUTH_MISSING ? "none was sent" : "that token is not valid");
            answer(st, auth_code(a), why, NULL, 0);
            return;
        }
    }
    if (atomic_load(&s->draining)) {
        answer(st, AP_GRPC_UNAVAILABLE, "the server is shutting down", NULL, 0);
        return;
    }
    if (st->timeout_bad) {
        answer(st, AP_GRPC_INVALID_ARGUMENT, "malformed grpc-timeout header", NULL, 0);
        return;
    }
    const uint8_t *msg = NULL;
    size_t mlen = 0;
    char why[200];
    int code = ap__grpc_unframe(st->body, st->len, g->max_msg, &msg, &mlen, why, sizeof why);
    if (code) {
        answer(st, code, why, NULL, 0);
        return;
    }
    ap_grpc_call *c = calloc(1, sizeof *c);
    if (!c) {
        answer(st, AP_GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
        return;
    }
    c->srv = s;
    c->transport = g;
    c->m = m;
    c->t0_ns = now;
    uint64_t budget = (uint64_t)(s->cfg.inference_timeout * 1e9);
    if (st->has_timeout && st->timeout_ns < budget)
        budget = st->timeout_ns;
    c->deadline_ns = now + budget;
    c->pass = &g->pass;
    c->on_complete = call_complete;
    inflight_add(s);
    if (m->handle(c, msg, mlen)) {
        answer(st, c->code, c->msg, c->resp, c->resp_len);
        c->resp = NULL;
        ap__grpc_call_clear(c);
        free(c);
        inflight_done(s);
        return;
    }
    st->answered = 1; /* the completion answers */
    st->call = c;
    c->stream = st;
}

/* ---- nghttp2 callbacks ------------------------------------------------------------------ */

static ssize_t on_send(nghttp2_session *sess, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    gconn *c = user;
    ssize_t w = send(c->fd, data, len, MSG_NOSIGNAL);
    if (w < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? NGHTTP2_ERR_WOULDBLOCK
                                                       : NGHTTP2_ERR_CALLBACK_FAILURE;
    return w;
}

static int on_begin_headers(nghttp2_session *sess, const nghttp2_frame *f, void *user)
{
    gconn *c = user;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    gstream *st = calloc(1, sizeof *st);
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->conn = c;
    st->id = f->hd.stream_id;
    st->next = c->streams;
    if (c->streams)
        c->streams->prev = st;
    c->streams = st;
    nghttp2_session_set_stream_user_data(sess, st->id, st);
    return 0;
}

static int hdr_is(const uint8_t *n, size_t nl, const char *want)
{
    return nl == strlen(want) && !memcmp(n, want, nl);
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *f, const uint8_t *n, size_t nl,
                     const uint8_t *v, size_t vl, uint8_t flags, void *user)
{
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers of a request carry nothing we use */
    gstream *st = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id);
    if (!st)
        return 0;
    if (hdr_is(n, nl, ":path")) {
        st->path_long = vl >= sizeof st->path;
        size_t k = st->path_long ? sizeof st->path - 1 : vl;
        memcpy(st->path, v, k);
        st->path[k] = 0;
    } else if (hdr_is(n, nl, ":method"))
        st->post = vl == 4 && !memcmp(v, "POST", 4);
    else if (hdr_is(n, nl, "content-type"))
        /* application/grpc, application/grpc+proto; not application/grpc+json */
        st->grpc_ct = (vl == 16 && !memcmp(v, "application/grpc", 16)) ||
                      (vl == 22 && !memcmp(v, "application/grpc+proto", 22));
    else if (hdr_is(n, nl, "grpc-timeout")) {
        char t[16];
        st->has_timeout = 1;
        if (vl >= sizeof t)
            st->timeout_bad = 1;
        else {
            memcpy(t, v, vl);
            t[vl] = 0;
            st->timeout_bad = ap__grpc_timeout_parse(t, &st->timeout_ns) != 0;
        }
    } else if (hdr_is(n, nl, "authorization")) {
        st->has_auth = 1;
        st->auth_long = vl >= sizeof st->auth;
        size_t k = st->auth_long ? 0 : vl;
        memcpy(st->auth, v, k);
        st->auth[k] = 0;
    }
    return 0;
}

static int on_data(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *user)
{
    gconn *c = user;
    gstream *st = nghttp2_session_get_stream_user_data(sess, id);
    if (!st || st->answered)
        return 0; /* answered early (too large): the rest is dropped */
    size_t limit = c->g->max_msg + AP_GRPC_PREFIX + 1; /* one byte more says "too much" */
    size_t take = len;
    if (st->len + take > limit)
        take = limit - st->len;
    if (st->len + take > st->cap) {
        size_t cap = st->cap ? st->cap : 256;
        while (cap < st->len + take)
            cap *= 2;
        if (cap > limit)
            cap = limit;
        /* once the prefix is in, the declared size (checked below) is what we need */
        uint8_t *b = realloc(st->body, cap);
        if (!b) {
            answer(st, AP_GRPC_RESOURCE_EXHAUSTED, "out of memory for the request", NULL, 0);
            return 0;
        }
        st->body = b;
        st->cap = cap;
    }
    memcpy(st->body + st->len, data, take);
    st->len += take;
    /* refuse a hostile size as soon as its prefix says so, before reading it */
    if (st->len >= AP_GRPC_PREFIX && ap__grpc_declared(st->body) > c->g->max_msg) {
        char why[200];
        snprintf(why, sizeof why, "request message of %u bytes is larger than "
                 "grpc_max_message_bytes (%zu)", ap__grpc_declared(st->body), c->g->max_msg);
        answer(st, AP_GRPC_RESOURCE_EXHAUSTED, why, NULL, 0);
        return 0; /* the rest of its DATA is dropped unread (on_data's first test) */
    }
    if (st->len == limit) {
        answer(st, AP_GRPC_INTERNAL, "a unary call takes one request message", NULL, 0);
    }
    return 0;
}

static int on_frame(nghttp2_session *sess, const nghttp2_frame *f, void *user)
{
    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    gstream *st = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id);
    if (st && !st->answered)
        dispatch(st);
    return 0;
}

static void stream_free(gstream *st)
{
    gconn *c = st->conn;
    if (st->prev)
        st->prev->next = st->next;
    else
        c->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    if (st->call)
        st->call->stream = NULL; /* its completion frees it */
    free(st->body);
    free(st->out);
    free(st);
}

static int on_close(nghttp2_session *sess, int32_t id, uint32_t code, void *user)
{
    gstream *st = nghttp2_session_get_stream_user_data(sess, id);
    if (st) {
        nghttp2_session_set_stream_user_data(sess, id, NULL);
        stream_free(st);
    }
    return 0;
}

/* ---- connections ------------------------------------------------------------------------ */

static void conn_free(gconn *c)
{
    ap_srv_grpc *g = c->g;
    epoll_ctl(g->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    while (c->streams)
        stream_free(c->streams);
    nghttp2_session_del(c->sess);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    g->nconns--;
    atomic_fetch_sub_explicit(&g->s->conn.open, 1, memory_order_relaxed);
    free(c);
}

/* Write what nghttp2 has; 0, or -1 when the connection is to be closed. */
static int conn_flush(gconn *c)
{
    int rc = nghttp2_session_send(c->sess);
    if (rc)
        return -1;
    int want_out = nghttp2_session_want_write(c->sess);
    if (want_out != c->out_armed) {
        struct epoll_event e = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(c->g->epfd, EPOLL_CTL_MOD, c->fd, &e);
        c->out_armed = want_out;
    }
    if (!nghttp2_session_want_read(c->sess) && !want_out)
        return -1;
    return 0;
}

static int conn_read(gconn *c)
{
    uint8_t buf[16384];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        if (nghttp2_session_mem_recv(c->sess, buf, (size_t)n) < 0)
            return -1;
        if ((size_t)n < sizeof buf)
            return 0;
    }
}

static void conn_accept(ap_srv_grpc *g)
{
    for (;;) {
        int fd = accept4(g->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (g->nconns >= g->s->cfg.max_connections) {
            close(fd); /* at max_connections: the client retries */
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        gconn *c = calloc(1, sizeof *c);
        nghttp2_session_callbacks *cb = NULL;
        if (!c || nghttp2_session_callbacks_new(&cb)) {
            free(c);
            close(fd);
            continue;
        }
        nghttp2_session_callbacks_set_send_callback(cb, on_send);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
        nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
        c->g = g;
        c->fd = fd;
        int rc = nghttp2_session_server_new(&c->sess, cb, c);
        nghttp2_session_callbacks_del(cb);
        /* at most 100 calls at once per connection, each at most max_msg buffered */
        nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (rc || nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, 1) ||
            epoll_ctl(g->epfd, EPOLL_CTL_ADD, fd, &e)) {
            if (!rc)
                nghttp2_session_del(c->sess);
            free(c);
            close(fd);
            continue;
        }
        c->next = g->conns;
        if (g->conns)
            g->conns->prev = c;
        g->conns = c;
        g->nconns++;
        atomic_fetch_add_explicit(&g->s->conn.open, 1, memory_order_relaxed);
        if (conn_flush(c))
            conn_free(c);
    }
}

/* ---- completions ---------------------------------------------------------------------------- */

/* From any thread: the call's inference completed; the loop finishes it. */
static void call_complete(ap_grpc_call *c)
{
    ap_srv_grpc *g = c->transport;
    pthread_mutex_lock(&g->mu);
    c->next_done = g->done;
    g->done = c;
    pthread_mutex_unlock(&g->mu);
    uint64_t one = 1;
    ssize_t w = write(g->wake_fd, &one, sizeof one);
    (void)w; /* EAGAIN: the counter is non-zero, the loop wakes anyway */
}

/* Answer the completed calls; send = 0 at free (nothing is written then). */
static void drain_done(ap_srv_grpc *g, int send)
{
    pthread_mutex_lock(&g->mu);
    ap_grpc_call *c = g->done;
    g->done = NULL;
    pthread_mutex_unlock(&g->mu);
    while (c) {
        ap_grpc_call *next = c->next_done;
        gstream *st = c->stream;
        if (st) {
            st->call = NULL;
            if (send) {
                c->m->finish(c);
                answer(st, c->code, c->msg, c->resp, c->resp_len);
                c->resp = NULL;
                if (conn_flush(st->conn))
                    conn_free(st->conn);
            }
        }
        free(c->resp);
        ap__grpc_call_clear(c);
        free(c);
        inflight_done(g->s);
        c = next;
    }
}

/* ---- the loop ---------------------------------------------------------------------------------- */

static void *loop_main(void *arg)
{
    ap_srv_grpc *g = arg;
    g->pass.immediate = 1;
    while (!atomic_load(&g->stop)) {
        if (atomic_load(&g->quiesce) && !g->quiesced) {
            epoll_ctl(g->epfd, EPOLL_CTL_DEL, g->listen_fd, NULL);
            close(g->listen_fd);
            g->listen_fd = -1;
            g->quiesced = 1;
            for (gconn *c = g->conns, *nx; c; c = nx) { /* GOAWAY: no new calls */
                nx = c->next;
                nghttp2_submit_shutdown_notice(c->sess);
                if (conn_flush(c))
                    conn_free(c);
            }
        }
        struct epoll_event ev[64];
        int n = epoll_wait(g->epfd, ev, 64, 1000);
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &TAG_LISTEN) {
                conn_accept(g);
                continue;
            }
            if (p == &TAG_WAKE) {
                uint64_t v;
                ssize_t rd = read(g->wake_fd, &v, sizeof v);
                (void)rd;
                continue;
            }
            gconn *c = p;
            int bad = (ev[i].events & (EPOLLERR | EPOLLHUP)) && !(ev[i].events & EPOLLIN);
            if (!bad && (ev[i].events & EPOLLIN))
                bad = conn_read(c);
            if (bad || conn_flush(c)) /* the answers made at once go out now */
                conn_free(c);
        }
        /* the inferences every connection of this pass submitted run as one
           batch per model; their answers come back through the done list */
        ap__service_pass_end(g->s->svc, &g->pass);
        drain_done(g, 1);
    }
    return NULL;
}

/* ---- life cycle ---------------------------------------------------------------------------------- */

static int bind_listen(ap_srv_grpc *g, const ap_server_config *cfg, ap_error *err)
{
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->grpc_port);
    struct addrinfo hints = {0}, *res, *ai;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(cfg->host, port, &hints, &res);
    if (gai)
        return ap__error_set(err, AP_EINVAL, "gRPC: host %s: %s", cfg->host, gai_strerror(gai));
    int fd = -1, e = 0;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return ap__error_set(err, AP_EIO, "cannot listen on %s:%d (grpc_port): %s", cfg->host,
                            cfg->grpc_port, strerror(e));
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    /* gRPC here is plaintext HTTP/2 (no TLS): beyond loopback a token would
       cross the network in the clear, so it is refused there unless asked
       for in so many words, tokens or not */
    int loopback = sa.ss_family == AF_INET6
                       ? IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&sa)->sin6_addr)
                       : (ntohl(((struct sockaddr_in *)&sa)->sin_addr.s_addr) >> 24) == 127;
    if (!loopback) {
        if (!cfg->allow_insecure) {
            close(fd);
            return ap__error_set(err, AP_EINVAL, "refusing gRPC on %s (not a loopback address): "
                                "the gRPC service is plaintext (no TLS), so tokens and tensors "
                                "would cross the network in the clear; set grpc_port = 0, or "
                                "allow_insecure = true to serve it anyway", cfg->host);
        }
        ap__srv_log(g->s, "WARNING: gRPC on %s is plaintext (allow_insecure = true)%s",
                    cfg->host, g->s->auth ? "" : " and without authentication");
    }
    g->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                             : ((struct sockaddr_in *)&sa)->sin_port);
    g->listen_fd = fd;
    return AP_OK;
}

int ap__grpc_start(ap_server *s, ap_srv_grpc **out, ap_error *err)
{
    ap_srv_grpc *g = calloc(1, sizeof *g);
    if (!g)
        return ap__error_set(err, AP_ENOMEM, "gRPC: out of memory");
    g->s = s;
    g->listen_fd = g->epfd = g->wake_fd = -1;
    g->max_msg = (size_t)s->cfg.grpc_max_message_bytes;
    pthread_mutex_init(&g->mu, NULL);
    int rc = bind_listen(g, &s->cfg, err);
    if (rc) {
        ap__grpc_free(g);
        return rc;
    }
    g->epfd = epoll_create1(EPOLL_CLOEXEC);
    g->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event e1 = {.events = EPOLLIN, .data.ptr = &TAG_LISTEN};
    struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = &TAG_WAKE};
    if (g->epfd < 0 || g->wake_fd < 0 || epoll_ctl(g->epfd, EPOLL_CTL_ADD, g->listen_fd, &e1) ||
        epoll_ctl(g->epfd, EPOLL_CTL_ADD, g->wake_fd, &e2)) {
        rc = ap__error_set(err, AP_EIO, "gRPC event loop: %s", strerror(errno));
        ap__grpc_free(g);
        return rc;
    }
    if (pthread_create(&g->th, NULL, loop_main, g)) {
        ap__grpc_free(g);
        return ap__error_set(err, AP_EIO, "gRPC: cannot start its thread");
    }
    g->started = 1;
    ap__srv_log(s, "gRPC listening on %s:%d (inference.GRPCInferenceService)", s->cfg.host,
                g->port);
    *out = g;
    return AP_OK;
}

int ap__grpc_port(const ap_srv_grpc *g) { return g ? g->port : 0; }

void ap__grpc_quiesce(ap_srv_grpc *g)
{
    if (!g)
        return;
    atomic_store(&g->quiesce, 1);
    uint64_t one = 1;
    ssize_t w = write(g->wake_fd, &one, sizeof one);
    (void)w;
}

void ap__grpc_stop(ap_srv_grpc *g)
{
    if (!g || !g->started)
        return;
    atomic_store(&g->stop, 1);
    uint64_t one = 1;
    ssize_t w = write(g->wake_fd, &one, sizeof one);
    (void)w;
    pthread_join(g->th, NULL);
    g->started = 0;
}

void ap__grpc_free(ap_srv_grpc *g)
{
    if (!g)
        return;
    ap__grpc_stop(g);
    drain_done(g, 0); /* every submitted call has completed: the service stopped first */
    while (g->conns)
        conn_free(g->conns);
    if (g->listen_fd >= 0)
        close(g->listen_fd);
    if (g->epfd >= 0)
        close(g->epfd);
    if (g->wake_fd >= 0)
        close(g->wake_fd);
    pthread_mutex_destroy(&g->mu);
    free(g);
}
