/*
 * Optional ONNX Runtime backend: runs an ONNX graph through libonnxruntime,
 * loaded at run time with dlopen (the engine builds and runs without it).
 *
 * There is no C header for it on the build machine: ort.c declares the few
 * OrtApi entries it calls by their index in the OrtApi function table
 * (onnxruntime_c_api.h keeps that order fixed across versions; see ort.c).
 *
 * A session takes one tensor input [N, num_features] (float or double) and
 * produces one tensor output [N, num_outputs]; ap_onnx strips ZipMap before
 * handing the model over, so no sequence/map values ever come back.
 * ap__ort_run may be called from several threads at once (OrtSession::Run is
 * thread-safe); each call allocates its input/output tensors.
 */
#ifndef AP_ORT_ORT_H
#define AP_ORT_ORT_H

#include <stddef.h>
#include "alphapulse/common.h"

typedef struct ap_ort ap_ort;

typedef struct ap_ort_config {
    const char *library;    /* path of libonnxruntime.so.1; NULL: "libonnxruntime.so.1" */
    const char *input;      /* graph input name */
    const char *output;     /* graph output name (a float or double tensor) */
    int input_is_double;    /* input element type: 1 double, 0 float */
    int num_features;       /* input width */
    int num_outputs;        /* output width */
    int intra_threads;      /* ORT intra-op threads (0: ORT's default) */
} ap_ort_config;

/* The ORT library named by cfg->library (or the default) can be loaded. */
int ap__ort_available(const char *library);

/* Create a session from a serialized ModelProto (the buffer is not kept).
   cfg->num_outputs <= 0: learnt by running one zero row. */
int ap__ort_open(const void *model, size_t len, const ap_ort_config *cfg, const char *name,
                ap_ort **out, ap_error *err);
/* X: nrows * num_features doubles; out: nrows * num_outputs doubles. On
   failure out is filled with NaN and err says why. */
int ap__ort_run(const ap_ort *s, const double *X, size_t nrows, double *out, ap_error *err);
void ap__ort_close(ap_ort *s);
int ap__ort_num_outputs(const ap_ort *s);
/* "onnxruntime <version>" */
const char *ap__ort_version(const ap_ort *s);

#endif
