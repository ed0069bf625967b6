/*
 * The stream hub under threads (AP_TEST_THREADED: also run under TSan):
 * two ingesting threads append bars to their own series while a reader
 * thread drains a subscription the way the HTTP front does (read; nothing
 * there: parked; woken by the hub). Checked: exactly one event per
 * (series, closed bar, model) — N bars close N-1 — each series' events in
 * bar order, and ids of the documented form. Values are checked against
 * /v1/predict in tests/server/test_server_stream.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_internal.h"
#include "server/stream.h"

/* AP_TEST_THREADED */

#define NBARS 300

typedef struct reader {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int woken, stop;
    ap_srv_sub *sub;
    int events[2][2];        /* [series][model] */
    int64_t last_ms[2][2];
    int disorder, bad_id;
    char *text;
    size_t len, cap;
} reader;

static void t_park(void *ctx) { (void)ctx; }

static void t_wake(void *ctx)
{
    reader *rd = ctx;
    pthread_mutex_lock(&rd->mu);
    rd->woken = 1;
    pthread_cond_signal(&rd->cv);
    pthread_mutex_unlock(&rd->mu);
}

static void take_event(reader *rd, const char *ev, size_t n)
{
    const char *id = memmem(ev, n, "\nid: ", 5);
    char sym[16], model[32];
    long long ms;
    if (!id || sscanf(id + 5, "%15[^/]/1d:%lld:%31[a-z]", sym, &ms, model) != 3) {
        rd->bad_id++;
        return;
    }
    int s = !strcmp(sym, "B"), m = !strcmp(model, "bull");
    if (ms <= rd->last_ms[s][m])
        rd->disorder++;
    rd->last_ms[s][m] = ms;
    rd->events[s][m]++;
}

static void *reader_main(void *arg)
{
    reader *rd = arg;
    char buf[1000]; /* smaller than an event: events arrive in pieces too */
    for (;;) {
        long n = ap__stream_read(rd->sub, buf, sizeof buf);
        if (n > 0) {
            if (rd->len + (size_t)n > rd->cap) {
                rd->cap = 2 * (rd->len + (size_t)n);
                rd->text = realloc(rd->text, rd->cap);
            }
            memcpy(rd->text + rd->len, buf, (size_t)n);
            rd->len += (size_t)n;
            char *end;
            while ((end = memmem(rd->text, rd->len, "\n\n", 2))) {
                size_t k = (size_t)(end - rd->text) + 2;
                pthread_mutex_lock(&rd->mu);
                take_event(rd, rd->text, k);
                pthread_mutex_unlock(&rd->mu);
                memmove(rd->text, rd->text + k, rd->len - k);
                rd->len -= k;
            }
            continue;
        }
        if (n < 0)
            break;
        pthread_mutex_lock(&rd->mu);
        while (!rd->woken && !rd->stop)
            pthread_cond_wait(&rd->cv, &rd->mu);
        int stop = rd->stop && !rd->woken;
        rd->woken = 0;
        pthread_mutex_unlock(&rd->mu);
        if (stop)
            break;
    }
    return NULL;
}

typedef struct feeder {
    ap_server *s;
    const char *sym;
    int rc;
} feeder;

static void *feed_main(void *arg)
{
    feeder *f = arg;
    ap_series *series;
    ap_error err;
    f->rc = ap_series_open(f->s->store, f->sym, 86400, AP_SERIES_ROLLUP, &series, &err);
    const int64_t t0 = 1262304000LL * 1000000, day = 86400000000LL;
    for (int i = 0; i < NBARS && !f->rc; i++) {
        double px = 100 + 10 * sin(i / 7.0) + (f->sym[0] == 'B' ? 5 : 0);
        ap_bar b = {t0 + i * day, px, px * 1.01, px * 0.99, px * 1.003, 1000 + i};
        f->rc = ap__srv_ingest(f->s, series, &b, &err);
    }
    return NULL;
}

static int total(const reader *rd)
{
    return rd->events[0][0] + rd->events[0][1] + rd->events[1][0] + rd->events[1][1];
}

static void ingest_and_stream(void **state)
{
    (void)state;
    ap_server_config cfg;
    ap__server_config_default(&cfg);
    snprintf(cfg.repository, sizeof cfg.repository, "examples/models");
    cfg.workers = 2;
    cfg.stream_buffer = 1 << 16;
    ap_server *s;
    ap_error err;
    assert_int_equal(ap__srv_create(&cfg, NULL, NULL, 0, NULL, &s, &err), AP_OK);

    reader rd = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    const char models[2][65] = {"reversal", "bull"};
    ap_srv_stream_key keys[2] = {{"A", 86400}, {"B", 86400}};
    ap_srv_sub_spec spec = {models, 2, keys, 2, NULL};
    ap_srv_sub_io io = {t_park, t_wake, &rd};
    assert_int_equal(ap__stream_subscribe(s->stream, &spec, &io, &rd.sub, &err), AP_OK);
    pthread_t rt, ft[2];
    assert_int_equal(pthread_create(&rt, NULL, reader_main, &rd), 0);
    feeder f[2] = {{s, "A", 0}, {s, "B", 0}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&ft[i], NULL, feed_main, &f[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(ft[i], NULL);
        assert_int_equal(f[i].rc, AP_OK);
    }
    int want = 4 * (NBARS - 1);
    for (int waited = 0; waited < 60000; waited += 10) {
        pthread_mutex_lock(&rd.mu);
        int got = total(&rd);
        pthread_mutex_unlock(&rd.mu);
        if (got >= want)
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&rd.mu);
    rd.stop = 1;
    pthread_cond_signal(&rd.cv);
    pthread_mutex_unlock(&rd.mu);
    pthread_join(rt, NULL);
    for (int a = 0; a < 2; a++)
        for (int m = 0; m < 2; m++)
            assert_int_equal(rd.events[a][m], NBARS - 1);
    assert_int_equal(rd.disorder, 0);
    assert_int_equal(rd.bad_id, 0);
    ap_srv_stream_counts c;
    ap__stream_counts(s->stream, &c);
    assert_int_equal(c.events, (uint64_t)want);
    assert_int_equal(c.closed_dropped, 0);
    ap__stream_unsubscribe(rd.sub);
    ap__server_free(s);
    free(rd.text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ingest_and_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
