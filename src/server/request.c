/*
 * A request's life, driven by the transport (http.c, or the fuzz target):
 * begin (route it), headers (framing and size limits), body chunks,
 * complete (the route's handler answers, or suspends for an inference),
 * resumed (the inference completed: the handler's finish answers), free.
 */#include "server/server_internal.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "server/handlers.h"
#include "server/inflate.h"

/* ---- a request's life ------------------------------------------------------- */

ap_srv_req *ap__srv_req_begin(ap_server *s, const ap_srv_io *io, void *conn, ap_service_pass *pass,
                             const char *method, const char *url, uint64_t t_arrival,
                             int reserve)
{
    /* not calloc: the inline buffers need no clearing */
    ap_srv_req *r = malloc(sizeof *r);
    if (!r)
        return NULL;
    memset(r, 0, offsetof(ap_srv_req, out_small));
    r->srv = s;
    r->io = io;
    r->conn = conn;
    r->pass = pass;
    r->method = method;
    r->url = url;
    r->model = -1;
    r->reserve = reserve;
    uint64_t now = ap__clock_ns();
    r->t0_ns = t_arrival && t_arrival <= now ? t_arrival : now;
    r->body = r->body_small;
    r->cap = sizeof r->body_small;
    atomic_fetch_add_explicit(&s->inflight, 1, memory_order_relaxed);
    int rc = ap__srv_route_match(r, method, url);
    if (rc) {
        if (rc == 404)
            r->ep = EP_UNKNOWN;
        r->status = rc; /* answered once the body (if any) is read */
    }
    r->phase = PH_BODY;
    return r;
}

int ap__srv_req_reserve_ok(const ap_srv_req *r)
{
    return r->route && r->route->reserve_ok;
}

enum MHD_Result ap__srv_req_refuse(ap_srv_req *r, int code, const char *fmt, ...)
{
    char msg[AP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->close = 1;
    return ap__srv_error(r, code, "%s", msg);
}

/* Content-Length: digits only (what RFC 9110 allows), at most 19 of them. */
static int parse_length(const char *v, unsigned long long *out)
{
    while (*v == ' ' || *v == '\t')
        v++;
    unsigned long long x = 0;
    int nd = 0;
    for (; *v >= '0' && *v <= '9'; v++, nd++) {
        if (nd == 19)
            return -1;
        x = x * 10 + (unsigned)(*v - '0');
    }
    while (*v == ' ' || *v == '\t')
        v++;
    if (!nd || *v)
        return -1;
    *out = x;
    return 0;
}

enum MHD_Result ap__srv_req_headers(ap_srv_req *r)
{
    ap_server *s = r->srv;
    const char *cl = r->io->header(r->conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = r->io->header(r->conn, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    /* framing a proxy in front of us could read differently from us
       (request smuggling): refuse it and close the connection */
    if (r->io->header_count(r->conn, MHD_HTTP_HEADER_CONTENT_LENGTH) > 1)
        return ap__srv_req_refuse(r, MHD_HTTP_BAD_REQUEST,
                                 "more than one Content-Length header (request framing is "
                                 "ambiguous)");
    if (cl && te)
        return ap__srv_req_refuse(r, MHD_HTTP_BAD_REQUEST,
                                 "both Content-Length and Transfer-Encoding (request framing "
                                 "is ambiguous)");
    if (r->io->header_count(r->conn, MHD_HTTP_HEADER_TRANSFER_ENCODING) > 1)
        return ap__srv_req_refuse(r, MHD_HTTP_BAD_REQUEST,
                                 "more than one Transfer-Encoding header");
    unsigned long long len = 0;
    if (cl && parse_length(cl, &len))
        return ap__srv_req_refuse(r, MHD_HTTP_BAD_REQUEST, "Content-Length '%.40s' is not a "
                                 "number of bytes", cl);
    if (cl && len > (unsigned long long)s->cfg.max_body_bytes)
        return ap__srv_req_refuse(r, MHD_HTTP_CONTENT_TOO_LARGE,
                                 "request body of %llu bytes is over the limit (max_body_bytes "
                                 "= %lld)", len, (long long)s->cfg.max_body_bytes);
    /* tokens: decided now, answered once the body is read (and dropped), so
       that keep-alive survives a refusal; an unknown path needs read */
    int role = r->route ? r->route->role : ROLE_READ;
    if (s->auth && role != ROLE_PUBLIC)
        r->auth = ap__auth_check(s->auth, r->io->header(r->conn, MHD_HTTP_HEADER_AUTHORIZATION),
                                 role, ap__clock_ns(), r->token_name, sizeof r->token_name,
                                 &r->retry_s);
    return MHD_YES;
}

/* The answer to a request its token does not allow (r->auth). */
static enum MHD_Result auth_refuse(ap_srv_req *r)
{
    ap_server *s = r->srv;
    const char *need = ap__auth_role_name(r->route ? r->route->role : ROLE_READ);
    switch (r->auth) {
    case AP_AUTH_MISSING:
    case AP_AUTH_INVALID:
        r->hdr[0] = MHD_HTTP_HEADER_WWW_AUTHENTICATE;
        r->hdr[1] = r->auth == AP_AUTH_MISSING ? "Bearer realm=\"alphapulse\""
                                               : "Bearer realm=\"alphapulse\", "
                                                 "error=\"invalid_token\"";
        return ap__srv_error(r, MHD_HTTP_UNAUTHORIZED, "%s %s needs a token with role %s or "
                             "above: Authorization: Bearer TOKEN (%s)", r->method, r->url, need,
                             r->auth == AP_AUTH_MISSING ? "none was sent"
                                                        : "the one sent is not valid");
    case AP_AUTH_FORBIDDEN:
        return ap__srv_error(r, MHD_HTTP_FORBIDDEN, "token '%s' may not call %s %s: that needs "
                             "role %s or above", r->token_name, r->method, r->url, need);
    default: /* AP_AUTH_LIMITED */
        snprintf(r->hdr_val, sizeof r->hdr_val, "%d", r->retry_s);
        r->hdr[0] = MHD_HTTP_HEADER_RETRY_AFTER;
        r->hdr[1] = r->hdr_val;
        return ap__srv_error(r, MHD_HTTP_TOO_MANY_REQUESTS, "token '%s' is over its rate "
                             "limit (rate_limit_rps = %g): retry in %d s", r->token_name,
                             s->cfg.rate_limit_rps, r->retry_s);
    }
}

void ap__srv_req_body(ap_srv_req *r, const char *data, size_t n)
{
    ap_server *s = r->srv;
    atomic_fetch_add_explicit(&s->metrics->body_bytes, n, memory_order_relaxed);
    if (r->phase != PH_BODY || r->too_big || r->auth)
        return; /* a refused token's body is read and dropped */
    if (r->len + n > (size_t)s->cfg.max_body_bytes) {
        r->too_big = 1; /* keep reading (and dropping) so keep-alive survives */
        return;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap * 2;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *nb = r->body == r->body_small ? malloc(cap) : realloc(r->body, cap);
        if (!nb) {
            r->too_big = 2;
            return;
        }
        if (r->body == r->body_small)
            memcpy(nb, r->body_small, r->len);
        r->body = nb;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
}

enum MHD_Result ap__srv_req_complete(ap_srv_req *r)
{
    ap_server *s = r->srv;
    if (r->phase != PH_BODY)
        return MHD_YES;
    r->body[r->len] = 0;
    if (r->auth)
        return auth_refuse(r);
    if (r->status == 404)
        return ap__srv_error(r, MHD_HTTP_NOT_FOUND, "no such endpoint: %s %s", r->method, r->url);
    if (r->status == 405) {
        r->hdr[0] = MHD_HTTP_HEADER_ALLOW;
        r->hdr[1] = r->hdr_val;
        return ap__srv_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s is not allowed on %s (allowed: %s)",
                            r->method, r->url, r->hdr_val);
    }
    if (r->too_big == 2)
        return ap__srv_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
                            "out of memory for a request body of %zu bytes", r->len);
    if (r->too_big)
        return ap__srv_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                            "request body is over the limit (max_body_bytes = %lld)",
                            (long long)s->cfg.max_body_bytes);
    const char *ce = r->io->header(r->conn, MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (ce && r->len) {
        char why[200], *plain;
        size_t n;
        int st = ap__srv_inflate(ce, r->body, r->len, (size_t)s->cfg.max_body_bytes, &plain, &n,
                                 why, sizeof why);
        if (st)
            return ap__srv_error(r, st, "%s", why);
        if (plain) { /* the body is the decoded one from now on */
            if (r->body != r->body_small)
                free(r->body);
            r->body = plain;
            r->len = n;
            r->cap = n + 1;
        }
    }
    if (atomic_load_explicit(&s->draining, memory_order_relaxed) && !ap__srv_req_reserve_ok(r))
        return ap__srv_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "server is shutting down");
    return r->route->handler(r);
}

int ap__srv_req_waiting(const ap_srv_req *r)
{
    return r->phase == PH_WAIT;
}

enum MHD_Result ap__srv_req_resumed(ap_srv_req *r)
{
    /* a parked request is asked again every pass until its batch is done
       (by this loop's flush at the end of the pass, so at most one pass) */
    if (r->parked && atomic_load_explicit(&r->wait, memory_order_acquire) != W_COMPLETED)
        return MHD_YES;
    r->phase = PH_DONE;
    if (r->ep == EP_PRED_BATCH)
        return ap__srv_batch_finish(r);
    return r->ep == EP_V2_INFER ? ap__srv_v2_finish(r) : ap__srv_v1_finish(r);
}

void ap__srv_req_free(ap_srv_req *r)
{
    ap_server *s = r->srv;
    if (r->body != r->body_small)
        free(r->body);
    if (r->out && r->out != r->out_small)
        free(r->out);
    ap_model_release(r->held);
    ap__srv_batch_free(r->batch);
    free(r);
    if (atomic_fetch_sub_explicit(&s->inflight, 1, memory_order_acq_rel) == 1 &&
        atomic_load(&s->draining)) {
        pthread_mutex_lock(&s->drain_mu);
        pthread_cond_broadcast(&s->drain_cv);
        pthread_mutex_unlock(&s->drain_mu);
    }
}


