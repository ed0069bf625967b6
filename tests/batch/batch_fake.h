/*
 * Fake models for the batcher tests. The expected output is a hand formula:
 * out[j] = 2 * x[j] + 1 + tag for each of the NCOLS inputs of a row (nout ==
 * ncols), so every caller can check its own rows came back, in order, and
 * which model version computed them. A gate lets a test hold the worker
 * inside a batch for as long as it likes, without timing guesses.
 */
#ifndef TESTS_BATCH_FAKE_H
#define TESTS_BATCH_FAKE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
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

#endif
