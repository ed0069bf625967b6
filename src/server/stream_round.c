/*
 * The stream hub's producer side: the closed-bar queue the series store's
 * hook fills, the hub thread, and its rounds (stream.h has the picture).
 *
 * A round takes the closed bars queued, oldest first, at most ROUND_MAX
 * (and max_queue_rows) of them. For each model some matching
 * subscription names, it picks the model once (one lease at a time: a
 * lease read-locks a slot, and a pick may load a model), submits all of
 * that model's rows through the service in one submit (the round's size
 * keeps it within max_queue_rows), and moves to the next model. When every
 * submit completed, the round's events are made in close order (then
 * model order) and published together, so that a series' events are in
 * bar order. A bar whose series has fewer bars than the model's min_bars
 * gives no event (the single endpoint answers 409 for it); a prediction
 * that fails is counted (alphapulse_stream_failed_total), not sent.
 */
#include "server/stream_hub.h"
#include "server/server_internal.h"
#include "server/handlers.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/error.h"

#define ROUND_MODELS 64 /* distinct models one closed bar may be predicted by */
#define ROUND_MAX 1024  /* closed bars per round (at most max_queue_rows) */

typedef struct round_sync {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int left;
} round_sync;

/* One model of a round: its closed bars (items) and, since a round holds
   at most max_queue_rows closed bars, ONE submit of their rows. */
typedef struct group {
    char name[65];
    size_t *items; /* round indices, increasing */
    size_t n, cap, cursor;
    ap_model *m;   /* held while the round's events are made */
    ap_model_info info;
    int sink;      /* one of the internal sink's models */
    int *undefined;
    long *pos;     /* row k's place among the submitted rows; -1: no event */
    size_t nrows;  /* rows submitted */
    /* the submit's completion */
    round_sync *rs;
    int status;
    char msg[AP_ERROR_MSG_MAX];
    double *out;   /* nrows x nout */
    size_t nout;
    uint64_t id, queue_us, compute_us;
} group;

/* ---- the queue (any ingesting thread) ---------------------------------------------- */

void ap__stream_on_close(void *ctx, const ap_bar_closed *c)
{
    ap_srv_stream *h = ctx;
    if (!ap__stream_subscribers(h))
        return; /* nobody listens: ingestion pays one load */
    pthread_mutex_lock(&h->qmu);
    while (h->sink && !h->stop && h->qn - h->qhead == h->cfg.max_closed)
        pthread_cond_wait(&h->qspace, &h->qmu); /* back-pressure: the sink loses nothing */
    if (h->stop || h->qn - h->qhead == h->cfg.max_closed) {
        pthread_mutex_unlock(&h->qmu);
        atomic_fetch_add_explicit(&h->closed_dropped, 1, memory_order_relaxed);
        return;
    }
    if (h->qn == h->qcap && h->qhead > 0) { /* the hub took the front: move the rest down */
        memmove(h->q, h->q + h->qhead, (h->qn - h->qhead) * sizeof *h->q);
        h->qn -= h->qhead;
        h->qhead = 0;
    }
    if (h->qn == h->qcap) {
        size_t nc = h->qcap ? 2 * h->qcap : 256;
        if (nc > h->cfg.max_closed)
            nc = h->cfg.max_closed;
        closed_item *nq = realloc(h->q, nc * sizeof *nq);
        if (!nq) {
            pthread_mutex_unlock(&h->qmu);
            atomic_fetch_add_explicit(&h->closed_dropped, 1, memory_order_relaxed);
            return;
        }
        h->q = nq;
        h->qcap = nc;
    }
    closed_item *it = &h->q[h->qn++];
    it->series = c->series;
    it->t = c->t;
    it->bars = c->bars;
    it->t_ns = ap__clock_ns();
    memcpy(it->f, c->features, sizeof it->f);
    h->queued++;
    if (h->qn - h->qhead == 1) /* the hub only sleeps on an empty queue: no wake-up per bar */
        pthread_cond_signal(&h->qcv);
    pthread_mutex_unlock(&h->qmu);
    atomic_fetch_add_explicit(&h->closed_bars, 1, memory_order_relaxed);
}

/* ---- a round ------------------------------------------------------------------------ */

static void on_group_done(void *user, const ap_batch_completion *c)
{
    group *g = user;
    g->status = c->status;
    g->id = c->id;
    g->queue_us = c->queue_us;
    g->compute_us = c->compute_us;
    if (c->status == AP_OK && c->nrows != g->nrows) {
        g->status = AP_EIO;
        snprintf(g->msg, sizeof g->msg, "%zu rows answered for %zu", c->nrows, g->nrows);
    } else if (c->status == AP_OK) {
        g->out = malloc(c->nrows * c->nout * sizeof *g->out);
        if (g->out) {
            memcpy(g->out, c->out, c->nrows * c->nout * sizeof *g->out);
            g->nout = c->nout;
        } else {
            g->status = AP_ENOMEM;
            snprintf(g->msg, sizeof g->msg, "out of memory for %zu outputs", c->nrows * c->nout);
        }
    } else
        snprintf(g->msg, sizeof g->msg, "%s", c->message);
    round_sync *rs = g->rs;
    pthread_mutex_lock(&rs->mu);
    if (--rs->left == 0)
        pthread_cond_signal(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
}

static int group_add(group *g, size_t item)
{
    if (g->n && g->items[g->n - 1] == item)
        return 0;
    if (g->n == g->cap) {
        size_t nc = g->cap ? 2 * g->cap : 64;
        size_t *ni = realloc(g->items, nc * sizeof *ni);
        if (!ni)
            return -1;
        g->items = ni;
        g->cap = nc;
    }
    g->items[g->n++] = item;
    return 0;
}

/* Pick g's model, check its rows and submit them: one lease, one submit
   (g->status says why there was none). */
static void group_submit(ap_srv_stream *h, group *g, const closed_item *it, round_sync *rs)
{
    ap_server *s = h->srv;
    ap_error err;
    g->rs = rs;
    g->status = AP_ENOMEM;
    snprintf(g->msg, sizeof g->msg, "out of memory for %zu rows", g->n);
    g->undefined = calloc(g->n, sizeof *g->undefined);
    g->pos = malloc(g->n * sizeof *g->pos);
    double *rows = malloc(g->n * AP_FEATURE_COUNT * sizeof *rows);
    ap_selector sel = {g->name, AP_KIND_ANY, NULL, 0, 0, 1};
    ap_lease l;
    if (!g->undefined || !g->pos || !rows)
        goto out;
    if ((g->status = ap__service_pick(s->svc, &sel, &l, &err)) != AP_OK) {
        snprintf(g->msg, sizeof g->msg, "%s", err.msg);
        goto out;
    }
    ap_model_retain(l.model);
    g->m = l.model;
    g->info = l.info;
    unsigned char used[AP_FEATURE_COUNT];
    ap_model_features_used(l.model, used);
    g->nrows = 0;
    for (size_t k = 0; k < g->n; k++) {
        const closed_item *x = &it[g->items[k]];
        g->pos[k] = ap__srv_warmup(&l.info, used, x->f, NULL, NULL, x->bars, &g->undefined[k],
                                   NULL) == AP_OK
                        ? (long)g->nrows++
                        : -1; /* short of min_bars: no event (the single endpoint's 409) */
        if (g->pos[k] >= 0)
            memcpy(rows + (size_t)g->pos[k] * AP_FEATURE_COUNT, x->f, sizeof x->f);
    }
    if (!g->nrows) { /* every bar short of min_bars: no events, nothing failed */
        g->status = AP_OK;
        ap__service_release(&l);
        goto out;
    }
    pthread_mutex_lock(&rs->mu);
    rs->left++;
    pthread_mutex_unlock(&rs->mu);
    ap_submit_opts o = {0, NULL, on_group_done, g};
    int parked;
    if ((g->status = ap__service_submit(s->svc, &l, rows, g->nrows, &o, &parked, &err)) !=
        AP_OK) { /* refused: no completion will come */
        snprintf(g->msg, sizeof g->msg, "%s", err.msg);
        pthread_mutex_lock(&rs->mu);
        rs->left--;
        pthread_mutex_unlock(&rs->mu);
    }
out:
    free(rows);
}

/* The events of the round, in close order then model order. */
static void round_publish(ap_srv_stream *h, group *g, int ng, const closed_item *it, size_t n)
{
    size_t total = 0;
    for (int j = 0; j < ng; j++)
        total += g[j].n;
    /* the sink alone (a worker nobody streams from) needs no event text and
       no rings: as serve's close hook, which queues nothing then */
    int want_ev = atomic_load_explicit(&h->nsubs, memory_order_relaxed) > 0;
    ap_srv_stream_event *ev = total && want_ev ? malloc(total * sizeof *ev) : NULL;
    size_t *off = total && want_ev ? malloc(total * sizeof *off) : NULL;
    char store[4096];
    jbuf b;
    ap__jb_init(&b, store, sizeof store);
    size_t ne = 0, ns = 0;
    ap_srv_signal *sig = h->sink && total ? malloc(total * sizeof *sig) : NULL;
    uint64_t now = ap__clock_ns();
    for (size_t i = 0; ((ev && off) || (!want_ev && sig)) && i < n; i++) {
        char tf[16];
        ap__stream_tf_name(ap_series_timeframe(it[i].series), tf, sizeof tf);
        for (int j = 0; j < ng; j++) {
            group *x = &g[j];
            if (x->cursor >= x->n || x->items[x->cursor] != i)
                continue;
            size_t k = x->cursor++;
            if (x->status == AP_OK && x->pos[k] < 0)
                continue; /* short of the model's min_bars: no event */
            if (x->status != AP_OK || x->nout < 2) {
                atomic_fetch_add_explicit(&h->failed, 1, memory_order_relaxed);
                continue;
            }
            const double *o = x->out + (size_t)x->pos[k] * x->nout;
            if (sig && x->sink)
                sig[ns++] = (ap_srv_signal){it[i].series, it[i].t, x->info.name, x->info.version,
                                            o[0], o[1]};
            if (!want_ev)
                continue;
            off[ne] = b.len;
            ap__srv_prediction_json(&b, x->id, ap_series_symbol(it[i].series), tf, x->m,
                                    &x->info, o[0], o[1], o + 2, (int)x->nout - 2, it[i].t,
                                    x->undefined[k], it[i].bars, (now - it[i].t_ns) / 1000,
                                    x->queue_us, x->compute_us);
            ap__jb_puts(&b, ", \"closed\": true}");
            ev[ne] = (ap_srv_stream_event){it[i].series, it[i].t, x->info.name, NULL,
                                           b.len - off[ne]};
            ne++;
        }
    }
    if (b.failed)
        atomic_fetch_add_explicit(&h->failed, ne, memory_order_relaxed);
    else if (ne) {
        for (size_t e = 0; e < ne; e++)
            ev[e].data = b.p + off[e];
        ap__stream_publish(h, ev, ne);
    }
    ap__jb_free(&b);
    free(ev);
    free(off);
    if (h->sink && total && !sig) /* nothing can be published: say so, loudly */
        ap__srv_log(h->srv, "stream: out of memory for %zu signals of a round", total);
    if (ns)
        h->sink(h->sink_ctx, sig, ns);
    free(sig);
}

static void round_run(ap_srv_stream *h, const closed_item *it, size_t n)
{
    group g[ROUND_MODELS];
    int ng = 0;
    memset(g, 0, sizeof g);
    char names[ROUND_MODELS][65];
    for (size_t i = 0; i < n; i++) {
        int k = ap__stream_models_for(h, it[i].series, names, ROUND_MODELS);
        for (int a = 0; a < k; a++) {
            int j = 0;
            while (j < ng && strcmp(g[j].name, names[a]))
                j++;
            if (j == ng) {
                if (ng == ROUND_MODELS)
                    continue;
                memcpy(g[ng++].name, names[a], sizeof names[a]);
            }
            if (group_add(&g[j], i))
                atomic_fetch_add_explicit(&h->failed, 1, memory_order_relaxed);
        }
    }
    if (!ng)
        return;
    for (int j = 0; j < ng; j++)
        for (int a = 0; a < h->nsink_models && !g[j].sink; a++)
            g[j].sink = !strcmp(g[j].name, h->sink_models[a]);
    round_sync rs = {.left = 0};
    pthread_mutex_init(&rs.mu, NULL);
    pthread_cond_init(&rs.cv, NULL);
    for (int j = 0; j < ng; j++)
        group_submit(h, &g[j], it, &rs);
    pthread_mutex_lock(&rs.mu);
    while (rs.left > 0)
        pthread_cond_wait(&rs.cv, &rs.mu);
    pthread_mutex_unlock(&rs.mu);
    for (int j = 0; j < ng; j++)
        if (g[j].status != AP_OK)
            ap__srv_log(h->srv, "stream: model %s: %zu closed bar(s) not predicted: %s",
                        g[j].name, g[j].n, g[j].msg);
    round_publish(h, g, ng, it, n);
    for (int j = 0; j < ng; j++) {
        free(g[j].out);
        free(g[j].items);
        free(g[j].undefined);
        free(g[j].pos);
        ap_model_release(g[j].m);
    }
    pthread_mutex_destroy(&rs.mu);
    pthread_cond_destroy(&rs.cv);
    atomic_fetch_add_explicit(&h->rounds, 1, memory_order_relaxed);
}

/* ---- the hub thread ---------------------------------------------------------------- */

static void *hub_main(void *arg)
{
    ap_srv_stream *h = arg;
    closed_item *mine = NULL;
    size_t mcap = 0;
    double ka = h->cfg.keepalive_s / 4;
    uint64_t tick = (uint64_t)((ka < 0.05 ? 0.05 : ka > 1 ? 1 : ka) * 1e9);
    uint64_t next = ap__clock_ns() + tick;
    int mq = h->srv->cfg.max_queue_rows;
    size_t round_max = mq < ROUND_MAX ? (size_t)mq : ROUND_MAX;
    pthread_mutex_lock(&h->qmu);
    while (!h->stop) {
        if (h->qn == h->qhead) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + tick;
            ts.tv_sec += (time_t)(ns / 1000000000u);
            ts.tv_nsec = (long)(ns % 1000000000u);
            pthread_cond_timedwait(&h->qcv, &h->qmu, &ts);
        }
        /* a round takes at most round_max closed bars (so that each model's
           rows are one submit its queue takes), the oldest first */
        size_t n = h->qn - h->qhead < round_max ? h->qn - h->qhead : round_max;
        if (n && mcap < n) {
            closed_item *nm = realloc(mine, round_max * sizeof *nm);
            if (nm)
                mine = nm, mcap = round_max;
            else
                n = 0;
        }
        if (n) {
            memcpy(mine, h->q + h->qhead, n * sizeof *mine);
            h->qhead += n;
            if (h->qhead == h->qn)
                h->qhead = h->qn = 0;
        }
        if (n && h->sink)
            pthread_cond_broadcast(&h->qspace);
        pthread_mutex_unlock(&h->qmu);
        if (n)
            round_run(h, mine, n);
        pthread_mutex_lock(&h->qmu);
        h->done += n;
        pthread_cond_broadcast(&h->qdone);
        pthread_mutex_unlock(&h->qmu);
        uint64_t now = ap__clock_ns();
        if (now >= next) {
            ap__stream_keepalive(h, now);
            next = now + tick;
        }
        pthread_mutex_lock(&h->qmu);
    }
    pthread_mutex_unlock(&h->qmu);
    free(mine);
    return NULL;
}

/* ---- life cycle ---------------------------------------------------------------------- */

int ap__stream_new(ap_server *s, const ap_srv_stream_config *cfg, ap_srv_stream **out,
                  ap_error *err)
{
    if (!cfg->buffer || !cfg->history || !cfg->max_closed || !cfg->max_subscribers ||
        !(cfg->keepalive_s > 0))
        return ap__error_set(err, AP_EINVAL, "stream: buffer, history, queue, subscribers and "
                            "keep-alive must be > 0");
    ap_srv_stream *h = calloc(1, sizeof *h);
    if (!h)
        return ap__error_set(err, AP_ENOMEM, "stream: out of memory");
    h->srv = s;
    h->cfg = *cfg;
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->qmu, NULL);
    pthread_cond_init(&h->qcv, NULL);
    pthread_cond_init(&h->qspace, NULL);
    pthread_cond_init(&h->qdone, NULL);
    *out = h;
    return AP_OK;
}

int ap__stream_set_sink(ap_srv_stream *h, const char (*models)[65], int nmodels,
                       ap_srv_signal_sink fn, void *ctx, ap_error *err)
{
    if (h->started || h->sink)
        return ap__error_set(err, AP_EINVAL, "stream: the sink is set once, before the hub starts");
    if (nmodels < 1 || nmodels > ROUND_MODELS || !fn)
        return ap__error_set(err, AP_EINVAL, "stream: a sink takes 1 to %d models", ROUND_MODELS);
    h->sink_models = malloc((size_t)nmodels * sizeof *h->sink_models);
    if (!h->sink_models)
        return ap__error_set(err, AP_ENOMEM, "stream: out of memory");
    memcpy(h->sink_models, models, (size_t)nmodels * sizeof *h->sink_models);
    h->nsink_models = nmodels;
    h->sink = fn;
    h->sink_ctx = ctx;
    return AP_OK;
}

void ap__stream_flush(ap_srv_stream *h)
{
    pthread_mutex_lock(&h->qmu);
    uint64_t want = h->queued;
    while (h->done < want && !h->stop)
        pthread_cond_wait(&h->qdone, &h->qmu);
    pthread_mutex_unlock(&h->qmu);
}

int ap__stream_start(ap_srv_stream *h, ap_error *err)
{
    if (pthread_create(&h->th, NULL, hub_main, h))
        return ap__error_set(err, AP_EIO, "stream: cannot start its thread");
    h->started = 1;
    return AP_OK;
}

void ap__stream_stop(ap_srv_stream *h)
{
    if (!h || !h->started)
        return;
    pthread_mutex_lock(&h->qmu);
    h->stop = 1;
    pthread_cond_signal(&h->qcv);
    pthread_cond_broadcast(&h->qspace);
    pthread_cond_broadcast(&h->qdone);
    pthread_mutex_unlock(&h->qmu);
    pthread_join(h->th, NULL);
    h->started = 0;
}

void ap__stream_free(ap_srv_stream *h)
{
    if (!h)
        return;
    ap__stream_stop(h);
    ap__stream_free_rings(h);
    free(h->q);
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->qmu);
    pthread_cond_destroy(&h->qcv);
    pthread_cond_destroy(&h->qspace);
    pthread_cond_destroy(&h->qdone);
    free(h->sink_models);
    free(h);
}
