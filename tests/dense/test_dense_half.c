/*
 * Half-precision dense weights (issue 12): the exact IEEE half conversions
 * against hand-written values, an independent nearest-even reference and
 * the F16C instructions; the dense forward over half weights against a
 * reference written here in the kernel's order (bit for bit) and against a
 * double sum (within a derived bound); the AVX and portable kernels bit
 * for bit (float and half); weights beyond the half range refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dense/dense.h"
#include "dense/half.h"

/* the references below round every product and sum, like the kernel */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static uint64_t rnext(void)
{
    rs ^= rs >> 12;
    rs ^= rs << 25;
    rs ^= rs >> 27;
    return rs * 2685821657736338717ull;
}
static double urand(void) { return ((rnext() >> 11) + 0.5) / 9007199254740992.0; }
static double nrand(void) { return sqrt(-2.0 * log(urand())) * cos(6.283185307179586 * urand()); }

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- conversions: hand-written values ---- */

static void test_half_edges(void **state)
{
    (void)state;
    const float two_m24 = 0x1p-24f, two_m25 = 0x1p-25f;
    struct { float f; uint16_t h; } to[] = {
        {0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3c00}, {-2.0f, 0xc000},
        {0.5f, 0x3800}, {0.333333343f, 0x3555},
        {65504.0f, 0x7bff}, {-65504.0f, 0xfbff}, {65519.996f, 0x7bff},  /* just below the tie */
        {65520.0f, 0x7c00}, {-65520.0f, 0xfc00}, {1e10f, 0x7c00},       /* tie rounds up: inf */
        {INFINITY, 0x7c00}, {-INFINITY, 0xfc00},
        {0x1p-14f, 0x0400},                    /* smallest normal */
        {1023 * 0x1p-24f, 0x03ff},             /* largest subnormal */
        {two_m24, 0x0001}, {-two_m24, 0x8001}, /* smallest subnormal */
        {two_m25, 0x0000},                     /* tie between 0 and 2^-24: even (0) */
        {-two_m25, 0x8000},
        {3 * two_m25, 0x0002},                 /* 1.5 units: tie, even (2) */
        {5 * two_m25, 0x0002},                 /* 2.5 units: tie, even (2) */
        {1e-30f, 0x0000}, {FLT_MIN, 0x0000}, {0x1p-149f, 0x0000},
        {1.0f + 0x1p-11f, 0x3c00},             /* tie between 1 and 1 + 2^-10: even */
        {1.0f + 3 * 0x1p-11f, 0x3c02},         /* tie between 0x3c01 and 0x3c02: even */
        {2049.0f, 0x6800}, {2051.0f, 0x6802},  /* spacing 2 at 2048 */
        {2047.5f, 0x6800},                     /* tie carrying into the exponent */
        {2047.49f, 0x67ff},
        {1023 * 0x1p-24f + 0x1p-25f, 0x0400},  /* 1023.5 units: tie, even = smallest normal */
    };
    for (size_t i = 0; i < sizeof to / sizeof to[0]; i++) {
        uint16_t h = ap__half_from_float(to[i].f);
        if (h != to[i].h)
            fail_msg("from_float(%a) = 0x%04x, expected 0x%04x", (double)to[i].f, h, to[i].h);
    }
    /* just above a tie rounds up, just below down */
    assert_int_equal(ap__half_from_float(nextafterf(two_m25, 1)), 0x0001);
    assert_int_equal(ap__half_from_float(nextafterf(1.0f + 0x1p-11f, 2)), 0x3c01);
    assert_int_equal(ap__half_from_float(nextafterf(65520.0f, 0)), 0x7bff);
    /* NaN: quiet, payload's top bits kept */
    assert_int_equal(ap__half_from_float(NAN), 0x7e00);
    assert_int_equal(ap__half_from_float(bitsf(0xffc00000u)), 0xfe00);
    assert_int_equal(ap__half_from_float(bitsf(0x7f800001u)), 0x7e00);      /* sNaN */
    assert_int_equal(ap__half_from_float(bitsf(0x7fa02000u)), 0x7f01);

    struct { uint16_t h; float f; } from[] = {
        {0x0000, 0.0f}, {0x3c00, 1.0f}, {0xc000, -2.0f}, {0x3555, 0.333251953125f},
        {0x0001, 0x1p-24f}, {0x8001, -0x1p-24f}, {0x0002, 0x1p-23f}, {0x0003, 3 * 0x1p-24f},
        {0x03ff, 1023 * 0x1p-24f}, {0x0200, 0x1p-15f}, {0x0400, 0x1p-14f},
        {0x7bff, 65504.0f}, {0xfbff, -65504.0f}, {0x7c00, INFINITY}, {0xfc00, -INFINITY},
    };
    for (size_t i = 0; i < sizeof from / sizeof from[0]; i++) {
        float f = ap__half_to_float(from[i].h);
        if (fbits(f) != fbits(from[i].f))
            fail_msg("to_float(0x%04x) = %a, expected %a", from[i].h, (double)f,
                     (double)from[i].f);
    }
    assert_int_equal(fbits(ap__half_to_float(0x8000)), 0x80000000u);       /* -0 */
    assert_int_equal(fbits(ap__half_to_float(0x7e00)), 0x7fc00000u);
    assert_int_equal(fbits(ap__half_to_float(0x7c01)), 0x7fc02000u);       /* sNaN: quieted */
    assert_int_equal(fbits(ap__half_to_float(0xfd55)), 0xffeaa000u);
}

/* every half that is not NaN goes to a float and back to itself; the
   floats are strictly increasing over the positive halves */
static void test_half_roundtrip(void **state)
{
    (void)state;
    float prev = -1;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float f = ap__half_to_float((uint16_t)h);
        if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) {
            assert_true(isnan(f));
            continue;
        }
        if (ap__half_from_float(f) != h)
            fail_msg("half 0x%04x -> %a -> 0x%04x", h, (double)f, ap__half_from_float(f));
        if (h <= 0x7c00u) {
            assert_true(f > prev || (h == 0 && f == 0));
            prev = f;
        }
    }
}

/* nearest-even by brute force: the positive finite halves sorted, the
   nearest one (in double, exact for these), ties to the even code; beyond
   65504 the next "half" is 65536 (inf) */
static uint16_t ref_from_float(float f)
{
    static double tab[0x7c01];
    static int init;
    if (!init) {
        for (int h = 0; h < 0x7c00; h++) {
            int e = h >> 10, m = h & 0x3ff;
            tab[h] = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
        }
        tab[0x7c00] = 65536.0;
        init = 1;
    }
    uint16_t s = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (a >= 65536.0)
        return s | 0x7c00;
    int lo = 0, hi = 0x7c00;  /* tab[lo] <= a < tab[hi] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (tab[mid] <= a)
            lo = mid;
        else
            hi = mid;
    }
    double dl = a - tab[lo], dh = tab[hi] - a;
    int pick = dl < dh ? lo : dh < dl ? hi : (lo & 1 ? hi : lo);
    return (uint16_t)(s | pick);
}

static float random_float_near_half_range(void)
{
    /* exponents 2^-30 .. 2^17, random mantissa and sign; some exact ties */
    uint32_t e = 97 + (uint32_t)(rnext() % 48), m = (uint32_t)(rnext() & 0x7fffffu);
    if (rnext() % 4 == 0)
        m = (m & ~0x1fffu) | 0x1000u;  /* a normal-range tie */
    return bitsf((uint32_t)(rnext() & 1) << 31 | e << 23 | m);
}

static void test_half_nearest_even(void **state)
{
    (void)state;
    for (int k = 0; k < 300000; k++) {
        float f = random_float_near_half_range();
        uint16_t h = ap__half_from_float(f), r = ref_from_float(f);
        if (h != r)
            fail_msg("from_float(%a) = 0x%04x, reference 0x%04x", (double)f, h, r);
    }
}

/* ---- the same conversions on F16C ---- */

#if HAVE_X86
__attribute__((target("avx,f16c"))) static void f16c_to_float(const uint16_t *h, float *f)
{
    _mm256_storeu_ps(f, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)h)));
}
__attribute__((target("avx,f16c"))) static void f16c_from_float(const float *f, uint16_t *h)
{
    __m128i v = _mm256_cvtps_ph(_mm256_loadu_ps(f), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128((__m128i *)(void *)h, v);
}
#endif

static void test_half_f16c(void **state)
{
    (void)state;
#if HAVE_X86
    if (!ap__dense_cpu_simd()) {
        print_message("no AVX/F16C on this CPU: F16C check skipped\n");
        return;
    }
    uint16_t h[8];
    float f[8];
    for (uint32_t b = 0; b < 0x10000u; b += 8) {
        for (int l = 0; l < 8; l++)
            h[l] = (uint16_t)(b + (uint32_t)l);
        f16c_to_float(h, f);
        for (int l = 0; l < 8; l++)
            if (fbits(f[l]) != fbits(ap__half_to_float(h[l])))
                fail_msg("half 0x%04x: F16C %08x, C %08x", h[l], fbits(f[l]),
                         fbits(ap__half_to_float(h[l])));
    }
    for (int k = 0; k < 200000; k++) {
        for (int l = 0; l < 8; l++) {
            uint32_t u = (uint32_t)rnext();
            f[l] = k % 2 ? random_float_near_half_range() : bitsf(u);  /* any bits: NaN, inf */
        }
        f16c_from_float(f, h);
        for (int l = 0; l < 8; l++)
            if (h[l] != ap__half_from_float(f[l]))
                fail_msg("float %08x: F16C 0x%04x, C 0x%04x", fbits(f[l]), h[l],
                         ap__half_from_float(f[l]));
    }
#else
    print_message("not x86: F16C check skipped\n");
#endif
}

/* ---- forward ---- */

typedef struct layer {
    ap_dense d;
    float *w32;   /* a copy of the float weights */
    int in, out;
} layer;

/* weights N(0, 1/in) with some tiny (subnormal half) and zero ones */
static void layer_make(layer *L, int in, int out)
{
    ap_error err;
    assert_int_equal(ap__dense_init(&L->d, in, out, &err), AP_OK);
    L->in = in;
    L->out = out;
    L->w32 = malloc((size_t)in * (size_t)out * sizeof *L->w32);
    for (size_t k = 0; k < (size_t)in * (size_t)out; k++) {
        double v = nrand() / sqrt(in);
        if (rnext() % 16 == 0)
            v *= 1e-5;   /* subnormal halves */
        if (rnext() % 32 == 0)
            v = 0;
        L->d.w[k] = L->w32[k] = (float)v;
    }
    for (int o = 0; o < out; o++)
        L->d.b[o] = (float)(0.1 * nrand());
}

static void layer_free(layer *L)
{
    ap__dense_free(&L->d);
    free(L->w32);
}

/* the kernel's order (dense.h), written again: lanes, fold, tail, bias */
static double ref_ordered(const float *w, const float *x, int n, float b)
{
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) {
            float p = w[i + l] * x[i + l];
            acc[l] = acc[l] + p;
        }
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) {
        float p = w[i] * x[i];
        s = s + p;
    }
    return (double)(s + b);
}

static const int shapes[][2] = {{1, 1}, {3, 2}, {7, 3}, {8, 4}, {9, 5}, {16, 1}, {17, 7},
                                {33, 8}, {50, 9}, {100, 16}, {257, 13}, {64, 64}};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

static void rows_make(double *x, float *xf, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        xf[k] = (float)(3 * nrand());
        x[k] = xf[k];
    }
}

/* half forward == the ordered reference over the half-rounded weights,
   bit for bit; and within the float summation bound of the exact sum */
static void test_forward_half_reference(void **state)
{
    (void)state;
    ap_error err;
    for (size_t s = 0; s < NSHAPES; s++) {
        int in = shapes[s][0], out = shapes[s][1];
        const size_t nr = 5;
        layer L;
        layer_make(&L, in, out);
        assert_int_equal(ap__dense_to_half(&L.d, &err), AP_OK);
        float *wh = malloc((size_t)in * (size_t)out * sizeof *wh);
        for (size_t k = 0; k < (size_t)in * (size_t)out; k++)
            wh[k] = ap__half_to_float(ap__half_from_float(L.w32[k]));
        double *x = malloc(nr * (size_t)in * sizeof *x), *y = malloc(nr * (size_t)out * sizeof *y);
        float *xf = malloc(nr * (size_t)in * sizeof *xf), *scratch = malloc((size_t)in * sizeof *xf);
        rows_make(x, xf, nr * (size_t)in);
        for (int simd = 0; simd <= 1; simd++) {
            if (ap__dense_set_simd(&L.d, simd) != simd)
                continue;
            ap__dense_forward(&L.d, x, nr, y, scratch);
            for (size_t r = 0; r < nr; r++)
                for (int o = 0; o < out; o++) {
                    const float *wr = wh + (size_t)o * (size_t)in, *xr = xf + r * (size_t)in;
                    double ref = ref_ordered(wr, xr, in, L.d.b[o]);
                    double got = y[r * (size_t)out + (size_t)o];
                    if (memcmp(&ref, &got, sizeof ref))
                        fail_msg("%dx%d simd=%d row %zu out %d: %a vs ordered %a", out, in, simd,
                                 r, o, got, ref);
                    /* |fl(sum) - sum| <= gamma(in + 2) * sum |terms| (Higham 3.1;
                       in products, in + 1 additions), u = 2^-24 */
                    double exact = L.d.b[o], mag = fabs(L.d.b[o]);
                    for (int i = 0; i < in; i++) {
                        exact += (double)wr[i] * xr[i];
                        mag += fabs((double)wr[i] * xr[i]);
                    }
                    double g = (in + 2) * 0x1p-24 / (1 - (in + 2) * 0x1p-24);
                    assert_true(fabs(got - exact) <= g * mag);
                }
        }
        free(wh);
        free(x);
        free(y);
        free(xf);
        free(scratch);
        layer_free(&L);
    }
}

/* the deviation from FP32: each weight moves by at most 2^-11 |w| (normal
   half: half an ulp of 10 bits) or 2^-25 (subnormal half), so
   |y16 - y32| <= sum (2^-11 |w| + 2^-25) |x| + both float rounding bounds */
static void test_forward_half_vs_float_bound(void **state)
{
    (void)state;
    ap_error err;
    for (size_t s = 0; s < NSHAPES; s++) {
        int in = shapes[s][0], out = shapes[s][1];
        const size_t nr = 4;
        layer L;
        layer_make(&L, in, out);
        double *x = malloc(nr * (size_t)in * sizeof *x);
        double *y32 = malloc(nr * (size_t)out * sizeof *y32),
               *y16 = malloc(nr * (size_t)out * sizeof *y16);
        float *xf = malloc(nr * (size_t)in * sizeof *xf), *scratch = malloc((size_t)in * sizeof *xf);
        rows_make(x, xf, nr * (size_t)in);
        ap__dense_forward(&L.d, x, nr, y32, scratch);
        assert_int_equal(ap__dense_to_half(&L.d, &err), AP_OK);
        ap__dense_forward(&L.d, x, nr, y16, scratch);
        double g = (in + 2) * 0x1p-24 / (1 - (in + 2) * 0x1p-24);
        for (size_t r = 0; r < nr; r++)
            for (int o = 0; o < out; o++) {
                double shift = 0, mag = 2 * fabs(L.d.b[o]);
                for (int i = 0; i < in; i++) {
                    double w = L.w32[(size_t)o * (size_t)in + (size_t)i], xi = xf[r * (size_t)in + (size_t)i];
                    shift += (0x1p-11 * fabs(w) + 0x1p-25) * fabs(xi);
                    mag += 2 * (fabs(w) * (1 + 0x1p-11) + 0x1p-25) * fabs(xi);
                }
                double d = fabs(y16[r * (size_t)out + (size_t)o] - y32[r * (size_t)out + (size_t)o]);
                if (!(d <= shift + g * mag))
                    fail_msg("%dx%d: deviation %g over the bound %g", out, in, d, shift + g * mag);
            }
        free(x);
        free(y32);
        free(y16);
        free(xf);
        free(scratch);
        layer_free(&L);
    }
}

/* AVX vs portable, float and half weights: the same bits (also for
   non-finite inputs and weights) */
static void test_simd_vs_scalar(void **state)
{
    (void)state;
    if (!ap__dense_cpu_simd()) {
        print_message("no AVX/F16C on this CPU: only the portable kernel runs\n");
        return;
    }
    ap_error err;
    for (size_t s = 0; s < NSHAPES; s++) {
        int in = shapes[s][0], out = shapes[s][1];
        const size_t nr = 7;
        layer L;
        layer_make(&L, in, out);
        if (in * out > 20) {
            L.d.w[3] = L.w32[3] = INFINITY;  /* inf * 0, inf - inf: NaN in some outputs */
            L.d.w[5] = L.w32[5] = NAN;
        }
        double *x = malloc(nr * (size_t)in * sizeof *x);
        double *ya = malloc(nr * (size_t)out * sizeof *ya), *yb = malloc(nr * (size_t)out * sizeof *yb);
        float *xf = malloc(nr * (size_t)in * sizeof *xf), *scratch = malloc((size_t)in * sizeof *xf);
        rows_make(x, xf, nr * (size_t)in);
        x[0] = xf[0] = 0;
        if (nr * (size_t)in > 9)
            x[9] = xf[9] = -0.0f;
        for (int half = 0; half <= 1; half++) {
            if (half)
                assert_int_equal(ap__dense_to_half(&L.d, &err), AP_OK);
            assert_int_equal(ap__dense_set_simd(&L.d, 1), 1);
            ap__dense_forward(&L.d, x, nr, ya, scratch);
            assert_int_equal(ap__dense_set_simd(&L.d, 0), 0);
            ap__dense_forward(&L.d, x, nr, yb, scratch);
            for (size_t k = 0; k < nr * (size_t)out; k++)
                if (memcmp(&ya[k], &yb[k], sizeof ya[k]) && !(isnan(ya[k]) && isnan(yb[k])))
                    fail_msg("%dx%d half=%d value %zu: avx %a, c %a", out, in, half, k, ya[k],
                             yb[k]);
            /* float kernel: also the ordered reference (the kernel before issue 12) */
            if (!half)
                for (size_t r = 0; r < nr; r++)
                    for (int o = 0; o < out; o++) {
                        double ref = ref_ordered(L.w32 + (size_t)o * (size_t)in, xf + r * (size_t)in,
                                                 in, L.d.b[o]);
                        double got = yb[r * (size_t)out + (size_t)o];
                        if (memcmp(&ref, &got, sizeof ref) && !(isnan(ref) && isnan(got)))
                            fail_msg("%dx%d float: %a vs ordered %a", out, in, got, ref);
                    }
        }
        free(x);
        free(ya);
        free(yb);
        free(xf);
        free(scratch);
        layer_free(&L);
    }
}

static void test_out_of_range(void **state)
{
    (void)state;
    ap_error err;
    ap_dense d;
    assert_int_equal(ap__dense_init(&d, 3, 2, &err), AP_OK);
    d.w[0] = 1;
    d.w[4] = 65520.0f;  /* rounds to inf in half */
    assert_int_equal(ap__dense_to_half(&d, &err), AP_ERANGE);
    assert_null(d.w16);
    if (!strstr(err.msg, "weight [1][1] = 65520 is beyond the half range"))
        fail_msg("message: %s", err.msg);
    d.w[4] = -1e30f;
    assert_int_equal(ap__dense_to_half(&d, &err), AP_ERANGE);
    d.w[4] = nextafterf(-65520.0f, 0);  /* rounds to -65504: fits */
    assert_int_equal(ap__dense_to_half(&d, &err), AP_OK);
    assert_int_equal(d.w16[4], 0xfbff);
    ap__dense_drop_half(&d);
    /* an infinite or NaN weight is no overflow: it stays what it is */
    d.w[4] = INFINITY;
    d.w[5] = NAN;
    assert_int_equal(ap__dense_to_half(&d, &err), AP_OK);
    assert_int_equal(d.w16[4], 0x7c00);
    assert_true((d.w16[5] & 0x7c00) == 0x7c00 && (d.w16[5] & 0x3ff));
    ap__dense_free(&d);
}

/* the two copies: bytes, dropping either, forward after each */
static void test_copies(void **state)
{
    (void)state;
    ap_error err;
    layer L;
    layer_make(&L, 10, 3);
    assert_int_equal(ap__dense_bytes(&L.d, 0), 10 * 3 * 4 + 3 * 4);
    assert_int_equal(ap__dense_bytes(&L.d, 1), 0);
    double x[10], y32[3], y16[3], y[3];
    float scratch[10];
    for (int i = 0; i < 10; i++)
        x[i] = (float)nrand();
    ap__dense_forward(&L.d, x, 1, y32, scratch);
    assert_int_equal(ap__dense_to_half(&L.d, &err), AP_OK);
    assert_int_equal(ap__dense_to_half(&L.d, &err), AP_OK);  /* no-op */
    assert_int_equal(ap__dense_bytes(&L.d, 1), 10 * 3 * 2 + 3 * 4);
    ap__dense_forward(&L.d, x, 1, y16, scratch);
    ap__dense_drop_half(&L.d);  /* back to float: the same bits as before */
    ap__dense_forward(&L.d, x, 1, y, scratch);
    assert_memory_equal(y, y32, sizeof y);
    assert_int_equal(ap__dense_to_half(&L.d, &err), AP_OK);
    ap__dense_drop_full(&L.d);
    assert_null(L.d.w);
    assert_int_equal(ap__dense_bytes(&L.d, 0), 0);
    ap__dense_forward(&L.d, x, 1, y, scratch);
    assert_memory_equal(y, y16, sizeof y);
    ap__dense_drop_half(&L.d);  /* refused: it is the only copy */
    assert_non_null(L.d.w16);
    assert_int_equal(ap__dense_to_half(&L.d, &err), AP_OK);  /* has it already */
    layer_free(&L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_edges),
        cmocka_unit_test(test_half_roundtrip),
        cmocka_unit_test(test_half_nearest_even),
        cmocka_unit_test(test_half_f16c),
        cmocka_unit_test(test_forward_half_reference),
        cmocka_unit_test(test_forward_half_vs_float_bound),
        cmocka_unit_test(test_simd_vs_scalar),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_copies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
