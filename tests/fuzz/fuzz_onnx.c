/* libFuzzer: the ONNX importer (protobuf walk + unpack, graph compile, tree
   import) on arbitrary bytes; native backend only. A model that loads must
   also predict a couple of rows, then try reduced precision (half dense
   weights, checked on those rows; refused or not) and predict again. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "alphapulse/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ap_onnx_options o;
    ap_onnx_options_default(&o);
    o.backend = AP_ONNX_NATIVE;
    ap_onnx *m;
    ap_error err;
    if (ap_onnx_load_mem(data, size, "fuzz.onnx", &o, &m, &err) != AP_OK)
        return 0;
    int nf = ap_onnx_num_features(m), nout = ap_onnx_num_outputs(m);
    double *X = calloc((size_t)nf * 2, sizeof *X);
    double *Y = calloc((size_t)nout * 2, sizeof *Y);
    if (X && Y) {
        for (int i = 0; i < nf; i++)
            X[nf + i] = NAN;
        ap_onnx_predict(m, X, 2, Y, &err);
        double dev;
        if (ap_onnx_set_precision(m, AP_PRECISION_REDUCED, 0, X, 2, &dev, &err) == AP_OK)
            ap_onnx_predict(m, X, 2, Y, &err);
        ap_onnx_model_bytes(m, AP_PRECISION_FULL);
        ap_onnx_model_bytes(m, AP_PRECISION_REDUCED);
    }
    free(X);
    free(Y);
    ap_onnx_free(m);
    return 0;
}
