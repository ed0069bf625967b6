/*
 * Caller runs (ap_batcher_config.caller_runs): a submit with no delay to wait
 * and no batch of its batcher running runs the batch on the submitting
 * thread; submits that find a batch running queue, and the running thread
 * takes them as its next batch (at most AP_BATCH_CALLER_MAX_BATCHES per
 * submit, then the pool). Expected outputs are the fake's hand formula
 * out = 2x + 1 + tag (batch_fake.h); "which thread ran it" is observed with
 * pthread_self in the callbacks.
 *
 * AP_TEST_THREADED (runs under TSan too)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch_fake.h"

static ap_batcher *make(ap_workers *w, fake *f, uint64_t delay_us)
{
    ap_batcher_config cfg;
    ap_batcher_config_default(&cfg);
    cfg.name = "caller";
    cfg.ncols = NCOLS;
    cfg.nout = NCOLS;
    cfg.max_batch_rows = 64;
    cfg.max_queue_delay_us = delay_us;
    cfg.max_queue_rows = 16384; /* the mixed test queues all its requests at worst */
    cfg.caller_runs = 1;
    ap_batch_model m = {fake_run, f, fake_acquire, fake_release};
    ap_batcher *b = NULL;
    ap_error err;
    assert_int_equal(ap_batcher_create(w, &cfg, &m, &b, &err), AP_OK);
    return b;
}

/* One request's completion as seen by its callback. */
typedef struct seen {
    _Atomic int calls;
    int status;
    double out[NCOLS];
    pthread_t thread;
    uint64_t queue_us;
} seen;

static void on_seen(void *user, const ap_batch_completion *c)
{
    seen *s = user;
    s->status = c->status;
    s->thread = pthread_self();
    s->queue_us = c->queue_us;
    if (c->status == AP_OK)
        memcpy(s->out, c->out, sizeof s->out);
    atomic_fetch_add(&s->calls, 1);
}

static int submit_seen(ap_batcher *b, double x, seen *s, uint64_t timeout_us, uint64_t *id)
{
    double X[NCOLS] = {x, x + 1};
    ap_batch_submit_opts o = {.timeout_us = timeout_us, .on_done = on_seen, .user = s};
    ap_error err;
    uint64_t dummy;
    return ap_batch_submit(b, X, 1, &o, id ? id : &dummy, &err);
}

static void wait_calls(seen *s, int n)
{
    for (int i = 0; i < 5000 && atomic_load(&s->calls) < n; i++)
        sleep_us(1000);
}

/* Idle batcher, no delay: the submit itself runs the batch and calls back. */
static void test_runs_on_submitting_thread(void **state)
{
    (void)state;
    ap_workers *w;
    ap_error err;
    assert_int_equal(ap_workers_create(1, &w, &err), AP_OK);
    fake f;
    fake_init(&f, 0.5, 0);
    ap_batcher *b = make(w, &f, 0);

    seen s = {0};
    assert_int_equal(submit_seen(b, 3, &s, 0, NULL), AP_OK);
    /* done before ap_batch_submit returned, on this thread */
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_true(pthread_equal(s.thread, pthread_self()));
    assert_int_equal(s.status, AP_OK);
    assert_true(s.out[0] == 2 * 3 + 1 + 0.5 && s.out[1] == 2 * 4 + 1 + 0.5);

    /* into a collector: complete on return (on this thread), a poll finds it */
    collector col;
    collect_init(&col, 16);
    ap_batch_submit_opts co = collect_opts(&col);
    double X[NCOLS] = {7, 8}, out[NCOLS];
    uint64_t id;
    assert_int_equal(ap_batch_submit(b, X, 1, &co, &id, &err), AP_OK);
    collected e = {0};
    assert_int_equal(collect_peek(&col, id, 0, &e), 1);
    assert_true(pthread_equal(e.thread, pthread_self()));
    assert_int_equal(collect_wait(&col, id, 0, out, NCOLS, &err), AP_OK);
    assert_true(out[0] == 15.5 && out[1] == 17.5);
    assert_int_equal(col.dups, 0);
    collect_destroy(&col);

    /* synchronous call */
    assert_int_equal(ap_batch_run(b, X, 1, out, NCOLS, 0, &err), AP_OK);
    assert_true(out[0] == 15.5);

    ap_batch_stats st;
    ap_batcher_stats(b, &st);
    assert_int_equal(st.submitted, 3);
    assert_int_equal(st.completed, 3);
    assert_int_equal(st.batches, 3);
    assert_int_equal(st.rows, 3);
    assert_int_equal(st.queue_time.count, 3);
    assert_int_equal(st.compute_time.count, 3);
    assert_int_equal(st.batch_size[0], 3); /* bucket le=1 */
    assert_int_equal(st.queue_depth, 0);
    assert_int_equal(st.running, 0);
    assert_int_equal(atomic_load(&f.refs), 1); /* only the batcher's own */

    /* queue_only: the same batcher hands this one to a worker */
    seen q = {0};
    double Y[NCOLS] = {1, 2};
    ap_batch_submit_opts o = {.on_done = on_seen, .user = &q, .queue_only = 1};
    assert_int_equal(ap_batch_submit(b, Y, 1, &o, &id, &err), AP_OK);
    wait_calls(&q, 1);
    assert_int_equal(atomic_load(&q.calls), 1);
    assert_false(pthread_equal(q.thread, pthread_self()));
    assert_int_equal(q.status, AP_OK);

    ap_batcher_free(b);
    assert_int_equal(atomic_load(&f.refs), 0);
    ap_workers_free(w);
    fake_destroy(&f);
}

/* A queue delay to wait for: caller_runs does not apply, a worker runs it. */
static void test_not_with_a_delay(void **state)
{
    (void)state;
    ap_workers *w;
    ap_error err;
    assert_int_equal(ap_workers_create(1, &w, &err), AP_OK);
    fake f;
    fake_init(&f, 0, 0);
    ap_batcher *b = make(w, &f, 50000);
    seen s = {0};
    assert_int_equal(submit_seen(b, 1, &s, 0, NULL), AP_OK);
    assert_int_equal(atomic_load(&s.calls), 0); /* still waiting for companions */
    wait_calls(&s, 1);
    assert_int_equal(s.status, AP_OK);
    assert_false(pthread_equal(s.thread, pthread_self()));
    assert_true(s.queue_us >= 45000); /* it waited for companions (50 ms delay) */
    ap_batcher_free(b);
    ap_workers_free(w);
    fake_destroy(&f);
}

/*
 * Hold the pool's only worker inside a gated batch of another batcher, so
 * that no worker can take what a test queues (a worker that is just
 * starting, or rescanning after a job, legitimately would). Its one
 * request completes into gs.
 */
static ap_batcher *occupy_worker(ap_workers *w, fake *g, seen *gs)
{
    ap_batcher_config cfg;
    ap_batcher_config_default(&cfg);
    cfg.name = "occupier";
    cfg.ncols = NCOLS;
    cfg.nout = NCOLS;
    cfg.max_queue_delay_us = 0;
    ap_batch_model m = {fake_run, g, NULL, NULL};
    ap_batcher *gb = NULL;
    ap_error err;
    assert_int_equal(ap_batcher_create(w, &cfg, &m, &gb, &err), AP_OK);
    double X[NCOLS] = {0, 0};
    uint64_t id;
    ap_batch_submit_opts o = {.on_done = on_seen, .user = gs};
    assert_int_equal(ap_batch_submit(gb, X, 1, &o, &id, &err), AP_OK);
    wait_entered(g, 1);
    assert_int_equal(atomic_load(&g->entered), 1);
    return gb;
}

static void release_worker(ap_batcher *gb, fake *g, seen *gs)
{
    fake_open(g);
    ap_batcher_free(gb); /* waits for the running batch: delivered now */
    assert_int_equal(atomic_load(&gs->calls), 1);
    assert_int_equal(gs->status, AP_OK);
    fake_destroy(g);
}

typedef struct runner {
    ap_batcher *b;
    seen s;
    double x;
    int rc;
} runner;

static void *run_one(void *arg)
{
    runner *r = arg;
    r->rc = submit_seen(r->b, r->x, &r->s, 0, NULL);
    return NULL;
}

/*
 * While a caller's batch runs (held at the gate), other submits queue and no
 * worker takes them; when the batch ends, the same thread runs them as one
 * batch, inside its submit. A queued request whose deadline passed
 * meanwhile times out instead of running.
 */
static void test_running_batch_takes_the_queue(void **state)
{
    (void)state;
    ap_workers *w;
    ap_error err;
    assert_int_equal(ap_workers_create(1, &w, &err), AP_OK);
    fake f, g;
    fake_init(&f, 0, 1);
    fake_init(&g, 0, 1);
    seen gs = {0};
    ap_batcher *gb = occupy_worker(w, &g, &gs);
    ap_batcher *b = make(w, &f, 0);

    runner t = {.b = b, .x = 1};
    pthread_t th;
    pthread_create(&th, NULL, run_one, &t);
    wait_entered(&f, 1); /* t's batch is inside the model */

    seen s[3] = {{0}};
    uint64_t ids[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(submit_seen(b, 10 + i, &s[i], i == 2 ? 2000 : 0, &ids[i]), AP_OK);
    sleep_us(20000); /* nothing moves while t's batch runs */
    ap_batch_stats st;
    ap_batcher_stats(b, &st);
    assert_int_equal(st.queue_depth, 3);
    assert_int_equal(atomic_load(&f.entered), 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&s[i].calls), 0);

    fake_open(&f);
    pthread_join(th, NULL);
    assert_int_equal(t.rc, AP_OK);
    assert_int_equal(t.s.status, AP_OK);
    assert_true(t.s.out[0] == 3);
    /* t's submit ran the next batch too: both untimed requests, one call */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(atomic_load(&s[i].calls), 1);
        assert_int_equal(s[i].status, AP_OK);
        assert_true(s[i].out[0] == 2 * (10 + i) + 1);
        assert_true(pthread_equal(s[i].thread, th));
    }
    assert_int_equal(atomic_load(&s[2].calls), 1);
    assert_int_equal(s[2].status, AP_ETIMEDOUT); /* its 2 ms passed at the gate */
    assert_int_equal(atomic_load(&f.calls), 2);
    assert_int_equal(atomic_load(&f.rows), 3);
    assert_int_equal(atomic_load(&f.max_rows), 2);
    ap_batcher_stats(b, &st);
    assert_int_equal(st.completed, 3);
    assert_int_equal(st.timed_out, 1);
    assert_int_equal(st.batches, 2);
    assert_int_equal(st.queue_time.count, 3); /* timed-out ones never started */
    assert_true(st.queue_time.max_ns >= 20000000u);
    assert_int_equal(st.batch_size[0], 1);
    assert_int_equal(st.batch_size[1], 1); /* le=2 */
    assert_int_equal(ap_batch_cancel(b, ids[0], &err), AP_ENOTFOUND);
    ap_batcher_free(b);
    release_worker(gb, &g, &gs);
    ap_workers_free(w);
    fake_destroy(&f);
}

/* Callbacks that resubmit: a chain of CHAIN requests. */
#define CHAIN 10
typedef struct chain {
    ap_batcher *b;
    pthread_t origin;
    _Atomic int done, on_origin, bad;
} chain;

static void chain_next(void *user, const ap_batch_completion *c)
{
    chain *ch = user;
    if (c->status != AP_OK || c->out[0] != 2 * (double)atomic_load(&ch->done) + 1)
        atomic_fetch_add(&ch->bad, 1);
    if (pthread_equal(pthread_self(), ch->origin))
        atomic_fetch_add(&ch->on_origin, 1);
    int n = atomic_fetch_add(&ch->done, 1) + 1;
    if (n < CHAIN) {
        double X[NCOLS] = {n, n + 1};
        ap_batch_submit_opts o = {.on_done = chain_next, .user = ch};
        uint64_t id;
        ap_error err;
        if (ap_batch_submit(ch->b, X, 1, &o, &id, &err) != AP_OK)
            atomic_fetch_add(&ch->bad, 1);
    }
}

/*
 * A callback's submit does not recurse (the batch being delivered still
 * counts as running, so it queues), and one submit runs at most
 * AP_BATCH_CALLER_MAX_BATCHES batches before the pool takes over.
 */
static void test_resubmit_no_recursion_and_limit(void **state)
{
    (void)state;
    ap_workers *w;
    ap_error err;
    assert_int_equal(ap_workers_create(1, &w, &err), AP_OK);
    fake f;
    fake_init(&f, 0, 0);
    ap_batcher *b = make(w, &f, 0);
    chain ch = {.b = b, .origin = pthread_self()};
    double X[NCOLS] = {0, 1};
    ap_batch_submit_opts o = {.on_done = chain_next, .user = &ch};
    uint64_t id;
    assert_int_equal(ap_batch_submit(b, X, 1, &o, &id, &err), AP_OK);
    /* on return: exactly the limit ran here */
    assert_int_equal(atomic_load(&ch.on_origin), AP_BATCH_CALLER_MAX_BATCHES);
    for (int i = 0; i < 5000 && atomic_load(&ch.done) < CHAIN; i++)
        sleep_us(1000);
    assert_int_equal(atomic_load(&ch.done), CHAIN);
    assert_int_equal(atomic_load(&ch.bad), 0);
    assert_int_equal(atomic_load(&ch.on_origin), AP_BATCH_CALLER_MAX_BATCHES);
    ap_batch_stats st;
    ap_batcher_stats(b, &st);
    assert_int_equal(st.completed, CHAIN);
    assert_int_equal(st.batches, CHAIN);
    ap_batcher_free(b);
    ap_workers_free(w);
    fake_destroy(&f);
}

/* A model that takes 1 ms per batch (sleeping) and counts its calls. */
typedef struct slow {
    _Atomic long calls, rows;
    /* thread of the latest call; a lock: a caller's batch and a worker's
     * batch (of what the caller's batch left queued beyond max_batch_rows)
     * may run at the same time */
    pthread_mutex_t mu;
    pthread_t last;
} slow;

static int slow_run(void *ctx, const double *X, size_t nrows, size_t ncols, double *out,
                    size_t nout, ap_error *err)
{
    slow *s = ctx;
    atomic_fetch_add(&s->calls, 1);
    atomic_fetch_add(&s->rows, (long)nrows);
    pthread_mutex_lock(&s->mu);
    s->last = pthread_self();
    pthread_mutex_unlock(&s->mu);
    sleep_us(1000);
    for (size_t i = 0; i < nrows * nout; i++)
        out[i] = 2 * X[i] + 1;
    return 0;
}

#define SAT 300
typedef struct satreq {
    _Atomic int calls;
    _Atomic int on_main;
    pthread_t main;
} satreq;

static void sat_done(void *user, const ap_batch_completion *c)
{
    satreq *q = user;
    atomic_store(&q->on_main, pthread_equal(pthread_self(), q->main) && c->status == AP_OK);
    atomic_fetch_add(&q->calls, 1);
}

/*
 * One submitter that never waits, faster than the model: running every batch
 * itself it would never batch (its queue is empty whenever it submits). Once
 * the measured idle time before a submit drops below the batch cost, it
 * hands over to the pool and batches form. ap_batch_run, which waits
 * anyway, still runs on the caller.
 */
static void test_saturated_submitter_hands_over(void **state)
{
    (void)state;
    ap_workers *w;
    ap_error err;
    assert_int_equal(ap_workers_create(1, &w, &err), AP_OK);
    slow sm = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ap_batcher_config cfg;
    ap_batcher_config_default(&cfg);
    cfg.ncols = cfg.nout = NCOLS;
    cfg.max_queue_delay_us = 0;
    cfg.caller_runs = 1;
    ap_batch_model m = {slow_run, &sm, NULL, NULL};
    ap_batcher *b;
    assert_int_equal(ap_batcher_create(w, &cfg, &m, &b, &err), AP_OK);
    satreq *q = calloc(SAT, sizeof *q);
    for (int i = 0; i < SAT; i++) {
        q[i].main = pthread_self();
        double X[NCOLS] = {i, i};
        ap_batch_submit_opts o = {.on_done = sat_done, .user = &q[i]};
        uint64_t id;
        assert_int_equal(ap_batch_submit(b, X, 1, &o, &id, &err), AP_OK);
    }
    for (int i = 0; i < 10000; i++) {
        int all = 1;
        for (int k = 0; k < SAT && all; k++)
            all = atomic_load(&q[k].calls) == 1;
        if (all)
            break;
        sleep_us(1000);
    }
    int on_main = 0;
    for (int k = 0; k < SAT; k++) {
        assert_int_equal(atomic_load(&q[k].calls), 1);
        on_main += atomic_load(&q[k].on_main);
    }
    ap_batch_stats st;
    ap_batcher_stats(b, &st);
    print_message("saturated: %d of %d ran on the submitter, %" PRIu64 " batches\n", on_main,
                  SAT, st.batches);
    assert_true(atomic_load(&q[0].on_main)); /* idle at first: ran here */
    assert_true(on_main < SAT / 2);
    assert_true(st.rows == SAT && st.batches < SAT - SAT / 4); /* batches formed */
    /* a synchronous call still runs on its caller (it would wait anyway) */
    double X[NCOLS] = {1, 2}, out[NCOLS];
    long before = atomic_load(&sm.calls);
    uint64_t t0 = t_now_us();
    assert_int_equal(ap_batch_run(b, X, 1, out, NCOLS, 0, &err), AP_OK);
    assert_true(out[0] == 3 && out[1] == 5);
    assert_true(t_now_us() - t0 >= 1000);
    assert_int_equal(atomic_load(&sm.calls), before + 1);
    pthread_mutex_lock(&sm.mu);
    pthread_t last = sm.last;
    pthread_mutex_unlock(&sm.mu);
    assert_true(pthread_equal(last, pthread_self()));
    ap_batcher_free(b);
    ap_workers_free(w);
    free(q);
}

typedef struct freer {
    ap_batcher *b;
} freer;

static void *free_it(void *arg)
{
    ap_batcher_free(((freer *)arg)->b);
    return NULL;
}

/*
 * Cancel and shutdown around a caller's running batch: a request cancelled
 * while running in it completes as cancelled (once), a queued one cancelled
 * completes at once on the cancelling thread, and ap_batcher_free cancels
 * what is queued and waits for the caller's batch.
 */
static void test_cancel_and_shutdown_during_caller_batch(void **state)
{
    (void)state;
    ap_workers *w;
    ap_error err;
    assert_int_equal(ap_workers_create(1, &w, &err), AP_OK);
    fake f, g;
    fake_init(&f, 0, 1);
    fake_init(&g, 0, 1);
    seen gs = {0};
    ap_batcher *gb = occupy_worker(w, &g, &gs);
    ap_batcher *b = make(w, &f, 0);

    /* ids count up by one per submit (from a random start): a probe before
       t's request gives t's id, which its submit only returns at the end */
    double P[NCOLS] = {0, 0};
    uint64_t probe;
    seen ps = {0};
    ap_batch_submit_opts po = {.on_done = on_seen, .user = &ps};
    fake_open(&f);
    assert_int_equal(ap_batch_submit(b, P, 1, &po, &probe, &err), AP_OK);
    assert_int_equal(atomic_load(&ps.calls), 1); /* ran in the submit */
    assert_int_equal(ps.status, AP_OK);
    pthread_mutex_lock(&f.mu);
    f.open = 0;
    pthread_mutex_unlock(&f.mu);

    runner t = {.b = b, .x = 1};
    pthread_t th;
    pthread_create(&th, NULL, run_one, &t);
    wait_entered(&f, 2);
    /* t's request is running in t's own batch; cancel it there */
    assert_int_equal(ap_batch_cancel(b, probe + 1, &err), AP_OK);
    seen q1 = {0}, q2 = {0};
    uint64_t id1, id2;
    assert_int_equal(submit_seen(b, 5, &q1, 0, &id1), AP_OK);
    assert_int_equal(submit_seen(b, 6, &q2, 0, &id2), AP_OK);
    assert_int_equal(ap_batch_cancel(b, id1, &err), AP_OK);
    assert_int_equal(atomic_load(&q1.calls), 1); /* delivered on this thread, at once */
    assert_int_equal(q1.status, AP_ECANCELLED);
    assert_true(pthread_equal(q1.thread, pthread_self()));
    assert_int_equal(ap_batch_cancel(b, id1, &err), AP_ENOTFOUND);

    freer fr = {b};
    pthread_t tf;
    pthread_create(&tf, NULL, free_it, &fr);
    wait_calls(&q2, 1); /* the shutdown cancels the queued one... */
    assert_int_equal(q2.status, AP_ECANCELLED);
    assert_int_equal(atomic_load(&t.s.calls), 0); /* ...and waits for the running batch */
    fake_open(&f);
    pthread_join(th, NULL);
    pthread_join(tf, NULL);
    assert_int_equal(t.rc, AP_OK);
    assert_int_equal(atomic_load(&t.s.calls), 1);
    assert_int_equal(t.s.status, AP_ECANCELLED); /* ran, output discarded */
    assert_int_equal(atomic_load(&q1.calls), 1);
    assert_int_equal(atomic_load(&q2.calls), 1);
    assert_int_equal(atomic_load(&f.calls), 2); /* the probe and t's batch only */
    assert_int_equal(atomic_load(&f.refs), 0);
    release_worker(gb, &g, &gs);
    ap_workers_free(w);
    fake_destroy(&f);
}

/*
 * Many producers, caller-run and worker batches mixed (every third request
 * queue_only), random cancels from a canceller thread, a hot swap in the
 * middle: every request completes exactly once, OK ones with their own rows
 * computed by the version they were submitted against, and the counters add
 * up.
 */
#define NPROD 6
#define PER 1500
#define NREQ (NPROD * PER)

typedef struct mixreq {
    _Atomic int calls;
    _Atomic int status;
    _Atomic int wrong;
    double x, tag;
} mixreq;

typedef struct mix {
    ap_batcher *b;
    fake *f[2];
    _Atomic int version; /* index into f of the current context */
    mixreq req[NREQ];
    _Atomic uint64_t ids[NREQ];
    _Atomic int submitted_n, stop;
} mix;

typedef struct mixarg {
    mix *m;
    int p;
} mixarg;

static void mix_done(void *user, const ap_batch_completion *c)
{
    mixreq *q = user;
    if (c->status == AP_OK && (c->out[0] != 2 * q->x + 1 + q->tag ||
                               c->out[1] != 2 * (q->x + 1) + 1 + q->tag))
        atomic_fetch_add(&q->wrong, 1);
    atomic_store(&q->status, c->status);
    atomic_fetch_add(&q->calls, 1);
}

static void *mix_producer(void *arg)
{
    mixarg *a = arg;
    mix *m = a->m;
    for (int i = 0; i < PER; i++) {
        int k = a->p * PER + i;
        mixreq *q = &m->req[k];
        q->x = k;
        /* name the version explicitly so the expected tag is known */
        int v = atomic_load(&m->version);
        q->tag = m->f[v]->tag;
        double X[NCOLS] = {q->x, q->x + 1};
        ap_batch_submit_opts o = {.on_done = mix_done, .user = q, .model_ctx = m->f[v],
                                  .queue_only = k % 3 == 0};
        uint64_t id;
        ap_error err;
        if (ap_batch_submit(m->b, X, 1, &o, &id, &err) != AP_OK) {
            atomic_fetch_add(&q->wrong, 1);
            atomic_fetch_add(&q->calls, 1);
        } else {
            atomic_store(&m->ids[k], id);
        }
        atomic_fetch_add(&m->submitted_n, 1);
        if (i == PER / 2 && a->p == 0) {
            atomic_store(&m->version, 1);
            ap_batcher_set_model(m->b, m->f[1], &err);
        }
    }
    return NULL;
}

static void *mix_canceller(void *arg)
{
    mix *m = arg;
    uint64_t seed = 12345;
    while (!atomic_load(&m->stop)) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int n = atomic_load(&m->submitted_n);
        if (n > 0) {
            /* recent ones: most of the older ones are complete already */
            uint64_t back = (seed >> 33) % 16, at = (uint64_t)n > back ? (uint64_t)n - 1 - back : 0;
            uint64_t id = atomic_load(&m->ids[at]);
            if (id)
                ap_batch_cancel(m->b, id, NULL);
        }
        sched_yield();
    }
    return NULL;
}

static void test_many_producers_mixed(void **state)
{
    (void)state;
    ap_workers *w;
    ap_error err;
    assert_int_equal(ap_workers_create(2, &w, &err), AP_OK);
    fake f0, f1;
    fake_init(&f0, 0.25, 0);
    fake_init(&f1, 0.5, 0);
    mix *m = calloc(1, sizeof *m);
    m->f[0] = &f0;
    m->f[1] = &f1;
    m->b = make(w, &f0, 0);
    pthread_t th[NPROD], tc;
    mixarg args[NPROD];
    pthread_create(&tc, NULL, mix_canceller, m);
    for (int p = 0; p < NPROD; p++) {
        args[p] = (mixarg){m, p};
        pthread_create(&th[p], NULL, mix_producer, &args[p]);
    }
    for (int p = 0; p < NPROD; p++)
        pthread_join(th[p], NULL);
    for (int i = 0; i < 10000; i++) {
        int all = 1;
        for (int k = 0; k < NREQ && all; k++)
            all = atomic_load(&m->req[k].calls) > 0;
        if (all)
            break;
        sleep_us(1000);
    }
    atomic_store(&m->stop, 1);
    pthread_join(tc, NULL);

    int ok = 0, cancelled = 0, other = 0, wrong = 0, not_once = 0;
    for (int k = 0; k < NREQ; k++) {
        mixreq *q = &m->req[k];
        not_once += atomic_load(&q->calls) != 1;
        wrong += atomic_load(&q->wrong);
        int s = atomic_load(&q->status);
        if (s == AP_OK)
            ok++;
        else if (s == AP_ECANCELLED)
            cancelled++;
        else
            other++;
    }
    ap_batch_stats st;
    ap_batcher_stats(m->b, &st);
    print_message("mixed: %d ok, %d cancelled, %" PRIu64 " batches, mean %.2f rows\n", ok,
                  cancelled, st.batches, st.batches ? (double)st.rows / (double)st.batches : 0);
    assert_int_equal(not_once, 0);
    assert_int_equal(wrong, 0);
    assert_int_equal(other, 0);
    assert_int_equal(ok + cancelled, NREQ);
    assert_int_equal(st.submitted, NREQ);
    assert_int_equal(st.completed, (uint64_t)ok);
    assert_int_equal(st.cancelled, (uint64_t)cancelled);
    assert_int_equal(st.queue_depth, 0);
    assert_int_equal(st.running, 0);
    /* every request that ran was counted once in a batch and its queue time */
    assert_int_equal(st.rows, (uint64_t)(atomic_load(&f0.rows) + atomic_load(&f1.rows)));
    assert_int_equal(st.batches, (uint64_t)(atomic_load(&f0.calls) + atomic_load(&f1.calls)));
    assert_int_equal(st.compute_time.count, st.batches);
    assert_true(st.queue_time.count >= (uint64_t)ok && st.queue_time.count == st.rows);
    uint64_t sized = 0;
    for (int i = 0; i < AP_BATCH_SIZE_BUCKETS; i++)
        sized += st.batch_size[i];
    assert_int_equal(sized, st.batches);
    assert_true(st.rows > st.batches); /* concurrent requests did batch together */
    ap_batcher_free(m->b);
    assert_int_equal(atomic_load(&f0.refs), 0);
    assert_int_equal(atomic_load(&f1.refs), 0);
    ap_workers_free(w);
    free(m);
    fake_destroy(&f0);
    fake_destroy(&f1);
}

/* Completion order across requests, for the deferred-submit test. */
static _Atomic int order_next;
typedef struct ordered {
    seen s;
    int order;
} ordered;

static void on_ordered(void *user, const ap_batch_completion *c)
{
    ordered *o = user;
    o->order = atomic_fetch_add(&order_next, 1);
    on_seen(&o->s, c);
}

static void submit_deferred(ap_batcher *b, double x, ordered *o, const void *owner)
{
    double X[NCOLS] = {x, x + 1};
    ap_batch_submit_opts op = {.on_done = on_ordered, .user = o, .defer = 1,
                               .defer_owner = owner};
    ap_error err;
    uint64_t id;
    assert_int_equal(ap_batch_submit(b, X, 1, &op, &id, &err), AP_OK);
}

/*
 * Deferred submits queue without running or waking anything; the
 * submitter's ap_workers_run_queued runs them as one batch on its own
 * thread. Its first batch takes the owner's requests before others queued
 * earlier; a batcher freed meanwhile is skipped; a batcher with a delay is
 * left to the pool.
 */
static void test_deferred_run_queued(void **state)
{
    (void)state;
    ap_workers *w;
    ap_error err;
    assert_int_equal(ap_workers_create(1, &w, &err), AP_OK);
    fake f;
    fake_init(&f, 0.25, 0);
    ap_batcher *b = make(w, &f, 0);
    assert_int_equal(ap_batcher_flushable(b), 1);
    int loop_a, loop_b; /* two event loops' tags */
    /* the only worker is held in another batcher's batch, so whatever runs
       the deferred rows below is this thread */
    fake hold;
    fake_init(&hold, 0, 1);
    ap_batcher *hb = make(w, &hold, 0);
    seen hs = {0};
    double HX[NCOLS] = {0, 1};
    ap_batch_submit_opts ho = {.on_done = on_seen, .user = &hs, .queue_only = 1};
    uint64_t hid;
    assert_int_equal(ap_batch_submit(hb, HX, 1, &ho, &hid, &err), AP_OK);
    for (int i = 0; i < 5000 && atomic_load(&hold.entered) == 0; i++)
        sleep_us(1000);
    assert_int_equal(atomic_load(&hold.entered), 1);

    ordered r[5];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 5; i++)
        submit_deferred(b, i, &r[i], &loop_a);
    /* nothing ran in the submits (caller_runs would have run the first) */
    assert_int_equal(atomic_load(&f.calls), 0);
    ap_batch_stats st;
    ap_batcher_stats(b, &st);
    assert_int_equal(st.queue_depth, 5);
    ap_workers_run_queued(w, &b, 1, &loop_a);
    /* one batch of the 5 rows, on this thread, before run_queued returned */
    assert_int_equal(atomic_load(&f.calls), 1);
    assert_int_equal(atomic_load(&f.max_rows), 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(atomic_load(&r[i].s.calls), 1);
        assert_true(pthread_equal(r[i].s.thread, pthread_self()));
        assert_true(r[i].s.out[0] == 2 * i + 1 + 0.25);
    }

    /* owners: loop B's two requests queue first, then loop A's two; A's
       run_queued takes its own first, then B's (later batches take any) */
    ordered ra[2], rb[2];
    memset(ra, 0, sizeof ra);
    memset(rb, 0, sizeof rb);
    submit_deferred(b, 10, &rb[0], &loop_b);
    submit_deferred(b, 11, &rb[1], &loop_b);
    submit_deferred(b, 12, &ra[0], &loop_a);
    submit_deferred(b, 13, &ra[1], &loop_a);
    atomic_store(&order_next, 0);
    ap_workers_run_queued(w, &b, 1, &loop_a);
    assert_int_equal(atomic_load(&f.calls), 3);
    assert_true(ra[0].order == 0 && ra[1].order == 1);
    assert_true(rb[0].order == 2 && rb[1].order == 3);
    assert_true(ra[1].s.out[0] == 2 * 13 + 1 + 0.25 && rb[0].s.out[0] == 2 * 10 + 1 + 0.25);

    fake_open(&hold); /* the worker is free again */
    wait_calls(&hs, 1);
    assert_int_equal(hs.status, AP_OK);
    ap_batcher_free(hb);
    fake_destroy(&hold);

    /* a batcher freed since its submit: recognised, skipped */
    fake g;
    fake_init(&g, 0, 0);
    ap_batcher *gone = make(w, &g, 0);
    ordered rg = {0};
    submit_deferred(gone, 1, &rg, &loop_a);
    ap_batcher_free(gone); /* completes the queued one as cancelled */
    assert_int_equal(rg.s.status, AP_ECANCELLED);
    ap_workers_run_queued(w, &gone, 1, &loop_a);
    assert_int_equal(atomic_load(&g.calls), 0);
    fake_destroy(&g);

    /* a batcher with a delay is not flushable: the pool runs it */
    fake d;
    fake_init(&d, 0, 0);
    ap_batcher *bd = make(w, &d, 2000);
    assert_int_equal(ap_batcher_flushable(bd), 0);
    ordered rd = {0};
    submit_deferred(bd, 4, &rd, &loop_a);
    ap_workers_run_queued(w, &bd, 1, &loop_a);
    wait_calls(&rd.s, 1);
    assert_int_equal(atomic_load(&rd.s.calls), 1);
    assert_false(pthread_equal(rd.s.thread, pthread_self()));
    assert_true(rd.s.out[0] == 2 * 4 + 1);
    ap_batcher_free(bd);
    fake_destroy(&d);

    ap_batcher_free(b);
    ap_workers_free(w);
    fake_destroy(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_on_submitting_thread),
        cmocka_unit_test(test_not_with_a_delay),
        cmocka_unit_test(test_running_batch_takes_the_queue),
        cmocka_unit_test(test_resubmit_no_recursion_and_limit),
        cmocka_unit_test(test_cancel_and_shutdown_during_caller_batch),
        cmocka_unit_test(test_many_producers_mixed),
        cmocka_unit_test(test_saturated_submitter_hands_over),
        cmocka_unit_test(test_deferred_run_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
