/*
 * Batcher semantics, one behaviour per test: deadlines, overload, cancel,
 * TTL expiry, store eviction, shutdown, hot swap, model errors, arguments,
 * adaptive delay. Gated fake models hold the single worker inside a batch so
 * queue states are set up deterministically, not by timing.
 *
 * AP_TEST_THREADED (runs under TSan too)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch_fake.h"

typedef struct fixture {
    ap_workers *w;
    ap_batcher *b;
    fake f;
} fixture;

static ap_batcher_config base_cfg(void)
{
    ap_batcher_config c;
    ap_batcher_config_default(&c);
    c.name = "fake";
    c.ncols = NCOLS;
    c.nout = NCOLS;
    c.max_queue_delay_us = 0;
    return c;
}

/* One worker, one batcher on a fake model. */
static void setup(fixture *fx, const ap_batcher_config *c, int gated, int refs)
{
    ap_error err;
    memset(fx, 0, sizeof *fx);
    fake_init(&fx->f, 0, gated);
    assert_int_equal(ap_workers_create(1, &fx->w, &err), AP_OK);
    ap_batch_model m = {.run = fake_run, .ctx = &fx->f};
    if (refs) {
        m.acquire = fake_acquire;
        m.release = fake_release;
    }
    assert_int_equal(ap_batcher_create(fx->w, c, &m, &fx->b, &err), AP_OK);
}

static void teardown(fixture *fx)
{
    fake_open(&fx->f);
    ap_batcher_free(fx->b);
    ap_workers_free(fx->w);
    fake_destroy(&fx->f);
}

static uint64_t submit1(ap_batcher *b, double x, const ap_batch_submit_opts *o)
{
    double row[NCOLS] = {x, x + 0.5};
    uint64_t id = 0;
    ap_error err;
    int rc = ap_batch_submit(b, row, 1, o, &id, &err);
    if (rc != AP_OK)
        fail_msg("submit: %s", err.msg);
    return id;
}

/* Check the one-row result of x: 2x+1 and 2(x+0.5)+1 = 2x+2 (tag 0). */
static void expect_row(ap_batcher *b, uint64_t id, double x, double tag)
{
    double out[NCOLS];
    ap_error err;
    int rc = ap_batch_wait(b, id, 5000000, out, NCOLS, &err);
    if (rc != AP_OK)
        fail_msg("wait %llu: %d %s", (unsigned long long)id, rc, err.msg);
    assert_true(out[0] == 2 * x + 1 + tag);
    assert_true(out[1] == 2 * x + 2 + tag);
}

/* ---- completion callback recorder ---- */
typedef struct seen {
    pthread_mutex_t mu;
    int n, status[16];
    uint64_t id[16];
    double out0[16];
    char msg[16][AP_ERROR_MSG_MAX];
} seen;

static void on_done(void *user, const ap_batch_completion *c)
{
    seen *s = user;
    pthread_mutex_lock(&s->mu);
    if (s->n < 16) {
        s->status[s->n] = c->status;
        s->id[s->n] = c->id;
        s->out0[s->n] = c->out ? c->out[0] : -1;
        snprintf(s->msg[s->n], AP_ERROR_MSG_MAX, "%s", c->message);
    }
    s->n++;
    pthread_mutex_unlock(&s->mu);
}

static int seen_status(seen *s, uint64_t id)
{
    int st = 99;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n && i < 16; i++)
        if (s->id[i] == id)
            st = s->status[i];
    pthread_mutex_unlock(&s->mu);
    return st;
}

static int seen_count(seen *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* A slow batch holds the only worker; queued requests with short deadlines
 * fail with AP_ETIMEDOUT (waiter-enforced and callback), never silently. */
static void test_timeout(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    c.default_timeout_us = 10000000;
    setup(&fx, &c, 1, 0);
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    uint64_t a = submit1(fx.b, 1, NULL);
    wait_entered(&fx.f, 1); /* the worker is inside a's batch */
    ap_batch_submit_opts shortt = {.timeout_us = 20000};
    uint64_t t1 = submit1(fx.b, 2, &shortt);
    ap_batch_submit_opts shortcb = {.timeout_us = 20000, .on_done = on_done, .user = &s};
    uint64_t t2 = submit1(fx.b, 3, &shortcb);

    double out[NCOLS];
    ap_error err = {0};
    uint64_t t0 = t_now_us();
    assert_int_equal(ap_batch_wait(fx.b, t1, 5000000, out, NCOLS, &err), AP_ETIMEDOUT);
    assert_true(t_now_us() - t0 < 2000000);
    assert_non_null(strstr(err.msg, "timed out"));
    /* the callback request times out once the worker is free to see it */
    fake_open(&fx.f);
    expect_row(fx.b, a, 1, 0);
    WAIT_STAT(fx.b, timed_out, 2);
    for (int i = 0; i < 5000 && seen_count(&s) < 1; i++)
        sleep_us(1000);
    assert_int_equal(seen_count(&s), 1);
    assert_int_equal(seen_status(&s, t2), AP_ETIMEDOUT);
    ap_batch_stats st;
    ap_batcher_stats(fx.b, &st);
    assert_int_equal(st.timed_out, 2);
    assert_int_equal(st.completed, 1);
    assert_int_equal(fx.f.calls, 1); /* neither timed-out request ran */
    teardown(&fx);
}

/* A request may shorten its deadline, never lengthen it. */
static void test_timeout_never_lengthened(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    c.default_timeout_us = 30000;
    setup(&fx, &c, 1, 0);
    submit1(fx.b, 1, NULL);
    wait_entered(&fx.f, 1);
    ap_batch_submit_opts longer = {.timeout_us = 60000000};
    uint64_t id = submit1(fx.b, 2, &longer);
    double out[NCOLS];
    ap_error err;
    uint64_t t0 = t_now_us();
    assert_int_equal(ap_batch_wait(fx.b, id, 10000000, out, NCOLS, &err), AP_ETIMEDOUT);
    uint64_t dt = t_now_us() - t0;
    assert_true(dt < 5000000); /* the 30 ms default applied, not 60 s */
    teardown(&fx);
}

/* Bounded queue: submit fails at once with AP_EOVERLOAD, counted. */
static void test_overload(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    c.max_queue_rows = 4;
    setup(&fx, &c, 1, 0);
    submit1(fx.b, 0, NULL);
    wait_entered(&fx.f, 1); /* running: no longer counts against the queue */
    double rows[3 * NCOLS] = {1, 1, 2, 2, 3, 3};
    uint64_t id;
    ap_error err;
    assert_int_equal(ap_batch_submit(fx.b, rows, 3, NULL, &id, &err), AP_OK);
    assert_int_equal(ap_batch_submit(fx.b, rows, 1, NULL, &id, &err), AP_OK); /* 4 rows */
    int rejected = 0;
    for (int i = 0; i < 5; i++) {
        err.code = 0;
        uint64_t t0 = t_now_us();
        int rc = ap_batch_submit(fx.b, rows, 1, NULL, &id, &err);
        assert_int_equal(rc, AP_EOVERLOAD);
        assert_int_equal(err.code, AP_EOVERLOAD);
        assert_int_equal(id, 0);
        assert_true(t_now_us() - t0 < 1000000); /* at once, not after a wait */
        rejected++;
    }
    assert_non_null(strstr(err.msg, "overloaded"));
    /* a request that could never fit is a range error, not overload */
    double big[5 * NCOLS] = {0};
    assert_int_equal(ap_batch_submit(fx.b, big, 5, NULL, &id, &err), AP_ERANGE);
    ap_batch_stats st;
    ap_batcher_stats(fx.b, &st);
    assert_int_equal(st.rejected, rejected);
    assert_int_equal(st.queue_rows, 4);
    assert_int_equal(st.queue_depth, 2);
    assert_int_equal(st.submitted, 3);
    teardown(&fx);
}

/* Cancel: queued (store and callback), running, completed, unknown. */
static void test_cancel(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    setup(&fx, &c, 1, 0);
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ap_batch_submit_opts cb = {.on_done = on_done, .user = &s};
    uint64_t running = submit1(fx.b, 1, NULL);
    wait_entered(&fx.f, 1);
    uint64_t q1 = submit1(fx.b, 2, NULL);
    uint64_t q2 = submit1(fx.b, 3, &cb);
    uint64_t q3 = submit1(fx.b, 4, NULL);
    ap_error err;
    assert_int_equal(ap_batch_cancel(fx.b, q1, &err), AP_OK);
    assert_int_equal(ap_batch_cancel(fx.b, q2, &err), AP_OK);
    /* the callback ran on this thread, at once */
    assert_int_equal(seen_count(&s), 1);
    assert_int_equal(seen_status(&s, q2), AP_ECANCELLED);
    assert_int_equal(ap_batch_cancel(fx.b, running, &err), AP_OK);
    double out[NCOLS];
    assert_int_equal(ap_batch_wait(fx.b, q1, 0, out, NCOLS, &err), AP_ECANCELLED);
    assert_non_null(strstr(err.msg, "cancelled"));
    assert_int_equal(ap_batch_cancel(fx.b, q1, &err), AP_ENOTFOUND); /* taken */
    assert_int_equal(ap_batch_cancel(fx.b, 12345, &err), AP_ENOTFOUND);
    assert_int_equal(ap_batch_cancel(fx.b, q2, &err), AP_ENOTFOUND); /* delivered */
    fake_open(&fx.f);
    /* the running one finished its batch but reports cancelled, output discarded */
    assert_int_equal(ap_batch_wait(fx.b, running, 5000000, out, NCOLS, &err), AP_ECANCELLED);
    expect_row(fx.b, q3, 4, 0);
    /* cancel a completed, kept result: it is dropped */
    uint64_t q4 = submit1(fx.b, 5, NULL);
    WAIT_STAT(fx.b, results_kept, 1);
    assert_int_equal(ap_batch_cancel(fx.b, q4, &err), AP_OK);
    assert_int_equal(ap_batch_wait(fx.b, q4, 0, out, NCOLS, &err), AP_ENOTFOUND);
    ap_batch_stats st;
    ap_batcher_stats(fx.b, &st);
    assert_int_equal(st.cancelled, 3);
    assert_int_equal(st.completed, 2);
    assert_int_equal(st.results_kept, 0);
    assert_int_equal(fx.f.calls, 3); /* running, q3, q4: q1 and q2 never ran */
    teardown(&fx);
}

/* Poll, pending, buffer too small keeps the result. */
static void test_wait_poll_and_buffer(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    setup(&fx, &c, 1, 0);
    uint64_t id = submit1(fx.b, 7, NULL);
    wait_entered(&fx.f, 1);
    double out[NCOLS];
    ap_error err;
    assert_int_equal(ap_batch_wait(fx.b, id, 0, out, NCOLS, &err), AP_BATCH_PENDING);
    assert_int_equal(ap_batch_wait(fx.b, id, 2000, out, NCOLS, &err), AP_BATCH_PENDING);
    fake_open(&fx.f);
    WAIT_STAT(fx.b, results_kept, 1);
    assert_int_equal(ap_batch_wait(fx.b, id, 0, out, 1, &err), AP_ERANGE);
    expect_row(fx.b, id, 7, 0); /* still there */
    assert_int_equal(ap_batch_wait(fx.b, id, 0, out, NCOLS, &err), AP_ENOTFOUND);
    teardown(&fx);
}

/* Results not taken expire after the TTL, even with no further traffic. */
static void test_ttl_expiry(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    c.result_ttl_us = 200000;
    setup(&fx, &c, 0, 0);
    uint64_t id = submit1(fx.b, 1, NULL);
    uint64_t keep = submit1(fx.b, 2, NULL);
    WAIT_STAT(fx.b, completed, 2);
    expect_row(fx.b, keep, 2, 0); /* taken in time: not expired */
    WAIT_STAT(fx.b, expired, 1);
    ap_batch_stats st;
    ap_batcher_stats(fx.b, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.results_kept, 0);
    double out[NCOLS];
    ap_error err;
    assert_int_equal(ap_batch_wait(fx.b, id, 0, out, NCOLS, &err), AP_ENOTFOUND);
    teardown(&fx);
}

/* The store is bounded: the oldest completed results are evicted first. */
static void test_store_eviction(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    c.result_capacity = 3;
    c.max_batch_rows = 1; /* one batch per request: completion order = submit order */
    setup(&fx, &c, 0, 0);
    uint64_t id[10];
    for (int i = 0; i < 10; i++)
        id[i] = submit1(fx.b, i, NULL);
    WAIT_STAT(fx.b, completed, 10);
    ap_batch_stats st;
    ap_batcher_stats(fx.b, &st);
    assert_int_equal(st.evicted, 7);
    assert_int_equal(st.results_kept, 3);
    double out[NCOLS];
    ap_error err;
    for (int i = 0; i < 7; i++)
        assert_int_equal(ap_batch_wait(fx.b, id[i], 0, out, NCOLS, &err), AP_ENOTFOUND);
    for (int i = 7; i < 10; i++)
        expect_row(fx.b, id[i], i, 0);
    teardown(&fx);
}

typedef struct opener {
    fake *f;
    uint64_t after_us;
} opener;

static void *open_later(void *arg)
{
    opener *o = arg;
    sleep_us(o->after_us);
    fake_open(o->f);
    return NULL;
}

/* Shutdown with queued requests: they complete as cancelled, the running
 * batch is waited for; ASan checks nothing leaks. */
static void test_shutdown(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    setup(&fx, &c, 1, 1);
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ap_batch_submit_opts cb = {.on_done = on_done, .user = &s};
    uint64_t run = submit1(fx.b, 1, &cb);
    wait_entered(&fx.f, 1);
    uint64_t q1 = submit1(fx.b, 2, &cb);
    uint64_t q2 = submit1(fx.b, 3, &cb);
    submit1(fx.b, 4, NULL); /* kept in the store: freed by shutdown */
    submit1(fx.b, 5, NULL);
    opener o = {&fx.f, 30000};
    pthread_t th;
    pthread_create(&th, NULL, open_later, &o);
    ap_batcher_free(fx.b); /* returns after the running batch */
    pthread_join(th, NULL);
    assert_int_equal(seen_count(&s), 3);
    assert_int_equal(seen_status(&s, run), AP_OK);
    assert_int_equal(seen_status(&s, q1), AP_ECANCELLED);
    assert_int_equal(seen_status(&s, q2), AP_ECANCELLED);
    for (int i = 0; i < 3; i++)
        if (s.id[i] == q1)
            assert_non_null(strstr(s.msg[i], "shutting down"));
    assert_int_equal(fx.f.refs, 0); /* every reference released */
    ap_workers_free(fx.w);
    fake_destroy(&fx.f);
}

/* ap_workers_free also frees batchers still attached, cancelling their queue. */
static void test_pool_frees_batchers(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    setup(&fx, &c, 1, 1);
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ap_batch_submit_opts cb = {.on_done = on_done, .user = &s};
    submit1(fx.b, 1, &cb);
    wait_entered(&fx.f, 1);
    submit1(fx.b, 2, &cb);
    fake_open(&fx.f);
    ap_workers_free(fx.w);
    assert_int_equal(seen_count(&s), 2);
    assert_int_equal(fx.f.refs, 0);
    fake_destroy(&fx.f);
}

/* Hot swap: requests queued against v1 finish on v1, new ones go to v2; no
 * batch mixes versions; references balance. */
static void test_hot_swap(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    c.max_queue_delay_us = 0;
    setup(&fx, &c, 1, 1);
    fake v2;
    fake_init(&v2, 100, 0);
    uint64_t first = submit1(fx.b, 0, NULL);
    wait_entered(&fx.f, 1);
    uint64_t a[4], b2[4];
    for (int i = 0; i < 4; i++)
        a[i] = submit1(fx.b, i, NULL);
    ap_error err;
    assert_int_equal(ap_batcher_set_model(fx.b, &v2, &err), AP_OK);
    for (int i = 0; i < 4; i++)
        b2[i] = submit1(fx.b, 10 + i, NULL);
    /* v1: the batcher's reference is gone, the 5 requests' remain */
    assert_int_equal(fx.f.refs, 5);
    assert_int_equal(v2.refs, 5);
    fake_open(&fx.f);
    expect_row(fx.b, first, 0, 0);
    for (int i = 0; i < 4; i++) {
        expect_row(fx.b, a[i], i, 0);
        expect_row(fx.b, b2[i], 10 + i, 100);
    }
    assert_int_equal(fx.f.rows, 5);
    assert_int_equal(v2.rows, 4);
    assert_int_equal(fx.f.refs, 0);
    assert_int_equal(v2.refs, 1); /* the batcher's */
    /* a per-request context overrides the current one */
    ap_batch_submit_opts o = {.model_ctx = &fx.f};
    expect_row(fx.b, submit1(fx.b, 20, &o), 20, 0);
    assert_int_equal(fx.f.refs, 0);
    ap_batcher_free(fx.b);
    assert_int_equal(v2.refs, 0);
    ap_workers_free(fx.w);
    fake_destroy(&fx.f);
    fake_destroy(&v2);
}

/* A failing batch function fails every request of its batch with its status
 * and message; the next batch is fine. */
static void test_model_error(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    c.max_queue_delay_us = 1000000; /* close on size: both rows in one batch */
    c.max_batch_rows = 2;
    setup(&fx, &c, 0, 0);
    fx.f.fail_below = 0;
    uint64_t bad = submit1(fx.b, -5, NULL);
    uint64_t good = submit1(fx.b, 5, NULL);
    double out[NCOLS];
    ap_error err;
    assert_int_equal(ap_batch_wait(fx.b, bad, 5000000, out, NCOLS, &err), AP_EFORMAT);
    assert_non_null(strstr(err.msg, "x0=-5"));
    assert_non_null(strstr(err.msg, "fake"));
    assert_int_equal(ap_batch_wait(fx.b, good, 5000000, out, NCOLS, &err), AP_EFORMAT);
    ap_batch_stats st;
    ap_batcher_stats(fx.b, &st);
    assert_int_equal(st.failed, 2);
    assert_int_equal(st.batches, 1);
    teardown(&fx);
}

/* Multi-row requests keep their rows together and in order; sync call. */
static void test_multirow_and_sync(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    c.max_batch_rows = 4;
    c.max_queue_delay_us = 1000000;
    setup(&fx, &c, 0, 0);
    double x[3 * NCOLS] = {1, 2, 3, 4, 5, 6}, out[3 * NCOLS];
    uint64_t id;
    ap_error err;
    assert_int_equal(ap_batch_submit(fx.b, x, 3, NULL, &id, &err), AP_OK);
    /* one more row fills the batch of 4: both run together */
    double y[NCOLS] = {10, 20}, yo[NCOLS];
    assert_int_equal(ap_batch_run(fx.b, y, 1, yo, NCOLS, 0, &err), AP_OK);
    assert_true(yo[0] == 21 && yo[1] == 41);
    assert_int_equal(ap_batch_wait(fx.b, id, 5000000, out, 3 * NCOLS, &err), AP_OK);
    for (int i = 0; i < 3 * NCOLS; i++)
        assert_true(out[i] == 2 * x[i] + 1);
    assert_int_equal(fx.f.calls, 1);
    assert_int_equal(fx.f.max_rows, 4);
    /* a request larger than max_batch_rows runs alone, unsplit */
    double big[6 * NCOLS], bo[6 * NCOLS];
    for (int i = 0; i < 6 * NCOLS; i++)
        big[i] = i;
    assert_int_equal(ap_batch_run(fx.b, big, 6, bo, 6 * NCOLS, 0, &err), AP_OK);
    for (int i = 0; i < 6 * NCOLS; i++)
        assert_true(bo[i] == 2 * i + 1);
    assert_int_equal(fx.f.max_rows, 6);
    assert_int_equal(ap_batch_run(fx.b, big, 6, bo, 5, 0, &err), AP_ERANGE);
    ap_batch_stats st;
    ap_batcher_stats(fx.b, &st);
    assert_int_equal(st.batch_size[2], 1); /* the batch of 4: bucket le=4 */
    assert_int_equal(st.batch_size[3], 1); /* 6 rows: bucket le=8 */
    assert_int_equal(st.rows, 10);
    teardown(&fx);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    ap_workers *w;
    ap_error err;
    assert_int_equal(ap_workers_create(2000, &w, &err), AP_ERANGE);
    assert_int_equal(ap_workers_create(1, &w, &err), AP_OK);
    assert_int_equal(ap_workers_num_threads(w), 1);
    fake f;
    fake_init(&f, 0, 0);
    ap_batch_model m = {.run = fake_run, .ctx = &f};
    ap_batcher_config c = base_cfg();
    ap_batcher *b;
    c.ncols = 0;
    assert_int_equal(ap_batcher_create(w, &c, &m, &b, &err), AP_ERANGE);
    assert_non_null(strstr(err.msg, "fake"));
    c = base_cfg();
    c.max_batch_rows = 0;
    assert_int_equal(ap_batcher_create(w, &c, &m, &b, &err), AP_ERANGE);
    c = base_cfg();
    m.acquire = fake_acquire;
    assert_int_equal(ap_batcher_create(w, &c, &m, &b, &err), AP_EINVAL);
    m.acquire = NULL;
    m.run = NULL;
    assert_int_equal(ap_batcher_create(w, &c, &m, &b, &err), AP_EINVAL);
    m.run = fake_run;
    assert_int_equal(ap_batcher_create(w, &c, &m, &b, &err), AP_OK);
    double x[NCOLS] = {0};
    uint64_t id = 77;
    assert_int_equal(ap_batch_submit(b, x, 0, NULL, &id, &err), AP_ERANGE);
    assert_int_equal(id, 0);
    assert_int_equal(ap_batch_submit(b, NULL, 1, NULL, &id, &err), AP_EINVAL);
    /* callback requests cannot be waited on */
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ap_batch_submit_opts cb = {.on_done = on_done, .user = &s};
    ap_batcher_free(b);
    assert_int_equal(ap_batcher_create(w, &c, &m, &b, &err), AP_OK);
    fake gated;
    fake_init(&gated, 0, 1);
    ap_batch_submit_opts og = {.model_ctx = &gated};
    submit1(b, 0, &og);
    wait_entered(&gated, 1);
    id = submit1(b, 1, &cb);
    double out[NCOLS];
    assert_int_equal(ap_batch_wait(b, id, 0, out, NCOLS, &err), AP_EINVAL);
    fake_open(&gated);
    ap_batcher_free(b);
    assert_int_equal(seen_count(&s), 1);
    ap_workers_free(w);
    ap_batcher_free(NULL);
    ap_workers_free(NULL);
    fake_destroy(&f);
    fake_destroy(&gated);
}

/* Ids: non-zero, unique, and two pools (two "restarts") start far apart. */
static void test_ids(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    setup(&fx, &c, 0, 0);
    uint64_t prev = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t id = submit1(fx.b, i, NULL);
        assert_true(id != 0 && id < ((uint64_t)1 << 63));
        if (prev)
            assert_true(id > prev); /* one counter: strictly increasing */
        prev = id;
        expect_row(fx.b, id, i, 0);
    }
    fixture fy;
    setup(&fy, &c, 0, 0);
    uint64_t other = submit1(fy.b, 0, NULL);
    /* random 62-bit starts: being within 2^40 of each other is a ~2^-21 event */
    uint64_t d = other > prev ? other - prev : prev - other;
    assert_true(d > ((uint64_t)1 << 40));
    expect_row(fy.b, other, 0, 0);
    teardown(&fy);
    teardown(&fx);
}

/* Adaptive delay at low load: nobody else is coming, so it does not wait the
 * configured 200 ms for companions. */
static void test_adaptive_low_load(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    c.max_queue_delay_us = 200000;
    c.adaptive_target_us = 100000;
    setup(&fx, &c, 0, 0);
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = t_now_us();
        expect_row(fx.b, submit1(fx.b, i, NULL), i, 0);
        assert_true(t_now_us() - t0 < 150000);
        sleep_us(20000);
    }
    ap_batch_stats st;
    ap_batcher_stats(fx.b, &st);
    assert_int_equal(st.current_delay_us, 0);
    teardown(&fx);
}

/* A deadline shorter than the batch delay closes the batch early (at the
 * deadline's midpoint) instead of timing the request out while it waits. */
static void test_short_deadline_closes_batch(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    c.max_queue_delay_us = 5000000;
    setup(&fx, &c, 0, 0);
    ap_batch_submit_opts o = {.timeout_us = 200000};
    uint64_t t0 = t_now_us();
    uint64_t id = submit1(fx.b, 3, &o);
    expect_row(fx.b, id, 3, 0);
    uint64_t dt = t_now_us() - t0;
    assert_true(dt >= 100000); /* waited until the midpoint ... */
    assert_true(dt < 4000000); /* ... not the 5 s delay */
    teardown(&fx);
}

/* A completion callback may submit (no lock is held while it runs). */
typedef struct chain {
    ap_batcher *b;
    _Atomic int left, done;
} chain;

static void chain_next(void *user, const ap_batch_completion *c)
{
    chain *ch = user;
    if (c->status == AP_OK && c->out[0] == 2 * 1.0 + 1 && atomic_fetch_sub(&ch->left, 1) > 1) {
        double row[NCOLS] = {1, 1.5};
        uint64_t id;
        ap_batch_submit_opts o = {.on_done = chain_next, .user = ch};
        if (ap_batch_submit(ch->b, row, 1, &o, &id, NULL) == AP_OK)
            return;
    }
    atomic_store(&ch->done, 1);
}

static void test_callback_resubmits(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    setup(&fx, &c, 0, 0);
    chain ch = {.b = fx.b};
    atomic_init(&ch.left, 50);
    atomic_init(&ch.done, 0);
    ap_batch_submit_opts o = {.on_done = chain_next, .user = &ch};
    submit1(fx.b, 1, &o);
    for (int i = 0; i < 5000 && !atomic_load(&ch.done); i++)
        sleep_us(1000);
    assert_int_equal(atomic_load(&ch.done), 1);
    assert_int_equal(atomic_load(&ch.left), 0);
    assert_int_equal(fx.f.calls, 50);
    teardown(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_timeout_never_lengthened),
        cmocka_unit_test(test_overload),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_wait_poll_and_buffer),
        cmocka_unit_test(test_ttl_expiry),
        cmocka_unit_test(test_store_eviction),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_pool_frees_batchers),
        cmocka_unit_test(test_hot_swap),
        cmocka_unit_test(test_model_error),
        cmocka_unit_test(test_multirow_and_sync),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_adaptive_low_load),
        cmocka_unit_test(test_short_deadline_closes_batch),
        cmocka_unit_test(test_callback_resubmits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
