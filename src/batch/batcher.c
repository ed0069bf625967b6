/*
 * A batcher: its life (ap_batcher_create / _free / _set_model /
 * _flushable, ap_batcher_config_default), and what turns its queue into
 * batch-function calls: batch formation, the adaptive delay, running a batch
 * and handing each request its rows — on a pool worker (the take / run
 * functions this file registers with the pool) or on a caller's thread
 * (caller runs, ap_workers_run_queued).
 *
 * Uses record.c (request records, delivery), stats.c (histograms) and
 * pool.c (attach, wake); request.c uses this file, never the other way.
 *
 * Caller runs (cfg.caller_runs): a submit with no delay to wait, no batch
 * of its batcher running (b->runners == 0) and a lightly loaded batcher
 * takes the batch and runs it on its own thread (ap__batcher_caller_run), as
 * a worker would. b->runners counts batches taken and not yet delivered;
 * every such runner re-checks the queue when it is done (a worker by
 * rescanning, a caller in ap__batcher_caller_run), so a submit that sees
 * runners > 0 may queue without waking the pool: the requests that queue
 * during a batch become the next batch of the same thread, and the hand-off
 * to a worker is saved. The runner's decrement and its re-check are under
 * b->mu, the same lock the submit queues under, so nothing queued while
 * runners > 0 is missed.
 *
 * Deferred submits (opts.defer): an event loop that handles several
 * requests in one pass queues them without running or waking anything and
 * then calls ap_workers_run_queued on the batchers it touched: the rows
 * that arrived together become one batch, on the loop's own thread. The
 * request records carry the loop's tag (rec.owner): a loop's first batch
 * takes only its own deferred rows (and untagged ones), so two loops do not
 * run each other's rows while each waits for its own. When another thread
 * is running a batch of that batcher, run_queued still runs the queued rows
 * on the caller (the caller is not blocked behind it); a batcher that
 * waits for companions (a delay) is woken instead (ap_batcher_flushable).
 */
#include "batch/batcher.h"
#include "batch/pool.h"
#include "batch/record.h"
#include "batch/stats.h"
#include "common/clock.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- batch formation ----------------------------------------------------- */

/*
 * Adaptive delay, decided once per head. Wait only if
 *   - the budget (target - measured batch cost) is positive,
 *   - the arrival rate predicts at least one more row within it, and
 *   - waiting has been paying off: requests did join heads that waited.
 * The last rule catches closed loops (a client waiting for this very
 * request sends nothing meanwhile, however high its rate looks); one head
 * in 32 still waits, as a probe, so a change in load is noticed.
 */
void ap__batcher_decide_delay_locked(ap_batcher *b)
{
    if (!b->cfg.adaptive_target_us)
        return;
    uint64_t cfg = us_to_ns(b->cfg.max_queue_delay_us);
    double budget = (double)us_to_ns(b->cfg.adaptive_target_us) - b->ewma_cost_ns;
    uint64_t d = 0;
    if (budget > 0 && b->ewma_gap_ns > 0 && budget >= b->ewma_gap_ns &&
        (b->ewma_joined >= 0.5 || ++b->probe % 32 == 0))
        d = budget < (double)cfg ? (uint64_t)budget : cfg;
    b->cur_delay_ns = d;
}

/* A queued request whose deadline passed: finalized into the job's dead list. */
static void time_out_locked(ap_batcher *b, job *j, rec *r, uint64_t now)
{
    queue_remove(b, r);
    finalize_locked(b, r, AP_ETIMEDOUT);
    r->t_done = now;
    rl_append(&j->dead, r);
}

void ap__batcher_take_locked(ap_batcher *b, job *j, uint64_t now)
{
    /* expired heads first, so the batch's context is that of a live request */
    while (b->q.head && b->q.head->deadline <= now)
        time_out_locked(b, j, b->q.head, now);
    if (!b->q.head)
        return;
    uint64_t max = b->cfg.max_batch_rows;
    void *model = NULL;
    int have_model = 0;
    size_t rows = 0;
    for (rec *r = b->q.head, *nx; r && rows < max; r = nx) {
        nx = r->next;
        if (r->deadline <= now) {
            time_out_locked(b, j, r, now);
            continue;
        }
        if (j->owner && r->owner && r->owner != j->owner)
            continue; /* another loop's pass: that loop runs it */
        if (!have_model) { /* the context of the first request taken */
            model = r->model;
            have_model = 1;
        }
        if (r->model != model) /* never mix model versions in one batch */
            continue;
        if (rows && rows + r->nrows > max)
            break;
        queue_remove(b, r);
        r->state = ST_RUNNING;
        r->t_start = now;
        ap__batch_hist_add(&b->st.queue_time, now - r->t_submit);
        rl_append(&j->batch, r);
        rows += r->nrows;
        j->nreq++;
    }
    j->rows = rows;
    j->model = model;
    b->running += j->nreq;
    if (j->batch.head)
        b->runners++;
    if (b->q.head)
        ap__batcher_decide_delay_locked(b);
}

/*
 * The pool's take (pool mutex held): time out expired queued requests, and
 * take a batch if one is ready. Lowers *wake to when this batcher next needs
 * a worker. Returns 1 if the job has something to do; *more is set when work
 * is left in the queue.
 */
static int pool_take(void *src, void *jobp, uint64_t *wake, int *more)
{
    ap_batcher *b = src;
    job *j = jobp;
    memset(j, 0, sizeof *j);
    pthread_mutex_lock(&b->mu);
    /* read the clock under the lock: a request submitted a moment ago must
     * not look younger than "now" (it would wait for a timer needlessly) */
    uint64_t now = ap__clock_ns();
    /* expired heads first, so readiness is judged on a live request */
    while (b->q.head && b->q.head->deadline <= now)
        time_out_locked(b, j, b->q.head, now);
    if (b->q.head) {
        uint64_t max = b->cfg.max_batch_rows;
        int ready = b->qrows >= max, by_time = 0;
        if (!ready) {
            /* short queue (< max rows): check all deadlines; close by the
             * earliest deadline midpoint so a short timeout is not spent waiting */
            uint64_t close_at = add_sat(b->q.head->t_submit, current_delay(b));
            for (rec *r = b->q.head, *nx; r; r = nx) {
                nx = r->next;
                if (r->deadline <= now)
                    time_out_locked(b, j, r, now);
                else if (r->close_by < close_at)
                    close_at = r->close_by;
            }
            ready = b->q.head && now >= close_at;
            by_time = ready;
            if (b->q.head && !ready && close_at < *wake)
                *wake = close_at;
        }
        if (ready) {
            ap__batcher_take_locked(b, j, now);
            if (by_time && b->cfg.adaptive_target_us && b->cur_delay_ns)
                b->ewma_joined = 0.8 * b->ewma_joined + 0.2 * (double)(j->nreq - 1);
            if (b->q.head)
                *more = 1;
        }
    }
    int got = j->batch.head || j->dead.head;
    if (got) {
        j->b = b;
        b->active++;
    }
    pthread_mutex_unlock(&b->mu);
    return got;
}

/* ---- running a batch ----------------------------------------------------- */

/*
 * Run a job taken by pool_take / ap__batcher_take_locked and deliver it. end:
 * the END_* counts dropped at delivery (a job with a batch holds a runner
 * count besides its active count).
 */
static void run_job(job *j, ap_scratch *s, int end)
{
    ap_batcher *b = j->b;
    if (!j->batch.head) {
        ap__rec_deliver(b, j->dead.head, end);
        return;
    }
    if (j->dead.head)
        ap__rec_deliver(b, j->dead.head, END_NONE);

    size_t nc = b->cfg.ncols, no = b->cfg.nout, rows = j->rows;
    const double *X;
    double *out;
    ap_error e = {0};
    int rc = AP_OK;
    if (j->nreq == 1) {
        X = j->batch.head->X;
        out = j->batch.head->out;
    } else {
        size_t need = rows * (nc + no) * sizeof(double);
        if (need > s->cap) {
            void *nb = realloc(s->heap ? s->buf : NULL, need);
            if (!nb) {
                rc = ap__error_set(&e, AP_ENOMEM, "no memory for a batch of %zu rows", rows);
            } else {
                s->buf = nb;
                s->cap = need;
                s->heap = 1;
            }
        }
        double *x = s->buf;
        if (rc == AP_OK)
            for (rec *r = j->batch.head; r; r = r->link) {
                memcpy(x, r->X, r->nrows * nc * sizeof *x);
                x += r->nrows * nc;
            }
        X = s->buf;
        out = s->buf ? (double *)s->buf + rows * nc : NULL;
    }
    uint64_t t0 = ap__clock_ns(), t1 = t0;
    if (rc == AP_OK) {
        rc = b->run(j->model, X, rows, nc, out, no, &e);
        t1 = ap__clock_ns();
        if (rc > 0) /* the contract says negative; do not report success */
            rc = ap__error_set(&e, AP_EINVAL, "batch function returned %d", rc);
        else if (rc < 0 && e.msg[0] == '\0')
            ap__error_set(&e, rc, "batch function failed with %s", ap_status_name(rc));
    }
    for (rec *r = j->batch.head; r; r = r->link) {
        r->compute_ns = t1 - t0;
        if (rc == AP_OK && j->nreq > 1) {
            memcpy(r->out, out, r->nrows * no * sizeof *out);
            out += r->nrows * no;
        } else if (rc != AP_OK) {
            r->msg = strdup(e.msg); /* NULL on no memory: the message copes */
        }
    }
    pthread_mutex_lock(&b->mu);
    b->st.batches++;
    b->st.rows += rows;
    ap__batch_hist_add(&b->st.compute_time, t1 - t0);
    ap__batch_size_add(b->st.batch_size, rows);
    if (rc == AP_OK) {
        double cost = (double)(t1 - t0);
        b->ewma_cost_ns = b->ewma_cost_ns ? 0.8 * b->ewma_cost_ns + 0.2 * cost : cost;
    }
    if (t1 > b->last_end)
        b->last_end = t1;
    b->running -= j->nreq;
    for (rec *r = j->batch.head; r; r = r->link)
        finalize_locked(b, r, r->cancel_req ? AP_ECANCELLED : rc);
    pthread_mutex_unlock(&b->mu);
    ap__rec_deliver(b, j->batch.head, end);
}

/* The pool's run: a worker ends its job's active (and runner) count. */
static void pool_run(void *jobp, ap_scratch *s)
{
    job *j = jobp;
    run_job(j, s, j->batch.head ? END_ACTIVE | END_RUNNER : END_ACTIVE);
}

static void pool_free(void *src) { ap_batcher_free(src); }

/* What the pool calls (read-only; one copy for every batcher). */
static const ap_pool_ops batcher_ops = {pool_take, pool_run, pool_free};
_Static_assert(sizeof(job) <= AP_POOL_JOB_MAX, "a job must fit the pool's job buffer");

void ap__batcher_caller_run(ap_batcher *b, job *j)
{
    double stack[512]; /* batches up to this many doubles need no allocation */
    ap_scratch s = {stack, sizeof stack, 0};
    for (int n = 1;; n++) {
        int had_batch = j->batch.head != NULL;
        run_job(j, &s, END_NONE);
        pthread_mutex_lock(&b->mu);
        b->active--;
        if (had_batch)
            b->runners--;
        int again = 0, wake = 0;
        if (b->q.head && !b->closing) {
            if (n < AP_BATCH_CALLER_MAX_BATCHES && b->runners == 0 && current_delay(b) == 0) {
                memset(j, 0, sizeof *j);
                ap__batcher_take_locked(b, j, ap__clock_ns());
                again = j->batch.head || j->dead.head;
                if (again) {
                    j->b = b;
                    b->active++;
                }
            }
            /* left for the pool unless another runner will look at it */
            wake = !again && b->q.head && b->runners == 0;
        }
        if (b->closing)
            pthread_cond_broadcast(&b->idle_cv);
        pthread_mutex_unlock(&b->mu);
        if (wake)
            ap__pool_wake(b->w);
        if (!again)
            break;
    }
    if (s.heap)
        free(s.buf);
}

int ap_batcher_flushable(const ap_batcher *b)
{
    return b && b->cfg.caller_runs && b->cfg.max_queue_delay_us == 0 &&
           b->cfg.adaptive_target_us == 0;
}

void ap_workers_run_queued(ap_workers *w, ap_batcher *const *batchers, size_t n,
                           const void *owner)
{
    for (size_t i = 0; i < n; i++) {
        ap_batcher *b = batchers[i];
        int run = 0, wake = 0;
        job j;
        memset(&j, 0, sizeof j);
        /* pool mutex then b->mu: a batcher attached to w is not freed before
           its b->active count, taken here, drops again */
        ap__pool_lock(w);
        if (ap__pool_has_locked(w, b)) {
            pthread_mutex_lock(&b->mu);
            /* unlike a submit, a flush runs its batch even while another
               batch of b runs: each event loop runs what its own pass
               gathered, so no loop waits for another one's resume */
            if (b->q.head && !b->closing) {
                if (b->cfg.caller_runs && current_delay(b) == 0) {
                    j.owner = owner;
                    ap__batcher_take_locked(b, &j, ap__clock_ns());
                    j.owner = NULL;
                    run = j.batch.head || j.dead.head;
                    if (run) {
                        j.b = b;
                        b->active++;
                    }
                }
                wake = !run && b->q.head && b->runners == 0;
            }
            pthread_mutex_unlock(&b->mu);
            if (wake)
                ap__pool_signal_locked(w);
        }
        ap__pool_unlock(w);
        if (run)
            ap__batcher_caller_run(b, &j);
    }
}

/* ---- life of a batcher --------------------------------------------------- */

void ap_batcher_config_default(ap_batcher_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_batch_rows = 64;
    cfg->max_queue_delay_us = 200;
    cfg->max_queue_rows = 4096;
    cfg->default_timeout_us = 1000000;
}

/* Bounds that keep sizes and their products far from overflow. */
#define MAX_COLS ((size_t)1 << 20)
#define MAX_ROWS ((size_t)1 << 24)

int ap_batcher_create(ap_workers *w, const ap_batcher_config *cfg, const ap_batch_model *model,
                      ap_batcher **out, ap_error *err)
{
    if (!out)
        return ap__error_set(err, AP_EINVAL, "ap_batcher_create: out is NULL");
    *out = NULL;
    if (!w || !cfg || !model || !model->run)
        return ap__error_set(err, AP_EINVAL,
                            "ap_batcher_create: workers, config, model and model->run are required");
    const char *name = cfg->name ? cfg->name : "model";
    if (!!model->acquire != !!model->release)
        return ap__error_set(err, AP_EINVAL, "%s: give both acquire and release hooks, or neither",
                            name);
    if (cfg->ncols == 0 || cfg->ncols > MAX_COLS || cfg->nout == 0 || cfg->nout > MAX_COLS)
        return ap__error_set(err, AP_ERANGE, "%s: ncols %zu / nout %zu out of range 1..%zu", name,
                            cfg->ncols, cfg->nout, MAX_COLS);
    if (cfg->max_batch_rows == 0 || cfg->max_batch_rows > MAX_ROWS || cfg->max_queue_rows == 0 ||
        cfg->max_queue_rows > MAX_ROWS)
        return ap__error_set(err, AP_ERANGE,
                            "%s: max_batch_rows %zu / max_queue_rows %zu out of range 1..%zu",
                            name, cfg->max_batch_rows, cfg->max_queue_rows, MAX_ROWS);
    if (cfg->max_queue_rows * cfg->ncols > ((size_t)1 << 32))
        return ap__error_set(err, AP_ERANGE,
                            "%s: max_queue_rows %zu * ncols %zu exceeds 2^32 queued doubles", name,
                            cfg->max_queue_rows, cfg->ncols);
    if (cfg->default_timeout_us == 0)
        return ap__error_set(err, AP_ERANGE, "%s: default_timeout_us must be > 0", name);

    ap_batcher *b = calloc(1, sizeof *b);
    size_t slots = 64;
    while (slots < cfg->max_queue_rows && slots < ((size_t)1 << 20))
        slots <<= 1;
    if (!b || !(b->table = calloc(slots, sizeof *b->table))) {
        free(b);
        return ap__error_set(err, AP_ENOMEM, "%s: no memory for the batcher", name);
    }
    b->tmask = slots - 1;
    b->w = w;
    snprintf(b->name, sizeof b->name, "%s", name);
    b->cfg = *cfg;
    b->cfg.name = b->name;
    b->run = model->run;
    b->acquire = model->acquire;
    b->release = model->release;
    b->cur_delay_ns = us_to_ns(cfg->max_queue_delay_us);
    b->ewma_joined = 1; /* optimistic until measured */
    b->ewma_idle_ns = 1e9; /* idle until measured */
    pthread_mutex_init(&b->mu, NULL);
    ap__cond_init_mono(&b->idle_cv);
    /* the batcher's own reference to its current model (taken before the
       pool can see b; under b->mu, as the hooks' contract says) */
    pthread_mutex_lock(&b->mu);
    b->model = model->ctx;
    if (b->acquire && b->model)
        b->acquire(b->model);
    pthread_mutex_unlock(&b->mu);
    if (ap__pool_attach(w, b, &batcher_ops) != AP_OK) {
        if (b->release && b->model)
            b->release(b->model);
        pthread_cond_destroy(&b->idle_cv);
        pthread_mutex_destroy(&b->mu);
        free(b->table);
        free(b);
        return ap__error_set(err, AP_ENOMEM, "%s: no memory to attach the batcher", name);
    }
    *out = b;
    return AP_OK;
}

void ap_batcher_free(ap_batcher *b)
{
    if (!b)
        return;
    ap_workers *w = b->w;
    rlist gone = {0};
    ap__pool_lock(w);
    ap__pool_detach_locked(w, b);
    pthread_mutex_lock(&b->mu);
    b->closing = 1;
    while (b->q.head) {
        rec *r = b->q.head;
        queue_remove(b, r);
        r->shutdown = 1;
        finalize_locked(b, r, AP_ECANCELLED);
        r->t_done = ap__clock_ns();
        rl_append(&gone, r);
    }
    b->active++;
    pthread_mutex_unlock(&b->mu);
    ap__pool_unlock(w);

    ap__rec_deliver(b, gone.head, END_ACTIVE);

    /* running batches (workers, callers) deliver their requests and drop
       their counts; then no request of b is left anywhere */
    pthread_mutex_lock(&b->mu);
    while (b->active > 0)
        pthread_cond_wait(&b->idle_cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    if (b->release && b->model)
        b->release(b->model);
    pthread_cond_destroy(&b->idle_cv);
    pthread_mutex_destroy(&b->mu);
    free(b->table);
    free(b);
}

int ap_batcher_set_model(ap_batcher *b, void *ctx, ap_error *err)
{
    if (!b)
        return ap__error_set(err, AP_EINVAL, "ap_batcher_set_model: batcher is NULL");
    pthread_mutex_lock(&b->mu);
    void *old = b->model;
    if (b->acquire && ctx)
        b->acquire(ctx);
    b->model = ctx;
    pthread_mutex_unlock(&b->mu);
    if (b->release && old)
        b->release(old);
    return AP_OK;
}
