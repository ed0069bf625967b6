/*
 * Post transforms of the ai.onnx.ml operators, computed as ONNX Runtime
 * computes them (onnxruntime/core/providers/cpu/ml/ml_common.h): in float,
 * PROBIT through ORT's closed-form erfinv approximation (not the exact
 * inverse: ORT's results are the reference users compare against).
 */
#include "onnx/onnx_internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

int ap__onnx_post_parse(const char *s, int *post)
{
    static const char *names[] = {"NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i])) {
            *post = i;
            return 0;
        }
    return -1;
}

float ap__onnx_logistic(float x)
{
    float v = 1.0f / (1.0f + expf(-fabsf(x)));
    return x < 0 ? 1.0f - v : v;
}

static float erf_inv(float x)
{
    float sgn = x < 0 ? -1.0f : 1.0f;
    x = (1 - x) * (1 + x);
    float lg = logf(x);
    float v = 2 / (3.14159f * 0.147f) + 0.5f * lg;
    float v2 = 1 / (0.147f) * lg;
    float v3 = -v + sqrtf(v * v - v2);
    return sgn * sqrtf(v3);
}

float ap__onnx_probit(float x) { return 1.41421356f * erf_inv(x * 2 - 1); }

void ap__onnx_softmax(float *v, int n)
{
    float vmax = -FLT_MAX;
    for (int i = 0; i < n; i++)
        if (v[i] > vmax)
            vmax = v[i];
    float sum = 0.f;
    for (int i = 0; i < n; i++) {
        v[i] = expf(v[i] - vmax);
        sum += v[i];
    }
    for (int i = 0; i < n; i++)
        v[i] /= sum;
}

/* softmax that leaves (near-)zero scores at exp(0 - max) * 0 = 0 */
void ap__onnx_softmax_zero(float *v, int n)
{
    float vmax = -FLT_MAX;
    for (int i = 0; i < n; i++)
        if (v[i] > vmax)
            vmax = v[i];
    float exp_neg_max = expf(-vmax);
    float sum = 0.f;
    for (int i = 0; i < n; i++) {
        if (v[i] > 0.0000001f || v[i] < -0.0000001f) {
            v[i] = expf(v[i] - vmax);
            sum += v[i];
        } else {
            v[i] *= exp_neg_max;
        }
    }
    for (int i = 0; i < n; i++)
        v[i] /= sum;
}

/* ORT (activations.h): x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)), in the
   tensor's type: no overflow for large |x|, and log1p keeps the small tail
   that log(1 + tiny) would round away. */
float ap__onnx_softplus(float x)
{
    return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x));
}

double ap__onnx_softplus_d(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

/* Eigen's scalar_logistic_op for double, which ORT's Sigmoid uses */
double ap__onnx_logistic_d(double x) { return 1.0 / (1.0 + exp(-x)); }

void ap__onnx_softmax_d(double *v, int n)
{
    double vmax = -DBL_MAX;
    for (int i = 0; i < n; i++)
        if (v[i] > vmax)
            vmax = v[i];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        v[i] = exp(v[i] - vmax);
        sum += v[i];
    }
    for (int i = 0; i < n; i++)
        v[i] /= sum;
}
