/*
 * The AlphaPulse JSON API (/v1): bars in, predictions on a series' latest
 * bar out (sync or async), results. Views (models, stats) are in
 * handlers_info.c. docs/SERVER.md.
 */
#include <jansson.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_internal.h"
#include "server/handlers.h"
#include "server/json.h"
#include "common/clock.h"

/* ---- POST /v1/candles --------------------------------------------------------- */

/* A candle time: epoch seconds or milliseconds (ap_parse_timestamp's rule:
   magnitude below 1e11 is seconds), or an ISO-8601 string. */
static int candle_time(json_t *v, int64_t *t, ap_error *err)
{
    if (json_is_string(v))
        return ap_parse_timestamp(json_string_value(v), t, err);
    if (!json_is_number(v))
        return ap__error_set(err, AP_EINVAL, "time must be a number or an ISO-8601 string");
    double x = json_number_value(v);
    if (!isfinite(x) || fabs(x) >= 9e15)
        return ap__error_set(err, AP_EINVAL, "time %g is out of range", x);
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        *t = (i > -100000000000LL && i < 100000000000LL) ? (int64_t)i * 1000000
                                                          : (int64_t)i * 1000;
    } else
        *t = (int64_t)llround(fabs(x) < 1e11 ? x * 1e6 : x * 1e3);
    return AP_OK;
}

enum MHD_Result ap__srv_h_candles(ap_srv_req *r)
{
    static const char *const keys[] = {"symbol", "timeframe", "candles", NULL};
    ap_server *s = r->srv;
    enum MHD_Result ret = MHD_YES;
    int bad = 0;
    json_t *j = ap__srv_json_body(r, &ret);
    if (!j)
        return ret;
    const char *sym = ap__srv_json_str(r, j, "symbol", 1, &bad, &ret);
    const char *tfs = bad ? NULL : ap__srv_json_str(r, j, "timeframe", 1, &bad, &ret);
    json_t *arr = json_object_get(j, "candles");
    if (bad || ap__srv_json_unknown_key(r, j, keys, &ret))
        goto done;
    if (!json_is_array(arr)) {
        ret = ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "field 'candles' %s",
                        arr ? "must be an array of [t, o, h, l, c, v]" : "is required");
        goto done;
    }
    ap_error err;
    int64_t tf;
    ap_series *series;
    if (ap_timeframe_parse(tfs, &tf, &err) != AP_OK) {
        ret = ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
        goto done;
    }
    if (ap_series_open(s->store, sym, tf, AP_SERIES_ROLLUP, &series, &err) != AP_OK) {
        ret = ap__srv_fail(r, &err);
        goto done;
    }
    size_t n = json_array_size(arr), stored = 0;
    int rc = AP_OK;
    for (; stored < n; stored++) {
        json_t *c = json_array_get(arr, stored);
        ap_bar bar;
        if (!json_is_array(c) || json_array_size(c) != 6) {
            rc = ap__error_set(&err, AP_EINVAL, "a candle is [t, open, high, low, close, volume]");
            break;
        }
        if ((rc = candle_time(json_array_get(c, 0), &bar.t, &err)))
            break;
        if ((rc = ap__srv_bar_time_ok(s, bar.t, &err)))
            break;
        double *f[5] = {&bar.open, &bar.high, &bar.low, &bar.close, &bar.volume};
        static const char *names[5] = {"open", "high", "low", "close", "volume"};
        for (int k = 0; k < 5 && !rc; k++) {
            json_t *v = json_array_get(c, (size_t)k + 1);
            if (!json_is_number(v))
                rc = ap__error_set(&err, AP_EINVAL, "%s must be a number", names[k]);
            else
                *f[k] = json_number_value(v);
        }
        if (rc || (rc = ap__srv_ingest(s, series, &bar, &err)))
            break;
    }
    char store[1024];
    jbuf b;
    ap__jb_init(&b, store, sizeof store);
    if (rc) {
        char msg[AP_ERROR_MSG_MAX + 64];
        snprintf(msg, sizeof msg, "candle %zu: %s", stored, err.msg);
        ap__jb_puts(&b, "{\"error\": ");
        ap__jb_str(&b, msg);
        ap__jb_printf(&b, ", \"stored\": %zu, \"rejected\": {\"index\": %zu, \"reason\": ", stored,
                  stored);
        ap__jb_str(&b, err.msg);
        ap__jb_puts(&b, "}");
    } else
        ap__jb_printf(&b, "{\"stored\": %zu", stored);
    ap__jb_puts(&b, ", \"symbol\": ");
    ap__jb_str(&b, sym);
    ap__jb_puts(&b, ", \"timeframe\": ");
    ap__jb_str(&b, tfs);
    /* one locked snapshot: other clients may append to this series now */
    ap_series_info_t in;
    ap_series_info(series, &in);
    ap__jb_printf(&b, ", \"bars\": %zu, \"total\": %" PRIu64, in.length, in.total);
    if (in.total > 0) {
        ap__jb_puts(&b, ", ");
        ap__srv_json_time(&b, "last_bar_time", in.last_t);
    }
    ap__jb_puts(&b, "}\n");
    ret = ap__srv_respond(r, rc ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_OK, &b, NULL);
done:
    json_decref(j);
    return ret;
}

/* DELETE /v1/series/{symbol}/{timeframe} (admin, like the repository's
   load/unload): drops a base series and its roll-ups, so that a series
   poisoned by a wrong feed can start again. A rolled-up series alone is
   refused (409, naming its base); predictions in flight on it answer 404. */
enum MHD_Result ap__srv_h_series_delete(ap_srv_req *r)
{
    ap_server *s = r->srv;
    ap_error err;
    int64_t tf;
    if (ap_timeframe_parse(r->arg2, &tf, &err) != AP_OK)
        return ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
    ap_series *series = ap_series_find(s->store, r->arg, tf);
    ap_series_info_t in = {0};
    if (series)
        ap_series_info(series, &in);
    if (ap_series_delete(s->store, r->arg, tf, &err) != AP_OK)
        return ap__srv_fail(r, &err);
    ap__srv_log(s, "series %s/%s deleted (%" PRIu64 " bars)", r->arg, r->arg2, in.total);
    char store[512];
    jbuf b;
    ap__jb_init(&b, store, sizeof store);
    ap__jb_puts(&b, "{\"deleted\": true, \"symbol\": ");
    ap__jb_str(&b, r->arg);
    ap__jb_puts(&b, ", \"timeframe\": ");
    ap__jb_str(&b, r->arg2);
    ap__jb_printf(&b, ", \"total\": %" PRIu64 ", \"series_left\": %zu}\n", in.total,
              ap_series_store_count(s->store));
    return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
}

/* ---- predictions ----------------------------------------------------------------- */

static const int ep_kind[] = {[EP_PRED_PATTERN] = AP_MODEL_PATTERN,
                              [EP_PRED_REGIME] = AP_MODEL_REGIME,
                              [EP_PRED_ENSEMBLE] = AP_MODEL_ENSEMBLE};

/* The prediction object (without the closing brace): the single endpoints',
   /v1/results' and every item of /v1/predict/batch. Written with puts and
   integer appends, no printf: a batch writes thousands of these. */
void ap__srv_prediction_json(jbuf *b, uint64_t id, const char *symbol, const char *tf,
                             const ap_model *m, const ap_model_info *in, double pred, double conf,
                             const double *outs, int nouts, int64_t bar_time, int undefined,
                             uint64_t bars, uint64_t latency_us, uint64_t queue_us,
                             uint64_t compute_us)
{
    ap__jb_puts(b, "{\"request_id\": \"");
    ap__jb_u64(b, id);
    ap__jb_puts(b, "\", \"symbol\": ");
    ap__jb_str(b, symbol);
    ap__jb_puts(b, ", \"timeframe\": ");
    ap__jb_str(b, tf);
    ap__jb_puts(b, ", \"model\": ");
    ap__jb_str(b, in->name);
    ap__jb_puts(b, ", \"kind\": \"");
    ap__jb_puts(b, in->kind_name);
    ap__jb_puts(b, "\", \"target\": ");
    ap__jb_str(b, in->target);
    ap__jb_puts(b, ", \"version\": ");
    ap__jb_u64(b, in->version);
    ap__jb_puts(b, ", \"prediction\": ");
    ap__jb_num(b, pred);
    ap__jb_puts(b, ", \"confidence\": ");
    ap__jb_num(b, conf);
    ap__jb_puts(b, ", ");
    ap__srv_json_time(b, "bar_time", bar_time);
    /* warm: every feature the model reads is past its warm-up (docs/FEATURES.md) */
    ap__jb_puts(b, ", \"bars\": ");
    ap__jb_u64(b, bars);
    ap__jb_puts(b, undefined ? ", \"warm\": false, \"undefined_features\": "
                             : ", \"warm\": true, \"undefined_features\": ");
    ap__jb_i64(b, undefined);
    ap__jb_puts(b, ", \"latency_us\": ");
    ap__jb_u64(b, latency_us);
    ap__jb_puts(b, ", \"queue_us\": ");
    ap__jb_u64(b, queue_us);
    ap__jb_puts(b, ", \"compute_us\": ");
    ap__jb_u64(b, compute_us);
    if (in->kind == AP_MODEL_ENSEMBLE) {
        ap__jb_puts(b, ", \"members\": {");
        for (int i = 0; i < nouts; i++) {
            const char *name = ap_model_input_name(m, i);
            ap__jb_str(b, name ? name : "?");
            ap__jb_puts(b, ": ");
            ap__jb_num(b, outs[i]);
            ap__jb_puts(b, ",");
        }
        ap__jb_uncomma(b);
        ap__jb_puts(b, "}");
    }
}

int ap__srv_warmup(const ap_model_info *in, const unsigned char *used, const double *row,
                   const char *sym, const char *tfs, uint64_t bars, int *undefined,
                   ap_error *err)
{
    *undefined = 0;
    for (int f = 0; f < AP_FEATURE_COUNT; f++)
        *undefined += used[f] && isnan(row[f]);
    if (in->min_bars && bars < in->min_bars)
        return ap__error_set(err, AP_ECONFLICT, "series %s/%s has %" PRIu64 " bar(s); model "
                            "'%s' needs min_bars = %u before it predicts (%d of its features "
                            "are still undefined)", sym, tfs, bars, in->name, in->min_bars,
                            *undefined);
    return AP_OK;
}

enum MHD_Result ap__srv_h_predict(ap_srv_req *r)
{
    static const char *const keys[] = {"symbol", "timeframe", "target", "model",
                                       "async",  "timeout_ms", NULL};
    ap_server *s = r->srv;
    int kind = ep_kind[r->ep];
    enum MHD_Result ret = MHD_YES;
    int bad = 0;
    json_t *j = ap__srv_json_body(r, &ret);
    if (!j)
        return ret;
    const char *sym = ap__srv_json_str(r, j, "symbol", 1, &bad, &ret);
    const char *tfs = bad ? NULL : ap__srv_json_str(r, j, "timeframe", 1, &bad, &ret);
    const char *target =
        bad ? NULL : ap__srv_json_str(r, j, "target", kind != AP_MODEL_ENSEMBLE, &bad, &ret);
    const char *model = bad ? NULL : ap__srv_json_str(r, j, "model", 0, &bad, &ret);
    int async;
    uint64_t asked_us;
    if (bad || ap__srv_json_unknown_key(r, j, keys, &ret) ||
        ap__srv_json_async_timeout(r, j, &async, &asked_us, &ret))
        goto done;
    ap_error err;
    int64_t tf;
    if (ap_timeframe_parse(tfs, &tf, &err) != AP_OK) {
        ret = ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
        goto done;
    }
    ap_series *series = ap_series_find(s->store, sym, tf);
    if (!series) {
        ret = ap__srv_error(r, MHD_HTTP_NOT_FOUND, "unknown series %s/%s (POST bars to /v1/candles)",
                        sym, tfs);
        goto done;
    }
    double row[AP_FEATURE_COUNT];
    if (ap_series_latest(series, row, &r->bar_time, &err) != AP_OK) {
        ret = ap__srv_error(r, MHD_HTTP_NOT_FOUND, "%s", err.msg);
        goto done;
    }
    ap_selector sel = {model, kind, target, 0, 0, 1};
    ap_lease l;
    if (ap__service_pick(s->svc, &sel, &l, &err) != AP_OK) {
        r->model = l.index;
        ret = ap__srv_fail(r, &err);
        goto done;
    }
    unsigned char used[AP_FEATURE_COUNT];
    ap_model_features_used(l.model, used);
    ap_series_info_t si;
    r->bars = ap_series_info(series, &si) == AP_OK ? si.total : 0;
    if (ap__srv_warmup(&l.info, used, row, sym, tfs, r->bars, &r->undefined, &err) != AP_OK) {
        r->model = l.index;
        ap__service_release(&l);
        ret = ap__srv_fail(r, &err);
        goto done;
    }
    ap__srv_req_hold(r, &l);
    snprintf(r->symbol, sizeof r->symbol, "%s", sym);
    snprintf(r->timeframe, sizeof r->timeframe, "%s", tfs);
    ap__srv_set_deadline(r, asked_us);
    if (ap__srv_past_deadline(r, ap__clock_ns())) {
        ap__service_release(&l);
        ret = ap__srv_deadline_error(r, "before");
        goto done;
    }
    if (async) {
        ap_async_meta meta = {.ep = r->ep, .bar_time = r->bar_time, .undefined = r->undefined,
                              .bars = r->bars, .t_submit_ns = r->t0_ns};
        snprintf(meta.symbol, sizeof meta.symbol, "%s", sym);
        snprintf(meta.timeframe, sizeof meta.timeframe, "%s", tfs);
        uint64_t id;
        if (ap__service_submit_async(s->svc, &l, row, r->deadline_ns, &meta, &id, &err) != AP_OK)
            ret = ap__srv_fail(r, &err);
        else {
            char store[256];
            jbuf b;
            ap__jb_init(&b, store, sizeof store);
            ap__jb_printf(&b, "{\"request_id\": \"%" PRIu64 "\", \"status\": \"pending\"}\n", id);
            ret = ap__srv_respond(r, MHD_HTTP_ACCEPTED, &b, NULL);
        }
        goto done;
    }
    if (ap__srv_start_inference(r, &l, row, 1)) {
        r->phase = PH_DONE;
        ret = ap__srv_v1_finish(r);
    }
done:
    json_decref(j);
    return ret;
}

enum MHD_Result ap__srv_v1_finish(ap_srv_req *r)
{
    if (r->status == AP_ETIMEDOUT)
        return ap__srv_deadline_error(r, "before");
    if (r->status == AP_OK && ap__srv_past_deadline(r, ap__clock_ns()))
        return ap__srv_deadline_error(r, "after");
    if (r->status)
        return ap__srv_error(r, ap__srv_compute_status(r->status), "%s", r->msg);
    char store[1024];
    jbuf b;
    ap__jb_init(&b, store, sizeof store);
    uint64_t lat = (ap__clock_ns() - r->t0_ns) / 1000;
    ap__srv_prediction_json(&b, r->id, r->symbol, r->timeframe, r->held, &r->info, r->out[0], r->out[1],
                    r->out + 2, (int)r->nout - 2, r->bar_time, r->undefined, r->bars, lat,
                    r->queue_us,
                    r->compute_us);
    ap__jb_puts(&b, "}\n");
    return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
}

/* ---- /v1/results/{id} --------------------------------------------------------------- */

static int parse_id(const char *s, uint64_t *id)
{
    char *end;
    if (!*s || *s == '-' || *s == '+')
        return -1;
    *id = strtoull(s, &end, 10);
    return *end || !*id ? -1 : 0;
}

enum MHD_Result ap__srv_h_result_get(ap_srv_req *r)
{
    ap_server *s = r->srv;
    uint64_t id;
    ap_error err;
    if (parse_id(r->arg, &id))
        return ap__srv_error(r, MHD_HTTP_NOT_FOUND, "unknown request id '%s'", r->arg);
    ap_async_result e;
    if (ap__service_result_get(s->svc, id, &e, &err) != AP_OK)
        return ap__srv_fail(r, &err);
    r->model = e.index;
    char store[1024];
    jbuf b;
    ap__jb_init(&b, store, sizeof store);
    if (e.state == AP_ASYNC_PENDING)
        ap__jb_printf(&b, "{\"request_id\": \"%" PRIu64 "\", \"status\": \"pending\"", id);
    else if (e.text) { /* a batch (handlers_batch.c): its results array, written when done */
        ap__jb_printf(&b, "{\"request_id\": \"%" PRIu64 "\", \"status\": \"done\", \"results\": ",
                      id);
        ap__jb_raw(&b, e.text, e.text_len);
        free(e.text);
    } else if (e.state == AP_ASYNC_CANCELLED)
        ap__jb_printf(&b, "{\"request_id\": \"%" PRIu64 "\", \"status\": \"cancelled\"", id);
    else if (e.status != AP_OK) {
        ap__jb_printf(&b, "{\"request_id\": \"%" PRIu64 "\", \"status\": \"failed\", \"code\": "
                  "\"%s\", \"error\": ", id, ap_status_name(e.status));
        ap__jb_str(&b, e.msg);
    } else {
        ap_model_info in;
        ap_model_describe(e.model, &in);
        const ap_async_meta *m = &e.meta;
        ap__srv_prediction_json(&b, id, m->symbol, m->timeframe, e.model, &in, e.pred, e.conf, e.outs,
                        e.nouts, m->bar_time, m->undefined, m->bars,
                        (e.t_done_ns - m->t_submit_ns) / 1000, e.queue_us, e.compute_us);
        ap__jb_puts(&b, ", \"status\": \"done\"");
    }
    ap__jb_puts(&b, "}\n");
    ap_model_release(e.model);
    return ap__srv_respond(r, MHD_HTTP_OK, &b, NULL);
}

enum MHD_Result ap__srv_h_result_delete(ap_srv_req *r)
{
    ap_server *s = r->srv;
    uint64_t id;
    ap_error err;
    if (parse_id(r->arg, &id))
        return ap__srv_error(r, MHD_HTTP_NOT_FOUND, "unknown request id '%s'", r->arg);
    int pending;
    if (ap__service_result_delete(s->svc, id, &pending, &r->model, &err) != AP_OK)
        return ap__srv_fail(r, &err);
    char store[128];
    jbuf o;
    ap__jb_init(&o, store, sizeof store);
    ap__jb_printf(&o, "{\"request_id\": \"%" PRIu64 "\", \"status\": \"%s\"}\n", id,
              pending ? "cancelled" : "deleted");
    return ap__srv_respond(r, MHD_HTTP_OK, &o, NULL);
}

