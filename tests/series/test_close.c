/*
 * The series store's close hook (ap_series_config.on_close), the source of
 * /v1/stream's events. The rule, from docs/SERVER.md: a bar closes when a
 * bar with a later start arrives in its series; an update of the forming
 * bar (same start) closes nothing; a rolled-up bucket closes when a base
 * bar past its end arrives. The features told are the vector that was
 * published while the closed bar was the latest (read here with
 * ap_series_latest before the next bar goes in), and `bars` the series'
 * total then. A rejected bar tells nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "alphapulse.h"

#define MAXC 512

typedef struct seen {
    int n;
    const ap_series *s[MAXC];
    int64_t t[MAXC];
    uint64_t bars[MAXC];
    double f[MAXC][AP_FEATURE_COUNT];
} seen;

static void on_close(void *ctx, const ap_bar_closed *c)
{
    seen *z = ctx;
    assert_true(z->n < MAXC);
    z->s[z->n] = c->series;
    z->t[z->n] = c->t;
    z->bars[z->n] = c->bars;
    memcpy(z->f[z->n], c->features, sizeof z->f[0]);
    z->n++;
}

static ap_bar mkbar(int64_t t, double px)
{
    ap_bar b = {t, px, px * 1.01, px * 0.99, px * 1.002, 1000};
    return b;
}

/* bitwise, NaN equal to NaN */
static int same(const double *a, const double *b)
{
    return memcmp(a, b, AP_FEATURE_COUNT * sizeof *a) == 0;
}

/* A store whose hook records into z, and its series (symbol, tf) opened. */
static ap_series_store *hooked(seen *z, const char *symbol, int64_t tf, unsigned flags,
                               ap_series **s)
{
    ap_series_config cfg = {.max_series = 16, .history = 100, .on_close = on_close,
                            .close_ctx = z};
    ap_series_store *st;
    ap_error err;
    assert_int_equal(ap_series_store_new(&cfg, &st, &err), AP_OK);
    assert_int_equal(ap_series_open(st, symbol, tf, flags, s, &err), AP_OK);
    return st;
}

static void base_series(void **state)
{
    (void)state;
    seen z = {0};
    ap_series *s;
    ap_error err;
    ap_series_store *st = hooked(&z, "X", 86400, 0, &s);
    double want[40][AP_FEATURE_COUNT];
    const int64_t day = 86400000000LL, t0 = 1262304000LL * 1000000;
    for (int i = 0; i < 40; i++) {
        ap_bar b = mkbar(t0 + i * day, 100 + i + sin(i));
        assert_int_equal(ap_series_append(s, &b, &err), AP_OK);
        assert_int_equal(z.n, i); /* bar i-1 closed by bar i: i closes so far */
        b.close *= 1.001;         /* an update of the forming bar closes nothing */
        assert_int_equal(ap_series_append(s, &b, &err), AP_OK);
        assert_int_equal(z.n, i);
        int64_t t;
        assert_int_equal(ap_series_latest(s, want[i], &t, &err), AP_OK);
    }
    ap_bar old = mkbar(t0, 100); /* rejected: older than the last bar */
    assert_int_not_equal(ap_series_append(s, &old, &err), AP_OK);
    assert_int_equal(z.n, 39);
    for (int i = 0; i < 39; i++) {
        assert_ptr_equal(z.s[i], s);
        assert_true(z.t[i] == t0 + i * day);
        assert_int_equal(z.bars[i], (uint64_t)i + 1);
        assert_true(same(z.f[i], want[i]));
    }
    ap_series_store_free(st);
}

static void rollup_buckets(void **state)
{
    (void)state;
    seen z = {0};
    ap_series *s;
    ap_error err;
    ap_series_store *st = hooked(&z, "Y", 3600, AP_SERIES_ROLLUP, &s);
    ap_series *h4 = ap_series_find(st, "Y", 14400);
    assert_non_null(h4);
    const int64_t hour = 3600000000LL, t0 = 1262304000LL * 1000000; /* 00:00 UTC */
    double want4[8][AP_FEATURE_COUNT];
    int n4 = 0, closes4 = 0;
    for (int i = 0; i < 4 * 6 + 1; i++) {
        ap_bar b = mkbar(t0 + i * hour, 50 + i);
        int before = z.n;
        assert_int_equal(ap_series_append(s, &b, &err), AP_OK);
        for (int k = before; k < z.n; k++)
            if (z.s[k] == h4) {
                /* the bucket closes when the first hour of the next one arrives */
                assert_int_equal(i % 4, 0);
                assert_true(z.t[k] == t0 + (int64_t)(closes4)*4 * hour);
                assert_int_equal(z.bars[k], (uint64_t)closes4 + 1);
                assert_true(same(z.f[k], want4[closes4]));
                closes4++;
            }
        if (i % 4 == 3) { /* the bucket's last hour: read its (complete) features */
            int64_t t;
            assert_int_equal(ap_series_latest(h4, want4[n4++], &t, &err), AP_OK);
        }
    }
    assert_int_equal(closes4, 6);
    ap_series_store_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(base_series),
        cmocka_unit_test(rollup_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
