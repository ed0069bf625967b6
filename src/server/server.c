/*
 * The server's life cycle and the transport-neutral half of a request:
 * routing, bodies, responses, the inference hand-off, deadlines. The
 * libmicrohttpd side is http.c (which also explains the event loops); the
 * handlers are handlers_v1.c and handlers_v2.c.
 *
 * An inference: the handler submits the request's rows to the model's
 * batcher. Under an event loop (r->pass) the submit is deferred and the
 * loop runs what its pass gathered as one batch when the pass ends; without
 * one, a submit that finds the batcher idle runs the batch on this thread
 * (caller_runs). If the result is already there when the submit returns,
 * the handler answers at once; otherwise it suspends the connection and the
 * batcher's completion callback, on whichever thread ran the batch, resumes
 * it, and the transport then calls ap_srv_req_resumed. The suspend comes
 * after the submit, so the completion and the suspend meet in an atomic
 * handshake (ap_srv_req.wait): a resume of a connection that is not
 * suspended yet would be lost.
 */
#include "server/server_internal.h"
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/clock.h"

void ap_srv_log(ap_server *s, const char *fmt, ...)
{
    if (!s->log)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->log(s->log_ctx, msg);
}

/* ---- responses -------------------------------------------------------------- */

int ap_srv_http_status(int ap_code)
{
    switch (ap_code) {
    case AP_ENOTFOUND:
        return MHD_HTTP_NOT_FOUND;
    case AP_ETIMEDOUT:
        return MHD_HTTP_GATEWAY_TIMEOUT;
    case AP_EOVERLOAD:
        return MHD_HTTP_TOO_MANY_REQUESTS;
    case AP_ECANCELLED:
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    case AP_ERANGE:
        return MHD_HTTP_CONTENT_TOO_LARGE;
    case AP_ENOMEM:
    case AP_EIO:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    default:
        return MHD_HTTP_BAD_REQUEST;
    }
}

/* The status of an accepted, validated request whose inference failed: the
   queue's refusals keep their meaning; anything else is the model failing
   on input it declared it takes (ONNX Runtime refusing a value, say), a
   server-side failure the client cannot fix by changing the request. */
int ap_srv_compute_status(int ap_code)
{
    switch (ap_code) {
    case AP_ETIMEDOUT:
    case AP_EOVERLOAD:
    case AP_ECANCELLED:
    case AP_ENOTFOUND:
        return ap_srv_http_status(ap_code);
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

enum MHD_Result ap_srv_respond(ap_srv_req *r, int code, jbuf *body, const char *ctype)
{
    ap_server *s = r->srv;
    int close = r->close || atomic_load_explicit(&s->draining, memory_order_relaxed);
    int failed = body->failed;
    enum MHD_Result ret = r->io->respond(r->conn, (unsigned)code, body, ctype, close);
    if (failed)
        code = MHD_HTTP_INTERNAL_SERVER_ERROR;
    uint64_t now = ap_clock_ns();
    uint64_t lat = now > r->t0_ns ? now - r->t0_ns : 0;
    ap_srv_metrics_record(s->metrics, r->model, r->ep, code, lat);
    if (s->cfg.access_log)
        ap_srv_log(s, "%s %s %d %.3f ms", r->method, r->url, code, (double)lat / 1e6);
    r->phase = PH_DONE;
    return ret;
}

enum MHD_Result ap_srv_error(ap_srv_req *r, int code, const char *fmt, ...)
{
    char msg[AP_ERROR_MSG_MAX + 256], store[sizeof msg + 32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jbuf b;
    ap_jb_init(&b, store, sizeof store);
    ap_jb_puts(&b, "{\"error\": ");
    ap_jb_str(&b, msg);
    ap_jb_puts(&b, "}\n");
    return ap_srv_respond(r, code, &b, NULL);
}

void ap_srv_on_done(void *user, const ap_batch_completion *c)
{
    ap_srv_req *r = user;
    r->status = c->status;
    r->id = c->id;
    r->queue_us = c->queue_us;
    r->compute_us = c->compute_us;
    if (c->status == AP_OK) {
        size_t n = c->nrows * c->nout;
        double *o = n <= SRV_SMALL_OUT ? r->out_small : malloc(n * sizeof *o);
        if (o) {
            memcpy(o, c->out, n * sizeof *o);
            r->out = o;
            r->nrows = c->nrows;
            r->nout = c->nout;
        } else {
            r->status = AP_ENOMEM;
            snprintf(r->msg, sizeof r->msg, "out of memory for %zu outputs", n);
        }
    } else
        snprintf(r->msg, sizeof r->msg, "%s", c->message);
    /* W_SUBMITTING: the handler has not suspended yet (or never will: this
       may run inside its own submit) and answers itself; once the exchange is
       done r may be gone, so nothing of it is read after */
    void *conn = r->conn;
    const ap_srv_io *io = r->io;
    if (atomic_exchange_explicit(&r->wait, W_COMPLETED, memory_order_acq_rel) == W_SUSPENDED)
        io->resume(conn);
}

int ap_srv_past_deadline(const ap_srv_req *r, uint64_t now)
{
    return r->deadline_ns && now >= r->deadline_ns;
}

enum MHD_Result ap_srv_deadline_error(ap_srv_req *r, const char *when)
{
    uint64_t now = ap_clock_ns();
    double waited = (double)(now - r->t0_ns) / 1e6,
           budget = (double)(r->deadline_ns - r->t0_ns) / 1e6;
    int before = !strcmp(when, "before");
    atomic_fetch_add_explicit(before ? &r->srv->metrics->deadline_before
                                     : &r->srv->metrics->deadline_after, 1,
                              memory_order_relaxed);
    if (before)
        return ap_srv_error(r, MHD_HTTP_GATEWAY_TIMEOUT,
                            "deadline passed before the request could run: it waited %.3f ms "
                            "since it was received, its timeout is %.3f ms", waited, budget);
    return ap_srv_error(r, MHD_HTTP_GATEWAY_TIMEOUT,
                        "deadline passed: the prediction was ready %.3f ms after the request "
                        "was received, its timeout is %.3f ms (result dropped)", waited, budget);
}

/* Take the pass's batcher list for b; 0 when it is full (do not defer). */
static int pass_add(ap_srv_pass *p, ap_batcher *b)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->b[i] == b)
            return 1;
    if (p->n == SRV_PASS_MAX)
        return 0;
    p->b[p->n++] = b;
    return 1;
}

int ap_srv_start_inference(ap_srv_req *r, ap_batcher *b, ap_srv_version *v, const double *X,
                           size_t n, int raw)
{
    ap_error err;
    r->phase = PH_WAIT;
    uint64_t now = ap_clock_ns();
    if (ap_srv_past_deadline(r, now)) {
        r->status = AP_ETIMEDOUT;
        r->msg[0] = 0; /* answered by the finish's deadline check */
        return 1;
    }
    if (r->srv->cfg.inline_inference) {
        size_t nout = (size_t)v->nout, ncols = raw ? (size_t)v->info.num_inputs
                                                   : (size_t)ap_feature_count();
        double *o = n * nout <= SRV_SMALL_OUT ? r->out_small : malloc(n * nout * sizeof *o);
        uint64_t t0 = ap_clock_ns();
        int rc = o ? ap_srv_run_rows(v, X, n, ncols, o, nout, &err, raw)
                   : ap_error_set(&err, AP_ENOMEM, "out of memory for %zu outputs", n * nout);
        r->compute_us = (ap_clock_ns() - t0) / 1000;
        r->status = rc;
        if (rc) {
            snprintf(r->msg, sizeof r->msg, "%s", err.msg);
            if (o != r->out_small)
                free(o);
            return 1;
        }
        r->out = o;
        r->nrows = n;
        r->nout = nout;
        return 1;
    }
    ap_batch_submit_opts o = {0};
    /* what is left of the deadline (at least 1 us: the check above passed) */
    o.timeout_us = r->deadline_ns ? (r->deadline_ns - now + 999) / 1000 : 0;
    o.model_ctx = v;
    o.on_done = ap_srv_on_done;
    o.user = r;
    /* under an event loop, the pass's first prediction runs at once; later
       ones are deferred to the end of the pass and, when this loop will run
       them itself, parked: no suspend (libmicrohttpd asks again next pass) */
    int park = 0;
    if (r->pass && r->pass->immediate)
        r->pass->immediate = 0;
    else if (r->pass && pass_add(r->pass, b)) {
        o.defer = 1;
        o.defer_owner = r->pass;
        park = ap_batcher_flushable(b);
    }
    uint64_t id;
    atomic_store_explicit(&r->wait, W_SUBMITTING, memory_order_relaxed);
    int rc = ap_batch_submit(b, X, n, &o, &id, &err);
    if (rc) { /* refused: no completion will come */
        r->status = rc;
        snprintf(r->msg, sizeof r->msg, "%s", err.msg);
        return 1;
    }
    if (atomic_load_explicit(&r->wait, memory_order_acquire) == W_COMPLETED)
        return 1; /* ran on this thread (caller_runs) or already done elsewhere */
    if (park) {
        r->parked = 1;
        return 0;
    }
    r->io->suspend(r->conn);
    int expect = W_SUBMITTING;
    if (!atomic_compare_exchange_strong_explicit(&r->wait, &expect, W_SUSPENDED,
                                                 memory_order_acq_rel, memory_order_acquire))
        /* completed between the check and the suspend: its callback saw no
           suspended connection and left the resume to us */
        r->io->resume(r->conn);
    return 0;
}

/* ---- routing ---------------------------------------------------------------- */

/* Copy the next path segment of *p into out; 0 if it is missing or too long. */
static int segment(const char **p, char *out, size_t size)
{
    const char *s = *p, *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n == 0 || n >= size)
        return 0;
    memcpy(out, s, n);
    out[n] = 0;
    *p = s + n;
    return 1;
}

/* Sets r->ep and r->arg; returns 0, 404 (no such path) or 405 (method). */
static int route(ap_srv_req *r, const char *method, const char *url)
{
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int post = !strcmp(method, "POST");
    int del = !strcmp(method, "DELETE");
    const char *p;
#define IS(path, ep_, ok)                                                                     \
    if (!strcmp(url, path)) {                                                                 \
        r->ep = ep_;                                                                          \
        return (ok) ? 0 : 405;                                                                \
    }
    IS("/", EP_ROOT, get);
    IS("/metrics", EP_METRICS, get);
    IS("/v1/candles", EP_CANDLES, post);
    IS("/v1/predict/pattern", EP_PRED_PATTERN, post);
    IS("/v1/predict/regime", EP_PRED_REGIME, post);
    IS("/v1/predict/ensemble", EP_PRED_ENSEMBLE, post);
    IS("/v1/models", EP_MODELS, get);
    IS("/v1/stats", EP_STATS, get);
    IS("/v2", EP_V2_SERVER, get);
    IS("/v2/health/live", EP_V2_LIVE, get);
    IS("/v2/health/ready", EP_V2_READY, get);
    IS("/v2/repository/index", EP_V2_REPO_INDEX, post || get);
#undef IS
    if (!strncmp(url, "/v1/results/", 12)) {
        p = url + 12;
        if (!segment(&p, r->arg, sizeof r->arg) || *p)
            return 404;
        r->ep = del ? EP_RESULT_DELETE : EP_RESULT_GET;
        return get || del ? 0 : 405;
    }
    if (!strncmp(url, "/v1/series/", 11)) {
        /* /v1/series/{symbol}/{timeframe}: the symbol is everything up to the
           last '/' (libmicrohttpd unescapes %2F, and symbols may hold '/') */
        const char *sym = url + 11, *slash = strrchr(sym, '/');
        size_t n = slash ? (size_t)(slash - sym) : 0;
        if (!slash || !n || n >= sizeof r->arg || !slash[1] || strlen(slash + 1) >= sizeof r->arg2)
            return 404;
        memcpy(r->arg, sym, n);
        r->arg[n] = 0;
        strcpy(r->arg2, slash + 1);
        r->ep = EP_SERIES_DELETE;
        return del ? 0 : 405;
    }
    if (!strncmp(url, "/v2/repository/models/", 22)) {
        p = url + 22;
        if (!segment(&p, r->arg, sizeof r->arg))
            return 404;
        if (!strcmp(p, "/load"))
            r->ep = EP_V2_LOAD;
        else if (!strcmp(p, "/unload"))
            r->ep = EP_V2_UNLOAD;
        else
            return 404;
        return post ? 0 : 405;
    }
    if (!strncmp(url, "/v2/models/", 11)) {
        p = url + 11;
        if (!segment(&p, r->arg, sizeof r->arg))
            return 404;
        if (!strncmp(p, "/versions/", 10)) {
            char v[16], *end;
            p += 10;
            if (!segment(&p, v, sizeof v))
                return 404;
            unsigned long x = strtoul(v, &end, 10);
            if (*end || x == 0 || x > UINT32_MAX || v[0] == '0' || v[0] == '-' || v[0] == '+')
                return 404;
            r->want_version = (uint32_t)x;
        }
        if (!*p) {
            r->ep = EP_V2_MODEL;
            return get ? 0 : 405;
        }
        if (!strcmp(p, "/ready")) {
            r->ep = EP_V2_MODEL_READY;
            return get ? 0 : 405;
        }
        if (!strcmp(p, "/infer")) {
            r->ep = EP_V2_INFER;
            return post ? 0 : 405;
        }
    }
    return 404;
}

static enum MHD_Result root_page(ap_srv_req *r)
{
    static const char text[] =
        "alphapulse: real-time inference for trading signals (docs/SERVER.md)\n"
        "  POST /v1/candles                     add bars to a series\n"
        "  POST /v1/predict/{pattern,regime,ensemble}   predict on a series' latest bar\n"
        "  GET|DELETE /v1/results/{id}          async results\n"
        "  GET  /v1/models, /v1/stats\n"
        "  GET  /v2, /v2/health/{live,ready}, /v2/models/{m}[/ready]   KServe v2\n"
        "  POST /v2/models/{m}/infer            feature tensors\n"
        "  POST /v2/repository/models/{m}/{load,unload}\n"
        "  DELETE /v1/series/{symbol}/{timeframe}   drop a series (and its roll-ups)\n"
        "  GET  /metrics                        Prometheus\n";
    char store[sizeof text];
    jbuf b;
    ap_jb_init(&b, store, sizeof store);
    ap_jb_raw(&b, text, sizeof text - 1);
    return ap_srv_respond(r, MHD_HTTP_OK, &b, "text/plain; charset=utf-8");
}

static enum MHD_Result metrics_page(ap_srv_req *r)
{
    jbuf b;
    ap_jb_init(&b, NULL, 0);
    ap_srv_metrics_render(r->srv, &b);
    return ap_srv_respond(r, MHD_HTTP_OK, &b, "text/plain; version=0.0.4; charset=utf-8");
}

static enum MHD_Result dispatch(ap_srv_req *r)
{
    switch (r->ep) {
    case EP_ROOT:
        return root_page(r);
    case EP_METRICS:
        return metrics_page(r);
    case EP_CANDLES:
    case EP_PRED_PATTERN:
    case EP_PRED_REGIME:
    case EP_PRED_ENSEMBLE:
    case EP_RESULT_GET:
    case EP_RESULT_DELETE:
    case EP_MODELS:
    case EP_STATS:
    case EP_SERIES_DELETE:
        return ap_srv_v1_dispatch(r);
    default:
        return ap_srv_v2_dispatch(r);
    }
}

/* ---- a request's life ------------------------------------------------------- */

ap_srv_req *ap_srv_req_begin(ap_server *s, const ap_srv_io *io, void *conn, ap_srv_pass *pass,
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
    uint64_t now = ap_clock_ns();
    r->t0_ns = t_arrival && t_arrival <= now ? t_arrival : now;
    r->body = r->body_small;
    r->cap = sizeof r->body_small;
    atomic_fetch_add_explicit(&s->inflight, 1, memory_order_relaxed);
    int rc = route(r, method, url);
    if (rc) {
        if (rc == 404)
            r->ep = EP_UNKNOWN;
        r->status = rc; /* answered once the body (if any) is read */
    }
    r->phase = PH_BODY;
    return r;
}

int ap_srv_req_reserve_ok(const ap_srv_req *r)
{
    return r->ep == EP_V2_LIVE || r->ep == EP_V2_READY || r->ep == EP_METRICS;
}

enum MHD_Result ap_srv_req_refuse(ap_srv_req *r, int code, const char *fmt, ...)
{
    char msg[AP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->close = 1;
    return ap_srv_error(r, code, "%s", msg);
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

enum MHD_Result ap_srv_req_headers(ap_srv_req *r)
{
    ap_server *s = r->srv;
    const char *cl = r->io->header(r->conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = r->io->header(r->conn, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    /* framing a proxy in front of us could read differently from us
       (request smuggling): refuse it and close the connection */
    if (r->io->header_count(r->conn, MHD_HTTP_HEADER_CONTENT_LENGTH) > 1)
        return ap_srv_req_refuse(r, MHD_HTTP_BAD_REQUEST,
                                 "more than one Content-Length header (request framing is "
                                 "ambiguous)");
    if (cl && te)
        return ap_srv_req_refuse(r, MHD_HTTP_BAD_REQUEST,
                                 "both Content-Length and Transfer-Encoding (request framing "
                                 "is ambiguous)");
    if (r->io->header_count(r->conn, MHD_HTTP_HEADER_TRANSFER_ENCODING) > 1)
        return ap_srv_req_refuse(r, MHD_HTTP_BAD_REQUEST,
                                 "more than one Transfer-Encoding header");
    unsigned long long len = 0;
    if (cl && parse_length(cl, &len))
        return ap_srv_req_refuse(r, MHD_HTTP_BAD_REQUEST, "Content-Length '%.40s' is not a "
                                 "number of bytes", cl);
    if (cl && len > (unsigned long long)s->cfg.max_body_bytes)
        return ap_srv_req_refuse(r, MHD_HTTP_CONTENT_TOO_LARGE,
                                 "request body of %llu bytes is over the limit (max_body_bytes "
                                 "= %lld)", len, (long long)s->cfg.max_body_bytes);
    return MHD_YES;
}

void ap_srv_req_body(ap_srv_req *r, const char *data, size_t n)
{
    ap_server *s = r->srv;
    atomic_fetch_add_explicit(&s->metrics->body_bytes, n, memory_order_relaxed);
    if (r->phase != PH_BODY || r->too_big)
        return;
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

enum MHD_Result ap_srv_req_complete(ap_srv_req *r)
{
    ap_server *s = r->srv;
    if (r->phase != PH_BODY)
        return MHD_YES;
    r->body[r->len] = 0;
    if (r->status == 404)
        return ap_srv_error(r, MHD_HTTP_NOT_FOUND, "no such endpoint: %s %s", r->method, r->url);
    if (r->status == 405)
        return ap_srv_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s is not allowed on %s",
                            r->method, r->url);
    if (r->too_big == 2)
        return ap_srv_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
                            "out of memory for a request body of %zu bytes", r->len);
    if (r->too_big)
        return ap_srv_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                            "request body is over the limit (max_body_bytes = %lld)",
                            (long long)s->cfg.max_body_bytes);
    if (atomic_load_explicit(&s->draining, memory_order_relaxed) && r->ep != EP_V2_LIVE &&
        r->ep != EP_V2_READY && r->ep != EP_METRICS)
        return ap_srv_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "server is shutting down");
    return dispatch(r);
}

int ap_srv_req_waiting(const ap_srv_req *r)
{
    return r->phase == PH_WAIT;
}

enum MHD_Result ap_srv_req_resumed(ap_srv_req *r)
{
    /* a parked request is asked again every pass until its batch is done
       (by this loop's flush at the end of the pass, so at most one pass) */
    if (r->parked && atomic_load_explicit(&r->wait, memory_order_acquire) != W_COMPLETED)
        return MHD_YES;
    r->phase = PH_DONE;
    return r->ep == EP_V2_INFER ? ap_srv_v2_finish(r) : ap_srv_v1_finish(r);
}

void ap_srv_req_free(ap_srv_req *r)
{
    ap_server *s = r->srv;
    if (r->body != r->body_small)
        free(r->body);
    if (r->out && r->out != r->out_small)
        free(r->out);
    ap_srv_version_unref(r->ver);
    free(r);
    if (atomic_fetch_sub_explicit(&s->inflight, 1, memory_order_acq_rel) == 1 &&
        atomic_load(&s->draining)) {
        pthread_mutex_lock(&s->drain_mu);
        pthread_cond_broadcast(&s->drain_cv);
        pthread_mutex_unlock(&s->drain_mu);
    }
}

/* ---- life cycle --------------------------------------------------------------- */

int ap_server_create(const ap_server_config *cfg, ap_server_log_fn log, void *log_ctx,
                     ap_server **out, ap_error *err)
{
    return ap_srv_create(cfg, log, log_ctx, 1, out, err);
}

int ap_srv_create(const ap_server_config *cfg, ap_server_log_fn log, void *log_ctx, int http,
                  ap_server **out, ap_error *err)
{
    int rc = ap_server_config_check(cfg, err);
    if (rc)
        return rc;
    ap_server *s = calloc(1, sizeof *s);
    if (!s)
        return ap_error_set(err, AP_ENOMEM, "server: out of memory");
    s->cfg = *cfg;
    s->log = log;
    s->log_ctx = log_ctx;
    s->start_ns = ap_clock_ns();
    /* ids of inline inferences: like the batcher's, a 62-bit counter from a
       start that differs across runs (never 0) */
    atomic_init(&s->inline_ids, ((s->start_ns * 0x9e3779b97f4a7c15ULL) >> 2) | 1);
    pthread_mutex_init(&s->admin, NULL);
    pthread_mutex_init(&s->catalog_mu, NULL);
    pthread_mutex_init(&s->drain_mu, NULL);
    pthread_cond_init(&s->drain_cv, NULL);
    pthread_mutex_init(&s->replay.mu, NULL);
    pthread_cond_init(&s->replay.cv, NULL);
    s->metrics = calloc(1, sizeof *s->metrics);
    if (!s->metrics) {
        rc = ap_error_set(err, AP_ENOMEM, "server: out of memory for metrics");
        goto fail;
    }
    if (cfg->mixed_precision_enabled)
        ap_srv_log(s, "mixed_precision_enabled: accepted, not used");
    ap_series_config sc = {(size_t)cfg->max_series, (size_t)cfg->history};
    ap_registry_options ropt; /* ort_library points into s->cfg: lives as long as s */
    if ((rc = ap_srv_results_init(&s->results, (size_t)cfg->max_async_results,
                               (uint64_t)(cfg->result_ttl * 1e9), err)) ||
        (rc = ap_series_store_new(&sc, &s->store, err)) ||
        (rc = ap_workers_create((unsigned)cfg->workers, &s->workers, err)) ||
        (rc = ap_onnx_options_parse(&ropt.onnx, s->cfg.onnx_enabled, s->cfg.onnxruntime_lib, err)) ||
        (rc = ap_registry_open(cfg->repository, &ropt, &s->reg, err)) ||
        (rc = ap_srv_models_load_all(s, err)) || (rc = ap_srv_replay_start(s, err)) ||
        (http && (rc = ap_srv_http_start(s, &s->http, err))))
        goto fail;
    *out = s;
    return AP_OK;
fail:
    s->shut_down = 1; /* nothing was served */
    ap_server_free(s);
    return rc;
}

int ap_server_port(const ap_server *s)
{
    return s->http ? ap_srv_http_port(s->http) : 0;
}

int ap_server_models_loaded(ap_server *s)
{
    int n = atomic_load(&s->nmodels), k = 0;
    for (int i = 0; i < n; i++) {
        pthread_rwlock_rdlock(&s->models[i]->lock);
        k += s->models[i]->cur != NULL;
        pthread_rwlock_unlock(&s->models[i]->lock);
    }
    return k;
}

void ap_server_shutdown(ap_server *s)
{
    if (s->shut_down)
        return;
    s->shut_down = 1;
    atomic_store(&s->draining, 1);
    if (s->http) {
        ap_srv_http_quiesce(s->http); /* stop accepting; open connections go on */
        uint64_t until = ap_clock_ns() + (uint64_t)(s->cfg.shutdown_timeout * 1e9);
        pthread_mutex_lock(&s->drain_mu);
        while (atomic_load(&s->inflight) > 0 && ap_clock_ns() < until) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&s->drain_cv, &s->drain_mu, &ts);
        }
        long left = atomic_load(&s->inflight);
        pthread_mutex_unlock(&s->drain_mu);
        if (left > 0)
            ap_srv_log(s, "shutdown: %ld request(s) still in flight after %.1f s; cancelling",
                    left, s->cfg.shutdown_timeout);
    }
    ap_srv_replay_stop(s);
    /* Freeing the batchers completes whatever is still queued (cancelled),
       which resumes every suspended connection: libmicrohttpd must not be
       stopped with connections suspended. */
    pthread_mutex_lock(&s->admin);
    ap_srv_models_stop(s);
    pthread_mutex_unlock(&s->admin);
    ap_srv_http_stop(s->http);
}

void ap_server_free(ap_server *s)
{
    if (!s)
        return;
    ap_server_shutdown(s);
    ap_srv_replay_stop(s);
    ap_srv_http_free(s->http);
    ap_srv_models_free(s);
    ap_workers_free(s->workers);
    ap_srv_results_free(&s->results); /* entries hold versions: before the registry */
    ap_registry_free(s->reg);
    ap_series_store_free(s->store);
    free(s->metrics);
    pthread_mutex_destroy(&s->admin);
    pthread_mutex_destroy(&s->catalog_mu);
    pthread_mutex_destroy(&s->drain_mu);
    pthread_cond_destroy(&s->drain_cv);
    pthread_mutex_destroy(&s->replay.mu);
    pthread_cond_destroy(&s->replay.cv);
    free(s);
}
