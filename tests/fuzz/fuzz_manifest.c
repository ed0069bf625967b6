/* libFuzzer target: manifest.json and version.json parsing (every kind),
   including the pipeline steps they carry. */
#include <stddef.h>
#include <stdint.h>

#include "registry/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ap_manifest m;
    ap_error err;
    ap__manifest_parse((const char *)data, size, "fuzz/manifest.json", &m, &err);
    for (int kind = AP_MODEL_PATTERN; kind <= AP_MODEL_RAW; kind++) {
        ap_version_spec s;
        if (ap__version_spec_parse((const char *)data, size, (ap_model_kind)kind,
                                  "fuzz/1/version.json", &s, &err) == AP_OK)
            ap__version_spec_free(&s);
    }
    return 0;
}
