/* libFuzzer: XGBoost UBJSON models through the public loader; when a model
   loads, predict one all-NaN row and one all-zero row (raw and transformed). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "alphapulse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ap_forest *f;
    ap_error err;
    if (ap_forest_load_mem(data, size, AP_FORMAT_XGBOOST_UBJ, "fuzz", &f, &err) != AP_OK)
        return 0;
    size_t nf = (size_t)ap_forest_num_features(f);
    double *X = malloc(2 * nf * sizeof *X);
    double *y = malloc(2 * (size_t)ap_forest_num_outputs(f, AP_PREDICT_RAW) * sizeof *y);
    if (X && y) {
        for (size_t i = 0; i < nf; i++) {
            X[i] = NAN;
            X[nf + i] = 0.0;
        }
        ap_forest_predict(f, X, 2, y, 0);
        ap_forest_predict(f, X, 2, y, AP_PREDICT_RAW);
    }
    free(X);
    free(y);
    ap_forest_free(f);
    return 0;
}
