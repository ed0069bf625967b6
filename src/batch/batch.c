/*
 * Dynamic batcher and its worker pool.
 *
 * Locks: the pool mutex (w->mu) guards the list of batchers, the idle count
 * and the timer owner; each batcher mutex (b->mu) guards its queue, its
 * result store, its counters and every request it owns. Order: w->mu, then
 * b->mu. No lock is held while a batch function, a completion callback or a
 * model release hook runs.
 *
 * Request life: QUEUED (in the queue and the id table) -> RUNNING (in a batch
 * a worker executes) -> FINISHING (status decided, being delivered: model
 * released, callback called) -> DONE (kept in the store until taken, expired,
 * evicted or cancelled). Callback requests leave the id table at FINISHING
 * and are freed after their callback. A request is freed only when it is out
 * of every list and no waiter holds it (r->waiters == 0).
 *
 * Scheduling: there is no timer thread. Idle workers scan the batchers; a
 * worker that finds nothing ready sleeps until the earliest moment one
 * becomes ready (batch delay, deadline midpoint, result expiry). Only one
 * idle worker sleeps on a timer at a time (w->timer_at); the others wait to
 * be signalled. A submit signals the pool only when it makes a queue
 * non-empty or fills a batch, so a busy batcher costs no pool lock per
 * request.
 *
 * Caller runs (cfg.caller_runs): a submit with no delay to wait, no batch
 * of its batcher running (b->runners == 0) and a lightly loaded batcher
 * (ewma_idle_ns >= ewma_cost_ns, see submit) takes the batch and runs it on
 * its own thread (caller_run), as a worker would. b->runners counts batches
 * taken and not yet delivered; every such runner re-checks the queue when it
 * is done (a worker by rescanning, a caller in caller_run), so a submit that
 * sees runners > 0 may queue without waking the pool: the requests that
 * queue during a batch become the next batch of the same thread, and the
 * hand-off to a worker is saved. The runner's decrement and its re-check are
 * under b->mu, the same lock the submit queues under, so nothing queued
 * while runners > 0 is missed.
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
#include "alphapulse/batch.h"
#include "batch/batch_internal.h"
#include "common/error.h"
#include "common/clock.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

enum { ST_QUEUED, ST_RUNNING, ST_FINISHING, ST_DONE };

typedef struct rec rec;
struct rec {
    uint64_t id;
    rec *prev, *next; /* queue while QUEUED, store list while DONE */
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
    int discard;    /* cancelled while FINISHING: drop instead of keeping */
    int in_table;
    int shutdown;   /* cancelled by ap_batcher_free */
    int waiters;
    char *msg; /* batch-function message, when it failed */
    double *X, *out;
    double data[];
};

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
    pthread_cond_t done_cv; /* a result became available / a request finished */
    pthread_cond_t idle_cv; /* shutdown: active and waiters reached 0 */
    void *model;            /* current context (a reference held) */
    rlist q;                /* queued, FIFO */
    size_t qlen, qrows;
    rlist kept; /* completed results, completion order = expiry order */
    size_t nkept;
    rec **table;
    size_t tmask;
    size_t active;   /* jobs taken by workers, not yet fully delivered */
    size_t running;  /* requests in running batches */
    size_t waiters;  /* threads inside ap_batch_wait */
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

struct ap_workers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ap_batcher **bs;
    size_t nb, capb, rr;
    pthread_t *th;
    unsigned nth;
    unsigned idle;
    uint64_t timer_at; /* wake time of the one idle worker on a timer; 0 = none */
    int stop;
    _Atomic uint64_t next_id;
};

/* ---- small helpers ------------------------------------------------------- */

static uint64_t add_sat(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }
static uint64_t us_to_ns(uint64_t us) { return us > UINT64_MAX / 1000 ? UINT64_MAX : us * 1000; }

static void cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

static void wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t t_ns)
{
    if (t_ns == UINT64_MAX) {
        pthread_cond_wait(cv, mu);
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000u),
                          .tv_nsec = (long)(t_ns % 1000000000u)};
    pthread_cond_timedwait(cv, mu, &ts);
}

static void list_push(rlist *l, rec *r)
{
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

static void list_remove(rlist *l, rec *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->prev = r->next = NULL;
}

static size_t slot_of(const ap_batcher *b, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & b->tmask;
}

static void table_insert(ap_batcher *b, rec *r)
{
    size_t s = slot_of(b, r->id);
    r->hnext = b->table[s];
    b->table[s] = r;
    r->in_table = 1;
}

static rec *table_find(const ap_batcher *b, uint64_t id)
{
    for (rec *r = b->table[slot_of(b, id)]; r; r = r->hnext)
        if (r->id == id)
            return r;
    return NULL;
}

static void table_remove(ap_batcher *b, rec *r)
{
    if (!r->in_table)
        return;
    rec **p = &b->table[slot_of(b, r->id)];
    while (*p != r)
        p = &(*p)->hnext;
    *p = r->hnext;
    r->hnext = NULL;
    r->in_table = 0;
}

static void rec_free(rec *r)
{
    free(r->msg);
    free(r);
}

static void queue_remove(ap_batcher *b, rec *r)
{
    list_remove(&b->q, r);
    b->qlen--;
    b->qrows -= r->nrows;
}

/* Drop a kept result: out of the table and the store; freed unless a waiter holds it. */
static void kept_drop(ap_batcher *b, rec *r)
{
    table_remove(b, r);
    list_remove(&b->kept, r);
    b->nkept--;
    if (r->waiters == 0)
        rec_free(r);
}

/* Expire kept results older than the TTL. Returns when the next one expires. */
static uint64_t purge_expired(ap_batcher *b, uint64_t now)
{
    uint64_t ttl = us_to_ns(b->cfg.result_ttl_us);
    rec *r = b->kept.head;
    while (r) {
        rec *nx = r->next;
        uint64_t at = add_sat(r->t_done, ttl);
        if (at > now)
            return at;
        /* a result a thread is waiting on is about to be taken: leave it */
        if (r->waiters == 0) {
            kept_drop(b, r);
            b->st.expired++;
        }
        r = nx;
    }
    return UINT64_MAX;
}

static void evict_over_capacity(ap_batcher *b)
{
    rec *r = b->kept.head;
    while (b->nkept > b->cfg.result_capacity && r) {
        rec *nx = r->next;
        if (r->waiters == 0) {
            kept_drop(b, r);
            b->st.evicted++;
        }
        r = nx;
    }
}

/*
 * Decide a request's final status (lock held; it is already out of the
 * queue / its batch) and count it. Callback requests leave the id table now,
 * so nobody can reach them while their callback runs.
 */
static void finalize_locked(ap_batcher *b, rec *r, int status)
{
    r->status = status;
    r->state = ST_FINISHING;
    switch (status) {
    case AP_OK: b->st.completed++; break;
    case AP_ETIMEDOUT: b->st.timed_out++; break;
    case AP_ECANCELLED: b->st.cancelled++; break;
    default: b->st.failed++; break;
    }
    if (r->on_done)
        table_remove(b, r);
}

static void rl_append(rlist *l, rec *r)
{
    r->link = NULL;
    if (l->tail)
        l->tail->link = r;
    else
        l->head = r;
    l->tail = r;
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

/* What deliver() ends: the caller's b->active count, and its b->runners count. */
enum { END_NONE = 0, END_ACTIVE = 1, END_RUNNER = 2 };

/*
 * Deliver finalized requests (no lock held on entry): release their model
 * references, run callbacks, then publish the kept results. end_job: the
 * END_* counts the caller holds, dropped here.
 */
static void deliver(ap_batcher *b, rec *list, int end_job)
{
    rlist keep = {0};
    char msg[AP_ERROR_MSG_MAX];
    for (rec *r = list, *nx; r; r = nx) {
        nx = r->link;
        if (b->release && r->model)
            b->release(r->model);
        r->model = NULL;
        if (!r->on_done) {
            rl_append(&keep, r);
            continue;
        }
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
    if (!keep.head && !end_job)
        return;
    pthread_mutex_lock(&b->mu);
    uint64_t now = ap_clock_ns();
    for (rec *r = keep.head, *nx; r; r = nx) {
        nx = r->link;
        r->link = NULL;
        r->state = ST_DONE;
        if (r->discard) {
            table_remove(b, r);
            if (r->waiters == 0)
                rec_free(r);
            continue;
        }
        r->t_done = now;
        list_push(&b->kept, r);
        b->nkept++;
    }
    if (keep.head) {
        evict_over_capacity(b);
        purge_expired(b, now);
    }
    if (end_job & END_ACTIVE)
        b->active--;
    if (end_job & END_RUNNER)
        b->runners--;
    pthread_cond_broadcast(&b->done_cv);
    if (b->closing)
        pthread_cond_broadcast(&b->idle_cv);
    pthread_mutex_unlock(&b->mu);
}

/* ---- scheduling ---------------------------------------------------------- */

/* Queue delay for the current head (lock held). */
static uint64_t current_delay(const ap_batcher *b)
{
    return b->cfg.adaptive_target_us ? b->cur_delay_ns : us_to_ns(b->cfg.max_queue_delay_us);
}

/*
 * Adaptive delay, decided once per head (when a request becomes the oldest
 * queued one) so that rescans of the same head agree. Wait only if
 *   - the budget (target - measured batch cost) is positive,
 *   - the arrival rate predicts at least one more row within it, and
 *   - waiting has been paying off: requests did join heads that waited.
 * The last rule catches closed loops (a client waiting for this very
 * request sends nothing meanwhile, however high its rate looks); one head
 * in 32 still waits, as a probe, so a change in load is noticed.
 */
static void decide_delay(ap_batcher *b)
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

typedef struct job {
    ap_batcher *b;
    const void *owner; /* set: take only requests of this owner or of none */
    rlist batch; /* requests to run, FIFO */
    size_t nreq, rows;
    void *model;
    rlist dead; /* timed out in the queue, finalized */
} job;

/*
 * Take the batch at the head of the queue (b->mu held, the head is ready):
 * whole requests of the head's model context, FIFO, up to max_batch_rows
 * (one larger request alone); expired ones on the way are timed out into
 * j->dead. A non-empty batch counts one runner; decides the delay of the
 * next head.
 */
static void take_batch_locked(ap_batcher *b, job *j, uint64_t now)
{
    /* expired heads first, so the batch's context is that of a live request */
    while (b->q.head && b->q.head->deadline <= now) {
        rec *r = b->q.head;
        queue_remove(b, r);
        finalize_locked(b, r, AP_ETIMEDOUT);
        r->t_done = now;
        rl_append(&j->dead, r);
    }
    if (!b->q.head)
        return;
    uint64_t max = b->cfg.max_batch_rows;
    void *model = NULL;
    int have_model = 0;
    size_t rows = 0;
    for (rec *r = b->q.head, *nx; r && rows < max; r = nx) {
        nx = r->next;
        if (r->deadline <= now) {
            queue_remove(b, r);
            finalize_locked(b, r, AP_ETIMEDOUT);
            r->t_done = now;
            rl_append(&j->dead, r);
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
        ap_batch_hist_add(&b->st.queue_time, now - r->t_submit);
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
        decide_delay(b);
}

/*
 * Look at one batcher (w->mu held): time out expired queued requests, and
 * take a batch if one is ready. Lowers *wake to when this batcher next needs
 * a worker. Returns 1 if the job has something to do; *more is set when work
 * is left in the queue.
 */
static int scan_batcher(ap_batcher *b, job *j, uint64_t *wake, int *more)
{
    pthread_mutex_lock(&b->mu);
    /* read the clock under the lock: a request submitted a moment ago must
     * not look younger than "now" (it would wait for a timer needlessly) */
    uint64_t now = ap_clock_ns();
    uint64_t t = purge_expired(b, now);
    if (t < *wake)
        *wake = t;
    /* expired heads first, so readiness is judged on a live request */
    while (b->q.head && b->q.head->deadline <= now) {
        rec *r = b->q.head;
        queue_remove(b, r);
        finalize_locked(b, r, AP_ETIMEDOUT);
        r->t_done = now;
        rl_append(&j->dead, r);
    }
    if (b->q.head) {
        uint64_t max = b->cfg.max_batch_rows;
        int ready = b->qrows >= max, by_time = 0;
        if (!ready) {
            /* short queue (< max rows): check all deadlines; close by the
             * earliest deadline midpoint so a short timeout is not spent waiting */
            uint64_t close_at = add_sat(b->q.head->t_submit, current_delay(b));
            for (rec *r = b->q.head, *nx; r; r = nx) {
                nx = r->next;
                if (r->deadline <= now) {
                    queue_remove(b, r);
                    finalize_locked(b, r, AP_ETIMEDOUT);
                    r->t_done = now;
                    rl_append(&j->dead, r);
                } else if (r->close_by < close_at) {
                    close_at = r->close_by;
                }
            }
            ready = b->q.head && now >= close_at;
            by_time = ready;
            if (b->q.head && !ready && close_at < *wake)
                *wake = close_at;
        }
        if (ready) {
            take_batch_locked(b, j, now);
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

typedef struct scratch {
    double *buf;
    size_t cap;
    int heap; /* buf is ours to realloc / free (else a caller's stack buffer) */
} scratch;

/*
 * Run a job taken by scan_batcher / take_batch_locked and deliver it. end:
 * the END_* counts dropped at delivery (a job with a batch holds a runner
 * count besides its active count).
 */
static void run_job(job *j, scratch *s, int end)
{
    ap_batcher *b = j->b;
    if (!j->batch.head) {
        deliver(b, j->dead.head, end);
        return;
    }
    if (j->dead.head)
        deliver(b, j->dead.head, END_NONE);

    size_t nc = b->cfg.ncols, no = b->cfg.nout, rows = j->rows;
    const double *X;
    double *out;
    ap_error e = {0};
    int rc = AP_OK;
    if (j->nreq == 1) {
        X = j->batch.head->X;
        out = j->batch.head->out;
    } else {
        size_t need = rows * (nc + no);
        if (need > s->cap) {
            double *nb = realloc(s->heap ? s->buf : NULL, need * sizeof *nb);
            if (!nb) {
                rc = ap_error_set(&e, AP_ENOMEM, "no memory for a batch of %zu rows", rows);
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
        out = s->buf ? s->buf + rows * nc : NULL;
    }
    uint64_t t0 = ap_clock_ns(), t1 = t0;
    if (rc == AP_OK) {
        rc = b->run(j->model, X, rows, nc, out, no, &e);
        t1 = ap_clock_ns();
        if (rc > 0) /* the contract says negative; do not report success */
            rc = ap_error_set(&e, AP_EINVAL, "batch function returned %d", rc);
        else if (rc < 0 && e.msg[0] == '\0')
            ap_error_set(&e, rc, "batch function failed with %s", ap_status_name(rc));
    }
    for (rec *r = j->batch.head; r; r = r->link) {
        r->compute_ns = t1 - t0;
        if (rc == AP_OK && j->nreq > 1) {
            memcpy(r->out, out, r->nrows * no * sizeof *out);
            out += r->nrows * no;
        } else if (rc != AP_OK) {
            r->msg = strdup(e.msg); /* NULL on no memory: describe() copes */
        }
    }
    pthread_mutex_lock(&b->mu);
    b->st.batches++;
    b->st.rows += rows;
    ap_batch_hist_add(&b->st.compute_time, t1 - t0);
    ap_batch_size_add(b->st.batch_size, rows);
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
    deliver(b, j->batch.head, end);
}

static void *worker_main(void *arg)
{
    ap_workers *w = arg;
    scratch s = {.heap = 1};
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        uint64_t wake = UINT64_MAX;
        int more = 0;
        job j = {0};
        size_t n = w->nb, k;
        for (k = 0; k < n; k++)
            if (scan_batcher(w->bs[(w->rr + k) % n], &j, &wake, &more))
                break;
        if (j.b) {
            w->rr = (w->rr + k + 1) % n;
            /* pass the baton: an idle worker takes what is left, or the
             * timer of a batcher scanned before this one if nobody holds it */
            int timer_needed = wake != UINT64_MAX && !(w->timer_at && w->timer_at <= wake);
            if ((more || k + 1 < n || timer_needed) && w->idle > 0)
                pthread_cond_signal(&w->cv);
            pthread_mutex_unlock(&w->mu);
            run_job(&j, &s, j.batch.head ? END_ACTIVE | END_RUNNER : END_ACTIVE);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        w->idle++;
        if (wake == UINT64_MAX || (w->timer_at && w->timer_at <= wake)) {
            pthread_cond_wait(&w->cv, &w->mu);
        } else {
            w->timer_at = wake;
            wait_until(&w->cv, &w->mu, wake);
            if (w->timer_at == wake)
                w->timer_at = 0;
        }
        w->idle--;
    }
    pthread_mutex_unlock(&w->mu);
    free(s.buf);
    return NULL;
}

static void wake_pool(ap_workers *w)
{
    pthread_mutex_lock(&w->mu);
    if (w->idle > 0)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* ---- pool ---------------------------------------------------------------- */

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

int ap_workers_create(unsigned nthreads, ap_workers **out, ap_error *err)
{
    if (!out)
        return ap_error_set(err, AP_EINVAL, "ap_workers_create: out is NULL");
    *out = NULL;
    if (nthreads == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = c > 0 ? (unsigned)c : 1;
    }
    if (nthreads > 1024)
        return ap_error_set(err, AP_ERANGE, "ap_workers_create: %u threads (at most 1024)",
                            nthreads);
    ap_workers *w = calloc(1, sizeof *w);
    if (!w || !(w->th = calloc(nthreads, sizeof *w->th))) {
        free(w);
        return ap_error_set(err, AP_ENOMEM, "ap_workers_create: no memory");
    }
    pthread_mutex_init(&w->mu, NULL);
    cond_init_mono(&w->cv);
    atomic_init(&w->next_id, id_salt());
    for (unsigned i = 0; i < nthreads; i++) {
        int e = pthread_create(&w->th[i], NULL, worker_main, w);
        if (e) {
            w->nth = i;
            ap_workers_free(w);
            return ap_error_set(err, AP_ENOMEM, "ap_workers_create: thread %u of %u: %s", i,
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
    for (;;) {
        pthread_mutex_lock(&w->mu);
        ap_batcher *b = w->nb ? w->bs[w->nb - 1] : NULL;
        pthread_mutex_unlock(&w->mu);
        if (!b)
            break;
        ap_batcher_free(b);
    }
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (unsigned i = 0; i < w->nth; i++)
        pthread_join(w->th[i], NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->bs);
    free(w->th);
    free(w);
}

/* ---- batcher ------------------------------------------------------------- */

void ap_batcher_config_default(ap_batcher_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_batch_rows = 64;
    cfg->max_queue_delay_us = 200;
    cfg->max_queue_rows = 4096;
    cfg->default_timeout_us = 1000000;
    cfg->result_capacity = 4096;
    cfg->result_ttl_us = 60000000;
}

/* Bounds that keep sizes and their products far from overflow. */
#define MAX_COLS ((size_t)1 << 20)
#define MAX_ROWS ((size_t)1 << 24)

int ap_batcher_create(ap_workers *w, const ap_batcher_config *cfg, const ap_batch_model *model,
                      ap_batcher **out, ap_error *err)
{
    if (!out)
        return ap_error_set(err, AP_EINVAL, "ap_batcher_create: out is NULL");
    *out = NULL;
    if (!w || !cfg || !model || !model->run)
        return ap_error_set(err, AP_EINVAL,
                            "ap_batcher_create: workers, config, model and model->run are required");
    const char *name = cfg->name ? cfg->name : "model";
    if (!!model->acquire != !!model->release)
        return ap_error_set(err, AP_EINVAL, "%s: give both acquire and release hooks, or neither",
                            name);
    if (cfg->ncols == 0 || cfg->ncols > MAX_COLS || cfg->nout == 0 || cfg->nout > MAX_COLS)
        return ap_error_set(err, AP_ERANGE, "%s: ncols %zu / nout %zu out of range 1..%zu", name,
                            cfg->ncols, cfg->nout, MAX_COLS);
    if (cfg->max_batch_rows == 0 || cfg->max_batch_rows > MAX_ROWS || cfg->max_queue_rows == 0 ||
        cfg->max_queue_rows > MAX_ROWS)
        return ap_error_set(err, AP_ERANGE,
                            "%s: max_batch_rows %zu / max_queue_rows %zu out of range 1..%zu",
                            name, cfg->max_batch_rows, cfg->max_queue_rows, MAX_ROWS);
    if (cfg->max_queue_rows * cfg->ncols > ((size_t)1 << 32))
        return ap_error_set(err, AP_ERANGE,
                            "%s: max_queue_rows %zu * ncols %zu exceeds 2^32 queued doubles", name,
                            cfg->max_queue_rows, cfg->ncols);
    if (cfg->default_timeout_us == 0 || cfg->result_capacity > MAX_ROWS)
        return ap_error_set(err, AP_ERANGE,
                            "%s: default_timeout_us must be > 0, result_capacity <= %zu", name,
                            MAX_ROWS);

    ap_batcher *b = calloc(1, sizeof *b);
    size_t slots = 64;
    while (slots < cfg->max_queue_rows + cfg->result_capacity && slots < ((size_t)1 << 20))
        slots <<= 1;
    if (!b || !(b->table = calloc(slots, sizeof *b->table))) {
        free(b);
        return ap_error_set(err, AP_ENOMEM, "%s: no memory for the batcher", name);
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
    cond_init_mono(&b->done_cv);
    cond_init_mono(&b->idle_cv);

    pthread_mutex_lock(&w->mu);
    if (w->nb == w->capb) {
        size_t nc = w->capb ? 2 * w->capb : 8;
        ap_batcher **nb = realloc(w->bs, nc * sizeof *nb);
        if (!nb) {
            pthread_mutex_unlock(&w->mu);
            pthread_cond_destroy(&b->idle_cv);
            pthread_cond_destroy(&b->done_cv);
            pthread_mutex_destroy(&b->mu);
            free(b->table);
            free(b);
            return ap_error_set(err, AP_ENOMEM, "%s: no memory to attach the batcher", name);
        }
        w->bs = nb;
        w->capb = nc;
    }
    /* the batcher's own reference to its current model */
    b->model = model->ctx;
    if (b->acquire && b->model)
        b->acquire(b->model);
    w->bs[w->nb++] = b;
    pthread_mutex_unlock(&w->mu);
    *out = b;
    return AP_OK;
}

void ap_batcher_free(ap_batcher *b)
{
    if (!b)
        return;
    ap_workers *w = b->w;
    rlist gone = {0};
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < w->nb; i++)
        if (w->bs[i] == b) {
            w->bs[i] = w->bs[--w->nb];
            break;
        }
    w->rr = 0;
    pthread_mutex_lock(&b->mu);
    b->closing = 1;
    while (b->q.head) {
        rec *r = b->q.head;
        queue_remove(b, r);
        r->shutdown = 1;
        finalize_locked(b, r, AP_ECANCELLED);
        r->t_done = ap_clock_ns();
        rl_append(&gone, r);
    }
    b->active++;
    pthread_mutex_unlock(&b->mu);
    pthread_mutex_unlock(&w->mu);

    deliver(b, gone.head, 1);

    pthread_mutex_lock(&b->mu);
    while (b->active > 0 || b->waiters > 0)
        pthread_cond_wait(&b->idle_cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    /* now only kept results remain */
    for (size_t s = 0; s <= b->tmask; s++)
        for (rec *r = b->table[s], *nx; r; r = nx) {
            nx = r->hnext;
            rec_free(r);
        }
    if (b->release && b->model)
        b->release(b->model);
    pthread_cond_destroy(&b->idle_cv);
    pthread_cond_destroy(&b->done_cv);
    pthread_mutex_destroy(&b->mu);
    free(b->table);
    free(b);
}

int ap_batcher_set_model(ap_batcher *b, void *ctx, ap_error *err)
{
    if (!b)
        return ap_error_set(err, AP_EINVAL, "ap_batcher_set_model: batcher is NULL");
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

/* ---- requests ------------------------------------------------------------ */

/*
 * Caller runs: run the batch j taken by this submit (one b->active and one
 * b->runners count held), then, while requests queued meanwhile and no other
 * batch runs, the next batches, up to AP_BATCH_CALLER_MAX_BATCHES in all;
 * what is left goes to the pool. The re-check and the runner's decrement
 * share one critical section (see the top of this file).
 */
static void caller_run(ap_batcher *b, job *j)
{
    double stack[512]; /* batches up to this many doubles need no allocation */
    scratch s = {stack, sizeof stack / sizeof *stack, 0};
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
                take_batch_locked(b, j, ap_clock_ns());
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
            wake_pool(b->w);
        if (!again)
            break;
    }
    if (s.heap)
        free(s.buf);
}

/* will_wait: the caller blocks until this request completes (ap_batch_run) */
static int submit(ap_batcher *b, const double *X, size_t nrows, const ap_batch_submit_opts *opts,
                  uint64_t *id, ap_error *err, int will_wait)
{
    if (!b || !X || !id)
        return ap_error_set(err, AP_EINVAL, "ap_batch_submit: batcher, X and id are required");
    *id = 0;
    if (nrows == 0 || nrows > b->cfg.max_queue_rows)
        return ap_error_set(err, AP_ERANGE, "%s: request of %zu rows (allowed 1..%zu)", b->name,
                            nrows, b->cfg.max_queue_rows);
    size_t nc = b->cfg.ncols, no = b->cfg.nout;
    rec *r = malloc(sizeof *r + nrows * (nc + no) * sizeof(double));
    if (!r)
        return ap_error_set(err, AP_ENOMEM, "%s: no memory for a request of %zu rows", b->name,
                            nrows);
    memset(r, 0, sizeof *r);
    r->X = r->data;
    r->out = r->data + nrows * nc;
    memcpy(r->X, X, nrows * nc * sizeof *X);
    r->nrows = nrows;
    if (opts) {
        r->on_done = opts->on_done;
        r->user = opts->user;
        if (opts->defer)
            r->owner = opts->defer_owner;
    }
    uint64_t timeout = b->cfg.default_timeout_us;
    if (opts && opts->timeout_us && opts->timeout_us < timeout)
        timeout = opts->timeout_us; /* may shorten, never lengthen */
    r->id = atomic_fetch_add_explicit(&b->w->next_id, 1, memory_order_relaxed);

    pthread_mutex_lock(&b->mu);
    if (b->closing) {
        pthread_mutex_unlock(&b->mu);
        free(r);
        return ap_error_set(err, AP_ECANCELLED, "%s: batcher is shutting down", b->name);
    }
    if (b->qrows + nrows > b->cfg.max_queue_rows) {
        b->st.rejected++;
        size_t q = b->qrows;
        pthread_mutex_unlock(&b->mu);
        free(r);
        return ap_error_set(err, AP_EOVERLOAD,
                            "%s: overloaded: %zu rows queued, %zu more would exceed %zu", b->name,
                            q, nrows, b->cfg.max_queue_rows);
    }
    uint64_t now = ap_clock_ns();
    r->t_submit = now;
    r->deadline = add_sat(now, us_to_ns(timeout));
    r->close_by = now + (r->deadline - now) / 2;
    r->model = opts && opts->model_ctx ? opts->model_ctx : b->model;
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
        decide_delay(b);
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
    int run_here = 0, defer = opts && opts->defer;
    if (b->cfg.caller_runs && !defer) {
        double idle = b->runners || now <= b->last_end ? 0 : (double)(now - b->last_end);
        b->ewma_idle_ns = 0.875 * b->ewma_idle_ns + 0.125 * (idle < 1e9 ? idle : 1e9);
        run_here = !(opts && opts->queue_only) && b->runners == 0 && current_delay(b) == 0 &&
                   (will_wait || b->ewma_idle_ns >= b->ewma_cost_ns);
    }
    /* with caller_runs, a running batch's runner re-checks the queue when done:
     * only a full batch is worth an idle worker's wake-up meanwhile */
    int wake = !defer && (filled || (was_empty && !(b->cfg.caller_runs && b->runners > 0)));
    job j;
    if (run_here) {
        memset(&j, 0, sizeof j);
        take_batch_locked(b, &j, now);
        j.b = b;
        b->active++;
    }
    pthread_mutex_unlock(&b->mu);
    if (run_here)
        caller_run(b, &j);
    else if (wake)
        wake_pool(b->w);
    return AP_OK;
}

int ap_batch_submit(ap_batcher *b, const double *X, size_t nrows,
                    const ap_batch_submit_opts *opts, uint64_t *id, ap_error *err)
{
    return submit(b, X, nrows, opts, id, err, 0);
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
        int found = 0, run = 0, wake = 0;
        job j;
        memset(&j, 0, sizeof j);
        /* w->mu then b->mu: a batcher in w's list is not freed before its
           b->active count, taken here, drops again */
        pthread_mutex_lock(&w->mu);
        for (size_t k = 0; k < w->nb && !found; k++)
            found = w->bs[k] == b;
        if (found) {
            pthread_mutex_lock(&b->mu);
            /* unlike a submit, a flush runs its batch even while another
               batch of b runs: each event loop runs what its own pass
               gathered, so no loop waits for another one's resume */
            if (b->q.head && !b->closing) {
                if (b->cfg.caller_runs && current_delay(b) == 0) {
                    j.owner = owner;
                    take_batch_locked(b, &j, ap_clock_ns());
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
            if (wake && w->idle > 0)
                pthread_cond_signal(&w->cv);
        }
        pthread_mutex_unlock(&w->mu);
        if (run)
            caller_run(b, &j);
    }
}

int ap_batch_wait(ap_batcher *b, uint64_t id, uint64_t timeout_us, double *out, size_t out_len,
                  ap_error *err)
{
    if (!b)
        return ap_error_set(err, AP_EINVAL, "ap_batch_wait: batcher is NULL");
    uint64_t end = timeout_us == AP_BATCH_FOREVER ? UINT64_MAX
                                                  : add_sat(ap_clock_ns(), us_to_ns(timeout_us));
    pthread_mutex_lock(&b->mu);
    rec *r = table_find(b, id);
    if (!r) {
        pthread_mutex_unlock(&b->mu);
        return ap_error_set(err, AP_ENOTFOUND,
                            "%s: request %" PRIu64
                            ": unknown, already taken, cancelled, expired or evicted",
                            b->name, id);
    }
    if (r->on_done) {
        pthread_mutex_unlock(&b->mu);
        return ap_error_set(err, AP_EINVAL,
                            "%s: request %" PRIu64 " is delivered to its callback, not kept",
                            b->name, id);
    }
    r->waiters++;
    b->waiters++;
    int rc;
    for (;;) {
        if (!r->in_table) {
            rc = ap_error_set(err, AP_ENOTFOUND,
                              "%s: request %" PRIu64 ": taken or cancelled by another thread",
                              b->name, id);
            break;
        }
        if (r->state == ST_DONE) {
            size_t need = r->nrows * b->cfg.nout;
            if (r->status == AP_OK && (!out || out_len < need)) {
                rc = ap_error_set(err, AP_ERANGE,
                                  "%s: request %" PRIu64 ": %zu outputs, buffer holds %zu (kept)",
                                  b->name, id, need, out ? out_len : 0);
                break;
            }
            rc = r->status;
            if (rc == AP_OK) {
                memcpy(out, r->out, need * sizeof *out);
            } else {
                char msg[AP_ERROR_MSG_MAX];
                describe(b, r, msg, sizeof msg);
                ap_error_set(err, rc, "%s", msg);
            }
            kept_drop(b, r); /* freed below: we hold it */
            break;
        }
        uint64_t now = ap_clock_ns();
        if (r->state == ST_QUEUED && now >= r->deadline) {
            /* nobody may be free to notice; the waiter enforces the deadline */
            queue_remove(b, r);
            finalize_locked(b, r, AP_ETIMEDOUT);
            r->t_done = now;
            r->link = NULL;
            b->active++;
            pthread_mutex_unlock(&b->mu);
            deliver(b, r, 1);
            pthread_mutex_lock(&b->mu);
            continue;
        }
        if (now >= end) {
            rc = AP_BATCH_PENDING;
            break;
        }
        uint64_t until = end;
        if (r->state == ST_QUEUED && r->deadline < until)
            until = r->deadline;
        wait_until(&b->done_cv, &b->mu, until);
    }
    r->waiters--;
    b->waiters--;
    if (!r->in_table && r->waiters == 0)
        rec_free(r);
    if (b->closing)
        pthread_cond_broadcast(&b->idle_cv);
    pthread_mutex_unlock(&b->mu);
    return rc;
}

int ap_batch_cancel(ap_batcher *b, uint64_t id, ap_error *err)
{
    if (!b)
        return ap_error_set(err, AP_EINVAL, "ap_batch_cancel: batcher is NULL");
    pthread_mutex_lock(&b->mu);
    rec *r = table_find(b, id);
    if (!r) {
        pthread_mutex_unlock(&b->mu);
        return ap_error_set(err, AP_ENOTFOUND,
                            "%s: request %" PRIu64 ": unknown or already delivered", b->name, id);
    }
    switch (r->state) {
    case ST_QUEUED:
        queue_remove(b, r);
        finalize_locked(b, r, AP_ECANCELLED);
        r->t_done = ap_clock_ns();
        r->link = NULL;
        b->active++;
        pthread_mutex_unlock(&b->mu);
        deliver(b, r, 1);
        return AP_OK;
    case ST_RUNNING: r->cancel_req = 1; break;
    case ST_FINISHING: r->discard = 1; break;
    default: /* ST_DONE: drop the kept result now */
        kept_drop(b, r);
        pthread_cond_broadcast(&b->done_cv);
        break;
    }
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
        ap_error_set(s->err, c->status, "%s", c->message);
    s->done = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int ap_batch_run(ap_batcher *b, const double *X, size_t nrows, double *out, size_t out_len,
                 uint64_t timeout_us, ap_error *err)
{
    if (!b || !out)
        return ap_error_set(err, AP_EINVAL, "ap_batch_run: batcher and out are required");
    if (out_len / b->cfg.nout < nrows)
        return ap_error_set(err, AP_ERANGE, "%s: %zu rows need %zu outputs, buffer holds %zu",
                            b->name, nrows, nrows * b->cfg.nout, out_len);
    sync_wait s = {.out = out, .err = err};
    pthread_mutex_init(&s.mu, NULL);
    cond_init_mono(&s.cv);
    ap_batch_submit_opts o = {.timeout_us = timeout_us, .on_done = sync_done, .user = &s};
    uint64_t id;
    int rc = submit(b, X, nrows, &o, &id, err, 1);
    if (rc == AP_OK) {
        uint64_t t = b->cfg.default_timeout_us;
        if (timeout_us && timeout_us < t)
            t = timeout_us;
        uint64_t deadline = add_sat(ap_clock_ns(), us_to_ns(t));
        pthread_mutex_lock(&s.mu);
        while (!s.done) {
            if (ap_clock_ns() >= deadline) {
                /* Past our deadline and maybe no worker free to notice: fail
                 * the request ourselves if still queued (cancel path, then
                 * relabel), else its batch is running: wait for it. */
                pthread_mutex_unlock(&s.mu);
                pthread_mutex_lock(&b->mu);
                rec *r = table_find(b, id);
                if (r && r->state == ST_QUEUED) {
                    queue_remove(b, r);
                    finalize_locked(b, r, AP_ETIMEDOUT);
                    r->t_done = ap_clock_ns();
                    r->link = NULL;
                    b->active++;
                    pthread_mutex_unlock(&b->mu);
                    deliver(b, r, 1);
                } else {
                    pthread_mutex_unlock(&b->mu);
                }
                pthread_mutex_lock(&s.mu);
                while (!s.done)
                    pthread_cond_wait(&s.cv, &s.mu);
                break;
            }
            wait_until(&s.cv, &s.mu, deadline);
        }
        rc = s.status;
        pthread_mutex_unlock(&s.mu);
    }
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    return rc;
}

/* ---- statistics ---------------------------------------------------------- */

static void snapshot_locked(ap_batcher *b, ap_batch_stats *o)
{
    purge_expired(b, ap_clock_ns());
    *o = b->st;
    o->queue_depth = b->qlen;
    o->queue_rows = b->qrows;
    o->running = b->running;
    o->results_kept = b->nkept;
    o->current_delay_us = current_delay(b) / 1000;
}

int ap_batcher_stats(ap_batcher *b, ap_batch_stats *out)
{
    if (!b || !out)
        return AP_EINVAL;
    pthread_mutex_lock(&b->mu);
    snapshot_locked(b, out);
    pthread_mutex_unlock(&b->mu);
    return AP_OK;
}

int ap_workers_stats(ap_workers *w, ap_batch_stats *out)
{
    if (!w || !out)
        return AP_EINVAL;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < w->nb; i++) {
        ap_batch_stats s;
        pthread_mutex_lock(&w->bs[i]->mu);
        snapshot_locked(w->bs[i], &s);
        pthread_mutex_unlock(&w->bs[i]->mu);
        out->submitted += s.submitted;
        out->rejected += s.rejected;
        out->completed += s.completed;
        out->failed += s.failed;
        out->timed_out += s.timed_out;
        out->cancelled += s.cancelled;
        out->expired += s.expired;
        out->evicted += s.evicted;
        out->batches += s.batches;
        out->rows += s.rows;
        out->queue_depth += s.queue_depth;
        out->queue_rows += s.queue_rows;
        out->running += s.running;
        out->results_kept += s.results_kept;
        if (s.current_delay_us > out->current_delay_us)
            out->current_delay_us = s.current_delay_us;
        ap_batch_hist_merge(&out->queue_time, &s.queue_time);
        ap_batch_hist_merge(&out->compute_time, &s.compute_time);
        for (int k = 0; k < AP_BATCH_SIZE_BUCKETS; k++)
            out->batch_size[k] += s.batch_size[k];
    }
    pthread_mutex_unlock(&w->mu);
    return AP_OK;
}
