/*
 * The worker pool: its threads, the list of attached job sources, the idle
 * and timer bookkeeping, and the request id counter (ap_workers_create /
 * _free / _num_threads). Generic: a source (a batcher) registers take / run /
 * free functions (pool.h) and the pool calls only those; it includes no
 * batcher header.
 *
 * Scheduling: there is no timer thread. Idle workers scan the sources
 * (round robin); a worker that finds nothing ready sleeps until the earliest
 * moment a source said it becomes ready (a batch delay, a deadline
 * midpoint). Only one idle worker sleeps on a timer at a time (w->timer_at);
 * the others wait to be signalled. A worker that takes a job passes the
 * baton first: it wakes an idle worker when work is left, when sources it
 * did not scan remain, or when a timer is needed that nobody holds.
 */
#include "batch/pool.h"
#include "common/error.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

typedef struct source {
    void *src;
    const ap_pool_ops *ops;
} source;

struct ap_workers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    source *srcs;
    size_t nsrc, capsrc, rr;
    pthread_t *th;
    unsigned nth;
    unsigned idle;
    uint64_t timer_at; /* wake time of the one idle worker on a timer; 0 = none */
    int stop;
    _Atomic uint64_t next_id;
};

static void *worker_main(void *arg)
{
    ap_workers *w = arg;
    ap_scratch s = {.heap = 1};
    alignas(max_align_t) unsigned char job[AP_POOL_JOB_MAX];
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        uint64_t wake = UINT64_MAX;
        int more = 0;
        size_t n = w->nsrc, k;
        const ap_pool_ops *got = NULL;
        for (k = 0; k < n; k++) {
            source *p = &w->srcs[(w->rr + k) % n];
            if (p->ops->take(p->src, job, &wake, &more)) {
                got = p->ops;
                break;
            }
        }
        if (got) {
            w->rr = (w->rr + k + 1) % n;
            /* pass the baton: an idle worker takes what is left, or the
             * timer of a source scanned before this one if nobody holds it */
            int timer_needed = wake != UINT64_MAX && !(w->timer_at && w->timer_at <= wake);
            if ((more || k + 1 < n || timer_needed) && w->idle > 0)
                pthread_cond_signal(&w->cv);
            pthread_mutex_unlock(&w->mu);
            got->run(job, &s);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        w->idle++;
        if (wake == UINT64_MAX || (w->timer_at && w->timer_at <= wake)) {
            pthread_cond_wait(&w->cv, &w->mu);
        } else {
            w->timer_at = wake;
            ap__cond_wait_until(&w->cv, &w->mu, wake);
            if (w->timer_at == wake)
                w->timer_at = 0;
        }
        w->idle--;
    }
    pthread_mutex_unlock(&w->mu);
    if (s.heap)
        free(s.buf);
    return NULL;
}

static uint64_t id_salt(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) * 0x9E3779B97F4A7C15ull ^
            (uint64_t)getpid() << 32;
    }
    /* 62 random bits, then counting up: 2^62 ids before leaving 63 bits */
    return (v >> 2) | 1;
}

uint64_t ap__pool_next_id(ap_workers *w)
{
    return atomic_fetch_add_explicit(&w->next_id, 1, memory_order_relaxed);
}

int ap_workers_create(unsigned nthreads, ap_workers **out, ap_error *err)
{
    if (!out)
        return ap__error_set(err, AP_EINVAL, "ap_workers_create: out is NULL");
    *out = NULL;
    if (nthreads == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = c > 0 ? (unsigned)c : 1;
    }
    if (nthreads > 1024)
        return ap__error_set(err, AP_ERANGE, "ap_workers_create: %u threads (at most 1024)",
                            nthreads);
    ap_workers *w = calloc(1, sizeof *w);
    if (!w || !(w->th = calloc(nthreads, sizeof *w->th))) {
        free(w);
        return ap__error_set(err, AP_ENOMEM, "ap_workers_create: no memory");
    }
    pthread_mutex_init(&w->mu, NULL);
    ap__cond_init_mono(&w->cv);
    atomic_init(&w->next_id, id_salt());
    for (unsigned i = 0; i < nthreads; i++) {
        int e = pthread_create(&w->th[i], NULL, worker_main, w);
        if (e) {
            w->nth = i;
            ap_workers_free(w);
            return ap__error_set(err, AP_ENOMEM, "ap_workers_create: thread %u of %u: %s", i,
                                nthreads, strerror(e));
        }
        w->nth = i + 1;
    }
    *out = w;
    return AP_OK;
}

unsigned ap_workers_num_threads(const ap_workers *w) { return w ? w->nth : 0; }

void ap_workers_free(ap_workers *w)
{
    if (!w)
        return;
    /* each source's free detaches it: the list shrinks by one per round */
    for (;;) {
        pthread_mutex_lock(&w->mu);
        source last = w->nsrc ? w->srcs[w->nsrc - 1] : (source){0};
        pthread_mutex_unlock(&w->mu);
        if (!last.src)
            break;
        last.ops->free(last.src);
    }
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (unsigned i = 0; i < w->nth; i++)
        pthread_join(w->th[i], NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->srcs);
    free(w->th);
    free(w);
}

int ap__pool_attach(ap_workers *w, void *src, const ap_pool_ops *ops)
{
    pthread_mutex_lock(&w->mu);
    if (w->nsrc == w->capsrc) {
        size_t nc = w->capsrc ? 2 * w->capsrc : 8;
        source *ns = realloc(w->srcs, nc * sizeof *ns);
        if (!ns) {
            pthread_mutex_unlock(&w->mu);
            return AP_ENOMEM;
        }
        w->srcs = ns;
        w->capsrc = nc;
    }
    w->srcs[w->nsrc++] = (source){src, ops};
    pthread_mutex_unlock(&w->mu);
    return AP_OK;
}

void ap__pool_lock(ap_workers *w) { pthread_mutex_lock(&w->mu); }
void ap__pool_unlock(ap_workers *w) { pthread_mutex_unlock(&w->mu); }

void ap__pool_detach_locked(ap_workers *w, const void *src)
{
    for (size_t i = 0; i < w->nsrc; i++)
        if (w->srcs[i].src == src) {
            w->srcs[i] = w->srcs[--w->nsrc];
            break;
        }
    w->rr = 0;
}

int ap__pool_has_locked(const ap_workers *w, const void *src)
{
    for (size_t i = 0; i < w->nsrc; i++)
        if (w->srcs[i].src == src)
            return 1;
    return 0;
}

void ap__pool_signal_locked(ap_workers *w)
{
    if (w->idle > 0)
        pthread_cond_signal(&w->cv);
}

void ap__pool_wake(ap_workers *w)
{
    pthread_mutex_lock(&w->mu);
    if (w->idle > 0)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void ap__pool_for_each(ap_workers *w, void (*fn)(void *src, void *arg), void *arg)
{
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < w->nsrc; i++)
        fn(w->srcs[i].src, arg);
    pthread_mutex_unlock(&w->mu);
}
