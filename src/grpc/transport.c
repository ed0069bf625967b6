/*
 * The gRPC transport: a listening socket, one epoll loop thread, an nghttp2
 * server session per connection (grpc.h says why nghttp2; session.c is one
 * session's work). Inference completions arrive from other threads on the
 * done list (under mu) and the eventfd wakes the loop, which writes them;
 * the loop never waits for an inference. Its pass (ap_service_pass) makes
 * the requests one wake-up read run as one batch when the pass ends, like
 * the HTTP loops.
 */
#include "grpc/transport.h"
#include "grpc/framing.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "server/server_internal.h"
#include "server/listen.h"

/* epoll tags for the two fds that are not connections */
static char TAG_LISTEN, TAG_WAKE;

/* ---- connections ------------------------------------------------------------------------ */

static void conn_free(gconn *c)
{
    ap_srv_grpc *g = c->g;
    epoll_ctl(g->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    while (c->streams)
        ap__grpc_stream_free(c->streams);
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
    c->last_ns = ap__clock_ns();
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
        if (c) {
            c->g = g;
            c->fd = fd;
        }
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (!c || ap__grpc_session_new(c) || epoll_ctl(g->epfd, EPOLL_CTL_ADD, fd, &e)) {
            if (c && c->sess)
                nghttp2_session_del(c->sess);
            free(c);
            close(fd);
            continue;
        }
        c->last_ns = ap__clock_ns();
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
                ap__grpc_answer(st, c->code, c->msg, c->resp, c->resp_len);
                c->resp = NULL;
                if (conn_flush(st->conn))
                    conn_free(st->conn);
            }
        }
        free(c->resp);
        ap__grpc_call_clear(c);
        free(c);
        ap__grpc_inflight_done(g->s);
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
        /* connection_timeout, as on the HTTP port: a connection with no call
           open that sent nothing for that long is closed, so that idle
           ones cannot hold max_connections */
        uint64_t now = ap__clock_ns();
        uint64_t idle = (uint64_t)g->s->cfg.connection_timeout * 1000000000ull;
        for (gconn *c = g->conns, *nx; c && idle; c = nx) {
            nx = c->next;
            if (!c->streams && now - c->last_ns > idle) {
                nghttp2_session_terminate_session(c->sess, NGHTTP2_NO_ERROR); /* GOAWAY */
                nghttp2_session_send(c->sess);
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
    ap_srv_listener L;
    int rc = ap__srv_listen(cfg->host, cfg->grpc_port, "grpc_port", &L, err);
    if (rc)
        return rc;
    int fd = L.fd, loopback = L.loopback;
    /* gRPC here is plaintext HTTP/2 (no TLS): beyond loopback a token would
       cross the network in the clear, so it is refused there unless asked
       for in so many words, tokens or not */
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
    g->port = L.port;
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

