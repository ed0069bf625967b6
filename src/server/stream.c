/*
 * The stream hub's subscriber side: subscriptions and their bounded queues,
 * the per-series rings of recent events (Last-Event-ID), publication and
 * the reader (stream.h has the picture). Everything here runs under the
 * hub's one mutex; the wake-ups of parked readers are made after it is
 * released (a parked reader's connection cannot go away before its wake:
 * libmicrohttpd does not process a suspended connection).
 */
#include "server/stream_hub.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"

struct ap_srv_sub {
    ap_srv_stream *h;
    ap_srv_sub *prev, *next;
    int refs;   /* the reader's, the list's, one per wake-up in flight */
    int listed; /* in h->subs */
    int gone;   /* the reader left: lingering (its models still predicted) */
    uint64_t linger_until_ns;
    ap_srv_sub_io io;
    int parked;
    int all_series;
    int nseries, nmodels;
    ap_srv_stream_key *series;
    char (*models)[65];
    sev **q; /* ring of cfg.buffer events */
    size_t head, n, off; /* off: bytes of q[head] already read */
    char ctl[384];       /* a control message sent at the next event boundary */
    size_t ctl_len, ctl_off;
    int ending;          /* once ctl is read, the stream is over */
    uint64_t last_write_ns;
};

void ap__stream_tf_name(int64_t tf, char *buf, size_t size)
{
    if (tf % 86400 == 0)
        snprintf(buf, size, "%" PRId64 "d", tf / 86400);
    else if (tf % 3600 == 0)
        snprintf(buf, size, "%" PRId64 "h", tf / 3600);
    else if (tf % 60 == 0)
        snprintf(buf, size, "%" PRId64 "m", tf / 60);
    else
        snprintf(buf, size, "%" PRId64 "s", tf);
}

size_t ap__stream_subscribers(ap_srv_stream *h)
{
    return atomic_load_explicit(&h->nsubs, memory_order_relaxed) + (h->sink != NULL);
}

size_t ap__stream_active(ap_srv_stream *h)
{
    pthread_mutex_lock(&h->mu);
    size_t n = h->active;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* the counters are bumped on both sides; read here, below the metrics */
void ap__stream_counts(ap_srv_stream *h, ap_srv_stream_counts *o)
{
    o->closed_bars = atomic_load(&h->closed_bars);
    o->closed_dropped = atomic_load(&h->closed_dropped);
    o->events = atomic_load(&h->events);
    o->delivered = atomic_load(&h->delivered);
    o->overflows = atomic_load(&h->overflows);
    o->failed = atomic_load(&h->failed);
    o->rounds = atomic_load(&h->rounds);
    o->subscribers = ap__stream_active(h);
}

/* ---- events and rings --------------------------------------------------------- */

static void sev_release(sev *e)
{
    if (e && --e->refs == 0)
        free(e);
}

static size_t ptr_hash(const void *p, size_t mask)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x & mask;
}

/* The ring of series s, made on first use (NULL: out of memory). */
static sring *ring_of(ap_srv_stream *h, const ap_series *s)
{
    if (h->rcap) {
        for (size_t i = ptr_hash(s, h->rcap - 1);; i = (i + 1) & (h->rcap - 1)) {
            if (h->rings[i].series == s)
                return &h->rings[i];
            if (!h->rings[i].series)
                break;
        }
    }
    if (2 * (h->rn + 1) > h->rcap) { /* grow: load stays <= 1/2 */
        size_t ncap = h->rcap ? 2 * h->rcap : 64;
        sring *nr = calloc(ncap, sizeof *nr);
        if (!nr)
            return NULL;
        for (size_t i = 0; i < h->rcap; i++) {
            if (!h->rings[i].series)
                continue;
            size_t j = ptr_hash(h->rings[i].series, ncap - 1);
            while (nr[j].series)
                j = (j + 1) & (ncap - 1);
            nr[j] = h->rings[i];
        }
        free(h->rings);
        h->rings = nr;
        h->rcap = ncap;
    }
    sev **ev = calloc(h->cfg.history, sizeof *ev);
    if (!ev)
        return NULL;
    size_t i = ptr_hash(s, h->rcap - 1);
    while (h->rings[i].series)
        i = (i + 1) & (h->rcap - 1);
    h->rings[i] = (sring){s, ev, 0, 0};
    h->rn++;
    return &h->rings[i];
}

static void ring_push(ap_srv_stream *h, sring *r, sev *e)
{
    size_t cap = h->cfg.history;
    if (r->n == cap) {
        sev_release(r->ev[r->head]);
        r->head = (r->head + 1) % cap;
        r->n--;
    }
    r->ev[(r->head + r->n) % cap] = e;
    r->n++;
    e->refs++;
}

/* ---- subscriptions ----------------------------------------------------------------- */

static int sub_wants_series(const ap_srv_sub *u, const ap_series *s)
{
    if (u->all_series)
        return 1;
    const char *sym = ap_series_symbol(s);
    int64_t tf = ap_series_timeframe(s);
    for (int i = 0; i < u->nseries; i++)
        if (u->series[i].tf == tf && !strcmp(u->series[i].symbol, sym))
            return 1;
    return 0;
}

static int sub_wants_model(const ap_srv_sub *u, const char *model)
{
    for (int i = 0; i < u->nmodels; i++)
        if (!strcmp(u->models[i], model))
            return 1;
    return 0;
}

static void sub_free(ap_srv_sub *u)
{
    size_t cap = u->h->cfg.buffer;
    for (size_t i = 0; i < u->n; i++)
        sev_release(u->q[(u->head + i) % cap]);
    free(u->q);
    free(u->series);
    free(u->models);
    free(u);
}

static void sub_unref(ap_srv_sub *u)
{
    if (--u->refs == 0)
        sub_free(u);
}

/* A control message, after whatever event is half read; ending: the last. */
static void sub_control(ap_srv_sub *u, const char *text, int ending)
{
    if (u->ending)
        return;
    snprintf(u->ctl, sizeof u->ctl, "%s", text);
    u->ctl_len = strlen(u->ctl);
    u->ctl_off = 0;
    u->ending = ending;
}

/* Drop every queued event but one half read (the stream stays well formed). */
static void sub_drop_queue(ap_srv_sub *u)
{
    size_t cap = u->h->cfg.buffer, keep = u->off > 0 && u->n > 0;
    for (size_t i = keep; i < u->n; i++)
        sev_release(u->q[(u->head + i) % cap]);
    u->n = keep;
}

/* Queue e for u (hub lock held); 1 when u must be woken. */
static int sub_deliver(ap_srv_stream *h, ap_srv_sub *u, sev *e)
{
    if (u->ending || u->gone)
        return 0;
    size_t cap = h->cfg.buffer;
    if (u->n == cap) { /* a slow consumer: cut it off rather than slow anyone */
        size_t dropped = u->n;
        sub_drop_queue(u);
        char msg[256];
        snprintf(msg, sizeof msg, "event: overflow\ndata: {\"error\": \"this stream fell %zu "
                 "events behind (stream_buffer = %zu) and is closed; reconnect with "
                 "Last-Event-ID to resume\", \"code\": \"overloaded\"}\n\n", dropped, cap);
        sub_control(u, msg, 1);
        atomic_fetch_add_explicit(&h->overflows, 1, memory_order_relaxed);
    } else {
        u->q[(u->head + u->n) % cap] = e;
        u->n++;
        e->refs++;
        atomic_fetch_add_explicit(&h->delivered, 1, memory_order_relaxed);
    }
    return u->parked;
}

/* Wake the parked readers collected under the lock (the lock released). */
typedef struct wake_list {
    ap_srv_sub **u;
    size_t n, cap;
} wake_list;

static void wake_add(wake_list *w, ap_srv_sub *u)
{
    if (w->n == w->cap) {
        size_t nc = w->cap ? 2 * w->cap : 16;
        ap_srv_sub **nu = realloc(w->u, nc * sizeof *nu);
        if (!nu)
            return; /* its next keep-alive wakes it */
        w->u = nu;
        w->cap = nc;
    }
    u->parked = 0;
    u->refs++;
    w->u[w->n++] = u;
}

static void wake_all(ap_srv_stream *h, wake_list *w)
{
    for (size_t i = 0; i < w->n; i++)
        w->u[i]->io.wake(w->u[i]->io.ctx);
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < w->n; i++)
        sub_unref(w->u[i]);
    pthread_mutex_unlock(&h->mu);
    free(w->u);
}

int ap__stream_key_parse(const char *spec, size_t n, ap_srv_stream_key *k, ap_error *err)
{
    const char *sl = n ? memrchr(spec, '/', n) : NULL;
    if (!sl || sl == spec || (size_t)(sl - spec) >= sizeof k->symbol ||
        n - (size_t)(sl - spec) > 16)
        return ap__error_set(err, AP_EINVAL, "series: '%.*s' is not SYMBOL/TIMEFRAME (e.g. "
                            "GOOG/1d)", (int)(n < 100 ? n : 100), spec);
    char tf[17];
    size_t tl = n - (size_t)(sl - spec) - 1;
    memcpy(tf, sl + 1, tl);
    tf[tl] = 0;
    int rc = ap_timeframe_parse(tf, &k->tf, err);
    if (rc)
        return ap__error_prefix(err, "series '%.*s': ", (int)(n < 100 ? n : 100), spec);
    memcpy(k->symbol, spec, (size_t)(sl - spec));
    k->symbol[sl - spec] = 0;
    return AP_OK;
}

/* Parse "<symbol>/<tf>:<bar_time_ms>:<model>" (the symbol may hold '/'
   and ':'; the last two fields are read from the right). */
static int parse_event_id(const char *id, ap_srv_stream_key *k, int64_t *bar_ms,
                          char *model, size_t msize)
{
    const char *c2 = strrchr(id, ':');
    if (!c2 || !c2[1] || (size_t)strlen(c2 + 1) >= msize)
        return -1;
    const char *c1 = c2 - 1;
    while (c1 >= id && *c1 != ':')
        c1--;
    if (c1 < id)
        return -1;
    char num[24];
    size_t nl = (size_t)(c2 - c1 - 1);
    if (!nl || nl >= sizeof num)
        return -1;
    memcpy(num, c1 + 1, nl);
    num[nl] = 0;
    char *end;
    long long v = strtoll(num, &end, 10);
    ap_error err;
    if (*end || ap__stream_key_parse(id, (size_t)(c1 - id), k, &err) != AP_OK)
        return -1;
    *bar_ms = v;
    snprintf(model, msize, "%s", c2 + 1);
    return 0;
}

static int seq_cmp(const void *a, const void *b)
{
    uint64_t x = (*(sev *const *)a)->seq, y = (*(sev *const *)b)->seq;
    return x < y ? -1 : x > y;
}

/* Queue what the rings hold after last_event_id (hub lock held). */
static void sub_resume(ap_srv_stream *h, ap_srv_sub *u, const char *last_event_id)
{
    ap_srv_stream_key k;
    int64_t bar_ms;
    char model[65];
    uint64_t after = 0;
    int found = 0;
    if (parse_event_id(last_event_id, &k, &bar_ms, model, sizeof model) == 0) {
        for (size_t i = 0; i < h->rcap && !found; i++) {
            sring *r = &h->rings[i];
            if (!r->series || ap_series_timeframe(r->series) != k.tf ||
                strcmp(ap_series_symbol(r->series), k.symbol))
                continue;
            for (size_t j = 0; j < r->n && !found; j++) {
                sev *e = r->ev[(r->head + j) % h->cfg.history];
                if (e->bar_ms == bar_ms && !strcmp(e->model, model))
                    found = 1, after = e->seq;
            }
        }
    }
    if (!found) {
        char msg[384];
        /* the id is the client's: keep it out of the JSON unless it is plain */
        int plain = strlen(last_event_id) < 200;
        for (const char *p = last_event_id; *p && plain; p++)
            plain = *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\';
        snprintf(msg, sizeof msg, "event: gap\ndata: {\"error\": \"Last-Event-ID %s%s%s is not "
                 "held (too old, or from before a restart): events may be missing\", "
                 "\"code\": \"not_found\"}\n\n", plain ? "'" : "", plain ? last_event_id : "",
                 plain ? "'" : "");
        sub_control(u, msg, 0);
        return;
    }
    size_t n = 0, cap = 0;
    sev **all = NULL;
    for (size_t i = 0; i < h->rcap; i++) {
        sring *r = &h->rings[i];
        if (!r->series || !sub_wants_series(u, r->series))
            continue;
        for (size_t j = 0; j < r->n; j++) {
            sev *e = r->ev[(r->head + j) % h->cfg.history];
            if (e->seq <= after || !sub_wants_model(u, e->model))
                continue;
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 64;
                sev **na = realloc(all, nc * sizeof *na);
                if (!na)
                    break;
                all = na;
                cap = nc;
            }
            all[n++] = e;
        }
    }
    if (n)
        qsort(all, n, sizeof *all, seq_cmp);
    for (size_t i = 0; i < n; i++)
        sub_deliver(h, u, all[i]);
    free(all);
}

int ap__stream_subscribe(ap_srv_stream *h, const ap_srv_sub_spec *spec, const ap_srv_sub_io *io,
                        ap_srv_sub **out, ap_error *err)
{
    ap_srv_sub *u = calloc(1, sizeof *u);
    if (!u)
        return ap__error_set(err, AP_ENOMEM, "stream: out of memory");
    u->h = h;
    u->io = *io;
    u->refs = 2; /* the reader's and the list's */
    u->all_series = spec->nseries == 0;
    u->nseries = spec->nseries;
    u->nmodels = spec->nmodels;
    u->q = calloc(h->cfg.buffer, sizeof *u->q);
    u->series = spec->nseries ? malloc((size_t)spec->nseries * sizeof *u->series) : NULL;
    u->models = spec->nmodels ? malloc((size_t)spec->nmodels * sizeof *u->models) : NULL;
    if (!u->q || (spec->nseries && !u->series) || (spec->nmodels && !u->models)) {
        sub_free(u);
        return ap__error_set(err, AP_ENOMEM, "stream: out of memory");
    }
    if (spec->nseries)
        memcpy(u->series, spec->series, (size_t)spec->nseries * sizeof *u->series);
    if (spec->nmodels)
        memcpy(u->models, spec->models, (size_t)spec->nmodels * sizeof *u->models);
    u->last_write_ns = ap__clock_ns();
    pthread_mutex_lock(&h->mu);
    int rc = AP_OK;
    size_t now = atomic_load_explicit(&h->nsubs, memory_order_relaxed);
    if (h->closing)
        rc = ap__error_set(err, AP_ECANCELLED, "server is shutting down");
    else if (h->active >= h->cfg.max_subscribers)
        rc = ap__error_set(err, AP_EFULL, "stream: %zu subscriptions already (stream_max_"
                           "subscribers)", h->active);
    if (rc) {
        pthread_mutex_unlock(&h->mu);
        sub_free(u);
        return rc;
    }
    h->active++;
    if (spec->last_event_id)
        sub_resume(h, u, spec->last_event_id);
    u->next = h->subs;
    if (h->subs)
        h->subs->prev = u;
    h->subs = u;
    u->listed = 1;
    atomic_store_explicit(&h->nsubs, now + 1, memory_order_relaxed);
    pthread_mutex_unlock(&h->mu);
    *out = u;
    return AP_OK;
}

static void unlist(ap_srv_stream *h, ap_srv_sub *u)
{
    if (!u->listed)
        return;
    if (!u->gone)
        h->active--;
    if (u->prev)
        u->prev->next = u->next;
    else
        h->subs = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->listed = 0;
    atomic_fetch_sub_explicit(&h->nsubs, 1, memory_order_relaxed);
    sub_unref(u); /* the list's reference */
}

/* The reader left. Its subscription lingers for cfg.linger_s (its models
   are still predicted, so a reconnect with Last-Event-ID finds what it
   missed in the rings), unless the stream ended on purpose. */
void ap__stream_unsubscribe(ap_srv_sub *u)
{
    if (!u)
        return;
    ap_srv_stream *h = u->h;
    pthread_mutex_lock(&h->mu);
    u->parked = 0; /* no wake-up for a reader that is gone */
    sub_drop_queue(u);
    if (u->listed && !u->ending && !h->closing && h->cfg.linger_s > 0) {
        u->gone = 1;
        h->active--;
        u->linger_until_ns = ap__clock_ns() + (uint64_t)(h->cfg.linger_s * 1e9);
    } else
        unlist(h, u);
    sub_unref(u); /* the reader's reference */
    pthread_mutex_unlock(&h->mu);
}

long ap__stream_read(ap_srv_sub *u, char *buf, size_t max)
{
    ap_srv_stream *h = u->h;
    size_t got = 0, cap = h->cfg.buffer;
    pthread_mutex_lock(&h->mu);
    while (got < max) {
        if (u->n && (u->off > 0 || u->ctl_off == u->ctl_len)) {
            sev *e = u->q[u->head];
            size_t k = e->len - u->off < max - got ? e->len - u->off : max - got;
            memcpy(buf + got, e->text + u->off, k);
            got += k;
            u->off += k;
            if (u->off == e->len) {
                sev_release(e);
                u->head = (u->head + 1) % cap;
                u->n--;
                u->off = 0;
            }
        } else if (u->ctl_off < u->ctl_len) {
            size_t k = u->ctl_len - u->ctl_off < max - got ? u->ctl_len - u->ctl_off : max - got;
            memcpy(buf + got, u->ctl + u->ctl_off, k);
            got += k;
            u->ctl_off += k;
            if (u->ctl_off == u->ctl_len && !u->ending)
                u->ctl_off = u->ctl_len = 0;
        } else
            break;
    }
    long ret;
    if (got) {
        u->last_write_ns = ap__clock_ns();
        ret = (long)got;
    } else if (u->ending) {
        ret = -1;
    } else {
        u->parked = 1;
        u->io.park(u->io.ctx);
        ret = 0;
    }
    pthread_mutex_unlock(&h->mu);
    return ret;
}

/* ---- publication ------------------------------------------------------------------ */

static sev *sev_make(ap_srv_stream *h, const ap_srv_stream_event *x)
{
    char tf[16], head[AP_SYMBOL_MAX + 200];
    ap__stream_tf_name(ap_series_timeframe(x->series), tf, sizeof tf);
    int64_t bar_ms = x->bar_t / 1000;
    int hl = snprintf(head, sizeof head, "event: prediction\nid: %s/%s:%" PRId64 ":%s\ndata: ",
                      ap_series_symbol(x->series), tf, bar_ms, x->model);
    if (hl < 0 || (size_t)hl >= sizeof head)
        return NULL;
    sev *e = malloc(sizeof *e + (size_t)hl + x->len + 3);
    if (!e)
        return NULL;
    e->refs = 0;
    e->seq = ++h->seq;
    e->series = x->series;
    e->bar_ms = bar_ms;
    snprintf(e->model, sizeof e->model, "%s", x->model);
    memcpy(e->text, head, (size_t)hl);
    memcpy(e->text + hl, x->data, x->len);
    memcpy(e->text + hl + x->len, "\n\n", 3);
    e->len = (size_t)hl + x->len + 2;
    return e;
}

void ap__stream_publish(ap_srv_stream *h, const ap_srv_stream_event *ev, size_t n)
{
    wake_list w = {0};
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < n; i++) {
        sev *e = sev_make(h, &ev[i]);
        if (!e) {
            atomic_fetch_add_explicit(&h->failed, 1, memory_order_relaxed);
            continue;
        }
        e->refs = 1; /* ours, until the end of this loop turn */
        atomic_fetch_add_explicit(&h->events, 1, memory_order_relaxed);
        sring *r = ring_of(h, ev[i].series);
        if (r)
            ring_push(h, r, e);
        for (ap_srv_sub *u = h->subs; u; u = u->next)
            if (sub_wants_series(u, ev[i].series) && sub_wants_model(u, ev[i].model) &&
                sub_deliver(h, u, e))
                wake_add(&w, u);
        sev_release(e);
    }
    pthread_mutex_unlock(&h->mu);
    wake_all(h, &w);
}

int ap__stream_models_for(ap_srv_stream *h, const ap_series *s, char (*names)[65], int max)
{
    int n = 0;
    for (int i = 0; i < h->nsink_models && n < max; i++) /* read-only once started */
        memcpy(names[n++], h->sink_models[i], sizeof names[0]);
    pthread_mutex_lock(&h->mu);
    for (ap_srv_sub *u = h->subs; u; u = u->next) {
        if ((u->ending && !u->gone) || !sub_wants_series(u, s))
            continue;
        for (int i = 0; i < u->nmodels; i++) {
            int seen = 0;
            for (int j = 0; j < n && !seen; j++)
                seen = !strcmp(names[j], u->models[i]);
            if (!seen && n < max)
                memcpy(names[n++], u->models[i], sizeof names[0]);
        }
    }
    pthread_mutex_unlock(&h->mu);
    return n;
}

void ap__stream_keepalive(ap_srv_stream *h, uint64_t now_ns)
{
    wake_list w = {0};
    uint64_t idle = (uint64_t)(h->cfg.keepalive_s * 1e9);
    pthread_mutex_lock(&h->mu);
    for (ap_srv_sub *u = h->subs, *next; u; u = next) {
        next = u->next;
        if (u->gone && now_ns >= u->linger_until_ns)
            unlist(h, u);
    }
    for (ap_srv_sub *u = h->subs; u; u = u->next)
        if (!u->gone && !u->n && u->ctl_len == 0 && !u->ending &&
            now_ns - u->last_write_ns >= idle) {
            sub_control(u, ": keep-alive\n\n", 0);
            u->last_write_ns = now_ns; /* one per period even if not read yet */
            if (u->parked)
                wake_add(&w, u);
        }
    pthread_mutex_unlock(&h->mu);
    wake_all(h, &w);
}

void ap__stream_end_all(ap_srv_stream *h)
{
    wake_list w = {0};
    pthread_mutex_lock(&h->mu);
    h->closing = 1;
    for (ap_srv_sub *u = h->subs; u; u = u->next) {
        if (u->gone)
            continue;
        sub_drop_queue(u);
        sub_control(u, "event: shutdown\ndata: {\"error\": \"server is shutting down\", "
                    "\"code\": \"cancelled\"}\n\n", 1);
        if (u->parked)
            wake_add(&w, u);
    }
    pthread_mutex_unlock(&h->mu);
    wake_all(h, &w);
}

void ap__stream_free_rings(ap_srv_stream *h)
{
    pthread_mutex_lock(&h->mu);
    while (h->subs) /* lingering ones; readers are gone with the HTTP front */
        unlist(h, h->subs);
    for (size_t i = 0; i < h->rcap; i++) {
        sring *r = &h->rings[i];
        for (size_t j = 0; r->series && j < r->n; j++)
            sev_release(r->ev[(r->head + j) % h->cfg.history]);
        free(r->ev);
    }
    free(h->rings);
    h->rings = NULL;
    h->rcap = h->rn = 0;
    pthread_mutex_unlock(&h->mu);
}
