/* Dense kernel (see dense.h). */
#include "dense/dense.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

int ap__dense_init(ap_dense *d, int in, int out, ap_error *err)
{
    d->in = in;
    d->out = out;
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
    free(d->b);
    d->w = d->b = NULL;
}

static float dot(const float *a, const float *b, int n)
{
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * b[i + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

void ap__dense_forward(const ap_dense *d, const double *x, size_t n, double *y, float *xf)
{
    for (size_t r = 0; r < n; r++) {
        const double *xr = x + r * (size_t)d->in;
        for (int i = 0; i < d->in; i++)
            xf[i] = (float)xr[i];
        double *yr = y + r * (size_t)d->out;
        for (int o = 0; o < d->out; o++)
            yr[o] = (double)(dot(d->w + (size_t)o * (size_t)d->in, xf, d->in) + d->b[o]);
    }
}
