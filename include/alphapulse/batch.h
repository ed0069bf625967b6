/*
 * alphapulse: dynamic batching of inference requests.
 *
 * A model is opaque here: a context pointer plus a batch function. Each model
 * gets an ap_batcher; every batcher runs its batches on one shared worker pool
 * (ap_workers). Requests carry 1..n rows; the batcher glues queued requests
 * into one call of the batch function and hands each caller its own rows.
 *
 *   ap_workers *w;  ap_workers_create(0, &w, &err);           // 0 = one per core
 *   ap_batcher_config cfg;  ap_batcher_config_default(&cfg);
 *   cfg.ncols = 12; cfg.nout = 1;
 *   ap_batch_model m = { .run = my_batch_fn, .ctx = my_model };
 *   ap_batcher *b;  ap_batcher_create(w, &cfg, &m, &b, &err);
 *
 *   // synchronous: submit and block until the result is in out
 *   ap_batch_run(b, x, 1, out, 1, 0, &err);
 *   // asynchronous: the completion callback gets the result (on a worker
 *   // thread); the batcher keeps no results, on_done is required
 *   uint64_t id;
 *   ap_batch_submit_opts o = { .on_done = resume_connection, .user = conn };
 *   ap_batch_submit(b, x, 1, &o, &id, &err);
 *   // caller runs (cfg.caller_runs = 1, no queue delay): when b is idle,
 *   // ap_batch_submit itself runs the batch on the calling thread, so
 *   // on_done may be called before it returns
 *
 *   ap_batcher_free(b);  ap_workers_free(w);
 *
 * Batch closing: a batch is formed as soon as the queued rows reach
 * max_batch_rows, or when the OLDEST queued request has waited
 * max_queue_delay_us (0: whatever is queued goes at once). A batch holds whole
 * requests in FIFO order and at most max_batch_rows rows; a single request
 * larger than that runs alone. Requests are never split.
 *
 * Model versions (hot swap): each request holds a reference to the model
 * context it was submitted against (ap_batch_model.acquire at submit,
 * .release once it is complete), so requests queued against version 1 finish
 * on version 1 after ap_batcher_set_model switched new requests to version 2.
 * A batch never mixes contexts: it holds only requests of the context of the
 * oldest queued request. All contexts of one batcher share ncols and nout.
 *
 * Caller runs (ap_batcher_config.caller_runs): a thread hand-off per request
 * (submitter -> worker -> whoever waits) can cost more than a small model
 * call. With caller_runs set, a submit that would not wait for companions
 * (the delay in use is 0), finds no batch of this batcher running (no thread
 * is about to look at the queue) and finds the batcher lightly loaded (see
 * below) forms the batch itself, on the submitting thread: the head's model
 * context, FIFO, up to max_batch_rows — its own request plus whatever queued
 * — runs the batch function and delivers every request of the batch
 * (calls their callbacks) before ap_batch_submit returns. A submit that
 * finds a batch running queues its request without waking the pool: the
 * thread running that batch (worker or caller) takes what queued meanwhile
 * as its next batch, so concurrent requests still batch together. One submit
 * runs at most AP_BATCH_CALLER_MAX_BATCHES batches (then the pool takes
 * over); a full batch (max_batch_rows queued) still wakes an idle worker.
 * Lightly loaded: the mean idle time of the batcher before a submit (EWMA;
 * 0 for a submit that finds a batch running) is at least the measured batch
 * cost. A submitter that ran every batch itself under heavier load would
 * never batch (its queue is empty whenever it submits) and would be capped
 * at one request per batch cost, so then the pool runs them and batches
 * form; ap_batch_run, which blocks on the result anyway, ignores this rule.
 * ap_batch_submit_opts.queue_only opts one request out. Deadlines, cancel,
 * stats and model references behave as on a worker.
 *
 * Every request completes exactly once, through its on_done callback, with
 * one status: AP_OK, the batch function's error, AP_ETIMEDOUT (its deadline
 * passed before its batch started), or AP_ECANCELLED (ap_batch_cancel, or
 * ap_batcher_free while it was queued). Nothing is dropped silently. The
 * batcher keeps no completed results: a caller that wants to look a result
 * up later by id stores it from its callback (the server does).
 *
 * Thread safety: every call may be made from any thread at once, except the
 * _free calls, which must be the last call on their object (threads already
 * blocked in ap_batch_run on it return first).
 */
#ifndef ALPHAPULSE_BATCH_H
#define ALPHAPULSE_BATCH_H

#include "alphapulse/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ap_workers ap_workers;
typedef struct ap_batcher ap_batcher;

/*
 * Run one batch: X is nrows * ncols doubles, row-major; write nrows * nout
 * doubles to out. Return 0, or a negative ap_status and fill err: every
 * request of the batch then fails with that status and message. Called on a
 * worker thread (or, with caller_runs, inside ap_batch_submit on the
 * submitting thread) with no batcher lock held; calls for different batches
 * may run at the same time (also on the same model context).
 */
typedef int (*ap_batch_fn)(void *model_ctx, const double *X, size_t nrows, size_t ncols,
                           double *out, size_t nout, ap_error *err);

typedef struct ap_batch_model {
    ap_batch_fn run;
    void *ctx; /* the initial model context (may be NULL if run ignores it) */
    /*
     * Optional reference hooks (both or neither). acquire(ctx) is called once
     * per request at submit (and once when a context becomes the batcher's
     * current one), with the batcher's lock held: it must be quick (an atomic
     * increment) and must not call into this batcher. release(ctx) is called
     * once per acquire, with no batcher lock held, when the request is
     * complete (before its callback is called).
     */
    void (*acquire)(void *ctx);
    void (*release)(void *ctx);
} ap_batch_model;

typedef struct ap_batcher_config {
    const char *name;            /* for messages and stats; copied; NULL = "model" */
    size_t ncols;                /* input doubles per row (>= 1) */
    size_t nout;                 /* output doubles per row (>= 1) */
    size_t max_batch_rows;       /* batch closes at this many rows (>= 1) */
    uint64_t max_queue_delay_us; /* ...or when the oldest request waited this long */
    size_t max_queue_rows;       /* bound on queued rows; beyond: AP_EOVERLOAD */
    uint64_t default_timeout_us; /* request deadline = submit + this (or less) */
    /*
     * Adaptive delay: when > 0, the batcher waits for companions only while
     * that pays: the delay used is at most max_queue_delay_us and at most
     * this target minus the measured batch cost; it is 0 when the measured
     * arrival rate predicts no other row within that time, or when recent
     * waits gathered nobody (a closed loop: the caller waits for this very
     * request); one wait in 32 still probes for a change in load.
     */
    uint64_t adaptive_target_us;
    /*
     * Caller runs (see the top of this file): 1 = a submit that would not
     * wait (delay in use 0) and finds this batcher idle and lightly loaded
     * runs the batch on the submitting thread, inside ap_batch_submit (its
     * callbacks too). 0 = only the pool's workers run batches.
     */
    int caller_runs;
} ap_batcher_config;

/* Most batches one ap_batch_submit runs on its caller's thread (caller_runs). */
#define AP_BATCH_CALLER_MAX_BATCHES 4

/*
 * Defaults: max_batch_rows 64, max_queue_delay_us 200, max_queue_rows 4096,
 * default_timeout_us 1 s (INFERENCE_TIMEOUT of the original service),
 * adaptive off, caller_runs off (ap_batch_submit never runs a model unless
 * asked to); ncols / nout 0 (must be set).
 */
AP_API void ap_batcher_config_default(ap_batcher_config *cfg);

/* ---- worker pool --------------------------------------------------------- */

/* nthreads 0 = number of online cores. At most 1024. */
AP_API int ap_workers_create(unsigned nthreads, ap_workers **out, ap_error *err);
/* Frees the batchers still attached (as ap_batcher_free), then the threads. */
AP_API void ap_workers_free(ap_workers *w);
AP_API unsigned ap_workers_num_threads(const ap_workers *w);

/* ---- batcher ------------------------------------------------------------- */

AP_API int ap_batcher_create(ap_workers *w, const ap_batcher_config *cfg, const ap_batch_model *model,
                      ap_batcher **out, ap_error *err);
/*
 * Shutdown: queued requests complete as AP_ECANCELLED (their callbacks run on
 * the calling thread), running batches are waited for (their requests
 * delivered).
 */
AP_API void ap_batcher_free(ap_batcher *b);

/*
 * Hot swap: new requests use ctx (acquired now); requests already queued or
 * running keep the context they were submitted with. The previous current
 * context is released. Uses the hooks given at create.
 */
AP_API int ap_batcher_set_model(ap_batcher *b, void *ctx, ap_error *err);

/* ---- requests ------------------------------------------------------------ */

/* What a completion callback is told. Pointers are valid during the call only. */
typedef struct ap_batch_completion {
    uint64_t id;
    int status;          /* AP_OK or the failure */
    const char *message; /* "" on success, else what went wrong */
    const double *out;   /* nrows * nout outputs when status == AP_OK, else NULL */
    size_t nrows, nout;
    uint64_t queue_us;   /* submit -> batch start (or -> failure) */
    uint64_t compute_us; /* duration of the batch call; 0 if it never ran */
} ap_batch_completion;

/*
 * Called exactly once per request accepted by ap_batch_submit: on a worker
 * thread, on a thread inside ap_batch_submit or ap_workers_run_queued that
 * ran the batch (caller_runs; this may be the request's own submit, before
 * it returns), or on the thread calling ap_batch_cancel / ap_batcher_free
 * for requests cancelled while queued. No
 * batcher lock is held; it may submit new requests (with caller_runs such a
 * submit queues, and the running thread takes it next); it should be quick
 * (it occupies a worker or a submitter).
 */
typedef void (*ap_batch_done_fn)(void *user, const ap_batch_completion *c);

typedef struct ap_batch_submit_opts {
    /* 0 = the batcher's default_timeout_us; larger values are cut to it */
    uint64_t timeout_us;
    /* NULL = the batcher's current model context */
    void *model_ctx;
    /* required: where the request's result is delivered (see above) */
    ap_batch_done_fn on_done;
    void *user;
    /* 1 = never run on the submitting thread, whatever caller_runs says: for
     * a caller that holds a lock its own on_done takes */
    int queue_only;
    /* 1 = queue without running here and without waking the pool: the
     * submitter promises to call ap_workers_run_queued for this batcher
     * soon (an event loop gathers the requests of one pass this way and
     * runs them as one batch at the end of the pass) */
    int defer;
    /* with defer: the caller's tag (e.g. its event loop); a run_queued call
     * with this owner forms its batches of such requests (and untagged
     * ones) only, so each loop runs what its own pass deferred */
    const void *defer_owner;
} ap_batch_submit_opts;

/* 1 when ap_workers_run_queued runs this batcher's queue on the calling
 * thread (caller_runs, no queue delay, no adaptive delay); 0 when the pool
 * runs it. Constant for the batcher's life. */
AP_API int ap_batcher_flushable(const ap_batcher *b);

/*
 * Queue nrows rows (X: nrows * ncols doubles, copied). On success *id is the
 * request id: unique for the process lifetime (a 63-bit counter starting at a
 * random point, so ids also differ across restarts; never 0). opts and
 * opts->on_done are required: the result goes to on_done, exactly once, and
 * only if the submit returned AP_OK. Fails at once with AP_EOVERLOAD
 * (counted) when the queue is full, AP_ERANGE when nrows is 0 or exceeds
 * max_queue_rows, AP_EINVAL on bad arguments (NULL opts or on_done
 * included), AP_ECANCELLED when the batcher is shutting down. With
 * caller_runs the request may be complete (its callback called) on return.
 */
AP_API int ap_batch_submit(ap_batcher *b, const double *X, size_t nrows,
                    const ap_batch_submit_opts *opts, uint64_t *id, ap_error *err);

/*
 * Cancel: a queued request is removed and completes as AP_ECANCELLED at once
 * (its on_done called on this thread, before ap_batch_cancel returns); a
 * running one finishes its batch, its output is discarded and it completes
 * as AP_ECANCELLED (on the thread that ran the batch). Returns AP_OK, or
 * AP_ENOTFOUND if the id is unknown or the request is already being
 * delivered or delivered.
 */
AP_API int ap_batch_cancel(ap_batcher *b, uint64_t id, ap_error *err);

/*
 * Synchronous: submit and wait for completion (timeout_us as in
 * ap_batch_submit_opts; out_len >= nrows * nout). Returns the request status
 * (AP_OK: out holds the nrows * nout outputs; else err says why). The
 * caller enforces the deadline itself: a request still queued when it
 * passes fails with AP_ETIMEDOUT even when no worker is free to notice.
 * Built on an on_done callback into the caller's stack frame.
 */
AP_API int ap_batch_run(ap_batcher *b, const double *X, size_t nrows, double *out, size_t out_len,
                 uint64_t timeout_us, ap_error *err);

/*
 * Run what is queued on the given batchers (those a thread deferred
 * requests to, ap_batch_submit_opts.defer): for each batcher still attached
 * to w with queued requests, the calling thread runs
 * the batches itself when the batcher has caller_runs and no delay to wait
 * (up to AP_BATCH_CALLER_MAX_BATCHES, the rest goes to the pool), even while
 * another thread runs a batch of the same batcher (each event loop runs what
 * its own pass gathered); else it wakes the pool unless a batch is running
 * (its runner takes what queued when it is done). Pointers to batchers already freed are
 * recognised and skipped (they are looked up in w's list under its lock), so
 * a batcher freed since the submit is harmless. Callbacks run on this thread.
 * owner (may be NULL): the first batch takes only requests deferred with
 * this defer_owner or with none (FIFO among them); later ones take any.
 */
AP_API void ap_workers_run_queued(ap_workers *w, ap_batcher *const *batchers, size_t n,
                           const void *owner);

/* ---- statistics ---------------------------------------------------------- */

/* Latency histograms use common.h's scheme (AP_LATENCY_BUCKETS,
   ap_latency_bucket_bound). Batch-size buckets (upper bounds in rows: 1, 2, 4, ... 1024); last +Inf. */
#define AP_BATCH_SIZE_BUCKETS 12

/* Upper bound of batch-size bucket i in rows (UINT64_MAX for the last). */
AP_API uint64_t ap_batch_size_bound(int i);

/* Non-cumulative bucket counts; Prometheus wants running sums of them. */
typedef struct ap_batch_hist {
    uint64_t count;
    uint64_t sum_ns, min_ns, max_ns; /* min_ns is 0 when count is 0 */
    uint64_t bucket[AP_LATENCY_BUCKETS];
} ap_batch_hist;

typedef struct ap_batch_stats {
    uint64_t submitted;  /* accepted by ap_batch_submit */
    uint64_t rejected;   /* AP_EOVERLOAD at submit */
    uint64_t completed;  /* ran and succeeded */
    uint64_t failed;     /* ran, the batch function failed */
    uint64_t timed_out;  /* deadline passed before the batch started */
    uint64_t cancelled;  /* ap_batch_cancel / shutdown */
    uint64_t batches;    /* batch-function calls */
    uint64_t rows;       /* rows in those calls */
    uint64_t queue_depth;   /* requests queued now */
    uint64_t queue_rows;    /* rows queued now */
    uint64_t running;       /* requests in running batches now */
    uint64_t current_delay_us; /* delay in use (differs from config if adaptive) */
    ap_batch_hist queue_time;   /* per request: submit -> batch start */
    ap_batch_hist compute_time; /* per batch: the batch-function call */
    uint64_t batch_size[AP_BATCH_SIZE_BUCKETS]; /* per batch, rows */
} ap_batch_stats;

/* Snapshot of one batcher. */
AP_API int ap_batcher_stats(ap_batcher *b, ap_batch_stats *out);
/* Sum over the batchers attached to the pool now (current_delay_us: max). */
AP_API int ap_workers_stats(ap_workers *w, ap_batch_stats *out);

#ifdef __cplusplus
}
#endif
#endif
