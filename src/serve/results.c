/*
 * The async result store: a ring of max_async_results entries (the oldest is
 * overwritten when full, pending or not: a request whose entry was evicted
 * still runs, its result is dropped) with two chained hash indexes, by the
 * public request id (what clients hold) and by the batcher's request id
 * (what completions carry). Completed entries expire result_ttl after
 * completion. One mutex; every operation is O(1) apart from a chain walk.
 *
 * Public ids are unguessable: 64 random bits from getrandom(2), never 0 and
 * never the id of an entry the store holds (drawn again on a clash), so a
 * client cannot read or delete another client's result by counting. The
 * batcher's ids, which do count up, never leave the service on this path.
 */
#include "serve/serve_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/error.h"
#include "common/clock.h"

int ap__results_init(ap_results *rs, size_t cap, uint64_t ttl_ns, ap_error *err)
{
    memset(rs, 0, sizeof *rs);
    size_t nb = 16;
    while (nb < 2 * cap)
        nb *= 2;
    rs->e = calloc(cap, sizeof *rs->e);
    rs->buckets = malloc(nb * sizeof *rs->buckets);
    rs->bbuckets = malloc(nb * sizeof *rs->bbuckets);
    if (!rs->e || !rs->buckets || !rs->bbuckets) {
        free(rs->e);
        free(rs->buckets);
        free(rs->bbuckets);
        rs->e = NULL;
        return ap__error_set(err, AP_ENOMEM, "result store: out of memory for %zu entries", cap);
    }
    for (size_t i = 0; i < nb; i++)
        rs->buckets[i] = rs->bbuckets[i] = -1;
    rs->cap = cap;
    rs->nbuckets = nb;
    rs->ttl_ns = ttl_ns;
    pthread_mutex_init(&rs->mu, NULL);
    return AP_OK;
}

void ap__results_free(ap_results *rs)
{
    if (!rs->e)
        return;
    for (size_t i = 0; i < rs->cap; i++) {
        ap_model_release(rs->e[i].r.model);
        free(rs->e[i].text);
    }
    pthread_mutex_destroy(&rs->mu);
    free(rs->e);
    free(rs->buckets);
    free(rs->bbuckets);
    rs->e = NULL;
}

static size_t bucket_of(const ap_results *rs, uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)(id & (rs->nbuckets - 1));
}

static void unlink_chain(ap_results *rs, int32_t *head, int32_t idx, int by_batch)
{
    int32_t *p = head;
    while (*p != -1 && *p != idx)
        p = by_batch ? &rs->e[*p].bnext : &rs->e[*p].next;
    if (*p == idx)
        *p = by_batch ? rs->e[idx].bnext : rs->e[idx].next;
}

void ap__results_remove_locked(ap_results *rs, ap_async_entry *e)
{
    if (!e->r.state)
        return;
    int32_t idx = (int32_t)(e - rs->e);
    unlink_chain(rs, &rs->buckets[bucket_of(rs, e->r.id)], idx, 0);
    if (e->batch_id)
        unlink_chain(rs, &rs->bbuckets[bucket_of(rs, e->batch_id)], idx, 1);
    e->r.state = 0;
    ap_model_release(e->r.model);
    e->r.model = NULL;
    free(e->text);
    e->text = NULL;
}

/* A live entry with public id `id`, expired or not. */
static ap_async_entry *lookup(ap_results *rs, uint64_t id)
{
    for (int32_t i = rs->buckets[bucket_of(rs, id)]; i != -1; i = rs->e[i].next)
        if (rs->e[i].r.id == id)
            return &rs->e[i];
    return NULL;
}

/* 64 random bits; a clock-based mix only if the kernel has no entropy to give
   (getrandom blocks only before the pool is first initialised, at boot). */
static uint64_t random_id(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = ap__clock_ns() * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&v;
    return v;
}

ap_async_entry *ap__results_insert_locked(ap_results *rs, uint64_t batch_id)
{
    ap_async_entry *e = &rs->e[rs->head++ % rs->cap];
    if (e->r.state) {
        rs->evicted++;
        ap__results_remove_locked(rs, e);
    }
    uint64_t id;
    do
        id = random_id();
    while (id == 0 || lookup(rs, id));
    memset(e, 0, sizeof *e);
    e->r.id = id;
    e->batch_id = batch_id;
    e->r.state = AP_ASYNC_PENDING;
    int32_t idx = (int32_t)(e - rs->e);
    size_t b = bucket_of(rs, id);
    e->next = rs->buckets[b];
    rs->buckets[b] = idx;
    e->bnext = -1;
    if (batch_id) { /* 0: a front end's entry, completed by id (no batcher request) */
        b = bucket_of(rs, batch_id);
        e->bnext = rs->bbuckets[b];
        rs->bbuckets[b] = idx;
    }
    return e;
}

ap_async_entry *ap__results_find_locked(ap_results *rs, uint64_t id, uint64_t now_ns)
{
    ap_async_entry *e = lookup(rs, id);
    if (e && e->r.state != AP_ASYNC_PENDING && now_ns - e->r.t_done_ns > rs->ttl_ns) {
        ap__results_remove_locked(rs, e);
        return NULL;
    }
    return e;
}

static ap_async_entry *ap_results_find_batch_locked(ap_results *rs, uint64_t batch_id)
{
    for (int32_t i = rs->bbuckets[bucket_of(rs, batch_id)]; i != -1; i = rs->e[i].bnext)
        if (rs->e[i].batch_id == batch_id)
            return &rs->e[i];
    return NULL;
}

void ap__results_on_done(void *user, const ap_batch_completion *c)
{
    ap_results *rs = user;
    pthread_mutex_lock(&rs->mu);
    ap_async_entry *e = ap_results_find_batch_locked(rs, c->id);
    if (e && e->r.state == AP_ASYNC_PENDING) {
        ap_async_result *r = &e->r;
        r->status = c->status;
        r->state = c->status == AP_ECANCELLED ? AP_ASYNC_CANCELLED : AP_ASYNC_DONE;
        r->t_done_ns = ap__clock_ns();
        r->queue_us = c->queue_us;
        r->compute_us = c->compute_us;
        if (c->status == AP_OK) {
            r->pred = c->out[0];
            r->conf = c->out[1];
            size_t k = c->nout - 2;
            r->nouts = (int)(k < AP_ASYNC_OUTS ? k : AP_ASYNC_OUTS);
            memcpy(r->outs, c->out + 2, (size_t)r->nouts * sizeof *r->outs);
        } else
            snprintf(r->msg, sizeof r->msg, "%s", c->message);
    }
    pthread_mutex_unlock(&rs->mu);
}

int ap__service_result_open(ap_service *svc, uint64_t *id, ap_error *err)
{
    ap_results *rs = &svc->results;
    (void)err; /* the ring always has room: the oldest entry goes */
    pthread_mutex_lock(&rs->mu);
    ap_async_entry *e = ap__results_insert_locked(rs, 0);
    e->r.index = -1;
    e->r.meta.t_submit_ns = ap__clock_ns();
    *id = e->r.id;
    pthread_mutex_unlock(&rs->mu);
    return AP_OK;
}

void ap__service_result_close(ap_service *svc, uint64_t id, char *text, size_t len)
{
    ap_results *rs = &svc->results;
    pthread_mutex_lock(&rs->mu);
    ap_async_entry *e = ap__results_find_locked(rs, id, ap__clock_ns());
    if (e && e->r.state == AP_ASYNC_PENDING && !e->batch_id) {
        e->r.state = AP_ASYNC_DONE;
        e->r.status = AP_OK;
        e->r.t_done_ns = ap__clock_ns();
        e->text = text;
        e->text_len = len;
        text = NULL;
    }
    pthread_mutex_unlock(&rs->mu);
    free(text); /* deleted or evicted meanwhile: the answer is dropped */
}

void ap__service_result_counts(ap_service *svc, size_t *held, uint64_t *evicted)
{
    ap_results *rs = &svc->results;
    size_t n = 0;
    pthread_mutex_lock(&rs->mu);
    for (size_t i = 0; i < rs->cap; i++)
        n += rs->e[i].r.state != 0;
    *evicted = rs->evicted;
    pthread_mutex_unlock(&rs->mu);
    *held = n;
}
