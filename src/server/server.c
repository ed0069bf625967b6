/*
 * The server's life cycle and its HTTP front: libmicrohttpd, routing, request
 * bodies, responses.
 *
 * Threads: libmicrohttpd runs an epoll thread pool (http_threads); inference
 * runs on the ap_workers pool, or on the HTTP thread itself when the model's
 * batcher is idle (caller_runs). An HTTP thread never waits for another
 * thread's batch: a request that needs an inference submits it to the
 * model's batcher. If the submit ran the batch here, the handler answers at
 * once; otherwise it suspends the connection (MHD_suspend_connection) and
 * the batcher's completion callback, on whichever thread ran the batch,
 * resumes it, and the HTTP thread then writes the response. The suspend
 * comes after the submit (no epoll changes when the batch ran here), so the
 * completion and the suspend meet in an atomic handshake (ap_srv_req.wait): a
 * resume of a connection that is not suspended yet would be lost.
 */
#include "server/server_internal.h"

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

uint64_t ap_srv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    ap_server *s = cls;
    if (!s->log)
        return;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    ap_srv_log(s, "http: %s", msg);
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

enum MHD_Result ap_srv_respond(ap_srv_req *r, int code, jbuf *body, const char *ctype)
{
    ap_server *s = r->srv;
    struct MHD_Response *resp;
    if (body->failed) {
        static const char oom[] = "{\"error\": \"out of memory writing the response\"}";
        code = MHD_HTTP_INTERNAL_SERVER_ERROR;
        resp = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom,
                                               MHD_RESPMEM_PERSISTENT);
        ctype = NULL;
    } else if (body->heap) { /* hand the heap buffer over instead of copying it */
        resp = MHD_create_response_from_buffer(body->len, body->p, MHD_RESPMEM_MUST_FREE);
        if (resp)
            body->heap = 0, body->p = NULL;
    } else
        resp = MHD_create_response_from_buffer(body->len, body->p, MHD_RESPMEM_MUST_COPY);
    ap_jb_free(body);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            ctype ? ctype : "application/json");
    if (atomic_load_explicit(&s->draining, memory_order_relaxed))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)code, resp);
    MHD_destroy_response(resp);
    uint64_t lat = ap_srv_now_ns() - r->t0_ns;
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
    struct MHD_Connection *conn = r->conn;
    if (atomic_exchange_explicit(&r->wait, W_COMPLETED, memory_order_acq_rel) == W_SUSPENDED)
        MHD_resume_connection(conn);
}

int ap_srv_start_inference(ap_srv_req *r, ap_batcher *b, ap_srv_version *v, const double *X, size_t n,
                        uint64_t timeout_us, int raw)
{
    ap_error err;
    r->phase = PH_WAIT;
    if (r->srv->cfg.inline_inference) {
        size_t nout = (size_t)v->nout, ncols = raw ? (size_t)v->info.num_inputs
                                                   : (size_t)ap_feature_count();
        double *o = n * nout <= SRV_SMALL_OUT ? r->out_small : malloc(n * nout * sizeof *o);
        uint64_t t0 = ap_srv_now_ns();
        int rc = o ? ap_srv_run_rows(v, X, n, ncols, o, nout, &err, raw)
                   : ap_error_set(&err, AP_ENOMEM, "out of memory for %zu outputs", n * nout);
        r->compute_us = (ap_srv_now_ns() - t0) / 1000;
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
    o.timeout_us = timeout_us;
    o.model_ctx = v;
    o.on_done = ap_srv_on_done;
    o.user = r;
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
    MHD_suspend_connection(r->conn);
    int expect = W_SUBMITTING;
    if (!atomic_compare_exchange_strong_explicit(&r->wait, &expect, W_SUSPENDED,
                                                 memory_order_acq_rel, memory_order_acquire))
        /* completed between the check and the suspend: its callback saw no
           suspended connection and left the resume to us */
        MHD_resume_connection(r->conn);
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
        "  GET  /metrics                        Prometheus\n";
    jbuf b;
    ap_jb_init(&b, (char *)text, sizeof text);
    b.len = sizeof text - 1;
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
        return ap_srv_v1_dispatch(r);
    default:
        return ap_srv_v2_dispatch(r);
    }
}

static enum MHD_Result ahc(void *cls, struct MHD_Connection *conn, const char *url,
                           const char *method, const char *version, const char *upload_data,
                           size_t *upload_data_size, void **con_cls)
{
    ap_server *s = cls;
    ap_srv_req *r = *con_cls;
    if (!r) {
        /* not calloc: the inline buffers need no clearing */
        r = malloc(sizeof *r);
        if (!r)
            return MHD_NO;
        memset(r, 0, offsetof(ap_srv_req, out_small));
        r->srv = s;
        r->conn = conn;
        r->method = method;
        r->url = url;
        r->model = -1;
        r->t0_ns = ap_srv_now_ns();
        r->body = r->body_small;
        r->cap = sizeof r->body_small;
        *con_cls = r;
        atomic_fetch_add_explicit(&s->inflight, 1, memory_order_relaxed);
        int rc = route(r, method, url);
        if (rc) {
            if (rc == 404)
                r->ep = EP_UNKNOWN;
            r->phase = PH_BODY;
            r->status = rc; /* answered once the body (if any) is read */
            return MHD_YES;
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)s->cfg.max_body_bytes)
            return ap_srv_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                             "request body of %s bytes is over the limit (max_body_bytes = %lld)",
                             cl, (long long)s->cfg.max_body_bytes);
        r->phase = PH_BODY;
        return MHD_YES;
    }
    if (r->phase == PH_WAIT) { /* resumed: the inference completed */
        r->phase = PH_DONE;
        return r->ep == EP_V2_INFER ? ap_srv_v2_finish(r) : ap_srv_v1_finish(r);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        atomic_fetch_add_explicit(&s->metrics->body_bytes, n, memory_order_relaxed);
        if (r->phase != PH_BODY || r->too_big)
            return MHD_YES;
        if (r->len + n > (size_t)s->cfg.max_body_bytes) {
            r->too_big = 1; /* keep reading (and dropping) so keep-alive survives */
            return MHD_YES;
        }
        if (r->len + n + 1 > r->cap) {
            size_t cap = r->cap * 2;
            while (cap < r->len + n + 1)
                cap *= 2;
            char *nb = r->body == r->body_small ? malloc(cap) : realloc(r->body, cap);
            if (!nb)
                return MHD_NO;
            if (r->body == r->body_small)
                memcpy(nb, r->body_small, r->len);
            r->body = nb;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload_data, n);
        r->len += n;
        return MHD_YES;
    }
    if (r->phase != PH_BODY)
        return MHD_YES;
    r->body[r->len] = 0;
    if (r->status == 404)
        return ap_srv_error(r, MHD_HTTP_NOT_FOUND, "no such endpoint: %s %s", method, url);
    if (r->status == 405)
        return ap_srv_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s is not allowed on %s",
                         method, url);
    if (r->too_big)
        return ap_srv_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                         "request body is over the limit (max_body_bytes = %lld)",
                         (long long)s->cfg.max_body_bytes);
    if (atomic_load_explicit(&s->draining, memory_order_relaxed) && r->ep != EP_V2_LIVE &&
        r->ep != EP_V2_READY && r->ep != EP_METRICS)
        return ap_srv_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "server is shutting down");
    return dispatch(r);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    ap_server *s = cls;
    ap_srv_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
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

static int bind_listen(ap_server *s, ap_error *err)
{
    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    struct addrinfo hints = {0}, *res, *ai;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int g = getaddrinfo(s->cfg.host, port, &hints, &res);
    if (g)
        return ap_error_set(err, AP_EINVAL, "host %s: %s", s->cfg.host, gai_strerror(g));
    int fd = -1, e = 0;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
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
        return ap_error_set(err, AP_EIO, "cannot listen on %s:%d: %s", s->cfg.host, s->cfg.port,
                            strerror(e));
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    s->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                             : ((struct sockaddr_in *)&sa)->sin_port);
    s->listen_fd = fd;
    return AP_OK;
}

static int start_http(ap_server *s, ap_error *err)
{
    int rc = bind_listen(s, err);
    if (rc)
        return rc;
    /* TURBO: read/write/accept optimistically before asking epoll */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                     MHD_USE_ERROR_LOG;
    unsigned pool = s->cfg.http_threads > 1 ? (unsigned)s->cfg.http_threads : 0;
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, ahc, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s,
        MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
        MHD_OPTION_THREAD_POOL_SIZE, pool, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)s->cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)s->cfg.connection_timeout, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
        MHD_OPTION_END);
    if (!s->mhd) {
        close(s->listen_fd);
        s->listen_fd = -1;
        return ap_error_set(err, AP_EIO, "cannot start the HTTP daemon on %s:%d", s->cfg.host,
                            s->port);
    }
    return AP_OK;
}

int ap_server_create(const ap_server_config *cfg, ap_server_log_fn log, void *log_ctx,
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
    s->start_ns = ap_srv_now_ns();
    s->listen_fd = -1;
    /* ids of inline inferences: like the batcher's, a 62-bit counter from a
       start that differs across runs (never 0) */
    atomic_init(&s->inline_ids, ((s->start_ns * 0x9e3779b97f4a7c15ULL) >> 2) | 1);
    pthread_mutex_init(&s->admin, NULL);
    pthread_mutex_init(&s->drain_mu, NULL);
    pthread_cond_init(&s->drain_cv, NULL);
    pthread_mutex_init(&s->replay.mu, NULL);
    pthread_cond_init(&s->replay.cv, NULL);
    for (int i = 0; i < SRV_INGEST_LOCKS; i++)
        pthread_mutex_init(&s->ingest[i], NULL);
    s->metrics = calloc(1, sizeof *s->metrics);
    if (!s->metrics) {
        rc = ap_error_set(err, AP_ENOMEM, "server: out of memory for metrics");
        goto fail;
    }
    if (cfg->mixed_precision_enabled)
        ap_srv_log(s, "mixed_precision_enabled: accepted, not used");
    ap_series_config sc = {(size_t)cfg->max_series, (size_t)cfg->history};
    if ((rc = ap_srv_results_init(&s->results, (size_t)cfg->model_cache_size,
                               (uint64_t)(cfg->result_ttl * 1e9), err)) ||
        (rc = ap_series_store_new(&sc, &s->store, err)) ||
        (rc = ap_workers_create((unsigned)cfg->workers, &s->workers, err)) ||
        (rc = ap_registry_open(cfg->repository, &s->reg, err)) ||
        (rc = ap_srv_models_load_all(s, err)) || (rc = ap_srv_replay_start(s, err)) ||
        (rc = start_http(s, err)))
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
    return s->port;
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
    if (s->mhd) {
        /* stop accepting; the listening socket comes back to us */
        int fd = MHD_quiesce_daemon(s->mhd);
        if (fd >= 0)
            close(fd);
        s->listen_fd = -1;
        uint64_t until = ap_srv_now_ns() + (uint64_t)(s->cfg.shutdown_timeout * 1e9);
        pthread_mutex_lock(&s->drain_mu);
        while (atomic_load(&s->inflight) > 0 && ap_srv_now_ns() < until) {
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
    if (s->mhd) {
        MHD_stop_daemon(s->mhd);
        s->mhd = NULL;
    }
}

void ap_server_free(ap_server *s)
{
    if (!s)
        return;
    ap_server_shutdown(s);
    ap_srv_replay_stop(s);
    ap_srv_models_free(s);
    if (s->mhd)
        MHD_stop_daemon(s->mhd);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    ap_workers_free(s->workers);
    ap_srv_results_free(&s->results); /* entries hold versions: before the registry */
    ap_registry_free(s->reg);
    ap_series_store_free(s->store);
    free(s->metrics);
    for (int i = 0; i < SRV_INGEST_LOCKS; i++)
        pthread_mutex_destroy(&s->ingest[i]);
    pthread_mutex_destroy(&s->admin);
    pthread_mutex_destroy(&s->drain_mu);
    pthread_cond_destroy(&s->drain_cv);
    pthread_mutex_destroy(&s->replay.mu);
    pthread_cond_destroy(&s->replay.cv);
    free(s);
}
