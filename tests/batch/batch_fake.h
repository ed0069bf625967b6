/*
 * Fake models for the batcher tests. The expected output is a hand formula:
 * out[j] = 2 * x[j] + 1 + tag for each of the NCOLS inputs of a row (nout ==
 * ncols), so every caller can check its own rows came back, in order, and
 * which model version computed them. A gate lets a test hold the worker
 * inside a batch for as long as it likes, without timing guesses.
 *
 * The batcher keeps no results (every request completes through on_done):
 * a collector is the tests' own result store. Its on_done (collect_done)
 * copies each completion (status, message, outputs, thread) into a table
 * keyed by id; collect_wait waits for an id with a timeout and takes its
 * result, as a caller's async store would. It counts a second completion
 * of one id (dups) so every test can assert "exactly once".
 */
#ifndef TESTS_BATCH_FAKE_H
#define TESTS_BATCH_FAKE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alphapulse.h"

#define NCOLS 2

typedef struct fake {
    double tag;
    _Atomic long calls, rows, max_rows, refs;
    _Atomic int entered; /* batches that reached the gate */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int gated, open;
    double fail_below; /* a row with x[0] < this fails the batch */
} fake;

static inline void fake_init(fake *f, double tag, int gated)
{
    memset(f, 0, sizeof *f);
    f->tag = tag;
    f->gated = gated;
    f->fail_below = -1e300;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
}

static inline void fake_destroy(fake *f)
{
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
}

static inline void fake_open(fake *f)
{
    pthread_mutex_lock(&f->mu);
    f->open = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static inline int fake_run(void *ctx, const double *X, size_t nrows, size_t ncols, double *out,
                           size_t nout, ap_error *err)
{
    fake *f = ctx;
    atomic_fetch_add(&f->calls, 1);
    atomic_fetch_add(&f->rows, (long)nrows);
    long m = atomic_load(&f->max_rows);
    while ((long)nrows > m && !atomic_compare_exchange_weak(&f->max_rows, &m, (long)nrows))
        ;
    atomic_fetch_add(&f->entered, 1);
    if (f->gated) {
        pthread_mutex_lock(&f->mu);
        while (!f->open)
            pthread_cond_wait(&f->cv, &f->mu);
        pthread_mutex_unlock(&f->mu);
    }
    if (ncols != NCOLS || nout != NCOLS) {
        snprintf(err->msg, sizeof err->msg, "fake: shape %zux%zu", ncols, nout);
        return err->code = AP_EINVAL;
    }
    for (size_t i = 0; i < nrows; i++) {
        if (X[i * ncols] < f->fail_below) {
            snprintf(err->msg, sizeof err->msg, "fake: row %zu has x0=%g", i, X[i * ncols]);
            return err->code = AP_EFORMAT;
        }
        for (size_t j = 0; j < ncols; j++)
            out[i * nout + j] = 2 * X[i * ncols + j] + 1 + f->tag;
    }
    return 0;
}

static inline void fake_acquire(void *ctx) { atomic_fetch_add(&((fake *)ctx)->refs, 1); }
static inline void fake_release(void *ctx) { atomic_fetch_sub(&((fake *)ctx)->refs, 1); }

static inline uint64_t t_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline void sleep_us(uint64_t us)
{
    struct timespec ts = {.tv_sec = (time_t)(us / 1000000u), .tv_nsec = (long)(us % 1000000u) * 1000};
    nanosleep(&ts, NULL);
}

/* Poll until a stats counter reaches a value (5 s cap, then the test fails on the value). */
#define WAIT_STAT(b, field, want)                                                                  \
    do {                                                                                           \
        ap_batch_stats ws_;                                                                        \
        for (int ws_i = 0; ws_i < 5000; ws_i++) {                                                  \
            ap_batcher_stats((b), &ws_);                                                           \
            if (ws_.field >= (uint64_t)(want))                                                     \
                break;                                                                             \
            sleep_us(1000);                                                                        \
        }                                                                                          \
    } while (0)

/* Wait until n batches reached the gate (the worker is now stuck inside). */
static inline void wait_entered(fake *f, int n)
{
    for (int i = 0; i < 5000 && atomic_load(&f->entered) < n; i++)
        sleep_us(1000);
}

/* ---- completion collector ------------------------------------------------ */

/* collect_wait: not complete within the timeout (not an ap_status) */
#define COLLECT_PENDING 1

typedef struct collected {
    uint64_t id;   /* 0: empty slot */
    int calls;     /* completions seen for this id (1 expected) */
    int status;
    int taken;     /* collect_wait took it */
    size_t nout;   /* outputs copied (nrows * nout when AP_OK) */
    double *out;
    char msg[AP_ERROR_MSG_MAX];
    pthread_t thread; /* the thread that ran on_done */
    uint64_t queue_us;
} collected;

typedef struct collector {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a completion arrived */
    collected *slot;   /* open addressing, linear probing, never deleted */
    size_t mask, n;
    long dups;         /* completions of an id already completed */
    long overflow;     /* completions that found the table full */
} collector;

/* A collector for up to max_requests completions. */
static inline void collect_init(collector *c, size_t max_requests)
{
    memset(c, 0, sizeof *c);
    size_t cap = 16;
    while (cap < 2 * max_requests)
        cap <<= 1;
    c->slot = calloc(cap, sizeof *c->slot);
    c->mask = cap - 1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &a);
    pthread_condattr_destroy(&a);
}

static inline void collect_destroy(collector *c)
{
    for (size_t i = 0; i <= c->mask; i++)
        free(c->slot[i].out);
    free(c->slot);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

/* The slot of id (c->mu held): its entry, or the empty slot where it goes. */
static inline collected *collect_slot(collector *c, uint64_t id)
{
    size_t i = (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & c->mask;
    for (size_t k = 0; k <= c->mask; k++, i = (i + 1) & c->mask)
        if (c->slot[i].id == id || c->slot[i].id == 0)
            return &c->slot[i];
    return NULL;
}

/* ap_batch_done_fn: user is the collector. */
static inline void collect_done(void *user, const ap_batch_completion *d)
{
    collector *c = user;
    pthread_mutex_lock(&c->mu);
    collected *e = collect_slot(c, d->id);
    if (e && e->id == d->id) {
        e->calls++;
        c->dups++;
    } else if (!e || c->n > c->mask / 2) { /* kept at most half full */
        c->overflow++;
    } else {
        e->id = d->id;
        e->calls = 1;
        e->status = d->status;
        e->thread = pthread_self();
        e->queue_us = d->queue_us;
        snprintf(e->msg, sizeof e->msg, "%s", d->message);
        if (d->status == AP_OK && d->out) {
            e->nout = d->nrows * d->nout;
            e->out = malloc(e->nout * sizeof *e->out);
            memcpy(e->out, d->out, e->nout * sizeof *e->out);
        }
        c->n++;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Completions seen for id so far (0: none yet), without waiting. */
static inline int collect_calls(collector *c, uint64_t id)
{
    pthread_mutex_lock(&c->mu);
    collected *e = collect_slot(c, id);
    int n = e && e->id == id ? e->calls : 0;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* A copy of id's entry (outputs not copied), waiting up to timeout_us for
 * it; 0 if it did not complete in time. */
static inline int collect_peek(collector *c, uint64_t id, uint64_t timeout_us, collected *copy)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t end = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + timeout_us * 1000;
    struct timespec until = {(time_t)(end / 1000000000u), (long)(end % 1000000000u)};
    pthread_mutex_lock(&c->mu);
    collected *e;
    int rc = 0;
    while (!((e = collect_slot(c, id)) && e->id == id) &&
           pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
        ;
    if (e && e->id == id) {
        *copy = *e;
        copy->out = NULL;
        rc = 1;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/*
 * Wait up to timeout_us (0 = poll) for id's completion and take it: returns
 * its status (AP_OK: out holds its outputs, out_len must hold them all, else
 * AP_ERANGE and the result stays), the message in err; COLLECT_PENDING if
 * not complete in time; AP_ENOTFOUND if already taken.
 */
static inline int collect_wait(collector *c, uint64_t id, uint64_t timeout_us, double *out,
                               size_t out_len, ap_error *err)
{
    collected e;
    if (!collect_peek(c, id, timeout_us, &e)) {
        snprintf(err->msg, sizeof err->msg, "request %llu: not complete",
                 (unsigned long long)id);
        return err->code = COLLECT_PENDING;
    }
    pthread_mutex_lock(&c->mu);
    collected *s = collect_slot(c, id);
    int rc = s->status;
    if (s->taken)
        rc = AP_ENOTFOUND;
    else if (rc == AP_OK && out_len < s->nout)
        rc = AP_ERANGE;
    else if (rc == AP_OK)
        memcpy(out, s->out, s->nout * sizeof *out);
    if (rc != AP_ERANGE && rc != AP_ENOTFOUND)
        s->taken = 1;
    snprintf(err->msg, sizeof err->msg, "%s", s->msg);
    err->code = rc;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* Submit options that deliver into c. */
static inline ap_batch_submit_opts collect_opts(collector *c)
{
    ap_batch_submit_opts o = {.on_done = collect_done, .user = c};
    return o;
}

#endif
