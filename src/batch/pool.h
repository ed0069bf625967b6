/*
 * Internal to src/batch: the worker pool (pool.c). The pool knows nothing of
 * batchers: it runs the jobs of "sources" attached to it, through the
 * functions each source registers (ap_pool_ops). The batcher is one such
 * source (batcher.c); the pool never calls it by name.
 */
#ifndef AP_BATCH_POOL_H
#define AP_BATCH_POOL_H

#include "alphapulse/batch.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A growable buffer a worker keeps across jobs (or a caller's stack buffer). */
typedef struct ap_scratch {
    void *buf;
    size_t cap;   /* bytes */
    int heap;     /* buf is malloc'd: the owner may realloc / must free it */
} ap_scratch;

/* Bytes a worker lends a source's take() for one job (aligned for any type). */
#define AP_POOL_JOB_MAX 128

typedef struct ap_pool_ops {
    /*
     * Called with the pool mutex held (take the source's own lock inside):
     * initialize job (AP_POOL_JOB_MAX bytes) and fill it with ready work, if
     * any. Lower *wake to the monotonic time (ns) at which the source next
     * needs a worker; set *more when work is left after this job. Returns 1
     * when job holds work for run(), else 0. Quick: it holds up the pool.
     */
    int (*take)(void *src, void *job, uint64_t *wake, int *more);
    /* Called with no pool lock: run a job take() filled, to its end. */
    void (*run)(void *job, ap_scratch *s);
    /* ap_workers_free: free a source still attached; it must detach itself
     * (ap__pool_detach_locked) before it returns. */
    void (*free)(void *src);
} ap_pool_ops;

/* Attach a source (its ops must outlive it). AP_OK or AP_ENOMEM. */
int ap__pool_attach(ap_workers *w, void *src, const ap_pool_ops *ops);

/* The pool mutex: held around the _locked calls (first in the lock order). */
void ap__pool_lock(ap_workers *w);
void ap__pool_unlock(ap_workers *w);
/* Detach src (no worker reaches it once the pool mutex is released). */
void ap__pool_detach_locked(ap_workers *w, const void *src);
/* 1 if src is attached now. */
int ap__pool_has_locked(const ap_workers *w, const void *src);
/* Wake one idle worker, if any, to look at the sources. */
void ap__pool_signal_locked(ap_workers *w);
/* The same, taking the pool mutex. */
void ap__pool_wake(ap_workers *w);

/* Call fn on every attached source, the pool mutex held. */
void ap__pool_for_each(ap_workers *w, void (*fn)(void *src, void *arg), void *arg);

/* A fresh id: unique for the process lifetime, one counter per pool (63-bit,
 * starting at a random point, never 0). Lock-free. */
uint64_t ap__pool_next_id(ap_workers *w);

/* ---- condition variables on the monotonic clock (shared with the batcher) ---- */

static inline void ap__cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

/* Wait on cv until t_ns (monotonic; UINT64_MAX = no time limit). */
static inline void ap__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t t_ns)
{
    if (t_ns == UINT64_MAX) {
        pthread_cond_wait(cv, mu);
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000u),
                          .tv_nsec = (long)(t_ns % 1000000000u)};
    pthread_cond_timedwait(cv, mu, &ts);
}

#endif
