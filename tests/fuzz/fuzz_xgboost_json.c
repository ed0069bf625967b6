/* libFuzzer: XGBoost JSON models through the public loader (fuzz_forest.h). */
#include "fuzz_forest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_forest(data, size, AP_FORMAT_XGBOOST_JSON);
}
