/*
 * The stream hub's producer side: the closed-bar queue the series store's
 * hook fills, the hub thread, and its rounds (stream.h has the picture).
 *
 * A round takes the closed bars queued, oldest first, at most ROUND_MAX
 * (and max_queue_rows) of them. For each model some matching
 * subscription names, it picks the model once (one lease at a time: a
 * lease read-locks a slot, and a pick may load a model), submits all of
 * that model's rows through the service (the batchers: several submits
 * only past max_queue_rows), and moves to the next model. When every
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

typedef struct chunk {
    round_sync *rs;
    int status;
    char msg[AP_ERROR_MSG_MAX];
    double *out;
    size_t want, nrows, nout; /* want: rows submitted */
    uint64_t id, queue_us, compute_us;
} chunk;

typedef struct group {
    char name[65];
    size_t *items; /* round indices, increasing */
    size_t n, cap, cursor;
    ap_model *m;   /* held while the round's events are made */
    ap_model_info info;
    int *undefined;
    long *pos;     /* row k's place among the submitted rows; -1: no event */
    chunk *ch;
    size_t nch, per_chunk;
} group;

/* ---- the queue (any ingesting thread) ---------------------------------------------- */

void ap__stream_on_close(void *ctx, const ap_bar_closed *c)
{
    ap_srv_stream *h = ctx;
    if (!ap__stream_subscribers(h))
        return; /* nobody listens: ingestion pays one load */
    pthread_mutex_lock(&h->qmu);
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
    if (h->qn - h->qhead == 1) /* the hub only sleeps on an empty queue: no wake-up per bar */
        pthread_cond_signal(&h->qcv);
    pthread_mutex_unlock(&h->qmu);
    atomic_fetch_add_explicit(&h->closed_bars, 1, memory_order_relaxed);
}

/* ---- a round ------------------------------------------------------------------------ */

static void on_chunk_done(void *user, const ap_batch_completion *c)
{
    chunk *ch = user;
    ch->status = c->status;
    ch->id = c->id;
    ch->queue_us = c->queue_us;
    ch->compute_us = c->compute_us;
    if (c->status == AP_OK) {
        ch->out = malloc(c->nrows * c->nout * sizeof *ch->out);
        if (ch->out) {
            memcpy(ch->out, c->out, c->nrows * c->nout * sizeof *ch->out);
            ch->nrows = c->nrows;
            ch->nout = c->nout;
        } else
            ch->status = AP_ENOMEM;
    } else
        snprintf(ch->msg, sizeof ch->msg, "%s", c->message);
    round_sync *rs = ch->rs;
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

/* Pick g's model, check its rows and submit them (one lease, then free). */
static void group_submit(ap_srv_stream *h, group *g, const closed_item *it, round_sync *rs)
{
    ap_server *s = h->srv;
    g->undefined = calloc(g->n, sizeof *g->undefined);
    g->pos = malloc(g->n * sizeof *g->pos);
    if (!g->undefined || !g->pos)
        goto failed;
    ap_selector sel = {g->name, AP_KIND_ANY, NULL, 0, 0, 1};
    ap_lease l;
    ap_error err;
    if (ap__service_pick(s->svc, &sel, &l, &err) != AP_OK)
        goto failed;
    ap_model_retain(l.model);
    g->m = l.model;
    g->info = l.info;
    unsigned char used[AP_FEATURE_COUNT];
    ap_model_features_used(l.model, used);
    size_t nrows = 0;
    for (size_t k = 0; k < g->n; k++) {
        const closed_item *x = &it[g->items[k]];
        g->pos[k] = l.info.min_bars && x->bars < l.info.min_bars ? -1 : (long)nrows++;
        for (int f = 0; f < AP_FEATURE_COUNT; f++)
            g->undefined[k] += used[f] && isnan(x->f[f]);
    }
    size_t per = s->cfg.max_queue_rows < ROUND_MAX ? (size_t)s->cfg.max_queue_rows : ROUND_MAX;
    g->per_chunk = per;
    g->nch = nrows ? (nrows + per - 1) / per : 0;
    double *rows = nrows ? malloc(nrows * AP_FEATURE_COUNT * sizeof *rows) : NULL;
    g->ch = g->nch ? calloc(g->nch, sizeof *g->ch) : NULL;
    if (nrows && (!rows || !g->ch)) {
        free(rows);
        ap__service_release(&l);
        goto failed;
    }
    for (size_t k = 0; k < g->n; k++)
        if (g->pos[k] >= 0)
            memcpy(rows + (size_t)g->pos[k] * AP_FEATURE_COUNT, it[g->items[k]].f,
                   sizeof it->f);
    if (!g->nch) {
        ap__service_release(&l);
        return;
    }
    for (size_t c = 0; c < g->nch; c++) {
        chunk *ch = &g->ch[c];
        ch->rs = rs;
        size_t first = c * per, n = nrows - first < per ? nrows - first : per;
        ch->want = n;
        ap_submit_opts o = {0, NULL, on_chunk_done, ch};
        int parked, rc = AP_OK;
        pthread_mutex_lock(&rs->mu);
        rs->left++;
        pthread_mutex_unlock(&rs->mu);
        if (c > 0 && (rc = ap__service_pick(s->svc, &sel, &l, &err)) == AP_OK &&
            l.model != g->m) { /* reloaded in between: the round keeps one version */
            ap__service_release(&l);
            rc = ap__error_set(&err, AP_ECONFLICT, "model reloaded during the round");
        }
        if (rc == AP_OK)
            rc = ap__service_submit(s->svc, &l, rows + first * AP_FEATURE_COUNT, n, &o,
                                    &parked, &err);
        if (rc == AP_OK)
            continue; /* on_chunk_done counts it down */
        ch->status = rc;
        snprintf(ch->msg, sizeof ch->msg, "%s", err.msg);
        pthread_mutex_lock(&rs->mu);
        rs->left--;
        pthread_mutex_unlock(&rs->mu);
    }
    free(rows);
    return;
failed:
    free(g->pos);
    g->pos = NULL; /* no events for this model this round */
}

/* The events of the round, in close order then model order. */
static void round_publish(ap_srv_stream *h, group *g, int ng, const closed_item *it, size_t n)
{
    size_t total = 0;
    for (int j = 0; j < ng; j++)
        total += g[j].n;
    ap_srv_stream_event *ev = total ? malloc(total * sizeof *ev) : NULL;
    size_t *off = total ? malloc(total * sizeof *off) : NULL;
    char store[4096];
    jbuf b;
    ap__jb_init(&b, store, sizeof store);
    size_t ne = 0;
    uint64_t now = ap__clock_ns();
    for (size_t i = 0; ev && off && i < n; i++) {
        char tf[16];
        ap__stream_tf_name(ap_series_timeframe(it[i].series), tf, sizeof tf);
        for (int j = 0; j < ng; j++) {
            group *x = &g[j];
            if (x->cursor >= x->n || x->items[x->cursor] != i)
                continue;
            size_t k = x->cursor++;
            if (!x->pos || x->pos[k] < 0)
                continue;
            chunk *ch = &x->ch[(size_t)x->pos[k] / x->per_chunk];
            size_t row = (size_t)x->pos[k] % x->per_chunk;
            if (ch->status != AP_OK || row >= ch->nrows || ch->nout < 2) {
                atomic_fetch_add_explicit(&h->failed, 1, memory_order_relaxed);
                continue;
            }
            const double *o = ch->out + row * ch->nout;
            off[ne] = b.len;
            ap__srv_prediction_json(&b, ch->id, ap_series_symbol(it[i].series), tf, x->m,
                                    &x->info, o[0], o[1], o + 2, (int)ch->nout - 2, it[i].t,
                                    x->undefined[k], it[i].bars, (now - it[i].t_ns) / 1000,
                                    ch->queue_us, ch->compute_us);
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
        if (g[j].pos)
            for (size_t c = 0; c < g[j].nch; c++)
                if (g[j].ch[c].status != AP_OK)
                    ap__srv_log(h->srv, "stream: model %s: %zu closed bar(s) not predicted: "
                                "%s", g[j].name, g[j].ch[c].want,
                                g[j].ch[c].msg);
    round_publish(h, g, ng, it, n);
    for (int j = 0; j < ng; j++) {
        for (size_t c = 0; c < g[j].nch; c++)
            free(g[j].ch[c].out);
        free(g[j].ch);
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
        pthread_mutex_unlock(&h->qmu);
        if (n)
            round_run(h, mine, n);
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
    *out = h;
    return AP_OK;
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
    free(h);
}
