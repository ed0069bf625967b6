/*
 * Prometheus metrics: HTTP counters and latency histograms kept here (atomic,
 * relaxed: each value is exact, the set is not a consistent cut), plus the
 * batchers' and the registry's own statistics read at scrape time.
 */
#include "server/server_internal.h"
#include "common/clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int codes[SRV_NCODES] = {200, 201, 202, 204, 400, 404, 405,
                                      409, 413, 429, 500, 503, 504, 0};

int ap__srv_metrics_code(int ci)
{
    return ci >= 0 && ci < SRV_NCODES ? codes[ci] : 0;
}

void ap__srv_metrics_record(ap_srv_metrics *m, int model, int ep, const char *ep_name, int code,
                           uint64_t latency_ns)
{
    if (ep < 0 || ep >= EP_COUNT)
        ep = EP_UNKNOWN;
    /* the route's name, kept for the labels (the same pointer every time) */
    if (ep_name && !atomic_load_explicit(&m->ep_name[ep], memory_order_relaxed))
        atomic_store_explicit(&m->ep_name[ep], ep_name, memory_order_relaxed);
    int ci = SRV_NCODES - 1;
    for (int i = 0; i < SRV_NCODES - 1; i++)
        if (codes[i] == code)
            ci = i;
    int mi = model >= 0 && model < SRV_MAX_MODELS ? model + 1 : 0;
    atomic_fetch_add_explicit(&m->requests[mi][ep][ci], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->lat_bucket[ep][ap_latency_bucket(latency_ns)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&m->lat_sum_ns[ep], latency_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->lat_count[ep], 1, memory_order_relaxed);
}

static uint64_t ld(_Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

static void head(jbuf *b, const char *name, const char *type, const char *help)
{
    ap__jb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, quote and newline escaped. */
static void label(jbuf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            ap__jb_printf(b, "\\%c", *v);
        else if (*v == '\n')
            ap__jb_puts(b, "\\n");
        else
            ap__jb_raw(b, v, 1);
    }
}

static void bound(jbuf *b, double v)
{
    if (isinf(v))
        ap__jb_puts(b, "+Inf");
    else
        ap__jb_printf(b, "%.9g", v);
}

static const char *ep_label(ap_srv_metrics *m, int ep)
{
    const char *n = atomic_load_explicit(&m->ep_name[ep], memory_order_relaxed);
    return n ? n : "unknown";
}

/* A histogram from non-cumulative buckets; bounds in the metric's unit
   (NULL: the latency scheme, seconds). */
static void histogram(jbuf *b, const char *name, const char *labels, const uint64_t *bucket,
                      const double *bounds, int n, double sum, uint64_t count)
{
    double lat[AP_LATENCY_BUCKETS];
    if (!bounds) {
        for (int i = 0; i < AP_LATENCY_BUCKETS; i++)
            lat[i] = ap_latency_bucket_bound(i);
        bounds = lat;
        n = AP_LATENCY_BUCKETS;
    }
    uint64_t cum = 0;
    for (int i = 0; i < n; i++) {
        cum += bucket[i];
        ap__jb_printf(b, "%s_bucket{%s%sle=\"", name, labels, *labels ? "," : "");
        bound(b, bounds[i]);
        ap__jb_printf(b, "\"} %llu\n", (unsigned long long)cum);
    }
    ap__jb_printf(b, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", name, labels, sum, name, labels,
              (unsigned long long)count);
}

typedef struct bstat {
    int ok;
    ap_batch_stats st;
} bstat;

static void batcher_metrics(jbuf *b, int n, const char *const *name, bstat (*bs)[2])
{
    static const char *kinds[2] = {"features", "raw"};
    struct {
        const char *name, *help;
        size_t off;
        int gauge;
    } scalars[] = {
        {"alphapulse_batch_submitted_total", "requests accepted by the batcher",
         offsetof(ap_batch_stats, submitted), 0},
        {"alphapulse_batch_rejected_total", "requests refused at submit, queue full",
         offsetof(ap_batch_stats, rejected), 0},
        {"alphapulse_batch_completed_total", "requests that ran and succeeded",
         offsetof(ap_batch_stats, completed), 0},
        {"alphapulse_batch_failed_total", "requests whose batch failed",
         offsetof(ap_batch_stats, failed), 0},
        {"alphapulse_batch_timed_out_total", "requests whose deadline passed in the queue",
         offsetof(ap_batch_stats, timed_out), 0},
        {"alphapulse_batch_cancelled_total", "requests cancelled",
         offsetof(ap_batch_stats, cancelled), 0},
        {"alphapulse_batches_total", "batch calls", offsetof(ap_batch_stats, batches), 0},
        {"alphapulse_batch_rows_total", "rows in batch calls", offsetof(ap_batch_stats, rows), 0},
        {"alphapulse_batch_queue_depth", "requests queued now",
         offsetof(ap_batch_stats, queue_depth), 1},
        {"alphapulse_batch_queue_rows", "rows queued now", offsetof(ap_batch_stats, queue_rows),
         1},
        {"alphapulse_batch_running", "requests in running batches now",
         offsetof(ap_batch_stats, running), 1},
    };
    for (size_t k = 0; k < sizeof scalars / sizeof scalars[0]; k++) {
        head(b, scalars[k].name, scalars[k].gauge ? "gauge" : "counter", scalars[k].help);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < 2; j++) {
                if (!bs[i][j].ok)
                    continue;
                uint64_t v;
                memcpy(&v, (const char *)&bs[i][j].st + scalars[k].off, sizeof v);
                ap__jb_printf(b, "%s{model=\"%s\",batcher=\"%s\"} %llu\n", scalars[k].name,
                          name[i], kinds[j], (unsigned long long)v);
            }
    }
    double sb[AP_BATCH_SIZE_BUCKETS];
    for (int i = 0; i < AP_BATCH_SIZE_BUCKETS; i++) {
        uint64_t u = ap_batch_size_bound(i);
        sb[i] = u == UINT64_MAX ? INFINITY : (double)u;
    }
    static const struct {
        const char *name, *help;
        int which; /* 0 queue time, 1 compute time, 2 batch size */
    } hists[] = {
        {"alphapulse_batch_queue_time_seconds", "per request: submit to batch start", 0},
        {"alphapulse_batch_compute_time_seconds", "per batch: duration of the model call", 1},
        {"alphapulse_batch_size_rows", "per batch: rows", 2},
    };
    for (size_t k = 0; k < sizeof hists / sizeof hists[0]; k++) {
        head(b, hists[k].name, "histogram", hists[k].help);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < 2; j++) {
                if (!bs[i][j].ok)
                    continue;
                const ap_batch_stats *st = &bs[i][j].st;
                char lab[128];
                snprintf(lab, sizeof lab, "model=\"%s\",batcher=\"%s\"", name[i], kinds[j]);
                if (hists[k].which == 2)
                    histogram(b, hists[k].name, lab, st->batch_size, sb, AP_BATCH_SIZE_BUCKETS,
                              (double)st->rows, st->batches);
                else {
                    const ap_batch_hist *h = hists[k].which ? &st->compute_time : &st->queue_time;
                    histogram(b, hists[k].name, lab, h->bucket, NULL, 0, (double)h->sum_ns / 1e9,
                              h->count);
                }
            }
    }
}

/* What each served version is: its precision as a label (an info gauge,
   always 1), the bytes of its compiled model per precision built, the bytes
   of one tree node in the engine it uses (tree models only). */
static void precision_metrics(jbuf *b, ap_server *s, int n, const char *const *name)
{
    ap_model_info *info = calloc(n ? (size_t)n : 1, sizeof *info);
    ap_model **v = calloc(n ? (size_t)n : 1, sizeof *v);
    if (!info || !v) {
        free(info);
        free(v);
        b->failed = 1;
        return;
    }
    for (int i = 0; i < n; i++)
        if ((v[i] = ap__service_slot_model(s->svc, i)))
            ap_model_describe(v[i], &info[i]);
    head(b, "alphapulse_model_info", "gauge",
         "version served and its precision: effective and as the manifest asks (always 1)");
    for (int i = 0; i < n; i++)
        if (v[i])
            ap__jb_printf(b, "alphapulse_model_info{model=\"%s\",version=\"%u\",precision=\"%s\","
                          "precision_requested=\"%s\"} 1\n", name[i], info[i].version,
                          info[i].precision, info[i].precision_requested);
    head(b, "alphapulse_model_bytes", "gauge",
         "bytes of the compiled model, per precision built");
    for (int i = 0; i < n; i++) {
        if (v[i] && info[i].model_bytes_full)
            ap__jb_printf(b, "alphapulse_model_bytes{model=\"%s\",precision=\"full\"} %zu\n",
                          name[i], info[i].model_bytes_full);
        if (v[i] && info[i].model_bytes_reduced)
            ap__jb_printf(b, "alphapulse_model_bytes{model=\"%s\",precision=\"reduced\"} %zu\n",
                          name[i], info[i].model_bytes_reduced);
    }
    head(b, "alphapulse_model_node_bytes", "gauge",
         "bytes of one tree node in the engine the model runs (tree models)");
    for (int i = 0; i < n; i++)
        if (v[i] && info[i].node_bytes)
            ap__jb_printf(b, "alphapulse_model_node_bytes{model=\"%s\",precision=\"%s\"} %d\n",
                          name[i], info[i].precision, info[i].node_bytes);
    for (int i = 0; i < n; i++)
        ap_model_release(v[i]);
    free(info);
    free(v);
}

static void model_metrics(jbuf *b, ap_server *s, int n, const char *const *name)
{
    ap_model_stats st[SRV_MAX_MODELS];
    int have[SRV_MAX_MODELS];
    for (int i = 0; i < n; i++)
        have[i] = ap_registry_stats(ap__service_registry(s->svc), name[i], &st[i], NULL) == AP_OK;
    struct {
        const char *name, *help;
        size_t off;
        int gauge;
    } scalars[] = {
        {"alphapulse_model_loads_total", "successful loads (first and reloads)",
         offsetof(ap_model_stats, loads), 0},
        {"alphapulse_model_load_errors_total", "refused loads",
         offsetof(ap_model_stats, load_errors), 0},
        {"alphapulse_model_predictions_total", "rows predicted",
         offsetof(ap_model_stats, predictions), 0},
        {"alphapulse_model_errors_total", "predict calls that failed",
         offsetof(ap_model_stats, errors), 0},
    };
    head(b, "alphapulse_model_version", "gauge", "version served (0: not loaded)");
    for (int i = 0; i < n; i++)
        if (have[i])
            ap__jb_printf(b, "alphapulse_model_version{model=\"%s\"} %u\n", name[i],
                      st[i].version);
    head(b, "alphapulse_model_load_duration_seconds", "gauge",
         "duration of the last successful load");
    for (int i = 0; i < n; i++)
        if (have[i])
            ap__jb_printf(b, "alphapulse_model_load_duration_seconds{model=\"%s\"} %.9g\n",
                      name[i], (double)st[i].load_time_ns / 1e9);
    for (size_t k = 0; k < sizeof scalars / sizeof scalars[0]; k++) {
        head(b, scalars[k].name, "counter", scalars[k].help);
        for (int i = 0; i < n; i++) {
            if (!have[i])
                continue;
            uint64_t v;
            memcpy(&v, (const char *)&st[i] + scalars[k].off, sizeof v);
            ap__jb_printf(b, "%s{model=\"%s\"} %llu\n", scalars[k].name, name[i],
                      (unsigned long long)v);
        }
    }
    head(b, "alphapulse_model_predict_duration_seconds", "histogram",
         "per predict call (one batch): model evaluation time");
    for (int i = 0; i < n; i++)
        if (have[i]) {
            char lab[96];
            snprintf(lab, sizeof lab, "model=\"%s\"", name[i]);
            histogram(b, "alphapulse_model_predict_duration_seconds", lab,
                      st[i].latency_buckets, NULL, 0,
                      (double)st[i].latency_sum_ns / 1e9, st[i].latency_count);
        }
}

void ap__srv_metrics_render(ap_server *s, jbuf *b)
{
    ap_srv_metrics *m = s->metrics;
    int n = ap__service_slots(s->svc);
    const char *name[SRV_MAX_MODELS];
    for (int i = 0; i < n; i++)
        name[i] = ap__service_slot_name(s->svc, i);

    ap__jb_printf(b, "# HELP alphapulse_build_info alphapulse version\n"
                 "# TYPE alphapulse_build_info gauge\n"
                 "alphapulse_build_info{version=\"%s\"} 1\n", ap_version());
    head(b, "alphapulse_uptime_seconds", "gauge", "seconds since start");
    ap__jb_printf(b, "alphapulse_uptime_seconds %.3f\n", (double)(ap__clock_ns() - s->start_ns) / 1e9);

    head(b, "alphapulse_http_requests_total", "counter",
         "HTTP requests answered, by endpoint, model and status code");
    for (int mi = 0; mi <= n; mi++)
        for (int ep = 0; ep < EP_COUNT; ep++)
            for (int ci = 0; ci < SRV_NCODES; ci++) {
                uint64_t v = ld(&m->requests[mi][ep][ci]);
                if (!v)
                    continue;
                ap__jb_printf(b, "alphapulse_http_requests_total{endpoint=\"%s\",model=\"%s\",",
                          ep_label(m, ep), mi ? name[mi - 1] : "");
                if (codes[ci])
                    ap__jb_printf(b, "code=\"%d\"} %llu\n", codes[ci], (unsigned long long)v);
                else
                    ap__jb_printf(b, "code=\"other\"} %llu\n", (unsigned long long)v);
            }
    head(b, "alphapulse_http_request_duration_seconds", "histogram",
         "time from request headers to response queued, by endpoint");
    for (int ep = 0; ep < EP_COUNT; ep++) {
        uint64_t cnt = ld(&m->lat_count[ep]);
        if (!cnt)
            continue;
        uint64_t bk[AP_LATENCY_BUCKETS];
        for (int i = 0; i < AP_LATENCY_BUCKETS; i++)
            bk[i] = ld(&m->lat_bucket[ep][i]);
        char lab[64];
        snprintf(lab, sizeof lab, "endpoint=\"%s\"", ep_label(m, ep));
        histogram(b, "alphapulse_http_request_duration_seconds", lab, bk, NULL, 0,
                  (double)ld(&m->lat_sum_ns[ep]) / 1e9, cnt);
    }
    head(b, "alphapulse_http_requests_in_flight", "gauge", "requests received, not yet answered");
    ap__jb_printf(b, "alphapulse_http_requests_in_flight %ld\n", atomic_load(&s->inflight));
    head(b, "alphapulse_http_request_body_bytes_total", "counter", "request body bytes received");
    ap__jb_printf(b, "alphapulse_http_request_body_bytes_total %llu\n",
              (unsigned long long)ld(&m->body_bytes));

    head(b, "alphapulse_batch_items_total", "counter",
         "items of POST /v1/predict/batch requests accepted (\"symbols\" expanded)");
    ap__jb_printf(b, "alphapulse_batch_items_total %llu\n",
                  (unsigned long long)ld(&m->batch_items));

    head(b, "alphapulse_model_cache_capacity", "gauge", "model_cache_size: models kept loaded");
    ap__jb_printf(b, "alphapulse_model_cache_capacity %d\n", s->cfg.model_cache_size);
    ap_cache_stats cs;
    ap__service_cache_stats(s->svc, &cs);
    const struct {
        const char *name, *help;
        uint64_t v;
    } cache[] = {
        {"alphapulse_model_cache_hits_total", "requests that found their model loaded", cs.hits},
        {"alphapulse_model_cache_misses_total", "requests that loaded their model on first use",
         cs.misses},
        {"alphapulse_model_cache_evictions_total", "models unloaded to make room (least recently used)",
         cs.evictions},
        {"alphapulse_model_cache_load_failures_total", "loads on first use that failed",
         cs.load_failures},
    };
    for (size_t k = 0; k < sizeof cache / sizeof cache[0]; k++) {
        head(b, cache[k].name, "counter", cache[k].help);
        ap__jb_printf(b, "%s %llu\n", cache[k].name, (unsigned long long)cache[k].v);
    }
    head(b, "alphapulse_deadline_exceeded_total", "counter",
         "inference requests answered 504: deadline passed before they ran, or they finished late");
    ap__jb_printf(b, "alphapulse_deadline_exceeded_total{when=\"before\"} %llu\n"
                 "alphapulse_deadline_exceeded_total{when=\"after\"} %llu\n",
                 (unsigned long long)ld(&m->deadline_before),
                 (unsigned long long)ld(&m->deadline_after));
    if (s->http) {
        const ap_srv_conn_counters *cc = &s->conn;
        struct {
            long open;
            uint64_t timed_out, reserve_used, reserve_refused;
        } hs = {atomic_load(&cc->open), atomic_load(&cc->timed_out), atomic_load(&cc->reserve_used),
                atomic_load(&cc->reserve_refused)};
        head(b, "alphapulse_http_connections", "gauge", "connections open now");
        ap__jb_printf(b, "alphapulse_http_connections %ld\n", hs.open);
        head(b, "alphapulse_http_request_receive_timeouts_total", "counter",
             "connections closed: request headers and body took longer than request_timeout");
        ap__jb_printf(b, "alphapulse_http_request_receive_timeouts_total %llu\n",
                     (unsigned long long)hs.timed_out);
        head(b, "alphapulse_http_reserve_connections_total", "counter",
             "connections accepted beyond max_connections (health checks and metrics only)");
        ap__jb_printf(b, "alphapulse_http_reserve_connections_total %llu\n",
                     (unsigned long long)hs.reserve_used);
        head(b, "alphapulse_http_reserve_refused_total", "counter",
             "requests on reserve connections refused (not health or metrics)");
        ap__jb_printf(b, "alphapulse_http_reserve_refused_total %llu\n",
                     (unsigned long long)hs.reserve_refused);
    }

    head(b, "alphapulse_models_loaded", "gauge", "models served now");
    ap__jb_printf(b, "alphapulse_models_loaded %d\n", ap__service_resident(s->svc));
    model_metrics(b, s, n, name);
    precision_metrics(b, s, n, name);

    bstat(*bs)[2] = calloc(n ? (size_t)n : 1, sizeof *bs);
    if (bs) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < 2; j++)
                bs[i][j].ok = ap__service_batch_stats(s->svc, i, j, &bs[i][j].st) == AP_OK;
        batcher_metrics(b, n, name, bs);
        free(bs);
    } else
        b->failed = 1;

    head(b, "alphapulse_series", "gauge", "series in the store");
    ap__jb_printf(b, "alphapulse_series %zu\n", ap_series_store_count(s->store));
    head(b, "alphapulse_bars_ingested_total", "counter", "bars stored (API and replay)");
    ap__jb_printf(b, "alphapulse_bars_ingested_total %llu\n",
              (unsigned long long)ld(&m->bars_ingested));
    head(b, "alphapulse_bars_rejected_total", "counter", "bars refused (API and replay)");
    ap__jb_printf(b, "alphapulse_bars_rejected_total %llu\n",
              (unsigned long long)ld(&m->bars_rejected));
    ap_srv_stream_counts sc;
    ap__stream_counts(s->stream, &sc);
    head(b, "alphapulse_stream_subscribers", "gauge", "open /v1/stream subscriptions");
    ap__jb_printf(b, "alphapulse_stream_subscribers %zu\n", sc.subscribers);
    const struct {
        const char *name, *help;
        uint64_t v;
    } sk[] = { /* as the model cache's counters above */
        {"alphapulse_stream_closed_bars_total", "closed bars queued for stream predictions",
         sc.closed_bars},
        {"alphapulse_stream_closed_dropped_total",
         "closed bars dropped: the stream queue was full (stream_queue)", sc.closed_dropped},
        {"alphapulse_stream_events_total",
         "stream events made (one per series, closed bar and model)", sc.events},
        {"alphapulse_stream_delivered_total", "stream events queued to subscribers",
         sc.delivered},
        {"alphapulse_stream_overflows_total",
         "stream subscribers closed as too slow (stream_buffer)", sc.overflows},
        {"alphapulse_stream_failed_total", "closed-bar predictions that failed (no event)",
         sc.failed},
        {"alphapulse_stream_rounds_total", "rounds of closed-bar predictions", sc.rounds},
    };
    for (size_t k = 0; k < sizeof sk / sizeof sk[0]; k++) {
        head(b, sk[k].name, "counter", sk[k].help);
        ap__jb_printf(b, "%s %llu\n", sk[k].name, (unsigned long long)sk[k].v);
    }
    head(b, "alphapulse_async_results", "gauge", "async results kept (pending or done)");
    size_t held;
    uint64_t evicted;
    ap__service_result_counts(s->svc, &held, &evicted);
    ap__jb_printf(b, "alphapulse_async_results %zu\n", held);

    head(b, "alphapulse_replay_bars_total", "counter", "bars fed by the replay, per source");
    pthread_mutex_lock(&s->replay.mu);
    for (int i = 0; i < s->replay.n; i++) {
        const ap_srv_replay_src *r = &s->replay.src[i];
        ap__jb_puts(b, "alphapulse_replay_bars_total{symbol=\"");
        label(b, r->cfg->symbol);
        ap__jb_puts(b, "\",timeframe=\"");
        label(b, r->cfg->timeframe);
        ap__jb_printf(b, "\"} %llu\n", (unsigned long long)r->fed);
    }
    pthread_mutex_unlock(&s->replay.mu);
    if (s->hooks.metrics) /* `worker`: its Redis side (src/scale/metrics.c) */
        s->hooks.metrics(s->hooks.metrics_ctx, b);
}
