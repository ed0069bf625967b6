/*
 * Views and pages: the root page, /metrics, /v1/models, /v1/stats.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"
#include "server/handlers.h"
#include "common/clock.h"

static const char *const kind_names[] = {"pattern", "regime", "ensemble", "raw"};

const char *ap__srv_kind_name(int kind)
{
    return kind >= 0 && kind <= AP_MODEL_RAW ? kind_names[kind] : "?";
}

/* The status page (src/server/status_page.html, made into a C array at build
   time: build/gen/status_page.h). */
#include "status_page.h"

/* GET /: the status page for a browser (Accept names text/html, or
   ?format=html), the plain-text endpoint list otherwise (?format=text). */
enum MHD_Result ap__srv_h_root(ap_srv_req *r)
{
    static const char text[] =
        "alphapulse: real-time inference for trading signals (docs/SERVER.md)\n"
        "  GET  /                               status page (a browser; ?format=text: this list)\n"
        "  POST /v1/candles                     add bars to a series\n"
        "  POST /v1/predict/{pattern,regime,ensemble}   predict on a series' latest bar\n"
        "  POST /v1/predict/batch               many predictions in one request\n"
        "  GET  /v1/stream?series=S/TF,...&models=M,...   predictions pushed on every closed "
        "bar (SSE)\n"
        "  GET|DELETE /v1/results/{id}          async results\n"
        "  GET  /v1/models, /v1/stats, /v1/status[?series=S/TF]\n"
        "  GET  /v2, /v2/health/{live,ready}, /v2/models/{m}[/ready]   KServe v2\n"
        "  POST /v2/models/{m}/infer            feature tensors\n"
        "  POST /v2/repository/models/{m}/{load,unload}\n"
        "  DELETE /v1/series/{symbol}/{timeframe}   drop a series (and its roll-ups)\n"
        "  GET  /metrics                        Prometheus\n";
    const char *format = r->io->query(r->conn, "format");
    if (r->io->query_count(r->conn) > (unsigned)(format != NULL) ||
        (format && strcmp(format, "text") && strcmp(format, "html")))
        return ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "GET / takes format=text or format=html");
    const char *accept = r->io->header(r->conn, "Accept");
    int html = format ? !strcmp(format, "html") : accept && strstr(accept, "text/html") != NULL;
    jbuf b;
    if (html) {
        ap__jb_init(&b, NULL, 0);
        ap__jb_raw(&b, (const char *)status_page_html, status_page_html_len);
        return ap__srv_respond(r, MHD_HTTP_OK, &b, "text/html; charset=utf-8");
    }
    char store[sizeof text];
    ap__jb_init(&b, store, sizeof store);
    ap__jb_raw(&b, text, sizeof text - 1);
    return ap__srv_respond(r, MHD_HTTP_OK, &b, "text/plain; charset=utf-8");
}

enum MHD_Result ap__srv_h_metrics(ap_srv_req *r)
{
    jbuf b;
    ap__jb_init(&b, NULL, 0);
    ap__srv_metrics_render(r->srv, &b);
    return ap__srv_respond(r, MHD_HTTP_OK, &b, "text/plain; version=0.0.4; charset=utf-8");
}

void ap__srv_precision_json(jbuf *b, const ap_model_info *in)
{
    ap__jb_puts(b, ", \"precision\": ");
    ap__jb_str(b, in->precision);
    ap__jb_puts(b, ", \"precision_requested\": ");
    ap__jb_str(b, in->precision_requested);
    ap__jb_puts(b, ", \"precision_note\": ");
    ap__jb_str(b, in->precision_note);
    ap__jb_printf(b, ", \"node_bytes\": %d, \"model_bytes_full\": %zu, "
                  "\"model_bytes_reduced\": %zu, \"precision_deviation\": ",
                  in->node_bytes, in->model_bytes_full, in->model_bytes_reduced);
    ap__jb_num(b, in->precision_deviation);
    ap__jb_puts(b, ", \"device\": ");
    ap__jb_str(b, in->device ? in->device : "cpu");
    ap__jb_puts(b, ", \"device_requested\": ");
    ap__jb_str(b, in->device_requested ? in->device_requested : "auto");
    ap__jb_printf(b, ", \"gpu_min_batch_rows\": %zu", in->gpu_min_batch_rows);
}

/* Describe the version served in slot i (or that it is not loaded). */
static void model_json(ap_server *s, jbuf *b, int i)
{
    ap_model *v = ap__service_slot_model(s->svc, i);
    const char *name = ap__service_slot_name(s->svc, i);
    ap__jb_puts(b, "{\"name\": ");
    ap__jb_str(b, name);
    ap_model_stats st;
    int have = ap_registry_stats(ap__service_registry(s->svc), name, &st, NULL) == AP_OK;
    if (!v) {
        ap__jb_puts(b, ", \"loaded\": false}");
        return;
    }
    ap_model_info info;
    ap_model_describe(v, &info);
    const ap_model_info *in = &info;
    ap__jb_printf(b, ", \"loaded\": true, \"kind\": \"%s\", \"target\": ", in->kind_name);
    ap__jb_str(b, in->target);
    ap__jb_printf(b, ", \"version\": %u, \"format\": ", in->version);
    ap__jb_str(b, in->format);
    ap__jb_printf(b, ", \"%s\": [", in->kind == AP_MODEL_ENSEMBLE ? "members" : "features");
    for (int k = 0; k < in->num_inputs; k++) {
        const char *nm = ap_model_input_name(v, k);
        if (nm)
            ap__jb_str(b, nm);
        else
            ap__jb_printf(b, "\"input_%d\"", k);
        ap__jb_puts(b, ",");
    }
    ap__jb_uncomma(b);
    ap__jb_printf(b, "], \"num_inputs\": %d, \"num_outputs\": %d, \"trees\": %d, \"pipeline\": ",
              in->num_inputs, in->num_outputs, in->num_trees);
    ap__jb_str(b, in->pipeline);
    ap__jb_puts(b, ", \"confidence\": ");
    ap__jb_str(b, in->confidence);
    ap__jb_printf(b, ", \"batching\": {\"max_batch_size\": %d, \"max_queue_delay_us\": %u}",
              in->max_batch_size, in->max_queue_delay_us);
    ap__srv_precision_json(b, in);
    if (have)
        ap__jb_printf(b, ", \"stats\": {\"loads\": %" PRIu64 ", \"predictions\": %" PRIu64
                  ", \"errors\": %" PRIu64 ", \"predict_calls\": %" PRIu64
                  ", \"latency_mean_us\": %.3f, \"latency_max_us\": %.3f}",
                  st.loads, st.predictions, st.errors, st.latency_count,
                  st.latency_count ? (double)st.latency_sum_ns / 1e3 / (double)st.latency_count
                                   : 0.0,
                  (double)st.latency_max_ns / 1e3);
    ap__jb_puts(b, "}");
    ap_model_release(v);
}

enum MHD_Result ap__srv_h_models(ap_srv_req *r)
{
    ap_server *s = r->srv;
    jbuf b;
    ap__jb_init(&b, NULL, 0);
    ap__jb_puts(&b, "{\"models\": [");
    int n = ap__service_slots(s->svc);
    for (int i = 0; i < n; i++) {
        model_json(s, &b, i);
        ap__jb_puts(&b, ",");
    }
    /* repository models never loaded (the model cache loads them on use) */
    ap_repo_model *cat = NULL;
    int ncat = 0;
    ap_error err;
    if (ap__service_catalog(s->svc, 0, &cat, &ncat, &err) != AP_OK)
        ncat = 0;
    for (int i = 0; i < ncat; i++) {
        const ap_repo_model *c = &cat[i];
        if (ap__service_slot_find(s->svc, c->name) >= 0)
            continue;
        ap__jb_puts(&b, "{\"name\": ");
        ap__jb_str(&b, c->name);
        ap__jb_puts(&b, ", \"loaded\": false");
        if (c->ok) {
            ap__jb_printf(&b, ", \"kind\": \"%s\", \"target\": ", ap__srv_kind_name(c->kind));
            ap__jb_str(&b, c->target);
        }
        ap__jb_puts(&b, "},");
    }
    ap_registry_listing_free(cat);
    ap__jb_uncomma(&b);
    ap__jb_puts(&b, "]}\n");
    return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
}

enum MHD_Result ap__srv_h_stats(ap_srv_req *r)
{
    ap_server *s = r->srv;
    ap_srv_metrics *mt = s->metrics;
    uint64_t requests = 0, predictions = 0;
    int n = ap__service_slots(s->svc);
    for (int ep = 0; ep < EP_COUNT; ep++)
        requests += atomic_load_explicit(&mt->lat_count[ep], memory_order_relaxed);
    for (int i = 0; i < n; i++) {
        ap_model_stats st;
        if (ap_registry_stats(ap__service_registry(s->svc), ap__service_slot_name(s->svc, i), &st,
                              NULL) == AP_OK)
            predictions += st.predictions;
    }
    ap_batch_stats bs;
    memset(&bs, 0, sizeof bs);
    ap__service_pool_stats(s->svc, &bs);
    jbuf b;
    ap__jb_init(&b, NULL, 0);
    ap__jb_printf(&b, "{\"version\": \"%s\", \"uptime_s\": %.3f, \"models_loaded\": %d, "
              "\"requests\": %" PRIu64 ", \"in_flight\": %ld, \"predictions\": %" PRIu64,
              ap_version(), (double)(ap__clock_ns() - s->start_ns) / 1e9,
              ap__service_resident(s->svc), requests, atomic_load(&s->inflight), predictions);
    ap__jb_printf(&b, ", \"batching\": {\"submitted\": %" PRIu64 ", \"rejected\": %" PRIu64
              ", \"completed\": %" PRIu64 ", \"failed\": %" PRIu64 ", \"timed_out\": %" PRIu64
              ", \"cancelled\": %" PRIu64 ", \"batches\": %" PRIu64 ", \"rows\": %" PRIu64
              ", \"mean_batch_rows\": %.3f, \"queue_depth\": %" PRIu64 "}",
              bs.submitted, bs.rejected, bs.completed, bs.failed, bs.timed_out, bs.cancelled,
              bs.batches, bs.rows, bs.batches ? (double)bs.rows / (double)bs.batches : 0.0,
              bs.queue_depth);
    ap__jb_printf(&b, ", \"series\": %zu, \"bars_ingested\": %" PRIu64 ", \"bars_rejected\": %"
              PRIu64, ap_series_store_count(s->store),
              atomic_load_explicit(&mt->bars_ingested, memory_order_relaxed),
              atomic_load_explicit(&mt->bars_rejected, memory_order_relaxed));
    size_t held;
    uint64_t evicted;
    ap__service_result_counts(s->svc, &held, &evicted);
    ap__jb_printf(&b, ", \"async_results\": %zu, \"async_evicted\": %" PRIu64, held, evicted);
    ap_cache_stats cs;
    ap__service_cache_stats(s->svc, &cs);
    ap__jb_printf(&b, ", \"model_cache\": {\"capacity\": %d, \"resident\": %d, \"hits\": %" PRIu64
              ", \"misses\": %" PRIu64 ", \"evictions\": %" PRIu64 ", \"load_failures\": %" PRIu64 "}",
              cs.capacity, cs.resident, cs.hits, cs.misses, cs.evictions, cs.load_failures);
    ap__jb_printf(&b, ", \"deadlines\": {\"refused_before\": %" PRIu64 ", \"late_after\": %" PRIu64 "}",
              atomic_load_explicit(&mt->deadline_before, memory_order_relaxed),
              atomic_load_explicit(&mt->deadline_after, memory_order_relaxed));
    if (s->http) {
        const ap_srv_conn_counters *cc = &s->conn;
        ap__jb_printf(&b, ", \"connections\": {\"open\": %ld, \"timed_out\": %" PRIu64
                  ", \"reserve_used\": %" PRIu64 ", \"reserve_refused\": %" PRIu64 "}",
                  atomic_load(&cc->open), atomic_load(&cc->timed_out),
                  atomic_load(&cc->reserve_used), atomic_load(&cc->reserve_refused));
    }
    ap__jb_puts(&b, ", \"replay\": ");
    ap__srv_replay_json(s, &b);
    ap__jb_puts(&b, ", \"config\": {");
    for (int i = 0; i < ap__server_config_count(); i++) {
        ap_config_setting_info in;
        char val[AP_CONFIG_PATH_MAX * 2];
        ap__server_config_info(i, &in);
        ap__server_config_value(&s->cfg, i, val, sizeof val);
        ap__jb_str(&b, in.key);
        ap__jb_puts(&b, ": ");
        ap__jb_str(&b, val);
        ap__jb_puts(&b, ",");
    }
    ap__jb_uncomma(&b);
    ap__jb_puts(&b, "}}\n");
    return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
}
