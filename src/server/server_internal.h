/*
 * The server: one ap_service (models, batching, async results) behind an
 * HTTP front (http.c -> request.c -> routes.c -> handlers), the series store
 * the bars go into, metrics, replay. Parts: routes.h, request.h,
 * handlers.h, metrics.h, replay.h, http.h.
 */
#ifndef AP_SERVER_INTERNAL_H
#define AP_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "alphapulse.h"
#include "serve/service.h"
#include "server/config.h"
#include "server/metrics.h"
#include "server/replay.h"
#include "server/request.h"
#include "server/server.h"
#include "server/status.h"
#include "server/stream.h"
#include "server/auth.h"

void ap__srv_log(ap_server *s, const char *fmt, ...) AP_PRINTF(2, 3);

/* What a front other than `serve` plugs into the server (`worker`,
   src/scale): a sink for the signal of every closed bar from every
   streamable model (ap__stream_set_sink), and lines of its own on /metrics.
   Both are fixed at creation, before any thread runs. */
typedef struct ap_srv_hooks {
    ap_srv_signal_sink sink;
    void *sink_ctx;
    void (*metrics)(void *ctx, jbuf *b); /* appended to /metrics, Prometheus text */
    void *metrics_ctx;
} ap_srv_hooks;

/* Connection counters: written by the HTTP front, read by /metrics and
   /v1/stats. */
typedef struct ap_srv_conn_counters {
    atomic_long open;                  /* connections open now */
    _Atomic uint64_t timed_out;        /* requests cut off: headers/body too slow */
    _Atomic uint64_t reserve_used;     /* connections accepted beyond max_connections */
    _Atomic uint64_t reserve_refused;  /* requests on those refused (not health/metrics) */
} ap_srv_conn_counters;

struct ap_server {
    ap_server_config cfg;
    ap_server_log_fn log;
    void *log_ctx;
    uint64_t start_ns;

    ap_service *svc; /* models, batchers, async results */
    ap_series_store *store;
    ap_srv_metrics *metrics;
    ap_srv_replay replay;
    ap_srv_stream *stream; /* /v1/stream: the closed-bar hook's hub */
    ap_srv_auth *auth;     /* tokens (auth_tokens_file); NULL: no authentication */
    ap_srv_status *status; /* /v1/status: the once-a-second sampler */
    ap_srv_hooks hooks;    /* zeroes: plain `serve` */

    struct ap_srv_http *http; /* NULL: no HTTP front (the fuzz target) */
    struct ap_srv_grpc *grpc; /* NULL: no gRPC front (grpc_port = 0, or no HTTP front) */
    ap_srv_conn_counters conn;
    atomic_int draining;
    int shut_down;
    atomic_long inflight; /* HTTP requests and gRPC calls */
    pthread_mutex_t drain_mu;
    pthread_cond_t drain_cv;
};

/* ap__server_create, with or without the HTTP front (http = 0: the fuzz
   target drives requests through ap_srv_req_* itself, or `worker` without
   --port); hooks may be NULL. */
int ap__srv_create(const ap_server_config *cfg, ap_server_log_fn log, void *log_ctx, int http,
                  const ap_srv_hooks *hooks, ap_server **out, ap_error *err);

/* A bar posted or consumed starts between 1970 and max_future_s after the
   server's clock (POST /v1/candles, the worker's bars). */
int ap__srv_bar_time_ok(const ap_server *s, int64_t t, ap_error *err);

/* Append a bar to a base series (the store serialises appends) and count it
   in the ingest metrics. */
int ap__srv_ingest(ap_server *s, ap_series *series, const ap_bar *bar, ap_error *err);

#endif
