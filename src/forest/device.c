/* Where a forest's batches run: the predict dispatch (GPU at or above the
   threshold, else the reduced or full CPU engine) and the device choice:
   CPU, GPU, or AUTO by a threshold that is configured or measured here at
   load (docs/GPU.md). */
#include "forest/forest_internal.h"
#include "common/clock.h"
#include "common/error.h"
#include "forest/quant.h"
#include "gpu/gpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ap_device_name(ap_device d)
{
    switch (d) {
    case AP_DEVICE_AUTO: return "auto";
    case AP_DEVICE_CPU: return "cpu";
    case AP_DEVICE_GPU: return "gpu";
    default: return "?";
    }
}

int ap_device_parse(const char *s, ap_device *out, ap_error *err)
{
    static const ap_device all[] = {AP_DEVICE_AUTO, AP_DEVICE_CPU, AP_DEVICE_GPU};
    for (size_t i = 0; s && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, ap_device_name(all[i])) == 0) {
            *out = all[i];
            return AP_OK;
        }
    return ap__error_set(err, AP_EINVAL, "device \"%s\": expected auto, cpu or gpu",
                         s ? s : "(null)");
}

int ap_gpu_available(char *why, size_t cap)
{
    char buf[AP_ERROR_MSG_MAX] = "";
    int n = ap__gpu_default_backend()->probe(buf, sizeof buf);
    if (why && cap)
        snprintf(why, cap, "%s", n > 0 ? "" : buf);
    return n > 0 ? n : 0;
}

void ap__forest_predict_cpu(const ap_forest *f, const double *X, size_t nrows, double *out,
                            unsigned flags)
{
    if (f->quant && !(flags & AP_PREDICT_FULL))
        ap__qengine_predict(f->quant, X, nrows, out, flags);
    else
        ap__engine_predict(f->engine, X, nrows, out, flags);
}

/* A batch that reaches the GPU's threshold goes there; a device failure
   (counted in the device model) runs the call on the CPU instead. */
void ap_forest_predict(const ap_forest *f, const double *X, size_t nrows, double *out,
                       unsigned flags)
{
    if (f->gpu && nrows >= f->gpu_min_rows && !(flags & AP_PREDICT_CPU) &&
        ap__gforest_predict(f->gpu, X, nrows, out, flags) == AP_OK)
        return;
    ap__forest_predict_cpu(f, X, nrows, out, flags);
}

void ap__forest_drop_device(ap_forest *f)
{
    ap__gforest_free(f->gpu);
    f->gpu = NULL;
    f->gpu_min_rows = 0;
}

/* Calibration sizes: 256 .. 64k rows, x4. */
#define CAL_N 5
static const size_t cal_sizes[CAL_N] = {256, 1024, 4096, 16384, 65536};
/* No size whose CPU run would take longer than about this is measured (a
   1000-tree model at 64k rows takes seconds on one core): the calibration
   stays well under a second. */
#define CAL_MAX_NS 150000000ull

/* Deterministic rows: a xorshift over [-2, 2), one value in 32 missing, so
   both paths see NaN handling too. */
static void cal_rows(double *X, size_t n)
{
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        X[i] = (s & 31) == 0 ? NAN : (double)(s >> 11) * 0x1p-51 - 2.0;
    }
}

static uint64_t best_of_2(const ap_forest *f, int gpu, const double *X, size_t n, double *out)
{
    uint64_t best = UINT64_MAX;
    for (int k = 0; k < 2; k++) {
        uint64_t t0 = ap__clock_ns();
        if (gpu) {
            if (ap__gforest_predict(f->gpu, X, n, out, 0) != AP_OK)
                return UINT64_MAX;
        } else {
            ap__forest_predict_cpu(f, X, n, out, 0);
        }
        uint64_t dt = ap__clock_ns() - t0;
        if (dt < best)
            best = dt;
    }
    return best;
}

/* Sets f->gpu_min_rows (0: the GPU never won) and the note. */
static int calibrate(ap_forest *f, ap_error *err)
{
    const size_t F = (size_t)f->ir.num_features;
    const size_t W = (size_t)ap__forest_ir_num_outputs(&f->ir);
    size_t top = cal_sizes[CAL_N - 1];
    double *X = malloc(top * (F ? F : 1) * sizeof *X), *Y = malloc(top * W * sizeof *Y);
    if (!X || !Y) {
        free(X);
        free(Y);
        return ap__error_set(err, AP_ENOMEM, "GPU calibration: out of memory");
    }
    cal_rows(X, top * F);
    double cpu_s[CAL_N], gpu_s[CAL_N];
    /* the first launch loads the kernel (lazily, since CUDA 12): not timed */
    if (ap__gforest_predict(f->gpu, X, 1, Y, 0) != AP_OK) {
        free(X);
        free(Y);
        return ap__error_set(err, AP_EIO, "GPU calibration: the device failed");
    }
    int n = 0;
    for (; n < CAL_N; n++) {
        uint64_t g = best_of_2(f, 1, X, cal_sizes[n], Y);
        uint64_t c = best_of_2(f, 0, X, cal_sizes[n], Y);
        if (g == UINT64_MAX) {
            free(X);
            free(Y);
            return ap__error_set(err, AP_EIO, "GPU calibration: the device failed");
        }
        cpu_s[n] = (double)c * 1e-9;
        gpu_s[n] = (double)g * 1e-9;
        /* the next size costs about 4x: stop where it would pass the bound */
        if (4 * c > CAL_MAX_NS) {
            n++;
            break;
        }
    }
    free(X);
    free(Y);
    f->gpu_min_rows = ap__gpu_pick_threshold(cal_sizes, cpu_s, gpu_s, n);
    if (f->gpu_min_rows)
        snprintf(f->device_note, sizeof f->device_note,
                 "calibrated: GPU faster from %zu rows", f->gpu_min_rows);
    else
        snprintf(f->device_note, sizeof f->device_note,
                 "calibrated: GPU not faster up to %zu rows", cal_sizes[n - 1]);
    return AP_OK;
}

int ap__forest_set_device_with(ap_forest *f, ap_device d, size_t min_rows,
                               const ap_gpu_backend *be, ap_error *err)
{
    ap__forest_drop_device(f);
    f->device_note[0] = '\0';
    if (d == AP_DEVICE_CPU)
        return AP_OK;
    if (d != AP_DEVICE_AUTO && d != AP_DEVICE_GPU)
        return ap__error_set(err, AP_EINVAL, "device %d: expected auto, cpu or gpu", (int)d);
    ap_error why = {0};
    int rc = ap__gforest_open(&f->ir, be, &f->gpu, &why);
    if (rc != AP_OK) {
        snprintf(f->device_note, sizeof f->device_note, "%s", why.msg);
        if (d == AP_DEVICE_AUTO && rc != AP_ENOMEM)
            return AP_OK;
        return ap__error_set(err, rc == AP_ENOMEM ? rc : AP_EUNSUPPORTED, "device gpu: %s",
                             why.msg);
    }
    if (d == AP_DEVICE_GPU || min_rows) {
        f->gpu_min_rows = min_rows ? min_rows : 1;
        snprintf(f->device_note, sizeof f->device_note, "%s: batches of %zu rows or more",
                 d == AP_DEVICE_GPU ? "requested" : "configured", f->gpu_min_rows);
        return AP_OK;
    }
    ap_error cerr = {0};
    rc = calibrate(f, &cerr);
    if (rc != AP_OK || f->gpu_min_rows == 0) {
        /* the GPU never wins (or failed): free its memory, keep the note */
        ap__forest_drop_device(f);
    }
    if (rc == AP_EIO) {
        snprintf(f->device_note, sizeof f->device_note, "%s", cerr.msg);
        return AP_OK;
    }
    return rc == AP_OK ? rc : ap__error_set(err, rc, "%s", cerr.msg);
}

int ap_forest_set_device(ap_forest *f, ap_device d, size_t min_rows, ap_error *err)
{
    return ap__forest_set_device_with(f, d, min_rows, ap__gpu_default_backend(), err);
}

ap_device ap_forest_device(const ap_forest *f) { return f->gpu ? AP_DEVICE_GPU : AP_DEVICE_CPU; }

size_t ap_forest_gpu_min_rows(const ap_forest *f) { return f->gpu ? f->gpu_min_rows : 0; }

const char *ap_forest_device_note(const ap_forest *f) { return f->device_note; }
