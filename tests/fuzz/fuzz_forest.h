/* Shared body of the forest-loader fuzz targets: any input must load or fail
   with an error, never crash or leak; a loaded forest must predict a row of
   NaN and a row of zeros, raw and transformed, without faults. */
#ifndef AP_FUZZ_FOREST_H
#define AP_FUZZ_FOREST_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "alphapulse.h"

static int fuzz_forest(const uint8_t *data, size_t size, ap_forest_format format)
{
    ap_forest *f = NULL;
    ap_error err;
    if (ap_forest_load_mem(data, size, format, "fuzz", &f, &err) != AP_OK)
        return 0;
    int nf = ap_forest_num_features(f);
    int nout = ap_forest_num_outputs(f, AP_PREDICT_RAW);
    if (ap_forest_num_outputs(f, 0) > nout)
        nout = ap_forest_num_outputs(f, 0);
    double *X = malloc(2 * (size_t)nf * sizeof *X);
    double *out = malloc(2 * (size_t)nout * sizeof *out);
    if (X && out) {
        for (int i = 0; i < nf; i++) {
            X[i] = NAN;
            X[nf + i] = 0.0;
        }
        ap_forest_predict(f, X, 2, out, 0);
        ap_forest_predict(f, X, 2, out, AP_PREDICT_RAW);
    }
    free(X);
    free(out);
    ap_forest_free(f);
    return 0;
}

#endif
