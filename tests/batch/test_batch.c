/*
 * Batcher semantics, one behaviour per test: deadlines, overload, cancel,
 * shutdown, hot swap, model errors, arguments, adaptive delay. Gated fake
 * models hold the single worker inside a batch so queue states are set up
 * deterministically, not by timing. Results come back through on_done into
 * the test's collector (batch_fake.h); every fixture checks at teardown that
 * no request completed twice.
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
    collector col; /* where submit1's requests complete */
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
    collect_init(&fx->col, 256);
    assert_int_equal(ap_workers_create(1, &fx->w, &err), AP_OK);
    ap_batch_model m = {.run = fake_run, .ctx = &fx->f};
    if (refs) {
        m.acquire = fake_acquire;
        m.release = fake_release;
    }
    assert_int_equal(ap_batcher_create(fx->w, c, &m, &fx->b, &err), AP_OK);
}

/* Every request of the fixture completed at most once, and none was lost
 * by the collector. */
static void check_collector(fixture *fx)
{
    assert_int_equal(fx->col.dups, 0);
    assert_int_equal(fx->col.overflow, 0);
    collect_destroy(&fx->col);
}

static void teardown(fixture *fx)
{
    fake_open(&fx->f);
    ap_batcher_free(fx->b);
    ap_workers_free(fx->w);
    fake_destroy(&fx->f);
    check_collector(fx);
}

/* Submit one row (x, x + 0.5) to the fixture's batcher; it completes into
 * fx->col unless o names its own on_done. */
static uint64_t submit1(fixture *fx, double x, const ap_batch_submit_opts *o)
{
    double row[NCOLS] = {x, x + 0.5};
    uint64_t id = 0;
    ap_error err;
    ap_batch_submit_opts oo = o ? *o : (ap_batch_submit_opts){0};
    if (!oo.on_done) {
        oo.on_done = collect_done;
        oo.user = &fx->col;
    }
    int rc = ap_batch_submit(fx->b, row, 1, &oo, &id, &err);
    if (rc != AP_OK)
        fail_msg("submit: %s", err.msg);
    return id;
}

/* Wait for a request of fx->col and return its status (message in err). */
static int wait_id(fixture *fx, uint64_t id, double *out, size_t out_len, ap_error *err)
{
    return collect_wait(&fx->col, id, 5000000, out, out_len, err);
}

/* Check the one-row result of x: 2x+1 and 2(x+0.5)+1 = 2x+2 (tag 0). */
static void expect_row(fixture *fx, uint64_t id, double x, double tag)
{
    double out[NCOLS];
    ap_error err;
    int rc = wait_id(fx, id, out, NCOLS, &err);
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
 * fail with AP_ETIMEDOUT, never silently: a synchronous caller enforces its
 * own deadline while no worker is free (ap_batch_run), a callback request
 * times out once the worker is free to see it. */
static void test_timeout(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    c.default_timeout_us = 10000000;
    setup(&fx, &c, 1, 0);
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    uint64_t a = submit1(&fx, 1, NULL);
    wait_entered(&fx.f, 1); /* the worker is inside a's batch */
    ap_batch_submit_opts shortcb = {.timeout_us = 20000, .on_done = on_done, .user = &s};
    uint64_t t2 = submit1(&fx, 3, &shortcb);

    double row[NCOLS] = {2, 2.5}, out[NCOLS];
    ap_error err = {0};
    uint64_t t0 = t_now_us();
    assert_int_equal(ap_batch_run(fx.b, row, 1, out, NCOLS, 20000, &err), AP_ETIMEDOUT);
    assert_true(t_now_us() - t0 < 2000000);
    assert_int_equal(err.code, AP_ETIMEDOUT);
    assert_non_null(strstr(err.msg, "timed out"));
    assert_int_equal(seen_count(&s), 0); /* nobody free to see t2 yet */
    /* the callback request times out once the worker is free to see it */
    fake_open(&fx.f);
    expect_row(&fx, a, 1, 0);
    WAIT_STAT(fx.b, timed_out, 2);
    for (int i = 0; i < 5000 && seen_count(&s) < 1; i++)
        sleep_us(1000);
    assert_int_equal(seen_count(&s), 1);
    assert_int_equal(seen_status(&s, t2), AP_ETIMEDOUT);
    assert_non_null(strstr(s.msg[0], "timed out"));
    ap_batch_stats st;
    ap_batcher_stats(fx.b, &st);
    assert_int_equal(st.timed_out, 2);
    assert_int_equal(st.completed, 1);
    assert_int_equal(fx.f.calls, 1); /* neither timed-out request ran */
    teardown(&fx);
}

/* A request may shorten its deadline, never lengthen it: synchronous (the
 * caller enforces it) and callback (the worker does, once free). */
static void test_timeout_never_lengthened(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    c.default_timeout_us = 30000;
    setup(&fx, &c, 1, 0);
    submit1(&fx, 1, NULL);
    wait_entered(&fx.f, 1);
    ap_batch_submit_opts longer = {.timeout_us = 60000000};
    uint64_t id = submit1(&fx, 2, &longer);
    double row[NCOLS] = {3, 3.5}, out[NCOLS];
    ap_error err;
    uint64_t t0 = t_now_us();
    assert_int_equal(ap_batch_run(fx.b, row, 1, out, NCOLS, 60000000, &err), AP_ETIMEDOUT);
    uint64_t dt = t_now_us() - t0;
    assert_true(dt < 5000000); /* the 30 ms default applied, not 60 s */
    sleep_us(40000); /* past the callback request's 30 ms too */
    fake_open(&fx.f);
    assert_int_equal(wait_id(&fx, id, out, NCOLS, &err), AP_ETIMEDOUT);
    assert_non_null(strstr(err.msg, "30000 us after submit"));
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
    submit1(&fx, 0, NULL);
    wait_entered(&fx.f, 1); /* running: no longer counts against the queue */
    double rows[3 * NCOLS] = {1, 1, 2, 2, 3, 3};
    uint64_t id;
    ap_error err;
    ap_batch_submit_opts o = collect_opts(&fx.col);
    assert_int_equal(ap_batch_submit(fx.b, rows, 3, &o, &id, &err), AP_OK);
    assert_int_equal(ap_batch_submit(fx.b, rows, 1, &o, &id, &err), AP_OK); /* 4 rows */
    int rejected = 0;
    for (int i = 0; i < 5; i++) {
        err.code = 0;
        uint64_t t0 = t_now_us();
        int rc = ap_batch_submit(fx.b, rows, 1, &o, &id, &err);
        assert_int_equal(rc, AP_EOVERLOAD);
        assert_int_equal(err.code, AP_EOVERLOAD);
        assert_int_equal(id, 0);
        assert_true(t_now_us() - t0 < 1000000); /* at once, not after a wait */
        rejected++;
    }
    assert_non_null(strstr(err.msg, "overloaded"));
    /* a request that could never fit is a range error, not overload */
    double big[5 * NCOLS] = {0};
    assert_int_equal(ap_batch_submit(fx.b, big, 5, &o, &id, &err), AP_ERANGE);
    ap_batch_stats st;
    ap_batcher_stats(fx.b, &st);
    assert_int_equal(st.rejected, rejected);
    assert_int_equal(st.queue_rows, 4);
    assert_int_equal(st.queue_depth, 2);
    assert_int_equal(st.submitted, 3);
    teardown(&fx);
    /* refused submits never complete: only the 3 accepted ones did */
}

/* Cancel: queued (delivered at once, on the cancelling thread), running
 * (output discarded), completed and unknown (AP_ENOTFOUND, no second call). */
static void test_cancel(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    setup(&fx, &c, 1, 0);
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ap_batch_submit_opts cb = {.on_done = on_done, .user = &s};
    uint64_t running = submit1(&fx, 1, NULL);
    wait_entered(&fx.f, 1);
    uint64_t q1 = submit1(&fx, 2, NULL);
    uint64_t q2 = submit1(&fx, 3, &cb);
    uint64_t q3 = submit1(&fx, 4, NULL);
    ap_error err;
    assert_int_equal(ap_batch_cancel(fx.b, q1, &err), AP_OK);
    /* q1 completed before ap_batch_cancel returned, on this thread */
    collected e = {0};
    assert_int_equal(collect_peek(&fx.col, q1, 0, &e), 1);
    assert_int_equal(e.status, AP_ECANCELLED);
    assert_true(pthread_equal(e.thread, pthread_self()));
    assert_int_equal(ap_batch_cancel(fx.b, q2, &err), AP_OK);
    /* the callback ran on this thread, at once */
    assert_int_equal(seen_count(&s), 1);
    assert_int_equal(seen_status(&s, q2), AP_ECANCELLED);
    assert_int_equal(ap_batch_cancel(fx.b, running, &err), AP_OK);
    assert_int_equal(collect_calls(&fx.col, running), 0); /* still in its batch */
    double out[NCOLS];
    assert_int_equal(wait_id(&fx, q1, out, NCOLS, &err), AP_ECANCELLED);
    assert_non_null(strstr(err.msg, "cancelled"));
    assert_int_equal(ap_batch_cancel(fx.b, q1, &err), AP_ENOTFOUND); /* delivered */
    assert_non_null(strstr(err.msg, "already delivered"));
    assert_int_equal(ap_batch_cancel(fx.b, 12345, &err), AP_ENOTFOUND);
    assert_int_equal(ap_batch_cancel(fx.b, q2, &err), AP_ENOTFOUND); /* delivered */
    fake_open(&fx.f);
    /* the running one finished its batch but reports cancelled, output discarded */
    assert_int_equal(wait_id(&fx, running, out, NCOLS, &err), AP_ECANCELLED);
    expect_row(&fx, q3, 4, 0);
    /* cancel a completed request: nothing to cancel, no second completion */
    uint64_t q4 = submit1(&fx, 5, NULL);
    expect_row(&fx, q4, 5, 0);
    assert_int_equal(ap_batch_cancel(fx.b, q4, &err), AP_ENOTFOUND);
    assert_int_equal(collect_calls(&fx.col, q4), 1);
    ap_batch_stats st;
    ap_batcher_stats(fx.b, &st);
    assert_int_equal(st.cancelled, 3);
    assert_int_equal(st.completed, 2);
    assert_int_equal(fx.f.calls, 3); /* running, q3, q4: q1 and q2 never ran */
    assert_int_equal(seen_count(&s), 1);
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

/* Shutdown with queued requests: they complete as cancelled (through their
 * callbacks, before ap_batcher_free returns), the running batch is waited
 * for and delivered; ASan checks nothing leaks. */
static void test_shutdown(void **state)
{
    (void)state;
    fixture fx;
    ap_batcher_config c = base_cfg();
    setup(&fx, &c, 1, 1);
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ap_batch_submit_opts cb = {.on_done = on_done, .user = &s};
    uint64_t run = submit1(&fx, 1, &cb);
    wait_entered(&fx.f, 1);
    uint64_t q1 = submit1(&fx, 2, &cb);
    uint64_t q2 = submit1(&fx, 3, &cb);
    uint64_t q3 = submit1(&fx, 4, NULL); /* into the collector */
    uint64_t q4 = submit1(&fx, 5, NULL);
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
    /* complete on return (poll), cancelled with the shutdown message */
    double out[NCOLS];
    ap_error err;
    assert_int_equal(collect_wait(&fx.col, q3, 0, out, NCOLS, &err), AP_ECANCELLED);
    assert_non_null(strstr(err.msg, "shutting down"));
    assert_int_equal(collect_wait(&fx.col, q4, 0, out, NCOLS, &err), AP_ECANCELLED);
    assert_int_equal(fx.col.n, 2);
    assert_int_equal(fx.f.refs, 0); /* every reference released */
    assert_int_equal(fx.f.calls, 1); /* only the running batch ran */
    ap_workers_free(fx.w);
    fake_destroy(&fx.f);
    check_collector(&fx);
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
    submit1(&fx, 1, &cb);
    wait_entered(&fx.f, 1);
    submit1(&fx, 2, &cb);
    fake_open(&fx.f);
    ap_workers_free(fx.w);
    assert_int_equal(seen_count(&s), 2);
    assert_int_equal(fx.f.refs, 0);
    fake_destroy(&fx.f);
    check_collector(&fx);
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
    uint64_t first = submit1(&fx, 0, NULL);
    wait_entered(&fx.f, 1);
    uint64_t a[4], b2[4];
    for (int i = 0; i < 4; i++)
        a[i] = submit1(&fx, i, NULL);
    ap_error err;
    assert_int_equal(ap_batcher_set_model(fx.b, &v2, &err), AP_OK);
    for (int i = 0; i < 4; i++)
        b2[i] = submit1(&fx, 10 + i, NULL);
    /* v1: the batcher's reference is gone, the 5 requests' remain */
    assert_int_equal(fx.f.refs, 5);
    assert_int_equal(v2.refs, 5);
    fake_open(&fx.f);
    expect_row(&fx, first, 0, 0);
    for (int i = 0; i < 4; i++) {
        expect_row(&fx, a[i], i, 0);
        expect_row(&fx, b2[i], 10 + i, 100);
    }
    assert_int_equal(fx.f.rows, 5);
    assert_int_equal(v2.rows, 4);
    assert_int_equal(fx.f.refs, 0);
    assert_int_equal(v2.refs, 1); /* the batcher's */
    /* a per-request context overrides the current one */
    ap_batch_submit_opts o = {.model_ctx = &fx.f};
    expect_row(&fx, submit1(&fx, 20, &o), 20, 0);
    assert_int_equal(fx.f.refs, 0);
    ap_batcher_free(fx.b);
    assert_int_equal(v2.refs, 0);
    ap_workers_free(fx.w);
    fake_destroy(&fx.f);
    fake_destroy(&v2);
    check_collector(&fx);
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
    uint64_t bad = submit1(&fx, -5, NULL);
    uint64_t good = submit1(&fx, 5, NULL);
    double out[NCOLS];
    ap_error err;
    assert_int_equal(wait_id(&fx, bad, out, NCOLS, &err), AP_EFORMAT);
    assert_non_null(strstr(err.msg, "x0=-5"));
    assert_non_null(strstr(err.msg, "fake"));
    assert_int_equal(wait_id(&fx, good, out, NCOLS, &err), AP_EFORMAT);
    assert_non_null(strstr(err.msg, "x0=-5")); /* the batch's message, for both */
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
    ap_batch_submit_opts o = collect_opts(&fx.col);
    assert_int_equal(ap_batch_submit(fx.b, x, 3, &o, &id, &err), AP_OK);
    /* one more row fills the batch of 4: both run together */
    double y[NCOLS] = {10, 20}, yo[NCOLS];
    assert_int_equal(ap_batch_run(fx.b, y, 1, yo, NCOLS, 0, &err), AP_OK);
    assert_true(yo[0] == 21 && yo[1] == 41);
    assert_int_equal(wait_id(&fx, id, out, 3 * NCOLS, &err), AP_OK);
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
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ap_batch_submit_opts cb = {.on_done = on_done, .user = &s};
    assert_int_equal(ap_batch_submit(b, x, 0, &cb, &id, &err), AP_ERANGE);
    assert_int_equal(id, 0);
    assert_int_equal(ap_batch_submit(b, NULL, 1, &cb, &id, &err), AP_EINVAL);
    /* on_done is required: the batcher keeps no results */
    id = 77;
    err.msg[0] = '\0';
    assert_int_equal(ap_batch_submit(b, x, 1, NULL, &id, &err), AP_EINVAL);
    assert_int_equal(id, 0);
    assert_non_null(strstr(err.msg, "on_done"));
    ap_batch_submit_opts no_cb = {.timeout_us = 1000, .user = &s};
    id = 77;
    err.msg[0] = '\0';
    assert_int_equal(ap_batch_submit(b, x, 1, &no_cb, &id, &err), AP_EINVAL);
    assert_int_equal(id, 0);
    assert_non_null(strstr(err.msg, "on_done"));
    ap_batch_stats st;
    ap_batcher_stats(b, &st);
    assert_int_equal(st.submitted, 0); /* refused, not queued */
    ap_batcher_free(b);
    assert_int_equal(ap_batcher_create(w, &c, &m, &b, &err), AP_OK);
    fake gated;
    fake_init(&gated, 0, 1);
    ap_batch_submit_opts og = {.model_ctx = &gated, .on_done = on_done, .user = &s};
    double row[NCOLS] = {0, 0.5};
    assert_int_equal(ap_batch_submit(b, row, 1, &og, &id, &err), AP_OK);
    wait_entered(&gated, 1);
    assert_int_equal(ap_batch_submit(b, row, 1, &cb, &id, &err), AP_OK);
    fake_open(&gated);
    ap_batcher_free(b);
    assert_int_equal(seen_count(&s), 2); /* ran, or cancelled by the free */
    assert_int_equal(gated.calls, 1);
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
        uint64_t id = submit1(&fx, i, NULL);
        assert_true(id != 0 && id < ((uint64_t)1 << 63));
        if (prev)
            assert_true(id > prev); /* one counter: strictly increasing */
        prev = id;
        expect_row(&fx, id, i, 0);
    }
    fixture fy;
    setup(&fy, &c, 0, 0);
    uint64_t other = submit1(&fy, 0, NULL);
    /* random 62-bit starts: being within 2^40 of each other is a ~2^-21 event */
    uint64_t d = other > prev ? other - prev : prev - other;
    assert_true(d > ((uint64_t)1 << 40));
    expect_row(&fy, other, 0, 0);
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
        expect_row(&fx, submit1(&fx, i, NULL), i, 0);
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
    uint64_t id = submit1(&fx, 3, &o);
    expect_row(&fx, id, 3, 0);
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
    submit1(&fx, 1, &o);
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
