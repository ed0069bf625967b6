/*
 * The server's life cycle: the service (models, batching, async results),
 * the series store, metrics, replay and the HTTP front are made here, in
 * that order, and stopped in reverse (draining in-flight requests first).
 */
#include "server/server_internal.h"
#include "server/http.h"
#include "grpc/grpc.h"
#include "server/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/clock.h"

static void service_log(void *ctx, const char *msg) { ap__srv_log(ctx, "%s", msg); }

/* ---- life cycle --------------------------------------------------------------- */

int ap__server_create(const ap_server_config *cfg, ap_server_log_fn log, void *log_ctx,
                     ap_server **out, ap_error *err)
{
    return ap__srv_create(cfg, log, log_ctx, 1, NULL, out, err);
}

/* The sink's models: every streamable model of the repository (as
   /v1/stream?models=*). */
static int sink_start(ap_server *s, ap_error *err)
{
    char names[64][65];
    int n, rc = ap__srv_stream_models(s, NULL, names, 64, &n, err);
    return rc ? rc : ap__stream_set_sink(s->stream, (const char(*)[65])names, n, s->hooks.sink,
                                         s->hooks.sink_ctx, err);
}

int ap__srv_create(const ap_server_config *cfg, ap_server_log_fn log, void *log_ctx, int http,
                  const ap_srv_hooks *hooks, ap_server **out, ap_error *err)
{
    int rc = ap__server_config_check(cfg, err);
    if (rc)
        return rc;
    ap_server *s = calloc(1, sizeof *s);
    if (!s)
        return ap__error_set(err, AP_ENOMEM, "server: out of memory");
    s->cfg = *cfg;
    if (hooks)
        s->hooks = *hooks;
    s->log = log;
    s->log_ctx = log_ctx;
    s->start_ns = ap__clock_ns();
    pthread_mutex_init(&s->drain_mu, NULL);
    pthread_cond_init(&s->drain_cv, NULL);
    pthread_mutex_init(&s->replay.mu, NULL);
    pthread_cond_init(&s->replay.cv, NULL);
    s->metrics = calloc(1, sizeof *s->metrics);
    if (!s->metrics) {
        rc = ap__error_set(err, AP_ENOMEM, "server: out of memory for metrics");
        goto fail;
    }
    ap_srv_stream_config stc = {
        .buffer = (size_t)cfg->stream_buffer,
        .history = (size_t)cfg->stream_history,
        .max_closed = (size_t)cfg->stream_queue,
        .keepalive_s = cfg->stream_keepalive,
        .linger_s = cfg->stream_linger,
        .max_subscribers = (size_t)cfg->stream_max_subscribers,
    };
    if ((rc = ap__stream_new(s, &stc, &s->stream, err)))
        goto fail;
    if (cfg->auth_tokens_file[0] &&
        (rc = ap__auth_open(cfg->auth_tokens_file, cfg->rate_limit_rps, &s->auth, err)))
        goto fail;
    /* every closed bar is offered to the stream hub (one atomic load when
       nobody subscribes) */
    ap_series_config sc = {(size_t)cfg->max_series, (size_t)cfg->history, ap__stream_on_close,
                           s->stream};
    const ap_server_config *c = &s->cfg;
    ap_service_config vc = {
        .repository = c->repository,
        .workers = c->workers,
        .batch_size = c->batch_size,
        .max_queue_delay_us = c->max_queue_delay_us,
        .adaptive_target_us = c->adaptive_target_us,
        .max_queue_rows = c->max_queue_rows,
        .inference_timeout = c->inference_timeout,
        .caller_runs = c->caller_runs,
        .inline_inference = c->inline_inference,
        .model_cache_size = c->model_cache_size,
        .max_async_results = c->max_async_results,
        .result_ttl = c->result_ttl,
    };
    ap_registry_options_default(&vc.registry);
    vc.registry.mixed_precision = c->mixed_precision_enabled; /* "auto" means reduced */
    vc.registry.gpu_min_batch_rows = (size_t)c->gpu_min_batch_rows;
    /* where tree models may run, said once (each model's device is in
       /v1/models) */
    char why[AP_ERROR_MSG_MAX];
    int ndev = ap_gpu_available(why, sizeof why);
    if (ndev > 0)
        ap__srv_log(s, "gpu: %d CUDA device(s): device \"auto\" models use one from %s", ndev,
                    c->gpu_min_batch_rows ? "gpu_min_batch_rows" : "a batch size measured at load");
    else
        ap__srv_log(s, "gpu: none (%s): every model runs on the CPU", why);
    if ((rc = ap_series_store_new(&sc, &s->store, err)) ||
        (rc = ap_onnx_options_parse(&vc.registry.onnx, c->onnx_enabled, c->onnxruntime_lib,
                                    err)) ||
        (rc = ap__service_create(&vc, service_log, s, &s->svc, err)) ||
        (rc = ap__srv_status_new(s, http, &s->status, err)) ||
        (s->hooks.sink && (rc = sink_start(s, err))) ||
        (rc = ap__stream_start(s->stream, err)) ||
        (rc = ap__srv_replay_start(s, err)) ||
        (http && (rc = ap__srv_http_start(s, &s->http, err))) ||
        (http && c->grpc_port && (rc = ap__grpc_start(s, &s->grpc, err))))
        goto fail;
    *out = s;
    return AP_OK;
fail:
    s->shut_down = 1; /* nothing was served */
    ap__server_free(s);
    return rc;
}

int ap__server_reload_auth(ap_server *s, ap_error *err)
{
    if (!s->auth)
        return ap__error_set(err, AP_EINVAL, "no auth_tokens_file to reload");
    int n, rc = ap__auth_reload(s->auth, &n, err);
    if (rc)
        ap__srv_log(s, "SIGHUP: %s (the previous tokens stay in force)", err->msg);
    else
        ap__srv_log(s, "SIGHUP: %d token(s) from %s", n, s->cfg.auth_tokens_file);
    return rc;
}

int ap__server_port(const ap_server *s)
{
    return s->http ? ap__srv_http_port(s->http) : 0;
}

int ap__server_models_loaded(ap_server *s)
{
    return s->svc ? ap__service_resident(s->svc) : 0;
}

void ap__server_shutdown(ap_server *s)
{
    if (s->shut_down)
        return;
    s->shut_down = 1;
    atomic_store(&s->draining, 1);
    if (s->http) {
        ap__srv_http_quiesce(s->http); /* stop accepting; open connections go on */
        ap__grpc_quiesce(s->grpc);     /* the same, with a GOAWAY to its clients */
        if (s->stream) /* streams end now (event: shutdown), or the drain would wait */
            ap__stream_end_all(s->stream);
        uint64_t until = ap__clock_ns() + (uint64_t)(s->cfg.shutdown_timeout * 1e9);
        pthread_mutex_lock(&s->drain_mu);
        while (atomic_load(&s->inflight) > 0 && ap__clock_ns() < until) {
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
            ap__srv_log(s, "shutdown: %ld request(s) still in flight after %.1f s; cancelling",
                    left, s->cfg.shutdown_timeout);
    }
    ap__srv_replay_stop(s);
    ap__srv_status_stop(s->status);
    ap__stream_stop(s->stream); /* its round in flight completes on the service */
    /* Freeing the batchers completes whatever is still queued (cancelled),
       which resumes every suspended connection: libmicrohttpd must not be
       stopped with connections suspended. */
    if (s->svc)
        ap__service_stop(s->svc);
    ap__grpc_stop(s->grpc); /* after the service: every call has completed */
    ap__srv_http_stop(s->http);
}

void ap__server_free(ap_server *s)
{
    if (!s)
        return;
    ap__server_shutdown(s);
    ap__srv_replay_stop(s);
    ap__srv_http_free(s->http);
    ap__grpc_free(s->grpc);
    ap__stream_free(s->stream); /* after the HTTP front: its streams unsubscribed */
    ap__srv_status_free(s->status); /* it reads the service: stopped before it goes */
    ap__auth_free(s->auth);
    ap__service_free(s->svc);
    ap_series_store_free(s->store);
    free(s->metrics);
    pthread_mutex_destroy(&s->drain_mu);
    pthread_cond_destroy(&s->drain_cv);
    pthread_mutex_destroy(&s->replay.mu);
    pthread_cond_destroy(&s->replay.cv);
    free(s);
}
