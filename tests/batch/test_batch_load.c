/*
 * Batcher under load: 8 producer threads, 20 000 requests over 3 batchers on
 * a 2-thread pool, mixing the three ways to get a result (completion into
 * the producer's own store, then a wait by id there — as the server's
 * async store does; a completion callback checked on the spot; a
 * synchronous call) and 1..3 rows per request. Every
 * request must be answered exactly once with its own rows (out = 2x + 1 +
 * tag, the tag naming the batcher), batches must form (mean > 1 row), ids
 * must be unique. Then lone-request latency against the queue delay.
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

#define NPROD 8
#define PER_PROD 2500
#define NB 3
#define BURST 32

typedef struct slot {
    double x;       /* first input; row r of the request is x + 10 r */
    int nrows;
    int batcher;
    _Atomic int answers;
    _Atomic int wrong;
} slot;

typedef struct shared {
    ap_batcher *b[NB];
    fake f[NB];
    slot *slots; /* NPROD * PER_PROD */
    uint64_t *ids;
} shared;

typedef struct prod {
    shared *sh;
    int index;
    _Atomic int cb_done;
    collector col; /* wait-by-id requests complete here */
} prod;

static int check_rows(const slot *s, double tag, const double *out)
{
    for (int r = 0; r < s->nrows; r++)
        for (int j = 0; j < NCOLS; j++) {
            double x = s->x + 10 * r + j;
            if (out[r * NCOLS + j] != 2 * x + 1 + tag)
                return 0;
        }
    return 1;
}

typedef struct cbarg {
    prod *p;
    slot *s;
    double tag;
} cbarg;

static void on_done(void *user, const ap_batch_completion *c)
{
    cbarg *a = user;
    if (c->status != AP_OK || c->nrows != (size_t)a->s->nrows || !check_rows(a->s, a->tag, c->out))
        atomic_fetch_add(&a->s->wrong, 1);
    atomic_fetch_add(&a->s->answers, 1);
    atomic_fetch_add(&a->p->cb_done, 1);
}

static void *producer(void *arg)
{
    prod *p = arg;
    shared *sh = p->sh;
    uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(p->index + 1);
    cbarg *args = calloc(PER_PROD, sizeof *args);
    int cb_sent = 0;
    ap_batch_submit_opts co = collect_opts(&p->col);
    for (int base = 0; base < PER_PROD; base += BURST) {
        int n = PER_PROD - base < BURST ? PER_PROD - base : BURST;
        uint64_t ids[BURST];
        int mode[BURST];
        for (int k = 0; k < n; k++) {
            int i = base + k;
            slot *s = &sh->slots[p->index * PER_PROD + i];
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            uint64_t rnd = seed * 2685821657736338717ull;
            s->batcher = (int)(rnd % NB);
            s->nrows = 1 + (int)((rnd >> 8) % 3);
            s->x = p->index * 1e6 + i;
            mode[k] = (int)((rnd >> 16) % 8); /* 0: sync, 1-3: callback, else wait by id */
            double X[3 * NCOLS];
            for (int r = 0; r < s->nrows; r++)
                for (int j = 0; j < NCOLS; j++)
                    X[r * NCOLS + j] = s->x + 10 * r + j;
            ap_batcher *b = sh->b[s->batcher];
            double tag = sh->f[s->batcher].tag;
            ap_error err;
            ids[k] = 0;
            if (mode[k] == 0) {
                double out[3 * NCOLS];
                int rc = ap_batch_run(b, X, (size_t)s->nrows, out, 3 * NCOLS, 0, &err);
                if (rc != AP_OK || !check_rows(s, tag, out))
                    atomic_fetch_add(&s->wrong, 1);
                atomic_fetch_add(&s->answers, 1);
            } else if (mode[k] <= 3) {
                args[i] = (cbarg){p, s, tag};
                ap_batch_submit_opts o = {.on_done = on_done, .user = &args[i]};
                if (ap_batch_submit(b, X, (size_t)s->nrows, &o, &ids[k], &err) != AP_OK)
                    atomic_fetch_add(&s->wrong, 1);
                else
                    cb_sent++;
            } else if (ap_batch_submit(b, X, (size_t)s->nrows, &co, &ids[k], &err) != AP_OK) {
                atomic_fetch_add(&s->wrong, 1);
            }
            sh->ids[p->index * PER_PROD + i] = ids[k];
        }
        for (int k = 0; k < n; k++) {
            if (mode[k] < 4)
                continue;
            slot *s = &sh->slots[p->index * PER_PROD + base + k];
            double out[3 * NCOLS];
            ap_error err;
            /* bounded in practice by the request's 60 s deadline */
            int rc = collect_wait(&p->col, ids[k], 120000000, out, 3 * NCOLS, &err);
            if (rc != AP_OK || !check_rows(s, sh->f[s->batcher].tag, out))
                atomic_fetch_add(&s->wrong, 1);
            atomic_fetch_add(&s->answers, 1);
        }
    }
    /* callbacks reference args: wait for all of this producer's */
    while (atomic_load(&p->cb_done) < cb_sent)
        sleep_us(200);
    free(args);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_many_producers(void **state)
{
    (void)state;
    shared sh;
    memset(&sh, 0, sizeof sh);
    sh.slots = calloc(NPROD * PER_PROD, sizeof *sh.slots);
    sh.ids = calloc(NPROD * PER_PROD, sizeof *sh.ids);
    ap_workers *w;
    ap_error err;
    assert_int_equal(ap_workers_create(2, &w, &err), AP_OK);
    for (int i = 0; i < NB; i++) {
        fake_init(&sh.f[i], 1000.0 * i, 0);
        ap_batcher_config c;
        ap_batcher_config_default(&c);
        c.ncols = c.nout = NCOLS;
        c.max_batch_rows = 64;
        c.max_queue_delay_us = 500;
        c.default_timeout_us = 60000000; /* TSan on a shared machine is slow */
        ap_batch_model m = {.run = fake_run, .ctx = &sh.f[i]};
        assert_int_equal(ap_batcher_create(w, &c, &m, &sh.b[i], &err), AP_OK);
    }
    pthread_t th[NPROD];
    prod p[NPROD];
    for (int i = 0; i < NPROD; i++) {
        p[i].sh = &sh;
        p[i].index = i;
        atomic_init(&p[i].cb_done, 0);
        collect_init(&p[i].col, PER_PROD);
        pthread_create(&th[i], NULL, producer, &p[i]);
    }
    for (int i = 0; i < NPROD; i++)
        pthread_join(th[i], NULL);

    int wrong = 0, unanswered = 0, multiple = 0;
    long rows = 0;
    for (int i = 0; i < NPROD * PER_PROD; i++) {
        wrong += sh.slots[i].wrong;
        unanswered += sh.slots[i].answers == 0;
        multiple += sh.slots[i].answers > 1;
        rows += sh.slots[i].nrows;
    }
    assert_int_equal(wrong, 0);
    assert_int_equal(unanswered, 0);
    assert_int_equal(multiple, 0);

    /* ids: unique among those issued (sync calls do not expose theirs) */
    qsort(sh.ids, NPROD * PER_PROD, sizeof *sh.ids, cmp_u64);
    int dup = 0;
    for (int i = 1; i < NPROD * PER_PROD; i++)
        dup += sh.ids[i] && sh.ids[i] == sh.ids[i - 1];
    assert_int_equal(dup, 0);

    ap_batch_stats st;
    assert_int_equal(ap_workers_stats(w, &st), AP_OK);
    assert_int_equal(st.submitted, NPROD * PER_PROD);
    assert_int_equal(st.completed, NPROD * PER_PROD);
    assert_int_equal(st.failed + st.timed_out + st.cancelled + st.rejected, 0);
    assert_int_equal(st.rows, rows);
    assert_int_equal(st.queue_time.count, NPROD * PER_PROD);
    assert_int_equal(st.compute_time.count, st.batches);
    uint64_t hsum = 0, bsum = 0;
    for (int i = 0; i < AP_LATENCY_BUCKETS; i++)
        hsum += st.queue_time.bucket[i];
    for (int i = 0; i < AP_BATCH_SIZE_BUCKETS; i++)
        bsum += st.batch_size[i];
    assert_int_equal(hsum, st.queue_time.count);
    assert_int_equal(bsum, st.batches);
    long calls = 0;
    for (int i = 0; i < NB; i++)
        calls += sh.f[i].calls;
    assert_int_equal(calls, st.batches);
    double mean = (double)st.rows / (double)st.batches;
    print_message("requests %d rows %ld batches %llu mean batch %.1f rows, max %ld\n",
                  NPROD * PER_PROD, rows, (unsigned long long)st.batches, mean,
                  sh.f[0].max_rows);
    assert_true(mean > 1.0);
    for (int i = 0; i < NB; i++)
        assert_true(sh.f[i].max_rows <= 64);
    assert_int_equal(st.queue_depth + st.running, 0);
    for (int i = 0; i < NPROD; i++) { /* each id completed once, none lost */
        assert_int_equal(p[i].col.dups, 0);
        assert_int_equal(p[i].col.overflow, 0);
        collect_destroy(&p[i].col);
    }

    ap_workers_free(w); /* frees the batchers too */
    for (int i = 0; i < NB; i++)
        fake_destroy(&sh.f[i]);
    free(sh.slots);
    free(sh.ids);
}

/* A lone request waits for companions no longer than the queue delay (plus
 * generous scheduling slack), and its batch of one closes only once the
 * delay has passed. With delay 0 it goes at once. */
static void test_lone_latency(void **state)
{
    (void)state;
    ap_workers *w;
    ap_error err;
    assert_int_equal(ap_workers_create(2, &w, &err), AP_OK);
    fake f;
    fake_init(&f, 0, 0);
    for (int delay_ms = 20; delay_ms >= 0; delay_ms -= 20) {
        ap_batcher_config c;
        ap_batcher_config_default(&c);
        c.ncols = c.nout = NCOLS;
        c.max_queue_delay_us = (uint64_t)delay_ms * 1000;
        ap_batch_model m = {.run = fake_run, .ctx = &f};
        ap_batcher *b;
        assert_int_equal(ap_batcher_create(w, &c, &m, &b, &err), AP_OK);
        for (int i = 0; i < 3; i++) {
            double x[NCOLS] = {i, i}, out[NCOLS];
            uint64_t t0 = t_now_us();
            assert_int_equal(ap_batch_run(b, x, 1, out, NCOLS, 0, &err), AP_OK);
            uint64_t dt = t_now_us() - t0;
            assert_true(out[0] == 2 * i + 1);
            print_message("delay %d ms: lone request latency %llu us\n", delay_ms,
                          (unsigned long long)dt);
            assert_true(dt < (uint64_t)delay_ms * 1000 + 200000);
        }
        ap_batch_stats st;
        ap_batcher_stats(b, &st);
        assert_int_equal(st.batch_size[0], 3); /* three batches of one */
        if (delay_ms > 0) /* closed by the delay, not before (monotonic clock) */
            assert_true(st.queue_time.min_ns >= (uint64_t)delay_ms * 1000000u);
        ap_batcher_free(b);
    }
    ap_workers_free(w);
    fake_destroy(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_producers),
        cmocka_unit_test(test_lone_latency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
