/*
 * Replay: one background thread feeds bars from CSV files into the series
 * store, so that predictions are available from the first second. Each source
 * SYMBOL/TF=FILE feeds the series (SYMBOL, TF) opened with roll-up. At start
 * replay_warmup bars of every source go in at once; then every 1/replay_speed
 * seconds each source gets its next bar. With replay_loop, a finished file
 * starts again with its times shifted so that its first bar comes one
 * timeframe after the last bar fed (the series stays strictly increasing;
 * there is a price jump at the seam). With replay_speed 0 every file is fed
 * once as fast as possible and the thread ends.
 *
 * Bars go through ap__srv_ingest, as POST /v1/candles does (the store
 * serialises appends to a series itself), so a client may also post to a
 * replayed series (bars older than the last one are then refused, as
 * always). Replayed times are not held to max_future_s: a file is history,
 * and replay_loop shifts it forward on purpose. A replayed series deleted by
 * DELETE /v1/series stops taking bars (each is counted as rejected).
 */
#include "server/server_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"

int ap__srv_ingest(ap_server *s, ap_series *series, const ap_bar *bar, ap_error *err)
{
    int rc = ap_series_append(series, bar, err);
    atomic_fetch_add_explicit(rc ? &s->metrics->bars_rejected : &s->metrics->bars_ingested, 1,
                              memory_order_relaxed);
    return rc;
}

/* A posted bar starts between 1970 and max_future_s after the server's
   clock: one bar from year 5138 would otherwise refuse every real bar after
   it (bars of a series only go forward). */
int ap__srv_bar_time_ok(const ap_server *s, int64_t t, ap_error *err)
{
    char tb[40], nb[40];
    if (t < 0)
        return ap__error_set(err, AP_EINVAL, "bar time %s is before 1970",
                            ap_format_timestamp(t, tb, sizeof tb));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    if (t > now + s->cfg.max_future_s * 1000000)
        return ap__error_set(err, AP_EINVAL, "bar time %s is more than max_future_s (%lld s) "
                            "after the server's clock (%s)",
                            ap_format_timestamp(t, tb, sizeof tb), (long long)s->cfg.max_future_s,
                            ap_format_timestamp(now, nb, sizeof nb));
    return AP_OK;
}

static int src_open(ap_srv_replay_src *r, ap_error *err)
{
    int rc = ap__bars_csv_open(&r->csv, r->cfg->path, err);
    r->open = rc == AP_OK;
    return rc;
}

/* Feed the next bar of r; 0 when the source is finished. Called with mu
   held only for the progress fields (the append itself is outside). */
static int feed_one(ap_server *s, ap_srv_replay_src *r, int loop)
{
    ap_error err;
    ap_bar bar;
    for (int attempt = 0; attempt < 2; attempt++) {
        int got = ap__bars_csv_next(&r->csv, &bar, &err);
        if (got < 0) {
            ap__srv_log(s, "replay %s/%s: %s", r->cfg->symbol, r->cfg->timeframe, err.msg);
            pthread_mutex_lock(&s->replay.mu);
            snprintf(r->error, sizeof r->error, "%s", err.msg);
            r->done = 1;
            pthread_mutex_unlock(&s->replay.mu);
            return 0;
        }
        if (got == 1) {
            if (r->fed == 0 && r->loops == 0)
                r->first_t = bar.t;
            int64_t raw_t = bar.t;
            bar.t += r->offset_us;
            int rc = ap__srv_ingest(s, r->series, &bar, &err);
            pthread_mutex_lock(&s->replay.mu);
            if (rc == AP_OK) {
                r->fed++;
                r->last_t = raw_t;
                r->last_fed_t = bar.t;
            } else {
                r->rejected++;
                snprintf(r->error, sizeof r->error, "%s", err.msg);
            }
            pthread_mutex_unlock(&s->replay.mu);
            return 1;
        }
        /* end of file */
        ap__bars_csv_close(&r->csv);
        r->open = 0;
        if (!loop || r->fed == 0)
            break;
        pthread_mutex_lock(&s->replay.mu);
        r->offset_us += r->last_t - r->first_t + r->cfg->tf_s * 1000000;
        r->loops++;
        pthread_mutex_unlock(&s->replay.mu);
        if (src_open(r, &err) != AP_OK) {
            ap__srv_log(s, "replay %s/%s: %s", r->cfg->symbol, r->cfg->timeframe, err.msg);
            break;
        }
    }
    pthread_mutex_lock(&s->replay.mu);
    r->done = 1;
    pthread_mutex_unlock(&s->replay.mu);
    return 0;
}

static void *replay_main(void *arg)
{
    ap_server *s = arg;
    ap_srv_replay *rp = &s->replay;
    const ap_server_config *c = &s->cfg;
    int paced = c->replay_speed > 0;
    for (int i = 0; i < rp->n; i++)
        for (int k = 0; (k < c->replay_warmup || !paced) && feed_one(s, &rp->src[i], paced); k++)
            if (!paced && (k & 1023) == 0 && rp->stop)
                break;
    if (!paced)
        return NULL;
    uint64_t period = (uint64_t)(1e9 / c->replay_speed);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&rp->mu);
    while (!rp->stop) {
        int active = 0;
        for (int i = 0; i < rp->n; i++)
            active += !rp->src[i].done;
        if (!active)
            break;
        uint64_t ns = (uint64_t)next.tv_nsec + period;
        next.tv_sec += (time_t)(ns / 1000000000u);
        next.tv_nsec = (long)(ns % 1000000000u);
        /* the condition variable uses CLOCK_MONOTONIC (set at init) */
        while (!rp->stop && pthread_cond_timedwait(&rp->cv, &rp->mu, &next) == 0)
            ;
        if (rp->stop)
            break;
        pthread_mutex_unlock(&rp->mu);
        for (int i = 0; i < rp->n; i++)
            if (!rp->src[i].done)
                feed_one(s, &rp->src[i], c->replay_loop);
        pthread_mutex_lock(&rp->mu);
    }
    pthread_mutex_unlock(&rp->mu);
    return NULL;
}

int ap__srv_replay_start(ap_server *s, ap_error *err)
{
    ap_srv_replay *rp = &s->replay;
    const ap_server_config *c = &s->cfg;
    /* the replay waits on CLOCK_MONOTONIC deadlines */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&rp->cv);
    pthread_cond_init(&rp->cv, &ca);
    pthread_condattr_destroy(&ca);
    for (int i = 0; i < c->nreplay; i++) {
        ap_srv_replay_src *r = &rp->src[i];
        memset(r, 0, sizeof *r);
        r->cfg = &c->replay[i];
        int rc = ap_series_open(s->store, r->cfg->symbol, r->cfg->tf_s, AP_SERIES_ROLLUP,
                                &r->series, err);
        if (!rc)
            rc = src_open(r, err);
        rp->n = i + 1; /* so that a failure closes what was opened */
        if (rc)
            return ap__error_prefix(err, "replay %s/%s: ", r->cfg->symbol, r->cfg->timeframe);
    }
    if (!rp->n)
        return AP_OK;
    if (pthread_create(&rp->thread, NULL, replay_main, s))
        return ap__error_set(err, AP_ENOMEM, "replay: cannot start its thread");
    rp->started = 1;
    return AP_OK;
}

void ap__srv_replay_stop(ap_server *s)
{
    ap_srv_replay *rp = &s->replay;
    if (rp->started) {
        pthread_mutex_lock(&rp->mu);
        rp->stop = 1;
        pthread_cond_broadcast(&rp->cv);
        pthread_mutex_unlock(&rp->mu);
        pthread_join(rp->thread, NULL);
        rp->started = 0;
    }
    for (int i = 0; i < rp->n; i++)
        if (rp->src[i].open) {
            ap__bars_csv_close(&rp->src[i].csv);
            rp->src[i].open = 0;
        }
}

void ap__srv_replay_json(ap_server *s, jbuf *b)
{
    ap_srv_replay *rp = &s->replay;
    ap__jb_puts(b, "[");
    pthread_mutex_lock(&rp->mu);
    for (int i = 0; i < rp->n; i++) {
        const ap_srv_replay_src *r = &rp->src[i];
        char t[40];
        ap__jb_puts(b, "{\"symbol\": ");
        ap__jb_str(b, r->cfg->symbol);
        ap__jb_puts(b, ", \"timeframe\": ");
        ap__jb_str(b, r->cfg->timeframe);
        ap__jb_puts(b, ", \"file\": ");
        ap__jb_str(b, r->cfg->path);
        ap__jb_printf(b, ", \"bars_fed\": %llu, \"rejected\": %llu, \"loops\": %llu, \"done\": %s",
                  (unsigned long long)r->fed, (unsigned long long)r->rejected,
                  (unsigned long long)r->loops, r->done ? "true" : "false");
        if (r->fed) {
            ap__jb_puts(b, ", \"last_bar_time\": ");
            ap__jb_str(b, ap_format_timestamp(r->last_fed_t, t, sizeof t));
        }
        if (r->error[0]) {
            ap__jb_puts(b, ", \"last_error\": ");
            ap__jb_str(b, r->error);
        }
        ap__jb_puts(b, "},");
    }
    pthread_mutex_unlock(&rp->mu);
    ap__jb_uncomma(b);
    ap__jb_puts(b, "]");
}
