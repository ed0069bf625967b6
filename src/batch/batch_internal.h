/*
 * Internal to src/batch: the structures the batcher's files share (a request
 * record, a batcher, a job) and the tiny helpers they all use. No functions
 * with a body beyond one-liners live here; each file's own header (pool.h,
 * record.h, batcher.h, stats.h) declares what that file offers.
 *
 * Files, each calling only files below it (no call goes back up; the pool
 * reaches a batcher only through the function pointers it registered):
 *   request.c  ap_batch_submit / _cancel / _run: the public request calls
 *   batcher.c  a batcher: create/free/hot swap, batch formation, adaptive
 *              delay, running a batch (for the pool and for caller runs)
 *   record.c   one request record: allocation, final status, delivery
 *              (record.h: the inline id table and queue list operations)
 *   stats.c    histograms and the statistics snapshots (uses pool.c)
 *   pool.c     the worker pool: threads that run jobs of attached sources
 *
 * Locks: the pool mutex (pool.c) guards the list of attached batchers, the
 * idle count and the timer owner; each batcher mutex (b->mu) guards its
 * queue, its id table, its counters and every request it owns. Order: pool
 * mutex, then b->mu. No lock is held while a batch function, a completion
 * callback or a model release hook runs.
 */
#ifndef AP_BATCH_INTERNAL_H
#define AP_BATCH_INTERNAL_H

#include "alphapulse/batch.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* QUEUED (in the queue and the id table) -> RUNNING (in a batch being run;
 * still in the id table, so it can be cancelled) -> FINISHING (status
 * decided, out of the id table, being delivered; freed after its callback) */
enum { ST_QUEUED, ST_RUNNING, ST_FINISHING };

typedef struct rec rec;
struct rec {
    uint64_t id;
    rec *prev, *next; /* queue, while QUEUED */
    rec *hnext;       /* id table chain */
    rec *link;        /* batch or delivery list */
    void *model;      /* acquired at submit, released at delivery */
    const void *owner; /* defer_owner of a deferred request, else NULL */
    ap_batch_done_fn on_done;
    void *user;
    size_t nrows;
    uint64_t t_submit, deadline, close_by, t_start, t_done, compute_ns;
    int state, status;
    int cancel_req; /* cancelled while RUNNING: deliver as AP_ECANCELLED */
    int shutdown;   /* cancelled by ap_batcher_free */
    char *msg;      /* batch-function message, when it failed */
    double *X, *out;
    double data[];
};

/* A doubly linked list (the queue, through prev/next) or a singly linked
 * one (a batch or a delivery list, through link). */
typedef struct rlist {
    rec *head, *tail;
} rlist;

struct ap_batcher {
    ap_workers *w;
    char name[64];
    ap_batcher_config cfg;
    ap_batch_fn run;
    void (*acquire)(void *);
    void (*release)(void *);

    pthread_mutex_t mu;
    pthread_cond_t idle_cv; /* shutdown: active reached 0 */
    void *model;            /* current context (a reference held) */
    rlist q;                /* queued, FIFO */
    size_t qlen, qrows;
    rec **table;     /* id -> queued or running request (for cancel) */
    size_t tmask;
    size_t active;   /* jobs taken, not yet fully delivered */
    size_t running;  /* requests in running batches */
    size_t runners;  /* batches taken, not yet delivered (they re-check the queue) */
    int closing;
    /* adaptive delay: exponentially weighted batch cost and row inter-arrival */
    double ewma_cost_ns, ewma_gap_ns;
    double ewma_joined; /* requests that joined a head while it waited */
    unsigned probe;
    uint64_t last_arrival;
    uint64_t cur_delay_ns; /* delay for the current head (adaptive) */
    /* caller runs: when the last batch call ended; idle time before a submit */
    uint64_t last_end;
    double ewma_idle_ns;
    ap_batch_stats st;
};

/* Work taken from one batcher's queue under b->mu, run without it. */
typedef struct job {
    ap_batcher *b;
    const void *owner; /* set: take only requests of this owner or of none */
    rlist batch; /* requests to run, FIFO */
    size_t nreq, rows;
    void *model;
    rlist dead; /* timed out in the queue, finalized */
} job;

static inline uint64_t add_sat(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }
static inline uint64_t us_to_ns(uint64_t us) { return us > UINT64_MAX / 1000 ? UINT64_MAX : us * 1000; }

/* Queue delay for the current head (b->mu held). */
static inline uint64_t current_delay(const ap_batcher *b)
{
    return b->cfg.adaptive_target_us ? b->cur_delay_ns : us_to_ns(b->cfg.max_queue_delay_us);
}

#endif
