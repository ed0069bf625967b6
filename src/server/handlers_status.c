/*
 * GET /v1/status[?series=SYMBOL/TF]: one JSON document for the status page
 * (GET /, status_page.c), polled once a second by every open page, so it
 * is made of reads of counters the server keeps anyway: server, ingestion,
 * answers by HTTP status and endpoint (metrics.c), models with their rates
 * and latency quantiles (registry statistics, batchers; the sampler's last
 * point, status.c), the sampler's history, the series (one pass over the
 * store), and with ?series= that series' last STATUS_CHART_BARS bars.
 * docs/SERVER.md has the schema.
 */
#include "server/server_internal.h"
#include "server/handlers.h"
#include "server/status.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/error.h"

#define STATUS_MAX_SERIES 1000 /* series listed (the count says how many there are) */
#define STATUS_CHART_BARS 200  /* bars of the chosen series */

static void num_or_null(jbuf *b, const char *key, double v)
{
    ap__jb_printf(b, ", \"%s\": ", key);
    if (isfinite(v))
        ap__jb_printf(b, "%.6g", v);
    else
        ap__jb_puts(b, "null");
}

/* "200": n, ("other" for status 0) */
static void count_item(jbuf *b, int code, uint64_t n)
{
    if (code)
        ap__jb_printf(b, "\"%d\": %" PRIu64 ",", code, n);
    else
        ap__jb_printf(b, "\"other\": %" PRIu64 ",", n);
}

/* "http": answers by status, errors (>= 400) by status and by endpoint. */
static void http_json(ap_server *s, jbuf *b, int nslots)
{
    ap_srv_metrics *m = s->metrics;
    uint64_t by[EP_COUNT][SRV_NCODES];
    uint64_t code_tot[SRV_NCODES] = {0}, total = 0;
    for (int ep = 0; ep < EP_COUNT; ep++)
        for (int ci = 0; ci < SRV_NCODES; ci++) {
            uint64_t v = 0;
            for (int mi = 0; mi <= nslots && mi <= SRV_MAX_MODELS; mi++)
                v += atomic_load_explicit(&m->requests[mi][ep][ci], memory_order_relaxed);
            by[ep][ci] = v;
            code_tot[ci] += v;
            total += v;
        }
    ap__jb_printf(b, "{\"requests\": %" PRIu64 ", \"in_flight\": %ld, \"by_code\": {", total,
                  atomic_load(&s->inflight));
    for (int ci = 0; ci < SRV_NCODES; ci++)
        if (code_tot[ci]) {
            int c = ap__srv_metrics_code(ci);
            count_item(b, c, code_tot[ci]);
        }
    ap__jb_uncomma(b);
    ap__jb_puts(b, "}, \"errors_by_code\": {");
    uint64_t errors = 0;
    for (int ci = 0; ci < SRV_NCODES; ci++) {
        int c = ap__srv_metrics_code(ci);
        if (code_tot[ci] && (c >= 400 || !c)) {
            count_item(b, c, code_tot[ci]);
            errors += code_tot[ci];
        }
    }
    ap__jb_uncomma(b);
    ap__jb_puts(b, "}, \"errors_by_endpoint\": {");
    for (int ep = 0; ep < EP_COUNT; ep++) {
        int any = 0;
        for (int ci = 0; ci < SRV_NCODES; ci++) {
            int c = ap__srv_metrics_code(ci);
            if (!by[ep][ci] || (c && c < 400))
                continue;
            if (!any++) {
                const char *nm = atomic_load_explicit(&m->ep_name[ep], memory_order_relaxed);
                ap__jb_str(b, nm ? nm : "unknown");
                ap__jb_puts(b, ": {");
            }
            count_item(b, c, by[ep][ci]);
        }
        if (any) {
            ap__jb_uncomma(b);
            ap__jb_puts(b, "},");
        }
    }
    ap__jb_uncomma(b);
    ap__jb_printf(b, "}, \"errors\": %" PRIu64 "}", errors);
}

/* One model slot: what it is and how it runs now. */
static void model_json(ap_server *s, jbuf *b, int i)
{
    const char *name = ap__service_slot_name(s->svc, i);
    ap_model *v = ap__service_slot_model(s->svc, i);
    ap__jb_puts(b, "{\"name\": ");
    ap__jb_str(b, name);
    ap__jb_printf(b, ", \"loaded\": %s", v ? "true" : "false");
    if (v) {
        ap_model_info in;
        ap_model_describe(v, &in);
        ap__jb_printf(b, ", \"version\": %u, \"kind\": \"%s\", \"target\": ", in.version,
                      in.kind_name);
        ap__jb_str(b, in.target);
        ap__jb_puts(b, ", \"precision\": ");
        ap__jb_str(b, in.precision);
        ap__jb_puts(b, ", \"precision_requested\": ");
        ap__jb_str(b, in.precision_requested);
        ap_model_release(v);
    }
    ap_model_stats ms;
    if (ap_registry_stats(ap__service_registry(s->svc), name, &ms, NULL) == AP_OK) {
        ap__jb_printf(b, ", \"predictions\": %" PRIu64 ", \"predict_calls\": %" PRIu64
                      ", \"errors\": %" PRIu64, ms.predictions, ms.latency_count, ms.errors);
        num_or_null(b, "p50_us", ap__srv_latency_quantile_us(ms.latency_buckets, 0.5));
        num_or_null(b, "p99_us", ap__srv_latency_quantile_us(ms.latency_buckets, 0.99));
    }
    ap_batch_stats bs;
    uint64_t batches = 0, rows = 0, queue = 0;
    for (int raw = 0; raw < 2; raw++)
        if (ap__service_batch_stats(s->svc, i, raw, &bs) == AP_OK) {
            batches += bs.batches;
            rows += bs.rows;
            queue += bs.queue_depth;
        }
    ap__jb_printf(b, ", \"batches\": %" PRIu64 ", \"queue_depth\": %" PRIu64, batches, queue);
    num_or_null(b, "mean_batch_rows", batches ? (double)rows / (double)batches : NAN);
    ap_srv_status_now now;
    ap__srv_status_model_now(s->status, i, &now);
    ap__jb_puts(b, ", \"now\": {\"predictions_s\": ");
    ap__jb_printf(b, "%.6g", now.pred_s);
    num_or_null(b, "p50_us", now.p50_us);
    num_or_null(b, "p99_us", now.p99_us);
    num_or_null(b, "batch_rows", now.batch_rows);
    num_or_null(b, "queue_depth", now.queue_depth);
    ap__jb_puts(b, "}}");
}

typedef struct series_walk {
    jbuf *b;
    size_t listed;
} series_walk;

static int series_item(void *ctx, const ap_series *se)
{
    series_walk *w = ctx;
    if (w->listed == STATUS_MAX_SERIES)
        return 1;
    ap_series_info_t in;
    ap_series_info(se, &in);
    if (in.deleted)
        return 0;
    char tf[24];
    ap__stream_tf_name(in.timeframe_s, tf, sizeof tf);
    ap__jb_puts(w->b, "{\"symbol\": ");
    ap__jb_str(w->b, ap_series_symbol(se));
    ap__jb_printf(w->b, ", \"timeframe\": \"%s\", \"bars\": %zu, \"total\": %" PRIu64
                  ", \"rolled_up\": %s, \"latest_bar_t_us\": %" PRId64 ", \"latest_bar_time\": ",
                  tf, in.length, in.total, in.rolled_up ? "true" : "false", in.last_t);
    char t[40];
    if (in.total && in.last_t >= 0) /* the text of every other bar time (ap_format_timestamp) */
        ap__jb_str(w->b, ap_format_timestamp(in.last_t, t, sizeof t));
    else
        ap__jb_puts(w->b, "null");
    ap__jb_puts(w->b, "},");
    w->listed++;
    return 0;
}

/* "chart": the series' last bars (time in seconds, close). */
static int chart_json(ap_server *s, jbuf *b, const char *spec, ap_error *err)
{
    ap_srv_stream_key k;
    int rc = ap__stream_key_parse(spec, strlen(spec), &k, err);
    if (rc)
        return rc;
    ap_series *se = ap_series_find(s->store, k.symbol, k.tf);
    if (!se)
        return ap__error_set(err, AP_ENOTFOUND, "unknown series %s", spec);
    ap_bar bars[STATUS_CHART_BARS];
    size_t n = ap_series_tail(se, STATUS_CHART_BARS, bars);
    char tfn[24];
    ap__stream_tf_name(k.tf, tfn, sizeof tfn);
    ap__jb_puts(b, ", \"chart\": {\"symbol\": ");
    ap__jb_str(b, k.symbol);
    ap__jb_printf(b, ", \"timeframe\": \"%s\", \"bars\": %zu, \"t\": [", tfn, n);
    for (size_t i = 0; i < n; i++)
        ap__jb_printf(b, "%" PRId64 ",", bars[i].t / 1000000);
    ap__jb_uncomma(b);
    ap__jb_puts(b, "], \"close\": [");
    for (size_t i = 0; i < n; i++) {
        ap__jb_num(b, bars[i].close);
        ap__jb_puts(b, ",");
    }
    ap__jb_uncomma(b);
    ap__jb_puts(b, "]}");
    return AP_OK;
}

enum MHD_Result ap__srv_h_status(ap_srv_req *r)
{
    ap_server *s = r->srv;
    const char *series = r->io->query(r->conn, "series");
    if (r->io->query_count(r->conn) > (unsigned)(series != NULL))
        return ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "unknown query parameter: /v1/status "
                             "takes series=SYMBOL/TIMEFRAME");
    ap_srv_metrics *mt = s->metrics;
    jbuf b;
    ap__jb_init(&b, NULL, 0);
    ap_error err;
    if (series && chart_json(s, &b, series, &err) != AP_OK) { /* checked first: no work on a 400 */
        ap__jb_free(&b);
        return ap__srv_fail(r, &err);
    }
    jbuf chart = b; /* written again below, after the rest */
    ap__jb_init(&b, NULL, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ap__jb_printf(&b, "{\"server\": {\"version\": \"%s\", \"uptime_s\": %.3f, \"now_ms\": %lld}",
                  ap_version(), (double)(ap__clock_ns() - s->start_ns) / 1e9,
                  (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    ap__jb_printf(&b, ", \"ingestion\": {\"bars_total\": %" PRIu64 ", \"bars_rejected\": %" PRIu64,
                  atomic_load_explicit(&mt->bars_ingested, memory_order_relaxed),
                  atomic_load_explicit(&mt->bars_rejected, memory_order_relaxed));
    ap__jb_printf(&b, ", \"bars_per_s\": %.6g}, \"http\": ", ap__srv_status_ingest_rate(s->status));
    int n = ap__service_slots(s->svc);
    http_json(s, &b, n);
    ap_batch_stats ps;
    memset(&ps, 0, sizeof ps);
    ap__service_pool_stats(s->svc, &ps);
    ap__jb_printf(&b, ", \"batching\": {\"batches\": %" PRIu64 ", \"rows\": %" PRIu64
                  ", \"queue_depth\": %" PRIu64 ", \"running\": %" PRIu64, ps.batches, ps.rows,
                  ps.queue_depth, ps.running);
    num_or_null(&b, "mean_batch_rows", ps.batches ? (double)ps.rows / (double)ps.batches : NAN);
    ap__jb_printf(&b, "}, \"models_loaded\": %d, \"models\": [", ap__service_resident(s->svc));
    const char *names[SRV_MAX_MODELS];
    for (int i = 0; i < n; i++) {
        names[i] = ap__service_slot_name(s->svc, i);
        model_json(s, &b, i);
        ap__jb_puts(&b, ",");
    }
    ap__jb_uncomma(&b);
    ap__jb_printf(&b, "], \"series_count\": %zu, \"series\": [", ap_series_store_count(s->store));
    series_walk w = {&b, 0};
    ap_series_store_list(s->store, series_item, &w);
    ap__jb_uncomma(&b);
    ap__jb_printf(&b, "], \"series_listed\": %zu, \"history\": ", w.listed);
    ap__srv_status_history_json(s->status, &b, names, n);
    ap__jb_raw(&b, chart.p ? chart.p : "", chart.len);
    b.failed |= chart.failed;
    ap__jb_free(&chart);
    ap__jb_puts(&b, "}\n");
    return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
}
