/*
 * One request record, from allocation to delivery: the record itself (its
 * rows and outputs in one allocation), the message that explains its final
 * status, and the delivery of finished requests to their on_done callbacks
 * (model reference released first, record freed after). The batcher keeps
 * no result: every request ends in its callback, exactly once.
 *
 * Uses nothing of the other batch files (they all use this one).
 */
#include "batch/record.h"
#include "common/clock.h"
#include "common/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

rec *ap__rec_new(const double *X, size_t nrows, size_t ncols, size_t nout)
{
    rec *r = malloc(sizeof *r + nrows * (ncols + nout) * sizeof(double));
    if (!r)
        return NULL;
    memset(r, 0, sizeof *r);
    r->X = r->data;
    r->out = r->data + nrows * ncols;
    memcpy(r->X, X, nrows * ncols * sizeof *X);
    r->nrows = nrows;
    return r;
}

static void describe(const ap_batcher *b, const rec *r, char *buf, size_t n)
{
    switch (r->status) {
    case AP_OK: buf[0] = '\0'; break;
    case AP_ETIMEDOUT:
        snprintf(buf, n,
                 "%s: request %" PRIu64 " timed out: its deadline (%" PRIu64
                 " us after submit) passed before a batch could start it",
                 b->name, r->id, (r->deadline - r->t_submit) / 1000);
        break;
    case AP_ECANCELLED:
        snprintf(buf, n, "%s: request %" PRIu64 " %s", b->name, r->id,
                 r->shutdown ? "cancelled: batcher shutting down" : "cancelled");
        break;
    default:
        snprintf(buf, n, "%s: request %" PRIu64 ": %s", b->name, r->id,
                 r->msg ? r->msg : "batch function failed");
        break;
    }
}

void ap__rec_deliver(ap_batcher *b, rec *list, int end_job)
{
    char msg[AP_ERROR_MSG_MAX];
    for (rec *r = list, *nx; r; r = nx) {
        nx = r->link;
        if (b->release && r->model)
            b->release(r->model);
        r->model = NULL;
        describe(b, r, msg, sizeof msg);
        ap_batch_completion c = {
            .id = r->id,
            .status = r->status,
            .message = msg,
            .out = r->status == AP_OK ? r->out : NULL,
            .nrows = r->nrows,
            .nout = b->cfg.nout,
            .queue_us = ((r->t_start ? r->t_start : r->t_done) - r->t_submit) / 1000,
            .compute_us = r->compute_ns / 1000,
        };
        r->on_done(r->user, &c);
        rec_free(r);
    }
    if (!end_job)
        return;
    pthread_mutex_lock(&b->mu);
    if (end_job & END_ACTIVE)
        b->active--;
    if (end_job & END_RUNNER)
        b->runners--;
    if (b->closing)
        pthread_cond_broadcast(&b->idle_cv);
    pthread_mutex_unlock(&b->mu);
}

void ap__rec_abort_queued_locked(ap_batcher *b, rec *r, int status)
{
    queue_remove(b, r);
    finalize_locked(b, r, status);
    r->t_done = ap__clock_ns();
    r->link = NULL;
    b->active++; /* a shutdown waits for this delivery */
    pthread_mutex_unlock(&b->mu);
    ap__rec_deliver(b, r, END_ACTIVE);
}
