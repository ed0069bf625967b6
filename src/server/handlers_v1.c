/*
 * The AlphaPulse JSON API (/v1): bars in, predictions on a series' latest
 * bar out (sync or async), results, models, stats. docs/SERVER.md.
 */
#include <jansson.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_internal.h"
#include "server/http.h"
#include "common/clock.h"

/* ---- request helpers ------------------------------------------------------- */

/* Parse the body as a JSON object; on failure the error response is queued
   (*ret) and NULL returned. */
static json_t *body_object(ap_srv_req *r, enum MHD_Result *ret)
{
    json_error_t je;
    json_t *j = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        *ret = ap_srv_error(r, MHD_HTTP_BAD_REQUEST, "malformed JSON body: line %d column %d: %s",
                         je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        *ret = ap_srv_error(r, MHD_HTTP_BAD_REQUEST, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* Refuse keys not in allowed (typos are errors); 0 when all are known. */
static int unknown_key(ap_srv_req *r, json_t *o, const char *const *allowed, enum MHD_Result *ret)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(k, *a);
        if (!ok) {
            *ret = ap_srv_error(r, MHD_HTTP_BAD_REQUEST, "unknown field '%s'", k);
            return 1;
        }
    }
    return 0;
}

/* A string field: NULL when absent (and not required); on a type error the
   response is queued and *bad set. */
static const char *str_field(ap_srv_req *r, json_t *o, const char *key, int required, int *bad,
                             enum MHD_Result *ret)
{
    json_t *v = json_object_get(o, key);
    if (!v && !required)
        return NULL;
    if (!v || !json_is_string(v) || !json_string_length(v)) {
        *bad = 1;
        *ret = ap_srv_error(r, MHD_HTTP_BAD_REQUEST, "field '%s' %s", key,
                         v ? "must be a non-empty string" : "is required");
        return NULL;
    }
    return json_string_value(v);
}

static void put_time(jbuf *b, const char *key, int64_t t_us)
{
    char t[40];
    ap_jb_printf(b, "\"%s\": ", key);
    ap_jb_str(b, ap_format_timestamp(t_us, t, sizeof t));
    ap_jb_printf(b, ", \"%s_ms\": %" PRId64, key, t_us / 1000);
}

/* ---- POST /v1/candles --------------------------------------------------------- */

/* A candle time: epoch seconds or milliseconds (ap_parse_timestamp's rule:
   magnitude below 1e11 is seconds), or an ISO-8601 string. */
static int candle_time(json_t *v, int64_t *t, ap_error *err)
{
    if (json_is_string(v))
        return ap_parse_timestamp(json_string_value(v), t, err);
    if (!json_is_number(v))
        return ap_error_set(err, AP_EINVAL, "time must be a number or an ISO-8601 string");
    double x = json_number_value(v);
    if (!isfinite(x) || fabs(x) >= 9e15)
        return ap_error_set(err, AP_EINVAL, "time %g is out of range", x);
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        *t = (i > -100000000000LL && i < 100000000000LL) ? (int64_t)i * 1000000
                                                          : (int64_t)i * 1000;
    } else
        *t = (int64_t)llround(fabs(x) < 1e11 ? x * 1e6 : x * 1e3);
    return AP_OK;
}

/* A posted bar starts between 1970 and max_future_s after the server's
   clock: one bar from year 5138 would otherwise refuse every real bar after
   it (bars of a series only go forward). */
static int bar_time_ok(const ap_server *s, int64_t t, ap_error *err)
{
    char tb[40], nb[40];
    if (t < 0)
        return ap_error_set(err, AP_EINVAL, "bar time %s is before 1970",
                            ap_format_timestamp(t, tb, sizeof tb));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    if (t > now + s->cfg.max_future_s * 1000000)
        return ap_error_set(err, AP_EINVAL, "bar time %s is more than max_future_s (%lld s) "
                            "after the server's clock (%s)",
                            ap_format_timestamp(t, tb, sizeof tb), (long long)s->cfg.max_future_s,
                            ap_format_timestamp(now, nb, sizeof nb));
    return AP_OK;
}

static enum MHD_Result candles(ap_srv_req *r)
{
    static const char *const keys[] = {"symbol", "timeframe", "candles", NULL};
    ap_server *s = r->srv;
    enum MHD_Result ret = MHD_YES;
    int bad = 0;
    json_t *j = body_object(r, &ret);
    if (!j)
        return ret;
    const char *sym = str_field(r, j, "symbol", 1, &bad, &ret);
    const char *tfs = bad ? NULL : str_field(r, j, "timeframe", 1, &bad, &ret);
    json_t *arr = json_object_get(j, "candles");
    if (bad || unknown_key(r, j, keys, &ret))
        goto done;
    if (!json_is_array(arr)) {
        ret = ap_srv_error(r, MHD_HTTP_BAD_REQUEST, "field 'candles' %s",
                        arr ? "must be an array of [t, o, h, l, c, v]" : "is required");
        goto done;
    }
    ap_error err;
    int64_t tf;
    ap_series *series;
    if (ap_timeframe_parse(tfs, &tf, &err) != AP_OK) {
        ret = ap_srv_error(r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
        goto done;
    }
    if (ap_series_open(s->store, sym, tf, AP_SERIES_ROLLUP, &series, &err) != AP_OK) {
        ret = ap_srv_error(r, err.code == AP_ERANGE ? MHD_HTTP_INSUFFICIENT_STORAGE
                                                 : MHD_HTTP_BAD_REQUEST, "%s", err.msg);
        goto done;
    }
    size_t n = json_array_size(arr), stored = 0;
    int rc = AP_OK;
    for (; stored < n; stored++) {
        json_t *c = json_array_get(arr, stored);
        ap_bar bar;
        if (!json_is_array(c) || json_array_size(c) != 6) {
            rc = ap_error_set(&err, AP_EINVAL, "a candle is [t, open, high, low, close, volume]");
            break;
        }
        if ((rc = candle_time(json_array_get(c, 0), &bar.t, &err)))
            break;
        if ((rc = bar_time_ok(s, bar.t, &err)))
            break;
        double *f[5] = {&bar.open, &bar.high, &bar.low, &bar.close, &bar.volume};
        static const char *names[5] = {"open", "high", "low", "close", "volume"};
        for (int k = 0; k < 5 && !rc; k++) {
            json_t *v = json_array_get(c, (size_t)k + 1);
            if (!json_is_number(v))
                rc = ap_error_set(&err, AP_EINVAL, "%s must be a number", names[k]);
            else
                *f[k] = json_number_value(v);
        }
        if (rc || (rc = ap_srv_ingest(s, series, &bar, &err)))
            break;
    }
    char store[1024];
    jbuf b;
    ap_jb_init(&b, store, sizeof store);
    if (rc) {
        char msg[AP_ERROR_MSG_MAX + 64];
        snprintf(msg, sizeof msg, "candle %zu: %s", stored, err.msg);
        ap_jb_puts(&b, "{\"error\": ");
        ap_jb_str(&b, msg);
        ap_jb_printf(&b, ", \"stored\": %zu, \"rejected\": {\"index\": %zu, \"reason\": ", stored,
                  stored);
        ap_jb_str(&b, err.msg);
        ap_jb_puts(&b, "}");
    } else
        ap_jb_printf(&b, "{\"stored\": %zu", stored);
    ap_jb_puts(&b, ", \"symbol\": ");
    ap_jb_str(&b, sym);
    ap_jb_puts(&b, ", \"timeframe\": ");
    ap_jb_str(&b, tfs);
    /* one locked snapshot: other clients may append to this series now */
    ap_series_info_t in;
    ap_series_info(series, &in);
    ap_jb_printf(&b, ", \"bars\": %zu, \"total\": %" PRIu64, in.length, in.total);
    if (in.total > 0) {
        ap_jb_puts(&b, ", ");
        put_time(&b, "last_bar_time", in.last_t);
    }
    ap_jb_puts(&b, "}\n");
    ret = ap_srv_respond(r, rc ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_OK, &b, NULL);
done:
    json_decref(j);
    return ret;
}

/* DELETE /v1/series/{symbol}/{timeframe} (admin, like the repository's
   load/unload): drops a base series and its roll-ups, so that a series
   poisoned by a wrong feed can start again. A rolled-up series alone is
   refused (409, naming its base); predictions in flight on it answer 404. */
static enum MHD_Result series_delete(ap_srv_req *r)
{
    ap_server *s = r->srv;
    ap_error err;
    int64_t tf;
    if (ap_timeframe_parse(r->arg2, &tf, &err) != AP_OK)
        return ap_srv_error(r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
    ap_series *series = ap_series_find(s->store, r->arg, tf);
    ap_series_info_t in = {0};
    if (series)
        ap_series_info(series, &in);
    int rc = ap_series_delete(s->store, r->arg, tf, &err);
    if (rc != AP_OK)
        return ap_srv_error(r, rc == AP_ENOTFOUND ? MHD_HTTP_NOT_FOUND : MHD_HTTP_CONFLICT, "%s",
                            err.msg);
    ap_srv_log(s, "series %s/%s deleted (%" PRIu64 " bars)", r->arg, r->arg2, in.total);
    char store[512];
    jbuf b;
    ap_jb_init(&b, store, sizeof store);
    ap_jb_puts(&b, "{\"deleted\": true, \"symbol\": ");
    ap_jb_str(&b, r->arg);
    ap_jb_puts(&b, ", \"timeframe\": ");
    ap_jb_str(&b, r->arg2);
    ap_jb_printf(&b, ", \"total\": %" PRIu64 ", \"series_left\": %zu}\n", in.total,
              ap_series_store_count(s->store));
    return ap_srv_respond(r, MHD_HTTP_OK, &b, NULL);
}

/* ---- predictions ----------------------------------------------------------------- */

static const int ep_kind[] = {[EP_PRED_PATTERN] = AP_MODEL_PATTERN,
                              [EP_PRED_REGIME] = AP_MODEL_REGIME,
                              [EP_PRED_ENSEMBLE] = AP_MODEL_ENSEMBLE};
static const char *const kind_names[] = {"pattern", "regime", "ensemble", "raw"};

/* A resident model for the request, read-locked, or NULL (and *bad set
   when the named model is resident but does not fit). */
static ap_srv_model *find_resident(ap_server *s, int kind, const char *target, const char *name,
                                   char *why, size_t whysize, int *bad)
{
    if (name) {
        ap_srv_model *m = ap_srv_model_find(s, name);
        if (!m)
            return NULL;
        pthread_rwlock_rdlock(&m->lock);
        if (m->cur && (int)m->cur->info.kind == kind && m->feat &&
            (!target || !strcmp(target, m->cur->info.target)))
            return m;
        if (m->cur) {
            *bad = 1;
            snprintf(why, whysize, "model '%s' is %s", name,
                     (int)m->cur->info.kind != kind ? "of another kind" : "for another target");
        }
        pthread_rwlock_unlock(&m->lock);
        return NULL;
    }
    int n = atomic_load_explicit(&s->nmodels, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        ap_srv_model *m = s->models[i];
        pthread_rwlock_rdlock(&m->lock);
        if (m->cur && (int)m->cur->info.kind == kind && m->feat &&
            (!target || !strcmp(target, m->cur->info.target)))
            return m;
        pthread_rwlock_unlock(&m->lock);
    }
    return NULL;
}

/* The model for a request, read-locked (unlock after submitting), or NULL
   with the reason in why and the HTTP status in *code. A repository model
   that is not resident is loaded on demand (the model cache). */
static ap_srv_model *pick_model(ap_server *s, int kind, const char *target, const char *name,
                                char *why, size_t whysize, int *code)
{
    int bad = 0;
    *code = MHD_HTTP_NOT_FOUND;
    ap_srv_model *m = find_resident(s, kind, target, name, why, whysize, &bad);
    if (m || bad) {
        if (m)
            ap_srv_model_touch(s, m);
        return m;
    }
    char pick[72];
    if (name ? ap_srv_catalog_has(s, name)
             : ap_srv_catalog_match(s, kind, target, pick, sizeof pick)) {
        ap_error err;
        if (ap_srv_model_ensure(s, name ? name : pick, &err) != AP_OK) {
            snprintf(why, whysize, "%s", err.msg);
            /* the cache cannot take it now (overload) or ever (too small): 503 */
            *code = err.code == AP_EOVERLOAD || err.code == AP_ERANGE ? MHD_HTTP_SERVICE_UNAVAILABLE
                                             : MHD_HTTP_INTERNAL_SERVER_ERROR;
            return NULL;
        }
        m = find_resident(s, kind, target, name ? name : pick, why, whysize, &bad);
        if (m || bad)
            return m;
    }
    if (name && ap_srv_model_find(s, name)) /* a slot, not resident: held out */
        snprintf(why, whysize, "model '%s' is not loaded (unloaded, or gone from the "
                 "repository; POST /v2/repository/models/%s/load serves it again)", name, name);
    else if (name)
        snprintf(why, whysize, "unknown model '%s'", name);
    else if (target)
        snprintf(why, whysize, "no %s model for target '%s' in the repository",
                 kind_names[kind], target);
    else
        snprintf(why, whysize, "no %s model in the repository", kind_names[kind]);
    return NULL;
}

/* Keep what the response will need from the version served. */
static void hold_version(ap_srv_req *r, ap_srv_model *m)
{
    ap_srv_version_ref(m->cur);
    r->ver = m->cur;
    r->model = m->index;
    r->version = m->cur->info.version;
}

void ap_srv_results_on_done(void *user, const ap_batch_completion *c)
{
    ap_server *s = user;
    ap_srv_results *rs = &s->results;
    pthread_mutex_lock(&rs->mu);
    ap_srv_result *e = ap_srv_results_find_batch_locked(rs, c->id);
    if (e && e->state == RES_PENDING) {
        e->status = c->status;
        e->state = c->status == AP_ECANCELLED ? RES_CANCELLED : RES_DONE;
        e->t_done_ns = ap_clock_ns();
        e->queue_us = c->queue_us;
        e->compute_us = c->compute_us;
        if (c->status == AP_OK) {
            e->pred = c->out[0];
            e->conf = c->out[1];
            size_t k = c->nout - 2;
            e->nouts = (int)(k < SRV_RESULT_OUTS ? k : SRV_RESULT_OUTS);
            memcpy(e->outs, c->out + 2, (size_t)e->nouts * sizeof *e->outs);
        } else
            snprintf(e->msg, sizeof e->msg, "%s", c->message);
    }
    pthread_mutex_unlock(&rs->mu);
}

/* The prediction object (without the closing brace). */
static void prediction_json(jbuf *b, uint64_t id, const char *symbol, const char *tf,
                            const ap_srv_version *v, double pred, double conf, const double *outs,
                            int nouts, int64_t bar_time, int undefined, uint64_t bars,
                            uint64_t latency_us, uint64_t queue_us, uint64_t compute_us)
{
    ap_jb_printf(b, "{\"request_id\": \"%" PRIu64 "\", \"symbol\": ", id);
    ap_jb_str(b, symbol);
    ap_jb_puts(b, ", \"timeframe\": ");
    ap_jb_str(b, tf);
    ap_jb_puts(b, ", \"model\": ");
    ap_jb_str(b, v->info.name);
    ap_jb_printf(b, ", \"kind\": \"%s\", \"target\": ", v->info.kind_name);
    ap_jb_str(b, v->info.target);
    ap_jb_printf(b, ", \"version\": %u, \"prediction\": ", v->info.version);
    ap_jb_num(b, pred);
    ap_jb_puts(b, ", \"confidence\": ");
    ap_jb_num(b, conf);
    ap_jb_puts(b, ", ");
    put_time(b, "bar_time", bar_time);
    /* warm: every feature the model reads is past its warm-up (docs/FEATURES.md) */
    ap_jb_printf(b, ", \"bars\": %" PRIu64 ", \"warm\": %s, \"undefined_features\": %d", bars,
                 undefined ? "false" : "true", undefined);
    ap_jb_printf(b, ", \"latency_us\": %" PRIu64 ", \"queue_us\": %" PRIu64 ", \"compute_us\": %"
              PRIu64, latency_us, queue_us, compute_us);
    if (v->info.kind == AP_MODEL_ENSEMBLE) {
        ap_jb_puts(b, ", \"members\": {");
        for (int i = 0; i < nouts; i++) {
            const char *name = ap_model_input_name(v->m, i);
            ap_jb_str(b, name ? name : "?");
            ap_jb_puts(b, ": ");
            ap_jb_num(b, outs[i]);
            ap_jb_puts(b, ",");
        }
        ap_jb_uncomma(b);
        ap_jb_puts(b, "}");
    }
}

static enum MHD_Result predict(ap_srv_req *r)
{
    static const char *const keys[] = {"symbol", "timeframe", "target", "model",
                                       "async",  "timeout_ms", NULL};
    ap_server *s = r->srv;
    int kind = ep_kind[r->ep];
    enum MHD_Result ret = MHD_YES;
    int bad = 0;
    json_t *j = body_object(r, &ret);
    if (!j)
        return ret;
    const char *sym = str_field(r, j, "symbol", 1, &bad, &ret);
    const char *tfs = bad ? NULL : str_field(r, j, "timeframe", 1, &bad, &ret);
    const char *target =
        bad ? NULL : str_field(r, j, "target", kind != AP_MODEL_ENSEMBLE, &bad, &ret);
    const char *model = bad ? NULL : str_field(r, j, "model", 0, &bad, &ret);
    json_t *async = json_object_get(j, "async"), *tmo = json_object_get(j, "timeout_ms");
    if (bad || unknown_key(r, j, keys, &ret))
        goto done;
    if (async && !json_is_boolean(async)) {
        ret = ap_srv_error(r, MHD_HTTP_BAD_REQUEST, "field 'async' must be true or false");
        goto done;
    }
    if (tmo && (!json_is_number(tmo) || !(json_number_value(tmo) > 0) ||
                json_number_value(tmo) > 3.6e6)) {
        ret = ap_srv_error(r, MHD_HTTP_BAD_REQUEST,
                        "field 'timeout_ms' must be a number of milliseconds > 0");
        goto done;
    }
    ap_error err;
    int64_t tf;
    if (ap_timeframe_parse(tfs, &tf, &err) != AP_OK) {
        ret = ap_srv_error(r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
        goto done;
    }
    ap_series *series = ap_series_find(s->store, sym, tf);
    if (!series) {
        ret = ap_srv_error(r, MHD_HTTP_NOT_FOUND, "unknown series %s/%s (POST bars to /v1/candles)",
                        sym, tfs);
        goto done;
    }
    double row[AP_FEATURE_COUNT];
    if (ap_series_latest(series, row, &r->bar_time, &err) != AP_OK) {
        ret = ap_srv_error(r, MHD_HTTP_NOT_FOUND, "%s", err.msg);
        goto done;
    }
    char why[AP_ERROR_MSG_MAX];
    int code;
    ap_srv_model *m = pick_model(s, kind, target, model, why, sizeof why, &code);
    if (!m) {
        ret = ap_srv_error(r, code, "%s", why);
        goto done;
    }
    /* warm-up: count the features this model reads that are still undefined,
       and refuse when the manifest asks for more bars than the series has */
    {
        unsigned char used[AP_FEATURE_COUNT];
        ap_model_features_used(m->cur->m, used);
        r->undefined = 0;
        for (int f = 0; f < AP_FEATURE_COUNT; f++)
            r->undefined += used[f] && isnan(row[f]);
        ap_series_info_t si;
        r->bars = ap_series_info(series, &si) == AP_OK ? si.total : 0;
        if (m->cur->info.min_bars && r->bars < m->cur->info.min_bars) {
            uint32_t need = m->cur->info.min_bars;
            pthread_rwlock_unlock(&m->lock);
            ret = ap_srv_error(r, MHD_HTTP_CONFLICT, "series %s/%s has %" PRIu64 " bar(s); model "
                               "'%s' needs min_bars = %u before it predicts (%d of its features "
                               "are still undefined)", sym, tfs, r->bars, m->name, need,
                               r->undefined);
            goto done;
        }
    }
    hold_version(r, m);
    snprintf(r->symbol, sizeof r->symbol, "%s", sym);
    snprintf(r->timeframe, sizeof r->timeframe, "%s", tfs);
    ap_batch_submit_opts o = {0};
    o.timeout_us = tmo ? (uint64_t)(json_number_value(tmo) * 1000) : 0;
    o.model_ctx = m->cur;
    /* the deadline runs from the request's arrival, not from this moment */
    uint64_t budget_us = (uint64_t)(s->cfg.inference_timeout * 1e6);
    if (o.timeout_us && o.timeout_us < budget_us)
        budget_us = o.timeout_us;
    r->deadline_ns = r->t0_ns + budget_us * 1000;
    uint64_t now = ap_clock_ns();
    if (ap_srv_past_deadline(r, now)) {
        pthread_rwlock_unlock(&m->lock);
        ret = ap_srv_deadline_error(r, "before");
        goto done;
    }
    o.timeout_us = (r->deadline_ns - now + 999) / 1000;
    if (async && json_is_true(async)) {
        uint64_t id;
        int rc;
        ap_srv_results *rs = &s->results;
        o.on_done = ap_srv_results_on_done;
        o.user = s;
        /* the store lock is held across the submit so that the completion
           (on another thread) finds the entry; it takes that lock, so the
           batch must not run inside this submit */
        o.queue_only = 1;
        pthread_mutex_lock(&rs->mu);
        rc = ap_batch_submit(m->feat, row, 1, &o, &id, &err);
        if (rc == AP_OK) {
            ap_srv_result *e = ap_srv_results_insert_locked(rs, id);
            id = e->id; /* the client gets the public id */
            e->ep = r->ep;
            e->model = m->index;
            ap_srv_version_ref(m->cur);
            e->ver = m->cur;
            snprintf(e->symbol, sizeof e->symbol, "%s", sym);
            snprintf(e->timeframe, sizeof e->timeframe, "%s", tfs);
            e->bar_time = r->bar_time;
            e->undefined = r->undefined;
            e->bars = r->bars;
            e->t_submit_ns = r->t0_ns;
            e->batcher = m->feat;
        }
        pthread_mutex_unlock(&rs->mu);
        pthread_rwlock_unlock(&m->lock);
        if (rc)
            ret = ap_srv_error(r, ap_srv_http_status(rc), "%s", err.msg);
        else {
            char store[256];
            jbuf b;
            ap_jb_init(&b, store, sizeof store);
            ap_jb_printf(&b, "{\"request_id\": \"%" PRIu64 "\", \"status\": \"pending\"}\n", id);
            ret = ap_srv_respond(r, MHD_HTTP_ACCEPTED, &b, NULL);
        }
        goto done;
    }
    int answered = ap_srv_start_inference(r, m->feat, m->cur, row, 1, 0);
    pthread_rwlock_unlock(&m->lock);
    if (answered) {
        if (s->cfg.inline_inference)
            r->id = atomic_fetch_add_explicit(&s->inline_ids, 1, memory_order_relaxed);
        r->phase = PH_DONE;
        ret = ap_srv_v1_finish(r);
    }
done:
    json_decref(j);
    return ret;
}

enum MHD_Result ap_srv_v1_finish(ap_srv_req *r)
{
    if (r->status == AP_ETIMEDOUT)
        return ap_srv_deadline_error(r, "before");
    if (r->status == AP_OK && ap_srv_past_deadline(r, ap_clock_ns()))
        return ap_srv_deadline_error(r, "after");
    if (r->status)
        return ap_srv_error(r, ap_srv_compute_status(r->status), "%s", r->msg);
    char store[1024];
    jbuf b;
    ap_jb_init(&b, store, sizeof store);
    uint64_t lat = (ap_clock_ns() - r->t0_ns) / 1000;
    prediction_json(&b, r->id, r->symbol, r->timeframe, r->ver, r->out[0], r->out[1],
                    r->out + 2, (int)r->nout - 2, r->bar_time, r->undefined, r->bars, lat,
                    r->queue_us,
                    r->compute_us);
    ap_jb_puts(&b, "}\n");
    return ap_srv_respond(r, MHD_HTTP_OK, &b, NULL);
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

static enum MHD_Result result_get(ap_srv_req *r)
{
    ap_server *s = r->srv;
    uint64_t id;
    if (parse_id(r->arg, &id))
        return ap_srv_error(r, MHD_HTTP_NOT_FOUND, "unknown request id '%s'", r->arg);
    ap_srv_result e;
    pthread_mutex_lock(&s->results.mu);
    ap_srv_result *p = ap_srv_results_find_locked(&s->results, id, ap_clock_ns());
    if (p) {
        e = *p;
        ap_srv_version_ref(e.ver);
    }
    pthread_mutex_unlock(&s->results.mu);
    if (!p)
        return ap_srv_error(r, MHD_HTTP_NOT_FOUND,
                         "unknown request id %" PRIu64 " (never issued, deleted or expired)", id);
    r->model = e.model;
    char store[1024];
    jbuf b;
    ap_jb_init(&b, store, sizeof store);
    if (e.state == RES_PENDING)
        ap_jb_printf(&b, "{\"request_id\": \"%" PRIu64 "\", \"status\": \"pending\"", id);
    else if (e.state == RES_CANCELLED)
        ap_jb_printf(&b, "{\"request_id\": \"%" PRIu64 "\", \"status\": \"cancelled\"", id);
    else if (e.status != AP_OK) {
        ap_jb_printf(&b, "{\"request_id\": \"%" PRIu64 "\", \"status\": \"failed\", \"code\": "
                  "\"%s\", \"error\": ", id, ap_status_name(e.status));
        ap_jb_str(&b, e.msg);
    } else {
        prediction_json(&b, id, e.symbol, e.timeframe, e.ver, e.pred, e.conf, e.outs, e.nouts,
                        e.bar_time, e.undefined, e.bars, (e.t_done_ns - e.t_submit_ns) / 1000, e.queue_us,
                        e.compute_us);
        ap_jb_puts(&b, ", \"status\": \"done\"");
    }
    ap_jb_puts(&b, "}\n");
    ap_srv_version_unref(e.ver);
    return ap_srv_respond(r, MHD_HTTP_OK, &b, NULL);
}

static enum MHD_Result result_delete(ap_srv_req *r)
{
    ap_server *s = r->srv;
    ap_srv_results *rs = &s->results;
    uint64_t id;
    if (parse_id(r->arg, &id))
        return ap_srv_error(r, MHD_HTTP_NOT_FOUND, "unknown request id '%s'", r->arg);
    pthread_mutex_lock(&rs->mu);
    ap_srv_result *p = ap_srv_results_find_locked(rs, id, ap_clock_ns());
    int state = p ? p->state : RES_FREE, model = p ? p->model : -1;
    uint64_t batch_id = p ? p->batch_id : 0;
    ap_batcher *b = p ? p->batcher : NULL;
    pthread_mutex_unlock(&rs->mu);
    if (!p)
        return ap_srv_error(r, MHD_HTTP_NOT_FOUND,
                         "unknown request id %" PRIu64 " (never issued, deleted or expired)", id);
    r->model = model;
    if (state == RES_PENDING) {
        /* Cancel outside the store lock (a queued request's completion runs on
           this thread and takes it); the slot lock keeps the batcher alive. */
        ap_srv_model *m = s->models[model];
        pthread_rwlock_rdlock(&m->lock);
        if (m->feat == b)
            ap_batch_cancel(b, batch_id, NULL);
        pthread_rwlock_unlock(&m->lock);
    }
    pthread_mutex_lock(&rs->mu);
    p = ap_srv_results_find_locked(rs, id, ap_clock_ns());
    if (p)
        ap_srv_results_remove_locked(rs, p);
    pthread_mutex_unlock(&rs->mu);
    char store[128];
    jbuf o;
    ap_jb_init(&o, store, sizeof store);
    ap_jb_printf(&o, "{\"request_id\": \"%" PRIu64 "\", \"status\": \"%s\"}\n", id,
              state == RES_PENDING ? "cancelled" : "deleted");
    return ap_srv_respond(r, MHD_HTTP_OK, &o, NULL);
}

/* ---- /v1/models and /v1/stats ---------------------------------------------------------- */

/* Describe the version served by m (or that it is not loaded). */
static void model_json(ap_server *s, jbuf *b, ap_srv_model *m)
{
    pthread_rwlock_rdlock(&m->lock);
    ap_srv_version *v = m->cur;
    if (v)
        ap_srv_version_ref(v);
    pthread_rwlock_unlock(&m->lock);
    ap_jb_puts(b, "{\"name\": ");
    ap_jb_str(b, m->name);
    ap_model_stats st;
    int have = ap_registry_stats(s->reg, m->name, &st, NULL) == AP_OK;
    if (!v) {
        ap_jb_puts(b, ", \"loaded\": false}");
        return;
    }
    const ap_model_info *in = &v->info;
    ap_jb_printf(b, ", \"loaded\": true, \"kind\": \"%s\", \"target\": ", in->kind_name);
    ap_jb_str(b, in->target);
    ap_jb_printf(b, ", \"version\": %u, \"format\": ", in->version);
    ap_jb_str(b, in->format);
    ap_jb_printf(b, ", \"%s\": [", in->kind == AP_MODEL_ENSEMBLE ? "members" : "features");
    for (int i = 0; i < in->num_inputs; i++) {
        const char *nm = ap_model_input_name(v->m, i);
        if (nm)
            ap_jb_str(b, nm);
        else
            ap_jb_printf(b, "\"input_%d\"", i);
        ap_jb_puts(b, ",");
    }
    ap_jb_uncomma(b);
    ap_jb_printf(b, "], \"num_inputs\": %d, \"num_outputs\": %d, \"trees\": %d, \"pipeline\": ",
              in->num_inputs, in->num_outputs, in->num_trees);
    ap_jb_str(b, in->pipeline);
    ap_jb_puts(b, ", \"confidence\": ");
    ap_jb_str(b, in->confidence);
    ap_jb_printf(b, ", \"batching\": {\"max_batch_size\": %d, \"max_queue_delay_us\": %u}",
              in->max_batch_size, in->max_queue_delay_us);
    if (have)
        ap_jb_printf(b, ", \"stats\": {\"loads\": %" PRIu64 ", \"predictions\": %" PRIu64
                  ", \"errors\": %" PRIu64 ", \"predict_calls\": %" PRIu64
                  ", \"latency_mean_us\": %.3f, \"latency_max_us\": %.3f}",
                  st.loads, st.predictions, st.errors, st.latency_count,
                  st.latency_count ? (double)st.latency_sum_ns / 1e3 / (double)st.latency_count
                                   : 0.0,
                  (double)st.latency_max_ns / 1e3);
    ap_jb_puts(b, "}");
    ap_srv_version_unref(v);
}

static enum MHD_Result models(ap_srv_req *r)
{
    ap_server *s = r->srv;
    jbuf b;
    ap_jb_init(&b, NULL, 0);
    ap_jb_puts(&b, "{\"models\": [");
    int n = atomic_load(&s->nmodels);
    for (int i = 0; i < n; i++) {
        model_json(s, &b, s->models[i]);
        ap_jb_puts(&b, ",");
    }
    /* repository models never loaded (the model cache loads them on use) */
    pthread_mutex_lock(&s->catalog_mu);
    for (int i = 0; i < s->ncatalog; i++) {
        const ap_repo_model *c = &s->catalog[i];
        if (ap_srv_model_find(s, c->name))
            continue;
        ap_jb_puts(&b, "{\"name\": ");
        ap_jb_str(&b, c->name);
        ap_jb_puts(&b, ", \"loaded\": false");
        if (c->ok) {
            ap_jb_printf(&b, ", \"kind\": \"%s\", \"target\": ", kind_names[c->kind]);
            ap_jb_str(&b, c->target);
        }
        ap_jb_puts(&b, "},");
    }
    pthread_mutex_unlock(&s->catalog_mu);
    ap_jb_uncomma(&b);
    ap_jb_puts(&b, "]}\n");
    return ap_srv_respond(r, MHD_HTTP_OK, &b, NULL);
}

static enum MHD_Result stats(ap_srv_req *r)
{
    ap_server *s = r->srv;
    ap_srv_metrics *mt = s->metrics;
    uint64_t requests = 0, predictions = 0;
    int n = atomic_load(&s->nmodels);
    for (int ep = 0; ep < EP_COUNT; ep++)
        requests += atomic_load_explicit(&mt->lat_count[ep], memory_order_relaxed);
    for (int i = 0; i < n; i++) {
        ap_model_stats st;
        if (ap_registry_stats(s->reg, s->models[i]->name, &st, NULL) == AP_OK)
            predictions += st.predictions;
    }
    ap_batch_stats bs;
    memset(&bs, 0, sizeof bs);
    ap_workers_stats(s->workers, &bs);
    jbuf b;
    ap_jb_init(&b, NULL, 0);
    ap_jb_printf(&b, "{\"version\": \"%s\", \"uptime_s\": %.3f, \"models_loaded\": %d, "
              "\"requests\": %" PRIu64 ", \"in_flight\": %ld, \"predictions\": %" PRIu64,
              ap_version(), (double)(ap_clock_ns() - s->start_ns) / 1e9,
              ap_server_models_loaded(s), requests, atomic_load(&s->inflight), predictions);
    ap_jb_printf(&b, ", \"batching\": {\"submitted\": %" PRIu64 ", \"rejected\": %" PRIu64
              ", \"completed\": %" PRIu64 ", \"failed\": %" PRIu64 ", \"timed_out\": %" PRIu64
              ", \"cancelled\": %" PRIu64 ", \"batches\": %" PRIu64 ", \"rows\": %" PRIu64
              ", \"mean_batch_rows\": %.3f, \"queue_depth\": %" PRIu64 "}",
              bs.submitted, bs.rejected, bs.completed, bs.failed, bs.timed_out, bs.cancelled,
              bs.batches, bs.rows, bs.batches ? (double)bs.rows / (double)bs.batches : 0.0,
              bs.queue_depth);
    ap_jb_printf(&b, ", \"series\": %zu, \"bars_ingested\": %" PRIu64 ", \"bars_rejected\": %"
              PRIu64, ap_series_store_count(s->store),
              atomic_load_explicit(&mt->bars_ingested, memory_order_relaxed),
              atomic_load_explicit(&mt->bars_rejected, memory_order_relaxed));
    pthread_mutex_lock(&s->results.mu);
    uint64_t evicted = s->results.evicted;
    pthread_mutex_unlock(&s->results.mu);
    ap_jb_printf(&b, ", \"async_results\": %zu, \"async_evicted\": %" PRIu64,
              ap_srv_results_count(&s->results), evicted);
    ap_jb_printf(&b, ", \"model_cache\": {\"capacity\": %d, \"resident\": %d, \"hits\": %" PRIu64
              ", \"misses\": %" PRIu64 ", \"evictions\": %" PRIu64 ", \"load_failures\": %" PRIu64 "}",
              s->cfg.model_cache_size, ap_srv_models_resident(s),
              atomic_load_explicit(&s->cache_hits, memory_order_relaxed),
              atomic_load_explicit(&s->cache_misses, memory_order_relaxed),
              atomic_load_explicit(&s->cache_evictions, memory_order_relaxed),
              atomic_load_explicit(&s->cache_load_failures, memory_order_relaxed));
    ap_jb_printf(&b, ", \"deadlines\": {\"refused_before\": %" PRIu64 ", \"late_after\": %" PRIu64 "}",
              atomic_load_explicit(&mt->deadline_before, memory_order_relaxed),
              atomic_load_explicit(&mt->deadline_after, memory_order_relaxed));
    if (s->http) {
        ap_srv_http_stats hs;
        ap_srv_http_get_stats(s->http, &hs);
        ap_jb_printf(&b, ", \"connections\": {\"open\": %ld, \"timed_out\": %" PRIu64
                  ", \"reserve_used\": %" PRIu64 ", \"reserve_refused\": %" PRIu64 "}",
                  hs.open, hs.timed_out, hs.reserve_used, hs.reserve_refused);
    }
    ap_jb_puts(&b, ", \"replay\": ");
    ap_srv_replay_json(s, &b);
    ap_jb_puts(&b, ", \"config\": {");
    for (int i = 0; i < ap_server_config_count(); i++) {
        ap_config_setting_info in;
        char val[AP_CONFIG_PATH_MAX * 2];
        ap_server_config_info(i, &in);
        ap_server_config_value(&s->cfg, i, val, sizeof val);
        ap_jb_str(&b, in.key);
        ap_jb_puts(&b, ": ");
        ap_jb_str(&b, val);
        ap_jb_puts(&b, ",");
    }
    ap_jb_uncomma(&b);
    ap_jb_puts(&b, "}}\n");
    return ap_srv_respond(r, MHD_HTTP_OK, &b, NULL);
}

enum MHD_Result ap_srv_v1_dispatch(ap_srv_req *r)
{
    switch (r->ep) {
    case EP_CANDLES:
        return candles(r);
    case EP_PRED_PATTERN:
    case EP_PRED_REGIME:
    case EP_PRED_ENSEMBLE:
        return predict(r);
    case EP_RESULT_GET:
        return result_get(r);
    case EP_RESULT_DELETE:
        return result_delete(r);
    case EP_MODELS:
        return models(r);
    case EP_SERIES_DELETE:
        return series_delete(r);
    default:
        return stats(r);
    }
}
