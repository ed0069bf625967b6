/*
 * The inference hand-off between a handler and the service. An inference:
 * the handler picks a model (ap__service_pick) and submits the request's rows (ap__srv_start_inference -> ap__service_submit). Under
 * an event loop (r->pass) the submit is deferred and the loop runs what its
 * pass gathered as one batch when the pass ends; without one, a submit that
 * finds the batcher idle runs the batch on this thread (caller_runs). If
 * the result is already there when the submit returns, the handler answers
 * at once; otherwise it suspends the connection and the completion
 * callback, on whichever thread ran the batch, resumes it, and the
 * transport then calls ap__srv_req_resumed. The suspend comes after the
 * submit, so the completion and the suspend meet in an atomic handshake
 * (ap_srv_req.wait): a resume of a connection that is not suspended yet
 * would be lost.
 */
#include "server/server_internal.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"

void ap__srv_on_done(void *user, const ap_batch_completion *c)
{
    ap_srv_req *r = user;
    r->status = c->status;
    r->id = c->id;
    r->queue_us = c->queue_us;
    r->compute_us = c->compute_us;
    if (c->status == AP_OK) {
        size_t n = c->nrows * c->nout;
        double *o = n <= SRV_SMALL_OUT ? r->out_small : malloc(n * sizeof *o);
        if (o) {
            memcpy(o, c->out, n * sizeof *o);
            r->out = o;
            r->nrows = c->nrows;
            r->nout = c->nout;
        } else {
            r->status = AP_ENOMEM;
            snprintf(r->msg, sizeof r->msg, "out of memory for %zu outputs", n);
        }
    } else
        snprintf(r->msg, sizeof r->msg, "%s", c->message);
    ap__srv_wake(r);
}

void ap__srv_wake(ap_srv_req *r)
{
    /* W_SUBMITTING: the handler has not suspended yet (or never will: this
       may run inside its own submit) and answers itself; once the exchange is
       done r may be gone, so nothing of it is read after */
    void *conn = r->conn;
    const ap_srv_io *io = r->io;
    if (atomic_exchange_explicit(&r->wait, W_COMPLETED, memory_order_acq_rel) == W_SUSPENDED)
        io->resume(conn);
}

void ap__srv_submitting(ap_srv_req *r)
{
    r->phase = PH_WAIT;
    atomic_store_explicit(&r->wait, W_SUBMITTING, memory_order_relaxed);
}

int ap__srv_await(ap_srv_req *r, int parked)
{
    if (atomic_load_explicit(&r->wait, memory_order_acquire) == W_COMPLETED)
        return 1; /* ran on this thread (caller_runs, inline) or already done elsewhere */
    if (parked) {
        r->parked = 1;
        return 0;
    }
    r->io->suspend(r->conn);
    int expect = W_SUBMITTING;
    if (!atomic_compare_exchange_strong_explicit(&r->wait, &expect, W_SUSPENDED,
                                                 memory_order_acq_rel, memory_order_acquire))
        /* completed between the check and the suspend: its callback saw no
           suspended connection and left the resume to us */
        r->io->resume(r->conn);
    return 0;
}

void ap__srv_set_deadline(ap_srv_req *r, uint64_t asked_us)
{
    /* the deadline runs from the request's arrival, not from this moment */
    uint64_t budget_us = (uint64_t)(r->srv->cfg.inference_timeout * 1e6);
    if (asked_us && asked_us < budget_us)
        budget_us = asked_us;
    r->deadline_ns = r->t0_ns + budget_us * 1000;
}

void ap__srv_req_hold(ap_srv_req *r, const ap_lease *l)
{
    ap_model_retain(l->model);
    r->held = l->model;
    r->info = l->info;
    r->model = l->index;
    r->version = l->info.version;
}

int ap__srv_start_inference(ap_srv_req *r, ap_lease *l, const double *X, size_t n)
{
    ap_error err;
    ap__srv_submitting(r);
    if (ap__srv_past_deadline(r, ap__clock_ns())) {
        ap__service_release(l);
        r->status = AP_ETIMEDOUT;
        r->msg[0] = 0; /* answered by the finish's deadline check */
        return 1;
    }
    ap_submit_opts o = {r->deadline_ns, r->pass, ap__srv_on_done, r};
    int parked;
    int rc = ap__service_submit(r->srv->svc, l, X, n, &o, &parked, &err);
    if (rc) { /* refused: no completion will come */
        r->status = rc;
        snprintf(r->msg, sizeof r->msg, "%s", err.msg);
        return 1;
    }
    return ap__srv_await(r, parked);
}
