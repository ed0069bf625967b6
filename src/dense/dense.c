/* Dense kernel (see dense.h): float and half weights, AVX/F16C and C. */
#include "dense/dense.h"
#include "dense/half.h"
#include "common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the sums' order and rounding are the contract (dense.h): never fuse a
   product and a sum into an FMA, whatever -march or -std=gnu11 say */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#if defined(__x86_64__) || defined(__i386__)
#define AP_DENSE_X86 1
#include <cpuid.h>
#include <immintrin.h>
/* AVX for the 8-lane float arithmetic, F16C for VCVTPH2PS; deliberately no
   FMA (it would round once per lane step, unlike the C kernel) */
#define AP_TARGET __attribute__((target("avx,f16c")))
#else
#define AP_DENSE_X86 0
#endif

int ap__dense_cpu_simd(void)
{
#if AP_DENSE_X86
    unsigned a, b, c, d;
    /* __builtin_cpu_supports("avx") includes the OS's YMM state check;
       clang 14 has no "f16c" there, so that bit comes from cpuid leaf 1 */
    return __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
#else
    return 0;
#endif
}

int ap__dense_set_simd(ap_dense *d, int on)
{
    d->simd = on && ap__dense_cpu_simd();
    return d->simd;
}

int ap__dense_init(ap_dense *d, int in, int out, ap_error *err)
{
    d->in = in;
    d->out = out;
    d->w16 = NULL;
    d->simd = ap__dense_cpu_simd();
    d->w = calloc((size_t)in * (size_t)out, sizeof *d->w);
    d->b = calloc((size_t)out, sizeof *d->b);
    if (!d->w || !d->b) {
        ap__dense_free(d);
        return ap__error_set(err, AP_ENOMEM, "dense layer %dx%d: out of memory", out, in);
    }
    return AP_OK;
}

void ap__dense_free(ap_dense *d)
{
    free(d->w);
    free(d->w16);
    free(d->b);
    d->w = d->b = NULL;
    d->w16 = NULL;
}

int ap__dense_to_half(ap_dense *d, ap_error *err)
{
    if (d->w16)
        return AP_OK;
    if (!d->w)
        return ap__error_set(err, AP_EINVAL, "dense layer %dx%d: no float weights", d->out, d->in);
    size_t n = (size_t)d->in * (size_t)d->out;
    uint16_t *h = malloc((n ? n : 1) * sizeof *h);
    if (!h)
        return ap__error_set(err, AP_ENOMEM, "dense layer %dx%d: out of memory", d->out, d->in);
    for (size_t k = 0; k < n; k++) {
        h[k] = ap__half_from_float(d->w[k]);
        if ((h[k] & 0x7fffu) == 0x7c00u && isfinite(d->w[k])) {
            int o = (int)(k / (size_t)d->in), i = (int)(k % (size_t)d->in);
            free(h);
            return ap__error_set(err, AP_ERANGE,
                                "dense layer %dx%d: weight [%d][%d] = %.9g is beyond the half "
                                "range (|w| <= %.0f)", d->out, d->in, o, i, (double)d->w[k],
                                (double)AP_HALF_MAX);
        }
    }
    d->w16 = h;
    return AP_OK;
}

void ap__dense_drop_full(ap_dense *d)
{
    if (d->w16) {
        free(d->w);
        d->w = NULL;
    }
}

void ap__dense_drop_half(ap_dense *d)
{
    if (d->w) {
        free(d->w16);
        d->w16 = NULL;
    }
}

size_t ap__dense_bytes(const ap_dense *d, int half)
{
    if (half ? !d->w16 : !d->w)
        return 0;
    size_t n = (size_t)d->in * (size_t)d->out;
    return n * (half ? sizeof *d->w16 : sizeof *d->w) + (size_t)d->out * sizeof *d->b;
}

/* ---- the portable kernel: the order of dense.h, written out ---- */

static float dot_f32(const float *w, const float *x, int n)
{
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += w[i + l] * x[i + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        s += w[i] * x[i];
    return s;
}

static float dot_f16(const uint16_t *w, const float *x, int n)
{
    float acc[8] = {0}, wf[8];
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        /* eight normal halves (the usual case): rebias without branches */
        uint32_t u[8], normal = 1;
        for (int l = 0; l < 8; l++) {
            uint32_t e = w[i + l] & 0x7c00u;
            normal &= (e != 0) & (e != 0x7c00u);
            u[l] = ((uint32_t)(w[i + l] & 0x8000u) << 16) |
                   (((uint32_t)(w[i + l] & 0x7fffu) << 13) + (112u << 23));
        }
        if (normal)
            memcpy(wf, u, sizeof wf);
        else
            for (int l = 0; l < 8; l++)
                wf[l] = ap__half_to_float(w[i + l]);
        for (int l = 0; l < 8; l++)
            acc[l] += wf[l] * x[i + l];
    }
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        s += ap__half_to_float_fast(w[i]) * x[i];
    return s;
}

static void row_c(const ap_dense *d, const float *xf, double *yr)
{
    for (int o = 0; o < d->out; o++) {
        size_t off = (size_t)o * (size_t)d->in;
        float s = d->w16 ? dot_f16(d->w16 + off, xf, d->in) : dot_f32(d->w + off, xf, d->in);
        yr[o] = (double)(s + d->b[o]);
    }
}

/* ---- the AVX kernel: the same sums, 4 outputs at a time ---- */

#if AP_DENSE_X86
AP_TARGET static inline __attribute__((always_inline)) __m256 load8(const ap_dense *d, size_t off,
                                                                     int half)
{
    return half ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(d->w16 + off)))
                : _mm256_loadu_ps(d->w + off);
}

/* ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)) */
AP_TARGET static inline __attribute__((always_inline)) float fold(__m256 v)
{
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 u = _mm_add_ps(t, _mm_shuffle_ps(t, t, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehl_ps(u, u)));
}

/* the sum of output o from its folded lanes: the tail inputs, the bias */
AP_TARGET static inline __attribute__((always_inline)) double finish(const ap_dense *d, int o,
                                                                     __m256 acc, const float *xf,
                                                                     int half)
{
    float s = fold(acc);
    size_t off = (size_t)o * (size_t)d->in;
    for (int i = d->in & ~7; i < d->in; i++)
        s += (half ? ap__half_to_float_fast(d->w16[off + i]) : d->w[off + i]) * xf[i];
    return (double)(s + d->b[o]);
}

AP_TARGET static inline __attribute__((always_inline)) void row_avx(const ap_dense *d,
                                                                    const float *xf, double *yr,
                                                                    int half)
{
    const int n8 = d->in & ~7;
    const size_t in = (size_t)d->in;
    int o = 0;
    for (; o + 4 <= d->out; o += 4) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        size_t r = (size_t)o * in;
        for (int i = 0; i < n8; i += 8) {
            __m256 x = _mm256_loadu_ps(xf + i);
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(load8(d, r + (size_t)i, half), x));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(load8(d, r + in + (size_t)i, half), x));
            a2 = _mm256_add_ps(a2, _mm256_mul_ps(load8(d, r + 2 * in + (size_t)i, half), x));
            a3 = _mm256_add_ps(a3, _mm256_mul_ps(load8(d, r + 3 * in + (size_t)i, half), x));
        }
        yr[o] = finish(d, o, a0, xf, half);
        yr[o + 1] = finish(d, o + 1, a1, xf, half);
        yr[o + 2] = finish(d, o + 2, a2, xf, half);
        yr[o + 3] = finish(d, o + 3, a3, xf, half);
    }
    for (; o < d->out; o++) {
        __m256 a = _mm256_setzero_ps();
        size_t r = (size_t)o * in;
        for (int i = 0; i < n8; i += 8)
            a = _mm256_add_ps(a, _mm256_mul_ps(load8(d, r + (size_t)i, half),
                                               _mm256_loadu_ps(xf + i)));
        yr[o] = finish(d, o, a, xf, half);
    }
}

AP_TARGET static void row_avx_f32(const ap_dense *d, const float *xf, double *yr)
{
    row_avx(d, xf, yr, 0);
}

AP_TARGET static void row_avx_f16(const ap_dense *d, const float *xf, double *yr)
{
    row_avx(d, xf, yr, 1);
}
#endif

void ap__dense_forward(const ap_dense *d, const double *x, size_t n, double *y, float *xf)
{
    for (size_t r = 0; r < n; r++) {
        const double *xr = x + r * (size_t)d->in;
        for (int i = 0; i < d->in; i++)
            xf[i] = (float)xr[i];
        double *yr = y + r * (size_t)d->out;
#if AP_DENSE_X86
        if (d->simd) {
            if (d->w16)
                row_avx_f16(d, xf, yr);
            else
                row_avx_f32(d, xf, yr);
            continue;
        }
#endif
        row_c(d, xf, yr);
    }
}
