/*
 * POST /v1/predict/batch: many /v1 predictions in one request.
 *
 *   {"requests": [{"kind": "pattern", "symbol": "GOOG", "timeframe": "1d",
 *                  "target": "reversal"}, ...], "timeout_ms": 50, "async": false}
 *
 * Each item takes the fields of the single endpoints (kind says which;
 * "model" may stand for "target"; "symbols": [...] expands to one item per
 * symbol). The items are grouped by selector (model name, kind + target);
 * each group in turn gets its lease, its per-item checks and ONE submit of
 * all its rows (several when it has more than max_queue_rows), so a
 * thousand symbols on one model are one batch-function call, not a
 * thousand round trips. One lease at a time: a lease read-locks its slot,
 * and a pick may take the admin mutex to load a model (holding one lease
 * while picking another could deadlock with a cache eviction).
 *
 * The answer is {"results": [...]} in request order, each item the object
 * the single endpoint answers (ap__srv_prediction_json) or {"error", "code",
 * "status"} for that item alone. Once the body parsed the answer is 200,
 * whatever failed per item. docs/SERVER.md.
 *
 * Completion: the batch counts its outstanding submits plus the handler's
 * own reference (a submit may complete inside itself: caller runs, inline);
 * whoever drops the count to 0 finishes: the request's handshake
 * (ap__srv_wake), or for "async": true the results text into the result
 * store (ap__service_result_close) and the batch freed.
 */
#include <jansson.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"
#include "server/handlers.h"
#include "server/json.h"
#include "common/clock.h"

#define NF AP_FEATURE_COUNT

/* One item, "symbols" expanded. */
typedef struct bitem {
    const char *sym, *tfs, *target, *model; /* into the batch's JSON document */
    int kind;
    ap_series *series;
    int sub;        /* its submit (index in b->subs); -1: failed before */
    size_t row;     /* its row in that submit */
    int status;     /* AP_OK, or this item's own failure (msg) */
    char *msg;      /* malloc'd */
    int64_t bar_time;
    int undefined;
    uint64_t bars;
    int64_t next;   /* the next item of its group, -1 */
} bitem;

/* One submit: rows of one group on one version. */
typedef struct bsub {
    struct ap_srv_batch *batch;
    ap_model *model; /* held */
    ap_model_info info;
    size_t nrows, nout;
    double *out;     /* nrows * nout, from the completion */
    int status;
    char *msg;
    uint64_t id, queue_us, compute_us;
} bsub;

typedef struct bgroup {
    const char *model, *target;
    int kind;
    int64_t head, tail;
    size_t n;
} bgroup;

struct ap_srv_batch {
    ap_server *srv;
    ap_srv_req *r; /* sync: the request; NULL for async */
    json_t *doc;
    bitem *items;
    size_t n;
    bsub *subs;
    size_t nsubs;
    atomic_int pending; /* submits not completed + the handler's own reference */
    int async;
    uint64_t async_id, t0_ns, deadline_ns;
};

void ap__srv_batch_free(struct ap_srv_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        free(b->items[i].msg);
    for (size_t i = 0; i < b->nsubs; i++) {
        ap_model_release(b->subs[i].model);
        free(b->subs[i].out);
        free(b->subs[i].msg);
    }
    free(b->items);
    free(b->subs);
    json_decref(b->doc);
    free(b);
}

static void item_fail(bitem *it, int status, const char *fmt, ...) AP_PRINTF(3, 4);
static void item_fail(bitem *it, int status, const char *fmt, ...)
{
    char msg[AP_ERROR_MSG_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    it->status = status;
    free(it->msg);
    it->msg = strdup(msg); /* NULL (out of memory): the item still fails, unnamed */
}

/* ---- parsing ------------------------------------------------------------------------ */

/* How many items element o of "requests" is: a "symbols" shorthand is one
   per symbol; anything else (a malformed item too) is one. */
static size_t item_count(json_t *o)
{
    json_t *syms = json_is_object(o) ? json_object_get(o, "symbols") : NULL;
    if (json_is_array(syms) && json_array_size(syms) && !json_object_get(o, "symbol"))
        return json_array_size(syms);
    return 1;
}

static int parse_items(struct ap_srv_batch *b, json_t *o, bitem *it, size_t cnt);

/* Fill the items of element o (item_count(o) of them, from *k on); an error
   of the element itself is the error of each of its items. */
static void parse_element(struct ap_srv_batch *b, json_t *o, size_t *k)
{
    size_t cnt = item_count(o), first = *k;
    *k += cnt;
    for (size_t i = first; i < first + cnt; i++)
        b->items[i] = (bitem){.kind = -1, .sub = -1, .next = -1};
    if (parse_items(b, o, &b->items[first], cnt))
        for (size_t i = first + 1; i < first + cnt; i++)
            item_fail(&b->items[i], b->items[first].status, "%s",
                      b->items[first].msg ? b->items[first].msg : "");
}

/* 1 when element o is wrong as a whole (the error is in it[0]). */
static int parse_items(struct ap_srv_batch *b, json_t *o, bitem *it, size_t cnt)
{
    static const char *const keys[] = {"kind",  "symbol", "symbols", "timeframe",
                                       "target", "model",  NULL};
    if (!json_is_object(o)) {
        item_fail(it, AP_EINVAL, "an item must be a JSON object");
        return 1;
    }
    const char *bad = ap__srv_json_unknown(o, keys), *why, *field = NULL;
    if (bad) {
        item_fail(it, AP_EINVAL, "unknown field '%s'", bad);
        return 1;
    }
    const char *kind = ap__srv_json_string(o, "kind", 1, &why);
    if (why) {
        item_fail(it, AP_EINVAL, "field 'kind' %s", why);
        return 1;
    }
    int kd = -1;
    for (int i = AP_MODEL_PATTERN; i <= AP_MODEL_ENSEMBLE; i++)
        if (!strcmp(kind, ap__srv_kind_name(i)))
            kd = i;
    if (kd < 0) {
        item_fail(it, AP_EINVAL, "field 'kind' must be pattern, regime or ensemble (not '%.64s')",
                  kind);
        return 1;
    }
    json_t *syms = json_object_get(o, "symbols");
    const char *sym = NULL, *tfs = NULL, *target = NULL, *model = NULL;
    if (syms && json_object_get(o, "symbol")) {
        item_fail(it, AP_EINVAL, "an item has 'symbol' or 'symbols', not both");
        return 1;
    }
    if (syms && (!json_is_array(syms) || !json_array_size(syms))) {
        item_fail(it, AP_EINVAL, "field 'symbols' must be a non-empty array of symbols");
        return 1;
    }
    if (!syms && !(sym = ap__srv_json_string(o, field = "symbol", 1, &why)))
        goto wrong;
    if (!(tfs = ap__srv_json_string(o, field = "timeframe", 1, &why)))
        goto wrong;
    model = ap__srv_json_string(o, field = "model", 0, &why);
    if (why)
        goto wrong;
    /* like the single endpoints: pattern and regime name a target (or here a model) */
    target = ap__srv_json_string(o, field = "target", kd != AP_MODEL_ENSEMBLE && !model, &why);
    if (why)
        goto wrong;
    ap_error err;
    int64_t tf;
    int tf_ok = ap_timeframe_parse(tfs, &tf, &err) == AP_OK;
    for (size_t i = 0; i < cnt; i++, it++) {
        it->kind = kd;
        it->tfs = tfs;
        it->target = target;
        it->model = model;
        it->sym = sym;
        if (syms) {
            json_t *v = json_array_get(syms, i);
            if (!json_is_string(v) || !json_string_length(v)) {
                item_fail(it, AP_EINVAL, "symbols[%zu] must be a non-empty string", i);
                continue;
            }
            it->sym = json_string_value(v);
        }
        if (!tf_ok)
            item_fail(it, AP_EINVAL, "%s", err.msg);
        else if (!(it->series = ap_series_find(b->srv->store, it->sym, tf)))
            item_fail(it, AP_ENOTFOUND, "unknown series %s/%s (POST bars to /v1/candles)",
                      it->sym, tfs);
    }
    return 0;
wrong:
    item_fail(it, AP_EINVAL, "field '%s' %s", field, why);
    return 1;
}

/* ---- running ------------------------------------------------------------------------- */

static void batch_done(struct ap_srv_batch *b);

static void sub_done(void *user, const ap_batch_completion *c)
{
    bsub *u = user;
    u->status = c->status;
    u->id = c->id;
    u->queue_us = c->queue_us;
    u->compute_us = c->compute_us;
    if (c->status == AP_OK && (c->nrows != u->nrows || c->nout != u->nout)) {
        u->status = AP_EIO;
        u->msg = strdup("the model answered a different shape of outputs");
    } else if (c->status == AP_OK)
        memcpy(u->out, c->out, u->nrows * u->nout * sizeof *u->out);
    else
        u->msg = strdup(c->message);
    struct ap_srv_batch *b = u->batch;
    if (atomic_fetch_sub_explicit(&b->pending, 1, memory_order_acq_rel) == 1)
        batch_done(b);
}

static int same(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

/* Group the items that are still good by selector, in order of first use. */
static bgroup *group_items(struct ap_srv_batch *b, size_t *ngroups)
{
    bgroup *g = malloc((b->n ? b->n : 1) * sizeof *g);
    size_t ng = 0, last = 0;
    if (!g)
        return NULL;
    for (size_t i = 0; i < b->n; i++) {
        bitem *it = &b->items[i];
        if (it->status)
            continue;
        size_t k = last; /* runs of one selector are the common case */
        if (!(k < ng && g[k].kind == it->kind && same(g[k].model, it->model) &&
              same(g[k].target, it->target)))
            for (k = 0; k < ng; k++)
                if (g[k].kind == it->kind && same(g[k].model, it->model) &&
                    same(g[k].target, it->target))
                    break;
        if (k == ng)
            g[ng++] = (bgroup){it->model, it->target, it->kind, (int64_t)i, -1, 0};
        else
            b->items[g[k].tail].next = (int64_t)i;
        g[k].tail = (int64_t)i;
        g[k].n++;
        last = k;
    }
    *ngroups = ng;
    return g;
}

/* Take the items from *cur on that the lease's model answers, up to max
   rows, into X; the others fail here (min_bars, a series gone). Returns the
   rows taken; *cur moves past what was looked at. */
static size_t take_rows(struct ap_srv_batch *b, const ap_lease *l, int64_t *cur, size_t max,
                        int si, double *X)
{
    unsigned char used[NF];
    ap_model_features_used(l->model, used);
    size_t nrows = 0;
    ap_error err;
    while (*cur >= 0 && nrows < max) {
        bitem *it = &b->items[*cur];
        *cur = it->next;
        double *row = X + nrows * NF;
        if (ap_series_latest(it->series, row, &it->bar_time, &err) != AP_OK) {
            item_fail(it, AP_ENOTFOUND, "%s", err.msg);
            continue;
        }
        ap_series_info_t in;
        it->bars = ap_series_info(it->series, &in) == AP_OK ? in.total : 0;
        if (ap__srv_warmup(&l->info, used, row, it->sym, it->tfs, it->bars, &it->undefined,
                           &err) != AP_OK) {
            item_fail(it, err.code, "%s", err.msg);
            continue;
        }
        it->sub = si;
        it->row = nrows++;
    }
    return nrows;
}

/* Run one group: pick, take rows, submit; again while rows are left (more
   than max_queue_rows, or a reload between two submits). *all_parked: every
   submit made was deferred to the pass. */
static void run_group(struct ap_srv_batch *b, ap_srv_req *r, const bgroup *g, double *X,
                      size_t max, int *all_parked)
{
    ap_service *svc = b->srv->svc;
    int64_t cur = g->head;
    while (cur >= 0) {
        ap_error err;
        ap_selector sel = {g->model, g->kind, g->target, 0, 0, 1};
        ap_lease l;
        if (ap__clock_ns() >= b->deadline_ns) {
            ap__error_set(&err, AP_ETIMEDOUT, "deadline passed before the request could run");
        } else if (ap__service_pick(svc, &sel, &l, &err) == AP_OK) {
            size_t si = b->nsubs;
            size_t nrows = take_rows(b, &l, &cur, max, (int)si, X);
            if (!nrows) {
                ap__service_release(&l);
                continue;
            }
            bsub *u = &b->subs[b->nsubs++];
            *u = (bsub){.batch = b, .info = l.info, .nrows = nrows,
                        .nout = 2 + (size_t)l.info.num_outputs};
            u->model = l.model;
            ap_model_retain(u->model);
            if (!(u->out = malloc(nrows * u->nout * sizeof *u->out))) {
                ap__service_release(&l);
                u->status = AP_ENOMEM;
                u->msg = strdup("out of memory for the outputs");
                continue;
            }
            /* a group split over several submits is not deferred to the pass:
               a deferred part holds its rows in the queue until the pass ends,
               and the next part would find the queue (max_queue_rows) full */
            ap_submit_opts o = {b->deadline_ns, g->n > max ? NULL : r->pass, sub_done, u};
            int parked = 0;
            atomic_fetch_add_explicit(&b->pending, 1, memory_order_relaxed);
            int rc = ap__service_submit(svc, &l, X, nrows, &o, &parked, &err);
            if (rc) { /* refused: no completion will come */
                atomic_fetch_sub_explicit(&b->pending, 1, memory_order_relaxed);
                u->status = rc;
                u->msg = strdup(err.msg);
            }
            *all_parked &= !rc && parked;
            continue;
        }
        /* no model (or no time): the rest of the group fails with it */
        for (; cur >= 0; cur = b->items[cur].next)
            item_fail(&b->items[cur], err.code, "%s", err.msg);
    }
}

/* ---- answers ------------------------------------------------------------------------- */

static void error_item(jbuf *o, int status, int http, const char *msg)
{
    ap__jb_puts(o, "{\"error\": ");
    ap__jb_str(o, msg ? msg : "out of memory for the message");
    ap__jb_puts(o, ", \"code\": \"");
    ap__jb_puts(o, ap_status_name(status));
    ap__jb_puts(o, "\", \"status\": ");
    ap__jb_i64(o, http);
    ap__jb_puts(o, "}");
}

/* The results array; now: when the answer is written (latency; for a sync
   answer also the deadline check: a prediction ready after it is dropped,
   as the single endpoint answers 504 rather than a late 200). */
static void write_results(const struct ap_srv_batch *b, jbuf *o, uint64_t now, int late_check)
{
    uint64_t lat = (now - b->t0_ns) / 1000;
    double budget = (double)(b->deadline_ns - b->t0_ns) / 1e6, waited = (double)lat / 1e3;
    int late = late_check && now >= b->deadline_ns;
    char msg[256];
    ap__jb_puts(o, "[");
    for (size_t i = 0; i < b->n; i++) {
        const bitem *it = &b->items[i];
        const bsub *u = it->sub >= 0 ? &b->subs[it->sub] : NULL;
        if (i)
            ap__jb_puts(o, ", ");
        if (it->status || !u)
            error_item(o, it->status, ap__srv_http_status(it->status), it->msg);
        else if (u->status == AP_ETIMEDOUT || (!u->status && late)) {
            snprintf(msg, sizeof msg, u->status ? "deadline passed before the request could "
                     "run: it waited %.3f ms since it was received, its timeout is %.3f ms"
                     : "deadline passed: the prediction was ready %.3f ms after the request "
                     "was received, its timeout is %.3f ms (result dropped)", waited, budget);
            error_item(o, AP_ETIMEDOUT, MHD_HTTP_GATEWAY_TIMEOUT, msg);
        } else if (u->status)
            error_item(o, u->status, ap__srv_compute_status(u->status), u->msg);
        else {
            const double *y = u->out + it->row * u->nout;
            ap__srv_prediction_json(o, u->id, it->sym, it->tfs, u->model, &u->info, y[0], y[1],
                                    y + 2, (int)u->nout - 2, it->bar_time, it->undefined,
                                    it->bars, lat, u->queue_us, u->compute_us);
            ap__jb_puts(o, "}");
        }
    }
    ap__jb_puts(o, "]");
}

/* The last completion (or the handler itself when everything completed in
   its submits). Sync: wake the request (it may be gone after). Async: store
   the answer and free the batch. */
static void batch_done(struct ap_srv_batch *b)
{
    if (!b->async) {
        ap__srv_wake(b->r);
        return;
    }
    jbuf o;
    ap__jb_init(&o, NULL, 0);
    write_results(b, &o, ap__clock_ns(), 0);
    ap_service *svc = b->srv->svc;
    uint64_t id = b->async_id;
    ap__srv_batch_free(b);
    if (o.failed || !o.heap) { /* out of memory: the entry is dropped, not left pending */
        ap__jb_free(&o);
        int pending, index;
        ap__service_result_delete(svc, id, &pending, &index, NULL);
        return;
    }
    ap__service_result_close(svc, id, o.p, o.len); /* the text moves to the store */
}

enum MHD_Result ap__srv_batch_finish(ap_srv_req *r)
{
    struct ap_srv_batch *b = r->batch;
    char store[4096];
    jbuf o;
    ap__jb_init(&o, store, sizeof store);
    ap__jb_puts(&o, "{\"results\": ");
    write_results(b, &o, ap__clock_ns(), 1);
    ap__jb_puts(&o, "}\n");
    return ap__srv_respond(r, MHD_HTTP_OK, &o, NULL);
}

/* ---- the handler ----------------------------------------------------------------------- */

enum MHD_Result ap__srv_h_predict_batch(ap_srv_req *r)
{
    static const char *const keys[] = {"requests", "timeout_ms", "async", NULL};
    ap_server *s = r->srv;
    enum MHD_Result ret = MHD_YES;
    json_t *j = ap__srv_json_body(r, &ret);
    if (!j)
        return ret;
    int async;
    uint64_t asked_us;
    if (ap__srv_json_unknown_key(r, j, keys, &ret) ||
        ap__srv_json_async_timeout(r, j, &async, &asked_us, &ret)) {
        json_decref(j);
        return ret;
    }
    json_t *reqs = json_object_get(j, "requests");
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(reqs); i++)
        n += item_count(json_array_get(reqs, i));
    const char *refuse = !json_is_array(reqs) ? (reqs ? "must be an array of prediction items"
                                                     : "is required")
                         : !n ? "has no items" : NULL;
    if (refuse || n > (size_t)s->cfg.max_batch_items) {
        if (refuse)
            ret = ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "field 'requests' %s", refuse);
        else
            ret = ap__srv_error(r, MHD_HTTP_BAD_REQUEST, "a batch of %zu items is more than "
                                "max_batch_items (%d)", n, s->cfg.max_batch_items);
        json_decref(j);
        return ret;
    }
    atomic_fetch_add_explicit(&s->metrics->batch_items, n, memory_order_relaxed);
    size_t max = (size_t)s->cfg.max_queue_rows < n ? (size_t)s->cfg.max_queue_rows : n;
    struct ap_srv_batch *b = calloc(1, sizeof *b);
    bitem *items = b ? calloc(n, sizeof *items) : NULL;
    bsub *subs = items ? calloc(n, sizeof *subs) : NULL; /* a submit has >= 1 row */
    double *X = subs ? malloc(max * NF * sizeof *X) : NULL;
    bgroup *g = NULL;
    if (!X) {
        if (b)
            b->items = items, b->subs = subs;
        ap__srv_batch_free(b);
        json_decref(j);
        return ap__srv_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
                             "out of memory for a batch of %zu items", n);
    }
    *b = (struct ap_srv_batch){.srv = s, .doc = j, .items = items, .n = n, .subs = subs,
                               .async = async, .t0_ns = r->t0_ns};
    size_t k = 0;
    for (size_t i = 0; i < json_array_size(reqs); i++)
        parse_element(b, json_array_get(reqs, i), &k);
    ap__srv_set_deadline(r, asked_us);
    b->deadline_ns = r->deadline_ns;
    if (async)
        ap__service_result_open(s->svc, &b->async_id, NULL);
    else {
        b->r = r;
        r->batch = b;
    }
    atomic_init(&b->pending, 1);
    ap__srv_submitting(r);
    size_t ng = 0;
    int all_parked = 1;
    if (!(g = group_items(b, &ng)))
        for (size_t i = 0; i < n; i++)
            if (!items[i].status)
                item_fail(&items[i], AP_ENOMEM, "out of memory for the batch's groups");
    for (size_t i = 0; i < ng; i++)
        run_group(b, r, &g[i], X, max, &all_parked);
    free(g);
    free(X);
    uint64_t id = b->async_id;
    int last = atomic_fetch_sub_explicit(&b->pending, 1, memory_order_acq_rel) == 1;
    if (async) { /* b belongs to its last completion now: read nothing of it */
        if (last)
            batch_done(b);
        char store[128];
        jbuf o;
        ap__jb_init(&o, store, sizeof store);
        ap__jb_printf(&o, "{\"request_id\": \"%" PRIu64 "\", \"status\": \"pending\"}\n", id);
        r->phase = PH_DONE;
        return ap__srv_respond(r, MHD_HTTP_ACCEPTED, &o, NULL);
    }
    if (last || ap__srv_await(r, all_parked)) {
        r->phase = PH_DONE;
        return ap__srv_batch_finish(r);
    }
    return MHD_YES;
}
