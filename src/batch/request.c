/*
 * The public request calls: ap_batch_submit (admission, deadline, the
 * caller-runs decision), ap_batch_cancel, and ap_batch_run (a synchronous
 * submit whose completion lands in the caller's stack frame). Every request
 * is delivered through its on_done callback; the batcher keeps no results.
 *
 * The top of the batch files: uses batcher.c (batch formation, caller
 * runs), record.c (records, delivery) and pool.c (ids, wake); nothing
 * calls back into this file.
 */
#include "batch/batcher.h"
#include "batch/pool.h"
#include "batch/record.h"
#include "common/clock.h"
#include "common/error.h"

#include <inttypes.h>
#include <pthread.h>
#include <string.h>

/* will_wait: the caller blocks until this request completes (ap_batch_run) */
static int submit(ap_batcher *b, const double *X, size_t nrows, const ap_batch_submit_opts *opts,
                  uint64_t *id, ap_error *err, int will_wait)
{
    if (!b || !X || !id)
        return ap__error_set(err, AP_EINVAL, "ap_batch_submit: batcher, X and id are required");
    *id = 0;
    if (!opts || !opts->on_done)
        return ap__error_set(err, AP_EINVAL,
                            "%s: ap_batch_submit needs opts->on_done: every result is delivered "
                            "to its callback (ap_batch_run waits for one)",
                            b->name);
    if (nrows == 0 || nrows > b->cfg.max_queue_rows)
        return ap__error_set(err, AP_ERANGE, "%s: request of %zu rows (allowed 1..%zu)", b->name,
                            nrows, b->cfg.max_queue_rows);
    rec *r = ap__rec_new(X, nrows, b->cfg.ncols, b->cfg.nout);
    if (!r)
        return ap__error_set(err, AP_ENOMEM, "%s: no memory for a request of %zu rows", b->name,
                            nrows);
    r->on_done = opts->on_done;
    r->user = opts->user;
    if (opts->defer)
        r->owner = opts->defer_owner;
    uint64_t timeout = b->cfg.default_timeout_us;
    if (opts->timeout_us && opts->timeout_us < timeout)
        timeout = opts->timeout_us; /* may shorten, never lengthen */
    r->id = ap__pool_next_id(b->w);

    pthread_mutex_lock(&b->mu);
    if (b->closing) {
        pthread_mutex_unlock(&b->mu);
        rec_free(r);
        return ap__error_set(err, AP_ECANCELLED, "%s: batcher is shutting down", b->name);
    }
    if (b->qrows + nrows > b->cfg.max_queue_rows) {
        b->st.rejected++;
        size_t q = b->qrows;
        pthread_mutex_unlock(&b->mu);
        rec_free(r);
        return ap__error_set(err, AP_EOVERLOAD,
                            "%s: overloaded: %zu rows queued, %zu more would exceed %zu", b->name,
                            q, nrows, b->cfg.max_queue_rows);
    }
    uint64_t now = ap__clock_ns();
    r->t_submit = now;
    r->deadline = add_sat(now, us_to_ns(timeout));
    r->close_by = now + (r->deadline - now) / 2;
    r->model = opts->model_ctx ? opts->model_ctx : b->model;
    if (b->acquire && r->model)
        b->acquire(r->model);
    if (b->cfg.adaptive_target_us) {
        uint64_t gap = b->last_arrival ? now - b->last_arrival : 1000000000u;
        if (gap > 1000000000u) /* an idle second says "no load"; cap its weight */
            gap = 1000000000u;
        double per_row = (double)gap / (double)nrows;
        b->ewma_gap_ns = b->ewma_gap_ns ? 0.9 * b->ewma_gap_ns + 0.1 * per_row : per_row;
        b->last_arrival = now;
    }
    int was_empty = b->q.head == NULL;
    int filled = b->qrows < b->cfg.max_batch_rows && b->qrows + nrows >= b->cfg.max_batch_rows;
    list_push(&b->q, r);
    if (was_empty)
        ap__batcher_decide_delay_locked(b);
    b->qlen++;
    b->qrows += nrows;
    table_insert(b, r);
    b->st.submitted++;
    *id = r->id;
    /*
     * Caller runs: nobody is about to take the queue, nothing to wait for,
     * and the batcher is lightly loaded: the mean idle time before a submit
     * (0 for one that finds a batch running) covers a batch's cost. Under
     * heavier load, a submitter that ran every batch itself would always
     * find the queue empty (it queues nothing while it runs) and never
     * batch, capped at one request per batch cost; the pool then takes over
     * and batches form while the submitters keep submitting. A submitter
     * that will block on the result anyway (ap_batch_run) has nothing else
     * to do: it runs the batch whatever the load.
     */
    int run_here = 0, defer = opts->defer;
    if (b->cfg.caller_runs && !defer) {
        double idle = b->runners || now <= b->last_end ? 0 : (double)(now - b->last_end);
        b->ewma_idle_ns = 0.875 * b->ewma_idle_ns + 0.125 * (idle < 1e9 ? idle : 1e9);
        run_here = !opts->queue_only && b->runners == 0 && current_delay(b) == 0 &&
                   (will_wait || b->ewma_idle_ns >= b->ewma_cost_ns);
    }
    /* with caller_runs, a running batch's runner re-checks the queue when done:
     * only a full batch is worth an idle worker's wake-up meanwhile */
    int wake = !defer && (filled || (was_empty && !(b->cfg.caller_runs && b->runners > 0)));
    job j;
    if (run_here) {
        memset(&j, 0, sizeof j);
        ap__batcher_take_locked(b, &j, now);
        j.b = b;
        b->active++;
    }
    pthread_mutex_unlock(&b->mu);
    if (run_here)
        ap__batcher_caller_run(b, &j);
    else if (wake)
        ap__pool_wake(b->w);
    return AP_OK;
}

int ap_batch_submit(ap_batcher *b, const double *X, size_t nrows,
                    const ap_batch_submit_opts *opts, uint64_t *id, ap_error *err)
{
    return submit(b, X, nrows, opts, id, err, 0);
}

int ap_batch_cancel(ap_batcher *b, uint64_t id, ap_error *err)
{
    if (!b)
        return ap__error_set(err, AP_EINVAL, "ap_batch_cancel: batcher is NULL");
    pthread_mutex_lock(&b->mu);
    rec *r = table_find(b, id); /* queued or running; delivered ones left the table */
    if (!r) {
        pthread_mutex_unlock(&b->mu);
        return ap__error_set(err, AP_ENOTFOUND,
                            "%s: request %" PRIu64 ": unknown or already delivered", b->name, id);
    }
    if (r->state == ST_QUEUED) {
        ap__rec_abort_queued_locked(b, r, AP_ECANCELLED); /* unlocks, calls on_done */
        return AP_OK;
    }
    r->cancel_req = 1; /* running: its batch finishes, the output is discarded */
    pthread_mutex_unlock(&b->mu);
    return AP_OK;
}

/* ap_batch_run: the caller's stack frame is the completion target. */
typedef struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
    double *out;
    ap_error *err;
} sync_wait;

static void sync_done(void *user, const ap_batch_completion *c)
{
    sync_wait *s = user;
    pthread_mutex_lock(&s->mu);
    s->status = c->status;
    if (c->status == AP_OK)
        memcpy(s->out, c->out, c->nrows * c->nout * sizeof *s->out);
    else
        ap__error_set(s->err, c->status, "%s", c->message);
    s->done = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int ap_batch_run(ap_batcher *b, const double *X, size_t nrows, double *out, size_t out_len,
                 uint64_t timeout_us, ap_error *err)
{
    if (!b || !out)
        return ap__error_set(err, AP_EINVAL, "ap_batch_run: batcher and out are required");
    if (out_len / b->cfg.nout < nrows)
        return ap__error_set(err, AP_ERANGE, "%s: %zu rows need %zu outputs, buffer holds %zu",
                            b->name, nrows, nrows * b->cfg.nout, out_len);
    sync_wait s = {.out = out, .err = err};
    pthread_mutex_init(&s.mu, NULL);
    ap__cond_init_mono(&s.cv);
    ap_batch_submit_opts o = {.timeout_us = timeout_us, .on_done = sync_done, .user = &s};
    uint64_t id;
    int rc = submit(b, X, nrows, &o, &id, err, 1);
    if (rc == AP_OK) {
        uint64_t t = b->cfg.default_timeout_us;
        if (timeout_us && timeout_us < t)
            t = timeout_us;
        uint64_t deadline = add_sat(ap__clock_ns(), us_to_ns(t));
        pthread_mutex_lock(&s.mu);
        while (!s.done) {
            if (ap__clock_ns() >= deadline) {
                /* Past our deadline and maybe no worker free to notice: fail
                 * the request ourselves if still queued, else its batch is
                 * running (or it is being delivered): wait for it. */
                pthread_mutex_unlock(&s.mu);
                pthread_mutex_lock(&b->mu);
                rec *r = table_find(b, id);
                if (r && r->state == ST_QUEUED)
                    ap__rec_abort_queued_locked(b, r, AP_ETIMEDOUT); /* unlocks */
                else
                    pthread_mutex_unlock(&b->mu);
                pthread_mutex_lock(&s.mu);
                while (!s.done)
                    pthread_cond_wait(&s.cv, &s.mu);
                break;
            }
            ap__cond_wait_until(&s.cv, &s.mu, deadline);
        }
        rc = s.status;
        pthread_mutex_unlock(&s.mu);
    }
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    return rc;
}
