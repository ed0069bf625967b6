/*
 * One HTTP/2 session of the gRPC front (transport.h): per stream it
 * collects the headers that matter (:path, content-type, grpc-timeout,
 * authorization) and the request message, bounded by
 * grpc_max_message_bytes before anything is buffered; at END_STREAM it
 * checks the token against the method's role and hands the message to the
 * method (call.h). Answers: HEADERS + the message + trailers (grpc-status,
 * grpc-message), or a trailers-only HEADERS for an error. A call that
 * waits for an inference is answered by the loop (transport.c) once its
 * completion came back through the done list.
 */
#include "grpc/transport.h"
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
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "server/server_internal.h"
#include "server/routes.h"

/* ---- in-flight accounting (the server's drain waits for it) ----------------------- */

static void inflight_add(ap_server *s) { atomic_fetch_add(&s->inflight, 1); }

void ap__grpc_inflight_done(ap_server *s)
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
void ap__grpc_answer(gstream *st, int code, const char *msg, uint8_t *resp, size_t resp_len)
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
        ap__grpc_answer(st, AP_GRPC_UNIMPLEMENTED, why, NULL, 0);
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
            ap__grpc_answer(st, auth_code(a), why, NULL, 0);
            return;
        }
    }
    if (atomic_load(&s->draining)) {
        ap__grpc_answer(st, AP_GRPC_UNAVAILABLE, "the server is shutting down", NULL, 0);
        return;
    }
    if (st->timeout_bad) {
        ap__grpc_answer(st, AP_GRPC_INVALID_ARGUMENT, "malformed grpc-timeout header", NULL, 0);
        return;
    }
    const uint8_t *msg = NULL;
    size_t mlen = 0;
    char why[200];
    int code = ap__grpc_unframe(st->body, st->len, g->max_msg, &msg, &mlen, why, sizeof why);
    if (code) {
        ap__grpc_answer(st, code, why, NULL, 0);
        return;
    }
    ap_grpc_call *c = calloc(1, sizeof *c);
    if (!c) {
        ap__grpc_answer(st, AP_GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
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
        ap__grpc_answer(st, c->code, c->msg, c->resp, c->resp_len);
        c->resp = NULL;
        ap__grpc_call_clear(c);
        free(c);
        ap__grpc_inflight_done(s);
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
            ap__grpc_answer(st, AP_GRPC_RESOURCE_EXHAUSTED, "out of memory for the request", NULL, 0);
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
        ap__grpc_answer(st, AP_GRPC_RESOURCE_EXHAUSTED, why, NULL, 0);
        return 0; /* the rest of its DATA is dropped unread (on_data's first test) */
    }
    if (st->len == limit) {
        ap__grpc_answer(st, AP_GRPC_INTERNAL, "a unary call takes one request message", NULL, 0);
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

void ap__grpc_stream_free(gstream *st)
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
        ap__grpc_stream_free(st);
    }
    return 0;
}


int ap__grpc_session_new(gconn *c)
{
    nghttp2_session_callbacks *cb = NULL;
    if (nghttp2_session_callbacks_new(&cb))
        return -1;
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    int rc = nghttp2_session_server_new(&c->sess, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rc)
        return -1;
    /* at most 100 calls at once per connection, each at most max_msg buffered */
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    if (nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, 1)) {
        nghttp2_session_del(c->sess);
        c->sess = NULL;
        return -1;
    }
    return 0;
}
